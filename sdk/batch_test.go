package sdk

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// answeringStates answers by agent ID: "gone" is not found (wrapped),
// "old" is answered stale, "broken" fails INTERNAL; any other is found
// or written at version 1.
type answeringStates struct{}

func (answeringStates) answer(id string, doc []byte) (abi.AgentState, error) {
	switch id {
	case "gone":
		return abi.AgentState{}, fmt.Errorf("agent state %q: %w", id, ErrNotFound)
	case "old":
		return abi.AgentState{AgentID: id, State: []byte("old"), Version: 3}, ErrStale
	case "broken":
		return abi.AgentState{}, fmt.Errorf("disk on fire")
	}
	return abi.AgentState{AgentID: id, State: doc, Version: 1}, nil
}

func (s answeringStates) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	return s.answer(r.State.AgentID, r.State.State)
}
func (s answeringStates) GetAgentState(id string) (abi.AgentState, error) {
	return s.answer(id, []byte("doc"))
}
func (s answeringStates) DeleteAgentState(r *abi.DeleteAgentState) error {
	_, err := s.answer(r.AgentID, nil)
	return err
}
func (answeringStates) QueryAgentStates(q *abi.AgentStateQuery) (abi.Page[abi.AgentState], error) {
	return abi.Page[abi.AgentState]{Items: []abi.AgentState{{AgentID: "q1", Version: 1}}}, nil
}

// opBatcher is answeringStates with a Batcher built on BatchOp, as a
// plugin that sends its items together builds one.
type opBatcher struct{ answeringStates }

func (b opBatcher) Batch(in []abi.BatchItem) []abi.BatchResult {
	out := make([]abi.BatchResult, len(in))
	for i := range in {
		var e abi.Encoder
		if !IsRecordOp(in[i].Op) {
			out[i] = abi.BatchResult{Status: ServeBatchItem(in[i], &e), Body: e.Bytes()}
			continue
		}
		var o BatchOp
		o.Decode(in[i])
		if o.Err == nil {
			switch o.Op {
			case abi.OpPutAgentState:
				o.State, o.Err = b.answer(o.State.AgentID, o.State.State)
			case abi.OpGetAgentState:
				o.State, o.Err = b.answer(o.State.AgentID, []byte("doc"))
			case abi.OpDeleteAgentState:
				_, o.Err = b.answer(o.State.AgentID, nil)
			default:
				o.Err = ErrUnsupported
			}
		}
		out[i] = abi.BatchResult{Status: o.Answer(&e), Body: e.Bytes()}
	}
	return out
}

// TestBatchOpAnswersAsASingleRequest: a Batcher built on BatchOp and
// ServeBatchItem answers every item of a batch, good or bad, as the SDK
// answers the same request alone, for a plugin with and without the
// TTL and concurrency features.
func TestBatchOpAnswersAsASingleRequest(t *testing.T) {
	put := func(id string, ttl abi.TTL, cond abi.Condition) abi.BatchItem {
		return abi.BatchItem{Op: abi.OpPutAgentState, Payload: encode(&abi.PutAgentState{
			State: abi.AgentState{AgentID: id, State: []byte(`{"a":1}`)}, TTL: ttl, Condition: cond})}
	}
	del := func(id string, cond abi.Condition) abi.BatchItem {
		return abi.BatchItem{Op: abi.OpDeleteAgentState, Payload: encode(&abi.DeleteAgentState{AgentID: id, Condition: cond})}
	}
	get := func(id string) abi.BatchItem {
		var e abi.Encoder
		e.String(id)
		return abi.BatchItem{Op: abi.OpGetAgentState, Payload: e.Bytes()}
	}
	items := []abi.BatchItem{
		put("a1", abi.TTL{}, abi.Condition{}),
		put("a2", abi.TTL{Mode: abi.TTLDuration, Duration: time.Minute}, abi.Condition{}),
		put("a3", abi.TTL{Mode: abi.TTLDuration, Duration: -time.Second}, abi.Condition{}),
		put("a4", abi.TTL{}, abi.Condition{Mode: abi.IfVersion, Version: 2}),
		put("", abi.TTL{}, abi.Condition{}),
		put("gone", abi.TTL{}, abi.Condition{}),
		put("old", abi.TTL{}, abi.Condition{}),
		put("broken", abi.TTL{}, abi.Condition{}),
		{Op: abi.OpPutAgentState, Payload: []byte{0xff, 0xff}},
		{Op: abi.OpPutAgentState, Payload: append(put("a5", abi.TTL{}, abi.Condition{}).Payload, 0)},
		get("a1"), get("gone"), get("old"), get(""),
		del("a1", abi.Condition{}), del("a1", abi.Condition{Mode: abi.IfAbsent}), del("gone", abi.Condition{}),
		{Op: abi.OpGetAlert, Payload: []byte{0}},
		{Op: abi.OpQueryAgentStates, Payload: encode(&abi.AgentStateQuery{Limit: 5})},
		{Op: abi.OpPing},
		{Op: abi.Op(200)},
	}
	for _, features := range []bool{true, false} {
		t.Run(fmt.Sprintf("ttl_and_concurrency=%v", features), func(t *testing.T) {
			single := newDispatcher(Plugin{Name: "p", AgentStates: answeringStates{}, TTL: features, Concurrency: features})
			batching := newDispatcher(Plugin{Name: "p", AgentStates: opBatcher{}, TTL: features, Concurrency: features})
			registered = batching
			t.Cleanup(func() { registered = nil })
			require.NotNil(t, batching.batcher)

			var e abi.Encoder
			abi.EncodeBatch(&e, items)
			st, body := call(t, batching, abi.OpBatch, e.Bytes())
			require.Equal(t, abi.StatusOK, st)
			dec := abi.NewDecoder(body)
			results := abi.DecodeBatchResults(dec)
			require.NoError(t, dec.Finish())
			require.Len(t, results, len(items))
			statuses := map[abi.Status]int{}
			for i, it := range items {
				st, body := call(t, single, it.Op, it.Payload)
				assert.Equal(t, st, results[i].Status, "item %d (%s): status", i, it.Op)
				assert.Equal(t, string(body), string(results[i].Body), "item %d (%s): body", i, it.Op)
				statuses[st]++
			}
			// The batch holds answers of every kind: the comparison above
			// is not of failures alone.
			for _, s := range []abi.Status{abi.StatusOK, abi.StatusStale, abi.StatusInvalid, abi.StatusNotFound, abi.StatusInternal, abi.StatusUnsupported} {
				assert.NotZero(t, statuses[s], "no item answered %s", s)
			}
		})
	}
}
