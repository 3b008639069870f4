package main

import (
	"errors"
	"strings"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/plugins/internal/querycost"
	"github.com/storage-host/storage-host/sdk"
)

// Batch serves a whole OpBatch (the SDK finds it on the metric store; it
// serves every kind): every record operation of the batch goes into one
// EvalMany, one bridge call and one round trip (on a single node one
// script call, see sendPacked), and each item gets its own result, in
// request order. The index entries of its writes are added
// after the record calls, one index call per index for the whole batch
// (deferredIndex). A query (or ping) inside a batch is served in its
// place: the record operations before it are sent first, so each item
// sees the effects of the items before it.
func (m *metrics) Batch(in []abi.BatchItem) []abi.BatchResult { return (*backend)(m).batch(in) }

func (b *backend) batch(in []abi.BatchItem) []abi.BatchResult {
	if cap(b.items) < len(in) {
		b.items = make([]item, len(in))
	}
	items := b.items[:len(in)]
	// The results are encoded before the next call: kept for reuse.
	if cap(b.out) < len(in) {
		b.out, b.bodies = make([]abi.BatchResult, len(in)), make([]span, len(in))
	}
	out, bodies := b.out[:len(in)], b.bodies[:len(in)]
	now := clock()
	b.fallbackBegin(now, true)
	b.body.Reset()
	b.rq.reset()
	b.bix.reset()
	b.deferIx = &b.bix
	defer func() { b.deferIx = nil }()
	seg := 0 // first item of the record operations not yet sent
	for i := range in {
		it := &items[i]
		*it = item{BatchOp: sdk.BatchOp{Op: in[i].Op}, now: now}
		if !sdk.IsRecordOp(in[i].Op) {
			b.flush(items[seg:i], out[seg:i], bodies[seg:i])
			seg = i + 1
			start := len(b.body.Bytes())
			out[i].Status = sdk.ServeBatchItem(in[i], &b.body)
			bodies[i] = span{start, len(b.body.Bytes())}
			continue
		}
		b.decodeItem(it, in[i])
		if it.Err == nil && !it.served {
			if b.fb.pending && b.fromBuffer(it) {
				continue
			}
			b.prepare(it)
		}
	}
	b.flush(items[seg:], out[seg:], bodies[seg:])
	all := b.body.Bytes()
	for i := range out {
		out[i].Body = all[bodies[i].lo:bodies[i].hi:bodies[i].hi]
	}
	return out
}

// flush sends the calls of items (prepared into b.rq), finishes them and
// encodes their results.
func (b *backend) flush(items []item, out []abi.BatchResult, bodies []span) {
	records := b.rq.ncalls()
	b.bix.flush(&b.rq)
	var replies []abi.Reply
	var err error
	if b.rq.ncalls() > 0 {
		replies, err = b.sendPacked()
	}
	b.rq.reset()
	if isLimit(err) && readsOnly(items) {
		// Reads change nothing: asked again in parts, each within the
		// bound.
		b.readApart(items, out, bodies, err, len(b.body.Bytes()))
		return
	}
	// A refused index call fails the writes it indexed, as the index call
	// of a single write does (finish).
	var ixErr error
	for i := records; i < len(replies) && ixErr == nil; i++ {
		if replies[i].Kind == abi.ReplyError {
			ixErr = replies[i].Err()
		}
	}
	for i := range items {
		it := &items[i]
		if it.Err == nil && !it.served {
			if err != nil {
				it.Err = failedWith(it, err)
				b.fallBack(it) // in item order, so buffered writes keep it
			} else {
				b.finish(it, replies)
				if it.Err == nil && it.indexed && ixErr != nil {
					it.Err = ixErr
				}
				if errors.Is(it.Err, sdk.ErrUnavailable) {
					// Redis refused its call for a state of its own (out
					// of memory, loading, read-only): as a single write's
					// refusal is, and whether or not its batch was the
					// host's sharing of single calls.
					b.fallBack(it)
				}
			}
		}
		b.result(it, &out[i], &bodies[i], len(b.body.Bytes()))
	}
}

// pending reports whether the item still has calls to send.
func (it *item) pending() bool { return it.Err == nil && !it.served }

// readsOnly reports whether every item with calls to send is a read.
func readsOnly(items []item) bool {
	for i := range items {
		if items[i].pending() && !isRead(items[i].Op) {
			return false
		}
	}
	return true
}

// readApart serves the reads of items, whose replies together passed the
// backend's reply bound (limit, the bridge's LIMIT), in two halves sent
// one after the other, each halved again while its replies pass the
// bound: a record whose reply alone passes it answers LIMIT (tooLarge),
// and the others their records. Each part's results are encoded before
// the next part is sent, which reuses the reply buffer their documents
// alias. Once the records read apart hold querycost.ScanBudget bytes of
// the batch's answer (from start), the reads left answer LIMIT without
// being sent: the answer must fit in the plugin's memory too, and a
// caller reads them in another batch.
func (b *backend) readApart(items []item, out []abi.BatchResult, bodies []span, limit error, start int) {
	n := 0
	for i := range items {
		if items[i].pending() {
			n++
		}
	}
	if n == 1 {
		for i := range items {
			if items[i].pending() {
				items[i].Err = tooLarge(&items[i], limit)
			}
			b.result(&items[i], &out[i], &bodies[i], len(b.body.Bytes()))
		}
		return
	}
	half := len(items) / 2
	for _, p := range [2][2]int{{0, half}, {half, len(items)}} {
		part, pout, pbodies := items[p[0]:p[1]], out[p[0]:p[1]], bodies[p[0]:p[1]]
		if held := len(b.body.Bytes()) - start; held >= querycost.ScanBudget {
			for i := range part {
				if part[i].pending() {
					part[i].Err = abi.Errorf(abi.StatusLimit, "%s: the batch's answer holds %d bytes of records, its bound; read it in another batch",
						part[i].record(), held)
				}
				b.result(&part[i], &pout[i], &pbodies[i], len(b.body.Bytes()))
			}
			continue
		}
		b.rq.reset()
		for i := range part {
			if part[i].pending() {
				b.prepare(&part[i])
			}
		}
		var replies []abi.Reply
		var err error
		if b.rq.ncalls() > 0 {
			replies, err = b.sendPacked()
		}
		b.rq.reset()
		if isLimit(err) {
			b.readApart(part, pout, pbodies, err, start)
			continue
		}
		for i := range part {
			it := &part[i]
			if it.pending() {
				if err != nil {
					it.Err = failedWith(it, err)
					b.fallBack(it)
				} else {
					b.finish(it, replies)
				}
			}
			b.result(it, &pout[i], &pbodies[i], len(b.body.Bytes()))
		}
	}
}

// result encodes the item's answer into b.body (sdk.BatchOp.Answer): a
// read served from the fallback buffer is STALE, with its record.
func (b *backend) result(it *item, out *abi.BatchResult, body *span, start int) {
	out.Status = it.Answer(&b.body)
	*body = span{start, len(b.body.Bytes())}
}

// decodeItem decodes and checks a batch item as the SDK does a single
// request (sdk.BatchOp.Decode); a bad item fails alone. A put's document
// is written and answered within the call, while the payload holds still:
// it is not copied; its agent ID is (the fallback buffer may keep it).
func (b *backend) decodeItem(it *item, in abi.BatchItem) {
	it.Decode(in)
	if it.Err != nil {
		return
	}
	switch it.Op {
	case abi.OpPutAgentState:
		it.State.AgentID = strings.Clone(it.State.AgentID)
	case abi.OpRestore:
		it.setRestore(&it.Restore)
	}
}
