package sdk

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// lostStates answers every operation with an unknown outcome, as a store
// whose Redis reply was lost would pass it on.
type lostStates struct{}

var errLost = fmt.Errorf("agent a: %w", abi.Errorf(abi.StatusUnknown, "no reply in time"))

func (lostStates) PutAgentState(*abi.PutAgentState) (abi.AgentState, error) {
	return abi.AgentState{}, errLost
}
func (lostStates) GetAgentState(string) (abi.AgentState, error) { return abi.AgentState{}, errLost }
func (lostStates) DeleteAgentState(*abi.DeleteAgentState) error { return errLost }

// A write answers UNKNOWN as its store said; a read, which changed
// nothing, answers UNAVAILABLE, alone or in a batch.
func TestOutcomeUnknownOnlyFromWrites(t *testing.T) {
	d := newDispatcher(Plugin{Name: "p", AgentStates: lostStates{}})
	put := abi.PutAgentState{State: abi.AgentState{AgentID: "a", State: []byte("x")}}
	st, body := call(t, d, abi.OpPutAgentState, encode(&put))
	assert.Equal(t, abi.StatusUnknown, st, "%s", body)
	del := abi.DeleteAgentState{AgentID: "a"}
	st, _ = call(t, d, abi.OpDeleteAgentState, encode(&del))
	assert.Equal(t, abi.StatusUnknown, st)
	var id abi.Encoder
	id.String("a")
	st, body = call(t, d, abi.OpGetAgentState, id.Bytes())
	assert.Equal(t, abi.StatusUnavailable, st)
	assert.Contains(t, string(body), "no reply in time")

	results := d.batchResults(t, []abi.BatchItem{{Op: abi.OpGetAgentState, Payload: id.Bytes()}, {Op: abi.OpPutAgentState, Payload: encode(&put)}})
	require.Len(t, results, 2)
	assert.Equal(t, abi.StatusUnavailable, results[0].Status)
	assert.Equal(t, abi.StatusUnknown, results[1].Status)
}

// batchResults runs items as one batch and decodes the results.
func (d *dispatcher) batchResults(t *testing.T, items []abi.BatchItem) []abi.BatchResult {
	t.Helper()
	var req, e abi.Encoder
	abi.EncodeBatch(&req, items)
	require.NoError(t, d.batch(req.Bytes(), &e))
	dec := abi.NewDecoder(e.Bytes())
	out := abi.DecodeBatchResults(dec)
	require.NoError(t, dec.Finish())
	return out
}
