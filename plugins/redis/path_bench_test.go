package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// BenchmarkGuestPath runs the plugin's own work for one request natively,
// everything but the host call: the item prepared, the script calls built
// and encoded as sdk.Redis encodes them, a recorded reply decoded as
// sdk.Redis decodes it, the item finished and its record encoded as the
// SDK answers it. What it allocates is what the guest allocates on the
// same path.
func BenchmarkGuestPath(b *testing.B) {
	for _, c := range guestPathCases() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var be backend
			var req, out abi.Encoder
			var dec abi.Decoder
			var replies abi.ReplyBuffer
			for b.Loop() {
				be.guestPath(c.it, c.reply, &req, &out, &dec, &replies)
			}
		})
	}
}

type guestPathCase struct {
	name  string
	it    item
	reply []byte // the body of the redis capability's OK response
}

func guestPathCases() []guestPathCase {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	bulk := func(s string) abi.Reply { return abi.Reply{Kind: abi.ReplyBulk, Str: []byte(s)} }
	arr := func(rs ...abi.Reply) abi.Reply { return abi.Reply{Kind: abi.ReplyArray, Array: rs} }
	num := func(n int64) abi.Reply { return abi.Reply{Kind: abi.ReplyInt, Int: n} }
	replies := func(rs ...abi.Reply) []byte {
		var e abi.Encoder
		abi.EncodeReplies(&e, rs)
		return e.Bytes()
	}
	doc := `{"step":1,"goal":"benchmark"}`
	return []guestPathCase{
		{"GetAgentState", item{BatchOp: sdk.BatchOp{Op: abi.OpGetAgentState, State: abi.AgentState{AgentID: "agent-1"}}, now: now},
			replies(arr(arr(bulk("1796244962248139"), bulk("1796244962248139000"), bulk(doc)), num(-1)))},
		{"PutAgentState", item{BatchOp: sdk.BatchOp{Op: abi.OpPutAgentState, State: abi.AgentState{AgentID: "agent-1", State: []byte(doc)}}, now: now},
			replies(arr(num(1), num(1796244962248139), num(-1)))},
		{"GetMetric", item{BatchOp: sdk.BatchOp{Op: abi.OpGetMetric, Metric: abi.Metric{AgentID: "agent-1", Name: "cpu", Timestamp: now}}, now: now},
			replies(arr(bulk(string(appendMetricValue(nil, &abi.Metric{Value: 0.5, Labels: map[string]string{"host": "h1", "region": "eu"}}))), num(-1)))},
		{"PutMetric", item{BatchOp: sdk.BatchOp{Op: abi.OpPutMetric, Metric: abi.Metric{AgentID: "agent-1", Name: "cpu", Value: 0.5, Timestamp: now,
			Labels: map[string]string{"host": "h1", "region": "eu"}}}, now: now},
			replies(num(-1))},
		{"PutAlert", item{BatchOp: sdk.BatchOp{Op: abi.OpPutAlert, Alert: abi.Alert{ID: "al-1", AgentID: "agent-1", Severity: abi.SeverityWarning,
			Status: abi.AlertFiring, Message: "disk", Labels: map[string]string{"host": "h1"}}}, now: now},
			replies(arr(num(1), bulk("1796244962248139000"), num(-1)))},
	}
}

// guestPath is one request's guest work, as direct and sdk.Redis do it.
func (b *backend) guestPath(it item, reply []byte, req, out *abi.Encoder, dec *abi.Decoder, rb *abi.ReplyBuffer) {
	b.rq.reset()
	b.joinIx = true
	b.prepare(&it)
	b.joinIx = false
	calls := b.rq.build()
	rr := abi.RedisRequest{Mode: abi.RedisScript, Script: library, Calls: calls}
	req.Reset()
	rr.Encode(req)
	dec.Reset(reply)
	replies := rb.Decode(dec)
	if err := dec.Finish(); err != nil || len(replies) != len(calls) {
		panic("bad recorded reply")
	}
	b.finish(&it, replies)
	if it.Err != nil {
		panic(it.Err)
	}
	out.Reset()
	switch it.Op {
	case abi.OpGetAgentState, abi.OpPutAgentState:
		it.State.Encode(out)
	case abi.OpGetMetric, abi.OpPutMetric:
		it.Metric.Encode(out)
	case abi.OpPutAlert:
		it.Alert.Encode(out)
	}
}

