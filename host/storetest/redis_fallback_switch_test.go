package storetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redistest"
)

// TestRedisFailModeReplaysBufferLeftByBufferMode checks that a write
// acknowledged into the fallback buffer survives a change of fallback
// from buffer to fail (a restart on the same data directory): with
// fallback=fail the plugin reports the buffer as pending, serves the
// buffered record from it, refuses writes of it rather than overtaking,
// acknowledges no new write into the buffer, and replays it once Redis
// answers; a newer write made afterwards is never overwritten by the old
// buffered one, also when fallback goes back to buffer.
func TestRedisFailModeReplaysBufferLeftByBufferMode(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	proxy := newFaultProxy(t, addr)
	dir := t.TempDir()
	ctx := t.Context()
	rc := directClient(t, addr)
	fail := map[string]string{"fallback": "fail"}

	a := openTickedIn(t, proxy.Addr(), prefix, dir, nil, false, nil)
	_, err := a.PutAgentState(ctx, host.AgentState{AgentID: "s", State: []byte("v1")})
	require.NoError(t, err)
	proxy.Cut()
	_, err = a.PutAgentState(ctx, host.AgentState{AgentID: "s", State: []byte("v2")})
	require.NoError(t, err, "acknowledged into the buffer")
	require.NoError(t, a.Close(context.Background()))

	// fallback=fail on the same data directory, Redis still away.
	var logs lockedBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	b := openTickedIn(t, proxy.Addr(), prefix, dir, fail, false, logger)
	redistest.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() bool { return b.Stats().BufferedWrites == 1 },
		"the buffered write is reported pending; last %d", b.Stats().BufferedWrites)
	require.Contains(t, logs.String(), "opened with buffered writes pending", "the host says where they go")
	require.Contains(t, logs.String(), "key_prefix="+prefix)
	got, err := b.GetAgentState(ctx, "s")
	require.ErrorIs(t, err, host.ErrStale, "the buffered record is read from the buffer")
	require.Equal(t, "v2", string(got.State))
	_, err = b.PutAgentState(ctx, host.AgentState{AgentID: "s", State: []byte("early")})
	require.ErrorIs(t, err, host.ErrUnavailable, "a write of the buffered record does not overtake it")
	_, err = b.PutAgentState(ctx, host.AgentState{AgentID: "other", State: []byte("x")})
	require.ErrorIs(t, err, host.ErrUnavailable, "fallback=fail buffers no new write")
	rs, err := b.PutAgentStates(ctx, []host.AgentState{{AgentID: "s", State: []byte("early")}, {AgentID: "other", State: []byte("x")}})
	require.NoError(t, err)
	for _, r := range rs {
		require.ErrorIs(t, r.Err, host.ErrUnavailable, "nor does a bulk write")
	}
	gs, err := b.GetAgentStates(ctx, []string{"s"})
	require.NoError(t, err)
	require.ErrorIs(t, gs[0].Err, host.ErrStale)
	require.Equal(t, "v2", string(gs[0].Value.State), "a bulk read of the buffered record reads the buffer")
	require.EqualValues(t, 1, b.Stats().BufferedWrites)

	proxy.Restore()
	redistest.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() bool { return b.Stats().BufferedWrites == 0 },
		"the buffer drains with fallback=fail; %d left", b.Stats().BufferedWrites)
	v, ok := storedState(t, rc, prefix, "s")
	require.True(t, ok)
	require.Equal(t, "v2", v, "the acknowledged write reached Redis")
	_, ok = storedState(t, rc, prefix, "other")
	require.False(t, ok, "the refused write was not kept")
	var v3 host.AgentState
	redistest.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() bool {
		v3, err = b.PutAgentState(ctx, host.AgentState{AgentID: "s", State: []byte("v3")})
		return err == nil
	}, "a write of the record is taken once its buffered write is settled: %v", err)
	got, err = b.GetAgentState(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, "v3", string(got.State))
	require.NoError(t, b.Close(context.Background()))

	// Back to fallback=buffer: nothing old is replayed over v3.
	c := openTickedIn(t, proxy.Addr(), prefix, dir, nil, false, nil)
	ticks := c.Stats().Ticks
	redistest.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() bool { return c.Stats().Ticks >= ticks+3 },
		"the reopened store ticks")
	got, err = c.GetAgentState(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, "v3", string(got.State))
	require.Equal(t, v3.Version, got.Version)
	v, _ = storedState(t, rc, prefix, "s")
	require.Equal(t, "v3", v, "Redis keeps the newer write")
}
