package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/internal/coalesce"
	"github.com/storage-host/storage-host/host/internal/wirepath"
)

// Shared calls: single record operations of different callers that find
// every slot of their backend taken (one call or batch per CPU runs at a
// time) wait in a queue, and travel together as one OpBatch into the
// next instance (the plugin sends the batch to Redis or PostgreSQL in one
// round trip, and enters its guest code once for all of them). A call
// that finds a slot free runs alone, as if there were no queue; a lone
// caller pays nothing. RATIONALE.md, "Why do concurrent calls share a
// batch?".

// sharedBatchMax is the most single operations one shared batch carries,
// and sharedItemBytes the request bytes that count as one of them: a
// batch of small requests carries up to sharedBatchMax of them, a large
// request travels with fewer, one of 256 KiB or more alone.
const (
	sharedBatchMax  = 32
	sharedItemBytes = 8 << 10
)

// sharedCall is a single operation queued for a shared batch. The flush
// that carries it sets body and err; its caller reads them only once it
// was answered (coalesce.Answered), and decodes body itself.
type sharedCall struct {
	op   abi.Op
	req  []byte // the encoded request, the caller's copy
	key  []byte // the record's kind and key in req (recordKey)
	body []byte // the answer's body (a copy), with err nil or ErrStale
	err  error
	// whole is set when err is the batch's as a whole, not the item's
	// own answer; unrun when the plugin refused the batch as a whole for
	// its shape (INVALID, UNSUPPORTED), so that none of it ran.
	whole, unrun bool
}

// sharable reports whether op may travel in a shared batch: a single
// record operation, which a batch may carry as an item (queries, which
// may run long and answer much, go alone).
func sharable(op abi.Op) bool {
	switch op {
	case abi.OpPutMetric, abi.OpGetMetric, abi.OpDeleteMetric,
		abi.OpPutAlert, abi.OpGetAlert, abi.OpDeleteAlert, abi.OpSetAlertStatus,
		abi.OpPutAgentState, abi.OpGetAgentState, abi.OpDeleteAgentState:
		return true
	}
	return false
}

// newSharing returns the queue of a backend's shared calls, nil for a
// backend that does not serve batches. It runs one call or batch per CPU
// at a time (fewer if the pool is smaller): more would each hold an
// instance through its Redis or PostgreSQL round trip with fewer calls
// aboard and colder caches (BENCHMARKS.md, "Concurrent calls share a
// batch").
func (s *Store) newSharing() *coalesce.Coalescer[*sharedCall] {
	if !s.p.meta.Features.Has(abi.FeatureBatch) {
		return nil
	}
	weight := func(c *sharedCall) int { return 1 + len(c.req)/sharedItemBytes }
	c := coalesce.New(min(runtime.GOMAXPROCS(0), s.p.pool.size), sharedBatchMax, weight, s.flushShared)
	// A flusher is a call in flight for Close from before the call that
	// starts it leaves the gate: its callers may all have given up.
	c.Track(s.calls.hold, s.calls.leave)
	// A caller without a deadline waits behind busy instances no longer
	// than one call may run: a stalled store (a table locked in
	// PostgreSQL) answers every caller within about two call timeouts,
	// not one timeout per batch queued ahead of it.
	c.Bound(s.p.limits.CallTimeout)
	return c
}

// requests holds the encoders of shared calls' requests between calls.
var requests = sync.Pool{New: func() any { return new(abi.Encoder) }}

