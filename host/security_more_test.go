package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// openKeeper opens testdata/plugins/hostile/keeper.wat with one instance,
// so the instance after a trap is a fresh one.
func openKeeper(t *testing.T, cfg host.Config) (*host.Store, *foreignLog) {
	t.Helper()
	cfg.Instances = 1
	log := &foreignLog{}
	st, _, err := hostileOpen(t, "keeper", cfg, log)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := hostileBounded(t, hostileBound, "Close keeper", st.Close)
		assert.NoError(t, err)
	})
	return st, log
}

// TestMalformedWriteAnswerWritesNothing: a put answered with a body that
// does not decode (the agent's own record, then one trailing byte) fails
// with ErrInternal naming the decode error, publishes no event and leaves
// the agent's cached entry alone. Were the answer decoded leniently, it
// would pass every other check: it names the agent asked for, version 1.
func TestMalformedWriteAnswerWritesNothing(t *testing.T) {
	st, _ := openKeeper(t, host.Config{Cache: host.CacheOptions{Entries: 64}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.Eventually(t, func() bool { return st.Stats().Cache.Enabled }, 10*time.Second, 10*time.Millisecond)
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	// "w" cached with state "old".
	got, err := st.GetAgentState(ctx, "w")
	require.NoError(t, err)
	require.Equal(t, "old", string(got.State))
	require.Equal(t, 1, st.Stats().Cache.Entries)

	out, err := st.PutAgentState(ctx, host.AgentState{AgentID: "w", State: []byte("new")})
	assert.ErrorIs(t, err, host.ErrInternal)
	assert.ErrorContains(t, err, "put_agent_state response: abi: malformed message")
	assert.Zero(t, out, "nothing of a malformed answer reaches the caller")

	hits := st.Stats().Cache.Hits
	got, err = st.GetAgentState(ctx, "w")
	require.NoError(t, err)
	assert.Equal(t, "old", string(got.State), "a malformed answer replaced the cached entry")
	assert.Equal(t, hits+1, st.Stats().Cache.Hits, "a malformed answer dropped the cached entry")
	assert.Equal(t, 1, st.Stats().Cache.Entries)

	// Events are published in order: once the sentinel's has arrived,
	// any event of the malformed put would have too.
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "s", State: []byte("{}")})
	require.NoError(t, err)
	for {
		select {
		case ev := <-sub.Events():
			require.Equal(t, "s", ev.AgentID, "a malformed answer published %+v", ev)
			return
		case <-ctx.Done():
			t.Fatal("the sentinel's event never arrived")
		}
	}
}

// TestKVRecordsOutliveATrap: a record a plugin keeps in the kv capability
// is the backend's, not its instance's: after the instance that wrote it
// traps and is discarded, the fresh instance reads it back.
func TestKVRecordsOutliveATrap(t *testing.T) {
	st, _ := openKeeper(t, host.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	_, err := st.GetAgentState(ctx, "r")
	require.ErrorIs(t, err, host.ErrNotFound, "the store starts empty")
	_, err = st.GetAgentState(ctx, "p")
	require.NoError(t, err)
	got, err := st.GetAgentState(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, "kept", string(got.State))

	for i := range 3 {
		_, err = st.GetAgentState(ctx, "x")
		require.ErrorIs(t, err, host.ErrInternal)
		require.Equal(t, uint64(i+1), st.Stats().Traps, "the trapped instance is discarded")

		got, err = st.GetAgentState(ctx, "r")
		require.NoError(t, err, "the record is lost after trap %d", i+1)
		assert.Equal(t, "kept", string(got.State))
	}
}

// TestStaleWriteWithoutTickIsRefused: a put answered STALE (acknowledged
// into a buffer) by a plugin that does not advertise the tick feature
// fails with ErrInternal, counts as a refused answer and publishes no
// event: no tick would ever report the write.
func TestStaleWriteWithoutTickIsRefused(t *testing.T) {
	st, _ := openKeeper(t, host.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "b", State: []byte("{}")})
	assert.ErrorIs(t, err, host.ErrInternal)
	assert.ErrorContains(t, err, "does not advertise tick")
	assert.Equal(t, uint64(1), st.RefusedAnswers())

	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "s", State: []byte("{}")})
	require.NoError(t, err)
	for {
		select {
		case ev := <-sub.Events():
			require.Equal(t, "s", ev.AgentID, "a refused STALE write published %+v", ev)
			return
		case <-ctx.Done():
			t.Fatal("the sentinel's event never arrived")
		}
	}
}

// TestMalformedAnswerAfterAWrite: a put that wrote its record to the kv
// store and then answered OK with a body cut short (no expires_at) is not
// a failure for the caller, who would take it that nothing was written:
// its outcome is unknown (HTTP 504), its record gets an unknown event, and
// the record it wrote is there to read.
func TestMalformedAnswerAfterAWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := openForeign(t, "hostile/writegarbage", host.Config{Capabilities: []abi.Capability{abi.CapabilityClock, abi.CapabilityKV}})
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "w", State: []byte("new")})
	require.ErrorIs(t, err, host.ErrOutcomeUnknown)
	require.ErrorIs(t, err, host.ErrInternal)
	require.ErrorContains(t, err, "put_agent_state response: abi: truncated message")
	got, err := st.GetAgentState(ctx, "w")
	require.NoError(t, err)
	require.Equal(t, "new", string(got.State), "the write was made")
	select {
	case ev := <-sub.Events():
		require.Equal(t, events.OpUnknown, ev.Op)
		require.Equal(t, "w", ev.AgentID)
	case <-ctx.Done():
		t.Fatal("no unknown event")
	}
}
