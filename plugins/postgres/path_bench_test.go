package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// BenchmarkGuestPath runs the plugin's own work for a request natively,
// everything but the host call: the items decoded (a batch's) and
// prepared, the statements encoded as sdk.Postgres encodes them, a
// recorded response decoded as sdk.Postgres decodes it, the items
// finished and their records encoded. What it allocates is what the
// guest allocates on the same path.
func BenchmarkGuestPath(b *testing.B) {
	for _, c := range guestPathCases() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var g guestPath
			for b.Loop() {
				g.run(c)
			}
		})
	}
}

// TestGuestPathAllocations: once warm, a single get or put allocates
// nothing (the decoded response's results and values are the client's,
// reused), and a batch of puts only its results and their bodies' bounds,
// nothing per item. The least of a few rounds: other goroutines'
// allocations count too.
func TestGuestPathAllocations(t *testing.T) {
	for _, c := range guestPathCases() {
		var g guestPath
		g.run(c)
		want := map[string]float64{"GetAgentState": 0, "PutAgentState": 0, "BulkPut100": 2}[c.name]
		n := testing.AllocsPerRun(50, func() { g.run(c) })
		for range 4 {
			n = min(n, testing.AllocsPerRun(50, func() { g.run(c) }))
		}
		if n > want {
			t.Errorf("%s: %.0f allocations, want at most %.0f", c.name, n, want)
		}
	}
}

type guestPathCase struct {
	name  string
	op    abi.Op // a single operation's, or OpBatch
	it    item   // a single operation's
	items []abi.BatchItem
	// resp is the body of the postgres capability's OK response.
	resp []byte
}

func guestPathCases() []guestPathCase {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	doc := []byte(`{"step":1,"goal":"benchmark"}`)
	ints := func(ns ...int64) []abi.PGValue {
		vs := make([]abi.PGValue, len(ns))
		for i, n := range ns {
			vs[i] = abi.PGValue{Kind: abi.PGInt, Int: n}
		}
		return vs
	}
	encode := func(rs ...abi.PGResult) []byte {
		var e abi.Encoder
		abi.EncodePGResults(&e, rs)
		return e.Bytes()
	}
	put := abi.PGResult{OK: true, RowsAffected: 1, Columns: 2, Values: ints(1796244962248139, 0)}
	get := abi.PGResult{OK: true, RowsAffected: 1, Columns: 4,
		Values: append([]abi.PGValue{{Kind: abi.PGBytea, Bytes: doc}}, ints(1796244962248139, now.UnixNano(), 0)...)}
	var items []abi.BatchItem
	var puts []abi.PGResult
	for i := range 100 {
		var e abi.Encoder
		(&abi.PutAgentState{State: abi.AgentState{AgentID: "agent-" + strconv.Itoa(i), State: doc}}).Encode(&e)
		items = append(items, abi.BatchItem{Op: abi.OpPutAgentState, Payload: e.Bytes()})
		puts = append(puts, put)
	}
	return []guestPathCase{
		{name: "GetAgentState", op: abi.OpGetAgentState, it: item{BatchOp: sdk.BatchOp{Op: abi.OpGetAgentState, State: abi.AgentState{AgentID: "agent-1"}}, now: now},
			resp: encode(get)},
		{name: "PutAgentState", op: abi.OpPutAgentState, it: item{BatchOp: sdk.BatchOp{Op: abi.OpPutAgentState, State: abi.AgentState{AgentID: "agent-1", State: doc}}, now: now},
			resp: encode(put)},
		{name: "BulkPut100", op: abi.OpBatch, items: items, resp: encode(puts...)},
	}
}

// guestPath holds what the SDK and the plugin keep from call to call.
type guestPath struct {
	be  backend
	req abi.PGRequest
	enc abi.Encoder
	dec abi.Decoder
	res abi.PGResultsBuffer
	rs  []abi.PGResult
	out abi.Encoder
}

// run is one request's guest work, as records.go, batch.go and
// sdk.Postgres do it.
func (g *guestPath) run(c guestPathCase) {
	b := &g.be
	b.reset()
	var items []item
	if c.op == abi.OpBatch {
		if cap(b.items) < len(c.items) {
			b.items = make([]item, len(c.items))
		}
		items = b.items[:len(c.items)]
		out := make([]abi.BatchResult, len(c.items))
		bodies := make([][2]int, len(c.items))
		b.body.Reset()
		for i := range c.items {
			it := &items[i]
			*it = item{now: c.it.now, stmt: -1}
			it.Decode(c.items[i])
			b.prepare(it)
		}
		g.send(abi.PGTransaction, c.resp)
		for i := range items {
			b.finish(&items[i], &g.rs[items[i].stmt])
			start := len(b.body.Bytes())
			out[i].Status = items[i].Answer(&b.body)
			bodies[i] = [2]int{start, len(b.body.Bytes())}
		}
		g.out.Reset()
		abi.EncodeBatchResults(&g.out, out)
	} else {
		b.one[0] = c.it
		it := &b.one[0]
		b.prepare(it)
		g.send(abi.PGBatch, c.resp)
		b.finish(it, &g.rs[it.stmt])
		g.out.Reset()
		it.State.Encode(&g.out)
		items = b.one[:]
	}
	for i := range items {
		if items[i].Err != nil {
			panic(items[i].Err)
		}
	}
	if c.op == abi.OpBatch {
		clear(items) // as batch does
	}
	b.reset()
}

// send encodes the statements and decodes the recorded response as
// sdk.Postgres does.
func (g *guestPath) send(mode abi.PGMode, resp []byte) {
	g.req = abi.PGRequest{Mode: mode, Statements: g.be.stmts}
	g.enc.Reset()
	g.req.Encode(&g.enc)
	g.dec.Reset(resp)
	g.rs = g.res.Decode(&g.dec)
	if err := g.dec.Finish(); err != nil || len(g.rs) != len(g.be.stmts) {
		panic("bad recorded response")
	}
}