// callShared is call for a sharable op on a backend that shares calls.
// The request is encoded before the call may queue, so that nothing
// longer than a few field reads (recordKey) runs under the queue's lock.
func (s *Store) callShared(ctx context.Context, op abi.Op, encode func(*abi.Encoder), decode func(*abi.Decoder)) error {
	e := requests.Get().(*abi.Encoder)
	e.Reset()
	encode(e)
	if err := e.Err(); err != nil {
		requests.Put(e)
		return unsendable(s.p.name, op, err)
	}
	req := e.Bytes()
	var err error
	var c *sharedCall
	queue := func() *sharedCall {
		c = &sharedCall{op: op, req: req, key: recordKey(op, req)}
		return c
	}
	if s.shareEvery {
		defer requests.Put(e)
		s.flushShared(ctx, []*coalesce.Entry[*sharedCall]{{Ctx: ctx, Item: queue()}})
		return s.sharedAnswer(ctx, c, decode)
	}
	alone := func() { err = s.callPlugin(ctx, op, op.Writes(), func(in *abi.Encoder) { in.Raw(req) }, decode) }
	switch s.shared.Do(ctx, alone, queue) {
	case coalesce.Unsent:
		requests.Put(e)
		if ctx.Err() == nil { // the queue's bound, not the caller's
			return abi.Errorf(abi.StatusUnavailable, "backend %s: every instance stayed busy for the call timeout of %v; the call was not sent", s.p.name, s.p.limits.CallTimeout)
		}
		return ctx.Err()
	case coalesce.MaybeSent:
		// A flusher may still read req: e is not reused.
		why := ctx.Err()
		if why == nil {
			why = fmt.Errorf("its batch ran past the call timeout of %v", s.p.limits.CallTimeout)
		}
		if op.Writes() {
			return fmt.Errorf("backend %s: %w: its batch was sent before the caller gave up: %w", s.p.name, ErrOutcomeUnknown, why)
		}
		if ctx.Err() == nil {
			return abi.Errorf(abi.StatusUnavailable, "backend %s: %v", s.p.name, why)
		}
		return ctx.Err()
	}
	defer requests.Put(e)
	if c == nil {
		return err // ran alone
	}
	return s.sharedAnswer(ctx, c, decode)
}

// sharedAnswer is the outcome of a call its batch answered. A call whose
// batch the plugin refused for its shape runs alone. So does a read that
// its batch failed as a whole otherwise (a trap, say, which may have been
// another call's doing), or that the plugin answered LIMIT in it (a
// batch's reads share one reply bound); a write cannot, and keeps its
// batch's answer.
func (s *Store) sharedAnswer(ctx context.Context, c *sharedCall, decode func(*abi.Decoder)) error {
	op := c.op
	if c.unrun || !op.Writes() && ctx.Err() == nil && (c.whole && !errors.Is(c.err, ErrClosed) || errors.Is(c.err, ErrLimit)) {
		return s.callPlugin(ctx, op, op.Writes(), func(in *abi.Encoder) { in.Raw(c.req) }, decode)
	}
	if !answered(c.err) {
		return c.err
	}
	if decode != nil {
		var d abi.Decoder
		d.Reset(c.body)
		decode(&d)
		if d.Finish() != nil {
			return abi.Errorf(abi.StatusInternal, "backend %s: %s response: %s", s.p.name, op, wirepath.Fault(answerMessages[op], c.body, &d))
		}
	} else if c.err == nil {
		if err := emptyBody(op, c.body); err != nil {
			failure := abi.Errorf(abi.StatusInternal, "backend %s: %s response: %v", s.p.name, op, err)
			if op.Writes() { // answered OK: it may have applied
				return mayHaveWritten(s.p.name, failure)
			}
			return failure
		}
	}
	return c.err
}

