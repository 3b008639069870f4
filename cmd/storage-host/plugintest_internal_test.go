package main

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redisbridge"
)

// The suite's clean-up reaches Redis as the bridge does, credentials
// included: the block's fields over what its URL says.
func TestCleanupOptions(t *testing.T) {
	o, err := cleanupOptions(&redisbridge.Config{Addrs: []string{"10.0.0.1:6379"}, Username: "u", Password: "p", DB: 2, TLS: true})
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.1:6379"}, o.Addrs)
	require.Equal(t, "u", o.Username)
	require.Equal(t, "p", o.Password)
	require.Equal(t, 2, o.DB)
	require.NotNil(t, o.TLSConfig)

	o, err = cleanupOptions(&redisbridge.Config{URL: "rediss://a:b@10.0.0.2:6380/3", Password: "over"})
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.2:6380"}, o.Addrs)
	require.Equal(t, "a", o.Username)
	require.Equal(t, "over", o.Password)
	require.Equal(t, 3, o.DB)
	require.NotNil(t, o.TLSConfig)

	o, err = cleanupOptions(&redisbridge.Config{URL: "redis://10.0.0.3:7000?addr=10.0.0.4:7000", Cluster: true})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"10.0.0.3:7000", "10.0.0.4:7000"}, o.Addrs)
	require.True(t, o.IsClusterMode)
}

// A long line of a failed rule keeps its start (where) and its end (the
// reason), and says how much of the middle was cut.
func TestCutMiddleKeepsBothEnds(t *testing.T) {
	require.Equal(t, "short", cutMiddle("short", 600))
	long := "put_agent_state response: " + strings.Repeat("é", 2000) + " after the last field of AgentState"
	got := cutMiddle(long, 600)
	require.LessOrEqual(t, len(got), 600+40)
	require.True(t, strings.HasPrefix(got, "put_agent_state response: "))
	require.True(t, strings.HasSuffix(got, "after the last field of AgentState"))
	require.Regexp(t, ` … \(\d+ of \d+ bytes cut\) … `, got)
	require.True(t, utf8.ValidString(got))
}
