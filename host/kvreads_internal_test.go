package host

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
)

// callCounter counts the calls that reach the plugin, by op.
type callCounter struct{ gets atomic.Int64 }

func (c *callCounter) PluginCall(_ string, op abi.Op, _ time.Duration, _ error, _ bool) {
	if op == abi.OpGetAgentState || op == abi.OpGetAlert {
		c.gets.Add(1)
	}
}

// fromPlugin is the plugin's own answer to a get of id (get:
// Store.agentStateFromPlugin or alertFromPlugin), as GetAgentState and
// GetAlert give it when no declared read serves it. It switches nothing
// off in the store: its other goroutines (the expiry watch) get records
// too.
func fromPlugin[T any](ctx context.Context, get func(context.Context, string, *T) error, id string) (T, error) {
	var out, none T
	err := stoppedBy(ctx, get(ctx, id, &out))
	if !answered(err) {
		return none, err
	}
	return out, err
}

// TestKVReadsAnswerAsThePluginDoes: the memory plugin declares its alert
// and agent-state gets kv reads; the host answers them without entering
// the plugin, with what the plugin's own get answers: records, versions,
// expiries, NOT_FOUND for absent, deleted and expired records, on a
// store in memory and on disk.
func TestKVReadsAnswerAsThePluginDoes(t *testing.T) {
	for _, dataDir := range []string{"", t.TempDir()} {
		name := "memory"
		if dataDir != "" {
			name = "data_dir"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Unix(1_800_000_000, 0)
			var clock atomic.Int64
			clock.Store(now.UnixNano())
			calls := &callCounter{}
			st, err := Open(ctx, Config{Plugin: "builtin:memory", DataDir: dataDir},
				WithClock(func() time.Time { return time.Unix(0, clock.Load()) }), WithObserver(calls), WithCompilationCache(""))
			require.NoError(t, err)
			defer st.Close(ctx)
			require.NotNil(t, st.p.kvReads[abi.KindAgentState])
			require.NotNil(t, st.p.kvReads[abi.KindAlert])

			forever, err := st.PutAgentState(ctx, AgentState{AgentID: "a1", State: []byte(`{"step":1}`)})
			require.NoError(t, err)
			brief, err := st.PutAgentState(ctx, AgentState{AgentID: "a2", State: []byte(`{"step":2}`)}, WithTTL(time.Minute))
			require.NoError(t, err)
			alert, err := st.PutAlert(ctx, Alert{ID: "x1", AgentID: "a1", Severity: abi.SeverityCritical, Status: abi.AlertFiring, Message: "disk", Labels: map[string]string{"dc": "eu"}}, WithTTL(time.Hour))
			require.NoError(t, err)
			_, err = st.PutAgentState(ctx, AgentState{AgentID: "gone"})
			require.NoError(t, err)
			require.NoError(t, st.DeleteAgentState(ctx, "gone"))

			// each asks both ways, the host's read first: the same answer.
			each := func(step string) {
				for _, id := range []string{"a1", "a2", "gone", "never"} {
					before := st.p.kvServed.Load()
					fromKV, kvErr := st.GetAgentState(ctx, id)
					require.Equal(t, before+1, st.p.kvServed.Load(), "%s: %s is read from kv", step, id)
					fromPlugin, pluginErr := fromPlugin(ctx, st.agentStateFromPlugin, id)
					assert.Equal(t, fromPlugin, fromKV, "%s: %s", step, id)
					assert.Equal(t, pluginErr == nil, kvErr == nil, "%s: %s: %v / %v", step, id, pluginErr, kvErr)
					if pluginErr != nil {
						assert.ErrorIs(t, kvErr, ErrNotFound, "%s: %s", step, id)
						assert.ErrorIs(t, pluginErr, ErrNotFound, "%s: %s", step, id)
					}
				}
				fromKV, kvErr := st.GetAlert(ctx, "x1")
				fromPlugin, pluginErr := fromPlugin(ctx, st.alertFromPlugin, "x1")
				assert.Equal(t, fromPlugin, fromKV, "%s: alert", step)
				assert.Equal(t, pluginErr == nil, kvErr == nil, "%s: alert: %v / %v", step, pluginErr, kvErr)
			}
			pluginGets := calls.gets.Load()
			each("written")
			assert.Equal(t, pluginGets+5, calls.gets.Load(), "only the plugin's own gets reached it")

			got, err := st.GetAgentState(ctx, "a1")
			require.NoError(t, err)
			assert.Equal(t, forever.Version, got.Version)
			assert.Equal(t, `{"step":1}`, string(got.State))
			got, err = st.GetAgentState(ctx, "a2")
			require.NoError(t, err)
			assert.True(t, brief.ExpiresAt.Equal(got.ExpiresAt), "expiry %v, want %v", got.ExpiresAt, brief.ExpiresAt)
			gotAlert, err := st.GetAlert(ctx, "x1")
			require.NoError(t, err)
			assert.True(t, alert.ExpiresAt.Equal(gotAlert.ExpiresAt))
			assert.Equal(t, alert.Labels, gotAlert.Labels)

			// The expiry watch gets a2 once the clock passes its expiry
			// (through the kv read, as any get): each counts the reads it
			// makes itself once the watch has told a2's expiry.
			expiries, err := st.Subscribe(ctx, events.Filter{Ops: []string{events.OpExpire}}, "")
			require.NoError(t, err)
			defer expiries.Close()
			clock.Add(int64(2 * time.Minute))
			select {
			case ev := <-expiries.Events():
				require.Equal(t, "a2", ev.Key)
			case <-time.After(10 * time.Second):
				require.FailNow(t, "a2's expiry is not told", "%v", expiries.Err())
			}
			each("a2 expired")
			_, err = st.GetAgentState(ctx, "a2")
			require.ErrorIs(t, err, ErrNotFound, "an expired record is never returned")
			clock.Add(int64(2 * time.Hour))
			_, err = st.GetAlert(ctx, "x1")
			require.ErrorIs(t, err, ErrNotFound)
			assert.Zero(t, st.Stats().KVReadFaults)
			assert.NotZero(t, st.Stats().KVReads)
		})
	}
}