// TestGuestPathAllocations: the single-record paths of agent states and
// alerts, and metric puts, allocate nothing in the plugin once warm (a
// metric read allocates its labels and strings, which the record keeps).
func TestGuestPathAllocations(t *testing.T) {
	var be backend
	var req, out abi.Encoder
	var dec abi.Decoder
	var replies abi.ReplyBuffer
	for _, c := range guestPathCases() {
		if c.it.Op == abi.OpGetMetric {
			continue
		}
		be.guestPath(c.it, c.reply, &req, &out, &dec, &replies)
		if n := testing.AllocsPerRun(100, func() { be.guestPath(c.it, c.reply, &req, &out, &dec, &replies) }); n != 0 {
			t.Errorf("%s: %.0f allocations, want none", c.name, n)
		}
	}
}

// BenchmarkGuestBatch runs the plugin's own work for a batch of 100
// agent-state puts natively: the items decoded and prepared, the calls
// built, packed and encoded as sdk.Redis encodes them, a recorded reply
// decoded, unpacked and finished, and each item's result encoded. The
// host call is the only part missing.
func BenchmarkGuestBatch(b *testing.B) {
	const n = 100
	doc := []byte(`{"step":1,"goal":"benchmark"}`)
	in := make([]abi.BatchItem, n)
	for i := range in {
		var e abi.Encoder
		r := abi.PutAgentState{State: abi.AgentState{AgentID: "agent-" + strconv.Itoa(i), State: doc}}
		r.Encode(&e)
		in[i] = abi.BatchItem{Op: abi.OpPutAgentState, Payload: e.Bytes()}
	}
	item := abi.Reply{Kind: abi.ReplyArray, Array: []abi.Reply{{Kind: abi.ReplyInt, Int: 1},
		{Kind: abi.ReplyInt, Int: 1796244962248139}, {Kind: abi.ReplyInt, Int: -1}}}
	all := make([]abi.Reply, 0, n+1)
	for range n {
		all = append(all, item)
	}
	all = append(all, abi.Reply{Kind: abi.ReplyInt, Int: n})
	var rec abi.Encoder
	abi.EncodeReplies(&rec, []abi.Reply{{Kind: abi.ReplyArray, Array: all}})
	var req abi.Encoder
	var dec abi.Decoder
	var replies abi.ReplyBuffer
	defer func(f func(*sdk.Redis, []byte, []abi.ScriptCall) ([]abi.Reply, error)) { evalMany = f }(evalMany)
	evalMany = func(_ *sdk.Redis, script []byte, calls []abi.ScriptCall) ([]abi.Reply, error) {
		rr := abi.RedisRequest{Mode: abi.RedisScript, Script: script, Calls: calls}
		req.Reset()
		rr.Encode(&req)
		dec.Reset(rec.Bytes())
		rs := replies.Decode(&dec)
		return rs, dec.Finish()
	}
	defer func(f func() time.Time) { clock = f }(clock)
	clock = func() time.Time { return time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC) }
	be := backend{fb: &fallback{max: defaultBufferEntries}} // fallback=fail, as main's
	var out abi.Encoder
	b.ReportAllocs()
	for b.Loop() {
		res := be.batch(in)
		if res[0].Status != abi.StatusOK || res[n-1].Status != abi.StatusOK {
			b.Fatalf("status %v", res[0].Status)
		}
		out.Reset()
		abi.EncodeBatchResults(&out, res)
	}
}
