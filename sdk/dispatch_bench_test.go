package sdk

import (
	"testing"
	"time"

	"github.com/storage-host/storage-host/abi"
)

// The dispatcher's own cost per op, run natively with stores that answer
// a fixed record: what the SDK adds around a plugin's code (decode, checks,
// encode). Allocation counts match the guest's within an allocation or two
// (the same compiler decides what escapes), and an allocation is what a Go
// guest feels most (150–500 ns each in wasm).

var (
	benchTime  = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	benchState = abi.AgentState{AgentID: "agent-1", State: []byte(`{"step":1,"goal":"benchmark"}`), Version: 3, UpdatedAt: benchTime}
	benchAlert = abi.Alert{ID: "al-1", AgentID: "agent-1", Severity: abi.SeverityWarning, Status: abi.AlertFiring,
		Message: "disk", Labels: map[string]string{"host": "h1"}, CreatedAt: benchTime, UpdatedAt: benchTime}
	benchMetric = abi.Metric{AgentID: "agent-1", Name: "cpu", Value: 0.5, Timestamp: benchTime,
		Labels: map[string]string{"host": "h1", "region": "eu"}}
)

type fixedStores struct{}

func (fixedStores) PutAgentState(*abi.PutAgentState) (abi.AgentState, error) { return benchState, nil }
func (fixedStores) GetAgentState(string) (abi.AgentState, error)             { return benchState, nil }
func (fixedStores) DeleteAgentState(*abi.DeleteAgentState) error             { return nil }
func (fixedStores) PutAlert(*abi.PutAlert) (abi.Alert, error)                { return benchAlert, nil }
func (fixedStores) GetAlert(string) (abi.Alert, error)                       { return benchAlert, nil }
func (fixedStores) DeleteAlert(string) error                                 { return nil }
func (fixedStores) SetAlertStatus(*abi.SetAlertStatus) (abi.Alert, error)    { return benchAlert, nil }
func (fixedStores) PutMetric(*abi.PutMetric) (abi.Metric, error)             { return benchMetric, nil }
func (fixedStores) GetMetric(*abi.MetricKey) (abi.Metric, error)             { return benchMetric, nil }
func (fixedStores) DeleteMetric(*abi.MetricKey) error                        { return nil }

// dispatchCase is one request of the hot paths and the most allocations
// the dispatcher may make serving it.
type dispatchCase struct {
	name   string
	op     abi.Op
	req    []byte
	budget float64
}

func dispatchCases() []dispatchCase {
	var batch abi.Encoder
	items := make([]abi.BatchItem, 100)
	for i := range items {
		items[i] = abi.BatchItem{Op: abi.OpPutAgentState, Payload: encode(&abi.PutAgentState{State: benchState})}
	}
	abi.EncodeBatch(&batch, items)
	mkey := benchMetric.Key()
	return []dispatchCase{
		{"Ping", abi.OpPing, nil, 0},
		// An ID decoded from the request is a string: one allocation.
		{"GetAgentState", abi.OpGetAgentState, encodeID("agent-1"), 1},
		// Agent ID and state document: the request handed to the store is
		// the dispatcher's own, reused.
		{"PutAgentState", abi.OpPutAgentState, encode(&abi.PutAgentState{State: benchState}), 2},
		{"DeleteAgentState", abi.OpDeleteAgentState, encode(&abi.DeleteAgentState{AgentID: "agent-1"}), 1},
		{"GetAlert", abi.OpGetAlert, encodeID("al-1"), 1},
		{"PutAlert", abi.OpPutAlert, encode(&abi.PutAlert{Alert: benchAlert}), 7},
		{"GetMetric", abi.OpGetMetric, encode(&mkey), 2},
		{"PutMetric", abi.OpPutMetric, encode(&abi.PutMetric{Metric: benchMetric}), 8},
		{"BatchPutAgentState100", abi.OpBatch, batch.Bytes(), 202},
	}
}

func encodeID(id string) []byte {
	var e abi.Encoder
	e.String(id)
	return e.Bytes()
}

func benchDispatcher() *dispatcher {
	s := fixedStores{}
	return newDispatcher(Plugin{Name: "bench", Metrics: s, Alerts: s, AgentStates: s, TTL: true, Concurrency: true})
}

// TestDispatchAllocations keeps the dispatcher within its allocation
// budget on the hot paths.
func TestDispatchAllocations(t *testing.T) {
	d := benchDispatcher()
	var e abi.Encoder
	for _, c := range dispatchCases() {
		e.Reset()
		d.handle(c.op, c.req, &e)
		if s := abi.Status(e.Bytes()[0]); s != abi.StatusOK {
			t.Fatalf("%s: status %s: %s", c.name, s, e.Bytes()[1:])
		}
		got := testing.AllocsPerRun(100, func() {
			e.Reset()
			d.handle(c.op, c.req, &e)
		})
		if got > c.budget {
			t.Errorf("%s: %.0f allocations per call, budget %.0f", c.name, got, c.budget)
		}
	}
}

func BenchmarkDispatch(b *testing.B) {
	d := benchDispatcher()
	for _, c := range dispatchCases() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var e abi.Encoder
			for b.Loop() {
				e.Reset()
				d.handle(c.op, c.req, &e)
			}
		})
	}
}
