package main

import (
	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// Batch serves a whole OpBatch (the SDK finds it on the metric store; it
// serves every kind): the statements of every record operation go in one
// request of the postgres capability, in one round trip, run in order on
// one connection, so each item sees the effects of the items before it;
// the failure of one neither stops nor undoes the others (send). A query
// (or ping) inside a batch is served in its place: the statements before
// it are sent first.
func (m *metrics) Batch(in []abi.BatchItem) []abi.BatchResult { return (*backend)(m).batch(in) }

func (b *backend) batch(in []abi.BatchItem) []abi.BatchResult {
	if cap(b.items) < len(in) {
		b.items = make([]item, len(in))
	}
	items := b.items[:len(in)]
	out := make([]abi.BatchResult, len(in))
	bodies := make([][2]int, len(in))
	now := sdk.Now()
	b.body.Reset()
	b.reset()
	seg := 0 // first item whose statement is not yet sent
	for i := range in {
		it := &items[i]
		*it = item{BatchOp: sdk.BatchOp{Op: in[i].Op}, now: now, stmt: -1}
		if !sdk.IsRecordOp(in[i].Op) {
			b.flush(items[seg:i], out[seg:i], bodies[seg:i])
			seg = i + 1
			start := len(b.body.Bytes())
			out[i].Status = sdk.ServeBatchItem(in[i], &b.body)
			bodies[i] = [2]int{start, len(b.body.Bytes())}
			continue
		}
		it.Decode(in[i])
		b.prepare(it)
	}
	b.flush(items[seg:], out[seg:], bodies[seg:])
	all := b.body.Bytes()
	for i := range out {
		lo, hi := bodies[i][0], bodies[i][1]
		out[i].Body = all[lo:hi:hi]
	}
	// The items are encoded: none of them is to keep a response of the
	// postgres client's (a got state aliases it) or the request reachable
	// after the call, when b.items is kept for the next batch.
	clear(items)
	return out
}

// flush sends the statements prepared for items and encodes their results.
func (b *backend) flush(items []item, out []abi.BatchResult, bodies [][2]int) {
	b.run(items)
	for i := range items {
		start := len(b.body.Bytes())
		out[i].Status = items[i].Answer(&b.body)
		bodies[i] = [2]int{start, len(b.body.Bytes())}
	}
}