// flushShared sends the calls of a batch the queue took, its writes and
// its reads each as one OpBatch (writes first), and answers each call.
// Apart, a write's answer never shares a reply bound with other callers'
// reads, which may pass it and fail the items beside them: a read so
// failed runs again alone, a write could not.
func (s *Store) flushShared(ctx context.Context, batch []*coalesce.Entry[*sharedCall]) {
	// Up to one batch per CPU runs at once, and a backend may send each
	// as one transaction: taking the records of every batch in one order
	// keeps two from each waiting for a row the other holds (a deadlock,
	// which PostgreSQL breaks only after a second). Callers' operations
	// are concurrent: any order among them is one they could have had.
	slices.SortStableFunc(batch, func(a, b *coalesce.Entry[*sharedCall]) int {
		if aw, bw := a.Item.op.Writes(), b.Item.op.Writes(); aw != bw {
			if aw {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.Item.key, b.Item.key)
	})
	reads := slices.IndexFunc(batch, func(e *coalesce.Entry[*sharedCall]) bool { return !e.Item.op.Writes() })
	if reads < 0 {
		reads = len(batch)
	}
	s.sendShared(ctx, batch[:reads], true)
	s.sendShared(ctx, batch[reads:], false)
}

// sendShared sends calls, all writes or all reads, as one OpBatch and
// answers each.
func (s *Store) sendShared(ctx context.Context, calls []*coalesce.Entry[*sharedCall], writes bool) {
	if len(calls) == 0 {
		return
	}
	var results []abi.BatchResult
	claimed := 0 // results the answer claims; more than were sent are not decoded
	decoded := false
	reached := false
	took, trapped, err := s.invoke(ctx, abi.OpBatch, writes, uint32(len(calls)), func(enc *abi.Encoder) {
		enc.Uvarint(uint64(len(calls)))
		for _, e := range calls {
			enc.Uvarint(uint64(e.Item.op))
			enc.BytesField(e.Item.req)
		}
	}, func(d *abi.Decoder) {
		results, claimed = abi.DecodeBatchResultsAtMost(d, len(calls))
		decoded = true
	}, &reached)
	// The plugin answered a status for the batch as a whole: its claim,
	// as a single call's status is. Any other failure once the batch
	// reached the plugin (a trap, an answer that does not decode or does
	// not fit the request, the disk sync after it) may have come after
	// some of its writes were made.
	status := took >= 0 && !trapped && !decoded
	failed := took >= 0 && !status
	if err == nil && claimed != len(calls) {
		err, failed = s.refuse(abi.OpBatch, fmt.Sprintf("batch answered %d of %d items", claimed, len(calls))), true
	}
	for i, e := range calls {
		c := e.Item
		switch {
		case err == nil:
			c.body, c.err = results[i].Body, s.afterReaching(reached, s.itemAnswer(c.op, results[i]))
		case writes && failed && !errors.Is(err, ErrOutcomeUnknown):
			c.err = fmt.Errorf("backend %s: %w: the batch carrying this write failed once it reached the plugin: %w", s.p.name, ErrOutcomeUnknown, err)
		case !writes && errors.Is(err, ErrClosed):
			c.err = fmt.Errorf("backend %s: the batch carrying this read was cut short: %w", s.p.name, ErrClosed)
		case !writes && errors.Is(err, ErrOutcomeUnknown):
			c.err = abi.Errorf(abi.StatusUnavailable, "backend %s: the batch carrying this read failed: %v", s.p.name, err)
		default:
			c.err = err
			// A batch refused for its shape ran none of its items (ABI
			// §10.7): a plugin whose batches serve less than its single
			// operations do still serves each alone.
			c.unrun = status && (errors.Is(err, abi.StatusInvalid) || errors.Is(err, abi.StatusUnsupported))
		}
		c.whole = err != nil
		if s.p.observer != nil && took >= 0 {
			// Each call is observed; the batch's one trap once.
			s.p.observer.PluginCall(s.p.name, c.op, took, c.err, trapped && i == 0)
		}
	}
}

// recordKey returns the kind of the record op names and its key as they
// are encoded in req (the agent ID of an agent state, the ID of an alert,
// a metric's agent, name and time), one byte string that two requests
// share exactly when they name the same record; nil for a request that
// does not decode (the plugin refuses it).
func recordKey(op abi.Op, req []byte) []byte {
	var d abi.Decoder
	d.Reset(req)
	key := make([]byte, 0, 64)
	switch op {
	case abi.OpPutAgentState, abi.OpGetAgentState, abi.OpDeleteAgentState:
		key = append(key, 's')
		key = appendField(key, d.View())
	case abi.OpPutAlert, abi.OpGetAlert, abi.OpDeleteAlert, abi.OpSetAlertStatus:
		key = append(key, 'a')
		key = appendField(key, d.View())
	case abi.OpPutMetric, abi.OpGetMetric, abi.OpDeleteMetric:
		key = append(key, 'm')
		key = appendField(key, d.View())
		key = appendField(key, d.View())
		if op == abi.OpPutMetric {
			d.F64() // the value comes before the time in a metric
		}
		t := d.Time()
		key = binary.BigEndian.AppendUint64(key, uint64(t.Unix())^1<<63) // signed order
		key = binary.BigEndian.AppendUint32(key, uint32(t.Nanosecond()))
	}
	if d.Err() != nil {
		return nil
	}
	return key
}

// appendField appends b to key, its length first, so that no key is the
// prefix of another's fields.
func appendField(key, b []byte) []byte {
	key = binary.AppendUvarint(key, uint64(len(b)))
	return append(key, b...)
}

// itemAnswer is the error a batch item's answer stands for: nil, ErrStale
// (its body then holds the record served), or the item's failure.
func (s *Store) itemAnswer(op abi.Op, r abi.BatchResult) error {
	switch {
	case r.Status == abi.StatusOK:
		return nil
	case r.Status == abi.StatusStale:
		return &abi.Error{Status: r.Status, Message: "served from a fallback copy that may be behind"}
	case r.Status == abi.StatusUnknown:
		return s.p.unknownAnswer(op, &abi.Error{Status: r.Status, Message: pluginMessage(string(r.Body))})
	case !r.Status.Known():
		r.Status = abi.StatusInternal
	}
	return &abi.Error{Status: r.Status, Message: pluginMessage(string(r.Body))}
}