// TestKVReadOfAValueNotTheRecord: an entry at a declared key that does
// not hold the record (does not decode, holds another agent's, is over
// the response bound) sends the get to the plugin, which answers for
// itself. None is taken for the record.
func TestKVReadOfAValueNotTheRecord(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{Plugin: "builtin:memory"}, WithCompilationCache(""))
	require.NoError(t, err)
	defer st.Close(ctx)
	put := func(key string, value []byte) {
		var e abi.Encoder
		st.p.kv.Do(&abi.KVRequest{Op: abi.KVPut, Key: []byte(key), Value: value}, &e)
		require.Equal(t, byte(abi.StatusOK), e.Bytes()[0])
	}

	put("s\x00junk", []byte{0xff, 0xff})
	_, err = st.GetAgentState(ctx, "junk")
	require.Error(t, err)
	assert.ErrorContains(t, err, "corrupt record", "the plugin's own answer to its corrupt entry")
	assert.Equal(t, uint64(1), st.Stats().KVReadFaults)

	var e abi.Encoder
	other := abi.AgentState{AgentID: "other", State: []byte("{}")}
	other.Encode(&e)
	put("s\x00mine", e.Bytes())
	got, err := st.GetAgentState(ctx, "mine")
	require.NoError(t, err, "the memory plugin answers its entry as the agent asked for")
	assert.Equal(t, "mine", got.AgentID)
	assert.Equal(t, uint64(2), st.Stats().KVReadFaults, "the entry of another record is not taken for the record")

	big := make([]byte, st.p.limits.MaxResponseBytes+1)
	put("s\x00big", big)
	_, err = st.GetAgentState(ctx, "big")
	require.Error(t, err, "the plugin's answer of a value over the response limit is refused")
	assert.Equal(t, uint64(3), st.Stats().KVReadFaults)
}

// TestKVReadsAfterClose: a get after Close is ErrClosed, as a call is.
func TestKVReadsAfterClose(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{Plugin: "builtin:memory"}, WithCompilationCache(""))
	require.NoError(t, err)
	require.NoError(t, st.Close(ctx))
	_, err = st.GetAgentState(ctx, "a1")
	require.ErrorIs(t, err, ErrClosed)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	st2, err := Open(ctx, Config{Plugin: "builtin:memory"}, WithCompilationCache(""))
	require.NoError(t, err)
	defer st2.Close(ctx)
	_, err = st2.GetAgentState(canceled, "a1")
	require.ErrorIs(t, err, context.Canceled)
}
