package httpapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// TestClientKey: streams are shared by IPv4 address and IPv6 /64; an
// IPv4 address mapped into IPv6 is the IPv4 client, and an address that
// is not an IP is one client.
func TestClientKey(t *testing.T) {
	for remote, want := range map[string]string{
		"127.0.0.1:5000":             "127.0.0.1",
		"10.1.2.3:1":                 "10.1.2.3",
		"[::ffff:10.1.2.3]:1":        "10.1.2.3",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:443":      "2001:db8:1:3::/64",
		"[fe80::1%eth0]:80":          "fe80::/64",
		"@":                          "",
		"":                           "",
	} {
		assert.Equal(t, want, clientKey(remote), remote)
	}
}

// TestStreamSlotsShare: places go to whoever asks while some are free;
// then a client takes the newest place of the address holding at least
// two more than it, and no other.
func TestStreamSlotsShare(t *testing.T) {
	ss := newStreamSlots(4)
	var a []*streamSlot
	for range 4 {
		sl := ss.take("a")
		assert.NotNil(t, sl)
		a = append(a, sl)
	}
	assert.Nil(t, ss.take("a"))
	assert.True(t, ss.available("b"))
	b := ss.take("b") // a: 3, b: 1
	assert.NotNil(t, b)
	assert.True(t, isClosed(a[3].displaced), "the newest of a is displaced")
	assert.False(t, isClosed(a[2].displaced))
	assert.NotNil(t, ss.take("c")) // a: 2, b: 1, c: 1
	assert.True(t, isClosed(a[2].displaced))
	assert.False(t, ss.available("b"), "a holds 2, b 1")
	assert.Nil(t, ss.take("b"))
	assert.NotNil(t, ss.take("d")) // a: 1, b: 1, c: 1, d: 1
	assert.True(t, isClosed(a[1].displaced))
	assert.Nil(t, ss.take("e"))
	ss.release(a[3]) // displaced already: gives nothing back
	assert.Equal(t, 4, ss.open)
	ss.release(b)
	assert.Equal(t, 3, ss.open)
	assert.NotNil(t, ss.take("e"))
	ss.setMax(2)
	assert.Nil(t, ss.take("f"), "over a lowered bound, a new stream waits for one to end")
	ss.release(a[0])
	assert.Nil(t, ss.take("f"), "3 open, bound 2")
	assert.Equal(t, 2, ss.limit())
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestEventFilterIsBounded: a stream's filter lists are bounded in
// count and length, so that the filters of the streams a daemon allows
// hold megabytes at most, not the 13 MB one stream's kind list of 152 000
// names held; repeats count once.
func TestEventFilterIsBounded(t *testing.T) {
	same := make([]string, 10_000)
	for i := range same {
		same[i] = "agent-000000"
	}
	out, err := nonEmptyList("agent_id", same, false, maxFilterAgents, abi.MaxIDLength)
	require.NoError(t, err)
	assert.Equal(t, []string{"agent-000000"}, out, "repeats count once")

	distinct := make([]string, maxFilterAgents+1)
	for i := range distinct {
		distinct[i] = fmt.Sprintf("agent-%06d", i)
	}
	_, err = nonEmptyList("agent_id", distinct[:maxFilterAgents], false, maxFilterAgents, abi.MaxIDLength)
	require.NoError(t, err)
	_, err = nonEmptyList("agent_id", distinct, false, maxFilterAgents, abi.MaxIDLength)
	require.ErrorContains(t, err, "agent_id: more than 512 values")

	kinds := make([]string, maxFilterNames+1)
	for i := range kinds {
		kinds[i] = fmt.Sprint("k", i)
	}
	_, err = nonEmptyList("kind", []string{strings.Join(kinds, ",")}, true, maxFilterNames, abi.MaxEventNameLength)
	require.ErrorContains(t, err, "kind: more than 64 values")
	_, err = nonEmptyList("op", []string{strings.Repeat("o", abi.MaxEventNameLength+1)}, true, maxFilterNames, abi.MaxEventNameLength)
	require.ErrorContains(t, err, "longer than 64 bytes")

	out, err = nonEmptyList("kind", []string{"a,b", " b ,c", "a"}, true, maxFilterNames, abi.MaxEventNameLength)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c"}, out)
}
