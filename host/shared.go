package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/internal/coalesce"
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
	return coalesce.New(min(runtime.GOMAXPROCS(0), s.p.pool.size), sharedBatchMax, weight, s.flushShared)
}

// callShared is call for a sharable op on a backend that shares calls.
func (s *Store) callShared(ctx context.Context, op abi.Op, encode func(*abi.Encoder), decode func(*abi.Decoder)) error {
	var err error
	var c *sharedCall
	queue := func() *sharedCall {
		var e abi.Encoder
		encode(&e)
		c = &sharedCall{op: op, req: e.Bytes()}
		c.key = recordKey(op, c.req)
		return c
	}
	if s.shareEvery {
		s.flushShared(ctx, []*coalesce.Entry[*sharedCall]{{Ctx: ctx, Item: queue()}})
		return s.sharedAnswer(ctx, c, encode, decode)
	}
	alone := func() { err = s.callPlugin(ctx, op, op.Writes(), encode, decode) }
	switch s.shared.Do(ctx, alone, queue) {
	case coalesce.Unsent:
		return ctx.Err()
	case coalesce.MaybeSent:
		if op.Writes() {
			return fmt.Errorf("backend %s: %w: its batch was sent before the caller gave up: %w", s.p.name, ErrOutcomeUnknown, ctx.Err())
		}
		return ctx.Err()
	}
	if c == nil {
		return err // ran alone
	}
	return s.sharedAnswer(ctx, c, encode, decode)
}

// sharedAnswer is the outcome of a call its batch answered. A call whose
// batch the plugin refused for its shape runs alone. So does a read that
// its batch failed as a whole otherwise (a trap, say, which may have been
// another call's doing), or that the plugin answered LIMIT in it (a
// batch's reads share one reply bound); a write cannot, and keeps its
// batch's answer.
func (s *Store) sharedAnswer(ctx context.Context, c *sharedCall, encode func(*abi.Encoder), decode func(*abi.Decoder)) error {
	op := c.op
	if c.unrun || !op.Writes() && ctx.Err() == nil && (c.whole && !errors.Is(c.err, ErrClosed) || errors.Is(c.err, ErrLimit)) {
		return s.callPlugin(ctx, op, op.Writes(), encode, decode)
	}
	if !answered(c.err) {
		return c.err
	}
	if decode != nil {
		var d abi.Decoder
		d.Reset(c.body)
		decode(&d)
		if derr := d.Finish(); derr != nil {
			return abi.Errorf(abi.StatusInternal, "backend %s: %s response: %v", s.p.name, op, derr)
		}
	}
	return c.err
}

// flushShared sends a batch of queued calls as one OpBatch and answers
// each. It runs on a flusher goroutine, counted as a call in flight so
// that Close waits for it as for its callers.
func (s *Store) flushShared(ctx context.Context, batch []*coalesce.Entry[*sharedCall]) {
	s.calls.hold()
	defer s.calls.leave()
	writes := false
	for _, e := range batch {
		writes = writes || e.Item.op.Writes()
	}
	// Two batches run at once (one per CPU) and a backend may send each
	// as one transaction: taking the records of every batch in one order
	// keeps two from each waiting for a row the other holds (a deadlock,
	// which PostgreSQL breaks only after a second). Callers' operations
	// are concurrent: any order among them is one they could have had.
	slices.SortStableFunc(batch, func(a, b *coalesce.Entry[*sharedCall]) int { return bytes.Compare(a.Item.key, b.Item.key) })
	var results []abi.BatchResult
	took, trapped, err := s.invoke(ctx, abi.OpBatch, writes, uint32(len(batch)), func(enc *abi.Encoder) {
		enc.Uvarint(uint64(len(batch)))
		for _, e := range batch {
			enc.Uvarint(uint64(e.Item.op))
			enc.BytesField(e.Item.req)
		}
	}, func(d *abi.Decoder) { results = abi.DecodeBatchResults(d) })
	failed := trapped // after it reached the plugin: writes may have been made
	if err == nil && len(results) != len(batch) {
		err, failed = s.refuse(abi.OpBatch, fmt.Sprintf("batch answered %d of %d items", len(results), len(batch))), true
	}
	for i, e := range batch {
		c := e.Item
		switch {
		case err != nil && c.op.Writes() && failed && !errors.Is(err, ErrOutcomeUnknown):
			// The batch may have written it before it failed.
			c.err = fmt.Errorf("backend %s: %w: the batch carrying this write failed once it reached the plugin: %w", s.p.name, ErrOutcomeUnknown, err)
			c.whole = true
		case err != nil && !c.op.Writes() && errors.Is(err, ErrOutcomeUnknown):
			c.err = abi.Errorf(abi.StatusUnavailable, "backend %s: the batch carrying this read failed: %v", s.p.name, err)
			c.whole = true
		case err != nil:
			c.err, c.whole = err, true
			// A batch refused for its shape ran none of its items (ABI
			// §10.7): a plugin whose batches serve less than its single
			// operations do still serves each alone.
			c.unrun = !failed && (errors.Is(err, abi.StatusInvalid) || errors.Is(err, abi.StatusUnsupported))
		default:
			c.body, c.err = results[i].Body, s.itemAnswer(c.op, results[i])
		}
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
		key = binary.BigEndian.AppendUint64(key, uint64(d.Time().UnixNano()))
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
		return s.p.unknownAnswer(op, &abi.Error{Status: r.Status, Message: string(r.Body)})
	case !r.Status.Known():
		r.Status = abi.StatusInternal
	}
	return &abi.Error{Status: r.Status, Message: string(r.Body)}
}
