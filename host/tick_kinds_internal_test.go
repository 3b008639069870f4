package host

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
)

// A tick's report of a write of a kind the backend does not serve is
// refused, and publishes nothing: an outside check's plugin of agent
// states reported metric and alert writes, whose events reached the
// store's subscribers.
func TestTickedWritesOfKindsNotServedAreRefused(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{Plugin: "../testdata/plugins/agentstate.wasm"}, WithCompilationCache(""))
	require.NoError(t, err)
	defer st.Close(ctx)
	require.False(t, st.p.meta.Features.Has(abi.FeatureMetrics))
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	metric := abi.TickWrite{Op: abi.OpPutMetric, Metric: abi.Metric{AgentID: "victim", Name: "cpu", Timestamp: time.Unix(1, 0)}}
	err = st.publishTicked(&metric)
	require.ErrorIs(t, err, abi.StatusInternal)
	assert.ErrorContains(t, err, "does not serve")
	alert := abi.TickWrite{Op: abi.OpDeleteAlert, Alert: abi.Alert{ID: "forged"}}
	require.ErrorContains(t, st.publishTicked(&alert), "does not serve")
	assert.EqualValues(t, 2, st.RefusedAnswers())

	state := abi.TickWrite{Op: abi.OpPutAgentState, State: abi.AgentState{AgentID: "a", Version: 1}}
	require.NoError(t, st.publishTicked(&state))
	select {
	case ev := <-sub.Events():
		assert.Equal(t, abi.KindAgentState.Name(), ev.Kind, "only the state's event is published")
	case <-time.After(5 * time.Second):
		t.Fatal("the state's event is not published")
	}
}
