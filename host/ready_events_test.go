package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// A backend whose event log refuses appends for good (here the stream's
// key holds a string: WRONGTYPE) is not ready until an append succeeds
// again: readiness, not only a counter, says the feed has stopped.
func TestReadyReportsARefusingEventLog(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	st := openShared(t, addr, prefix, 0)
	require.NoError(t, st.Ready(ctx))

	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	stream := redisbridge.HostKeyPrefix + "{" + prefix + "}:events"
	require.NoError(t, c.Set(ctx, stream, "not a stream", 0).Err())

	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{}`)})
	require.NoError(t, err, "the write itself does not depend on its event")
	require.Eventually(t, func() bool { return st.Ready(ctx) != nil }, 10*time.Second, 20*time.Millisecond)
	err = st.Ready(ctx)
	assert.ErrorIs(t, err, events.ErrRefused)
	assert.NotZero(t, st.Stats().Events.Refused)

	require.NoError(t, c.Del(ctx, stream).Err())
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{}`)})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return st.Ready(ctx) == nil }, 10*time.Second, 20*time.Millisecond)
}
