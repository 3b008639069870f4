package main

// Fallback, serving requests: routing a request between Redis and the
// buffer, acknowledging writes into the buffer, and answering reads from
// it. See fallback.go for the design.

import (
	"errors"
	"fmt"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// --- routing ---

// fallbackBegin starts a request at now: it looks at the queue, always
// for a request that writes with fallback=buffer (so that it goes behind
// the writes buffered before it), else when the hint asks for it. With
// fallback=fail nothing joins the queue: the instance looked at it when
// configured, and looks again only while it found writes there (ticks
// look too). Requests never replay: the host's ticks do (tick).
func (b *backend) fallbackBegin(now time.Time, writes bool) {
	f := b.fb
	switch {
	case f.pending || writes && f.accept:
	case !f.accept:
		return
	default:
		if d := now.Sub(f.checkedAt); d >= 0 && d < hintEvery {
			return
		}
	}
	if err := f.readMeta(now); err != nil {
		sdk.Logf(abi.LevelWarn, "fallback buffer: %v", err)
	}
}

// runWithFallback serves a single-record request.
func (b *backend) runWithFallback(it *item) {
	b.fallbackBegin(it.now, !isRead(it.Op))
	if b.fb.pending && b.fromBuffer(it) {
		return
	}
	b.direct(it)
	b.fallBack(it)
}

// fromBuffer serves it while the queue holds writes not yet settled,
// reporting whether it did: it answers a read whose record is buffered,
// queues an unconditional write to a record with unsettled buffered
// writes (refuses it with fallback=fail, which acknowledges nothing into
// the buffer), and refuses a conditional write to such a record. Otherwise the
// item goes to Redis (and a write that meets UNAVAILABLE there is
// buffered then: fallBack).
func (b *backend) fromBuffer(it *item) bool {
	if isRead(it.Op) {
		if !b.bufferedRead(it) {
			return false
		}
		it.served = true
		return true
	}
	pending, err := b.fb.recordPending(it)
	switch {
	case err != nil:
		it.Err = err
	case !pending:
		return false
	case bufferable(it) && b.fb.accept:
		b.buffer(it, nil)
	case bufferable(it):
		it.Err = abi.Errorf(abi.StatusUnavailable, "%s waits until the writes of its record that the fallback buffer kept (fallback was buffer) are replayed to Redis", it.Op)
	default:
		it.Err = abi.Errorf(abi.StatusUnavailable, "%s waits until the buffered writes of its record are replayed to Redis", it.Op)
	}
	it.served = true
	return true
}

// afterUnavailable serves it, which Redis answered UNAVAILABLE, from the
// buffer where it can: an unconditional write is buffered (with
// fallback=buffer), a read whose record is buffered answered from it.
func (b *backend) afterUnavailable(it *item) {
	f := b.fb
	switch {
	case bufferable(it) && f.accept:
		cause := it.Err
		it.Err = nil
		b.buffer(it, cause)
	case isRead(it.Op):
		if it.now.IsZero() { // a direct read of fallback=fail
			it.now = sdk.Now()
		}
		if err := f.readMeta(it.now); err == nil && f.pending {
			b.bufferedRead(it) // else it stays UNAVAILABLE
		}
	}
}

func isRead(op abi.Op) bool {
	return op == abi.OpGetMetric || op == abi.OpGetAlert || op == abi.OpGetAgentState
}

// bufferable reports whether it is a write the buffer may take.
func bufferable(it *item) bool {
	switch it.Op {
	case abi.OpPutMetric, abi.OpDeleteMetric, abi.OpPutAlert, abi.OpDeleteAlert:
		return true
	case abi.OpPutAgentState, abi.OpDeleteAgentState:
		return it.Condition.Mode == abi.Unconditional
	}
	return false
}

// kind is the kind of record the item is about: 'm', 'a', 's', or 0.
func (it *item) kind() byte {
	switch it.Op {
	case abi.OpPutMetric, abi.OpGetMetric, abi.OpDeleteMetric:
		return 'm'
	case abi.OpPutAlert, abi.OpGetAlert, abi.OpDeleteAlert, abi.OpSetAlertStatus:
		return 'a'
	case abi.OpPutAgentState, abi.OpGetAgentState, abi.OpDeleteAgentState:
		return 's'
	case abi.OpRestore:
		switch it.restoreKind {
		case abi.KindMetric:
			return 'm'
		case abi.KindAlert:
			return 'a'
		case abi.KindAgentState:
			return 's'
		}
	}
	return 0
}

// --- writes ---

// buffer acknowledges the unconditional write it from the buffer: it
// computes the record the write leaves (the answer), queues the request
// and sets the record's r/ key. The write is answered STALE (sdk.ErrStale
// with its result): acknowledged into the buffer. cause is how Redis has
// just failed the write (nil: it was not sent); without one, a queue
// holding fallback_buffer_entries writes may grow past them if Redis
// answers (a catch-up, not an outage: see alloc).
func (b *backend) buffer(it *item, cause error) {
	f := b.fb
	now := it.now
	f.key = appendRecordKey(f.key[:0], it)
	var prev buffered
	exists, err := f.getRecord(it.kind(), f.key, &prev)
	if err != nil {
		it.Err = err
		return
	}
	// An entry of a settled write (left behind, see bufferedRead) says
	// nothing about the record: writes may have gone to Redis since. One
	// replayed but not settled is what Redis holds.
	found := exists && prev.seq >= f.settled
	live := found && !prev.gone && !prev.expired(it.kind(), now)

	var rec buffered
	var floor uint64
	switch it.Op {
	case abi.OpPutMetric:
		rec.metric = it.Metric
		rec.metric.Timestamp = rec.metric.Timestamp.UTC()
		rec.metric.ExpiresAt = expiry(&it.TTL, now, b.metricTTL, prev.metric.ExpiresAt, live)
	case abi.OpPutAlert:
		a := it.Alert
		switch {
		case live:
			if !prev.alert.Status.CanTransition(a.Status) {
				it.Err = fmt.Errorf("alert %q: cannot go from %s to %s: %w", a.ID, prev.alert.Status, a.Status, sdk.ErrConflict)
				return
			}
		case found: // deleted or expired in the buffer: a create
		case a.Status == abi.AlertResolved: // allowed from every status
		default:
			it.Err = abi.Errorf(abi.StatusUnavailable,
				"redis is unreachable and alert %q is not in the fallback buffer: its move to %s cannot be checked", a.ID, a.Status)
			return
		}
		if live {
			a.CreatedAt = prev.alert.CreatedAt
		} else if a.CreatedAt.IsZero() {
			a.CreatedAt = now
		}
		a.UpdatedAt = now
		a.ExpiresAt = expiry(&it.TTL, now, b.alertTTL, prev.alert.ExpiresAt, live)
		rec.alert = a
	case abi.OpPutAgentState:
		s := abi.AgentState{AgentID: it.State.AgentID, State: it.State.State, UpdatedAt: now}
		s.Version = uint64(now.UnixMicro())
		if exists && prev.state.Version >= s.Version {
			s.Version = prev.state.Version + 1
		}
		s.ExpiresAt = expiry(&it.TTL, now, b.stateTTL, prev.state.ExpiresAt, live)
		rec.state = s
		floor = s.Version + 1
	default: // a delete
		if found && !live {
			it.Err = notFound(it)
			return
		}
		rec.gone = true
		rec.state.Version = prev.state.Version
	}

	limit := f.max
	seq, err := f.alloc(now, limit)
	if errors.Is(err, errBufferFull) && cause == nil && b.redisAnswers(now) {
		limit = catchUpFactor * f.max
		seq, err = f.alloc(now, limit)
	}
	switch {
	case errors.Is(err, errBufferFull) && limit == f.max:
		why := "redis does not answer"
		if e, ok := errors.AsType[*abi.Error](cause); ok && e.Message != "" {
			why = "redis did not take the write (" + e.Message + ")"
		}
		it.Err = abi.Errorf(abi.StatusUnavailable, "%s, and the fallback buffer is full (%d writes)", why, f.max)
		return
	case errors.Is(err, errBufferFull):
		it.Err = abi.Errorf(abi.StatusUnavailable, "the fallback buffer is full (%d writes, twice fallback_buffer_entries while Redis answers): the writes of the records it holds outpace its replay", limit)
		return
	case err != nil:
		it.Err = err
		return
	}
	f.ent.Reset()
	f.ent.Uvarint(uint64(it.Op))
	f.ent.Time(now)
	f.ent.Uvarint(floor)
	encodeRequest(it, &f.ent)
	f.qk = appendQueueKey(f.qk[:0], seq)
	if _, _, err := f.kv.Put(f.qk, f.ent.Bytes(), time.Time{}, false, abi.Condition{}); err != nil {
		// Not acknowledged; the replay skips the empty position.
		it.Err = err
		return
	}
	rec.seq = seq
	f.enc.Reset()
	encodeBuffered(&f.enc, it.kind(), &rec)
	if err := f.putRecord(f.key, f.enc.Bytes(), seq, prev.rev, exists); err != nil {
		// The write is queued and will be replayed, but without its
		// record's copy nothing keeps a later write of the record from
		// going to Redis ahead of it: not acknowledged, its outcome is
		// unknown.
		sdk.Logf(abi.LevelWarn, "fallback buffer: keeping the buffered copy of a %s: %v", it.Op, err)
		it.Err = abi.Errorf(abi.StatusUnknown, "%s queued for replay, but its record's buffered copy could not be kept: %v", it.Op, err)
		return
	}
	switch it.Op {
	case abi.OpPutMetric:
		it.Metric = rec.metric
	case abi.OpPutAlert:
		it.Alert = rec.alert
	case abi.OpPutAgentState:
		it.State = rec.state
	}
	// Acknowledged, not yet in Redis: the host publishes the write's
	// event when a tick reports it replayed.
	it.Err = sdk.ErrStale
}

// expiry resolves a buffered write's TTL to the absolute expiry Redis
// would keep (truncated to the millisecond, as appendTTL does).
func expiry(ttl *abi.TTL, now time.Time, def time.Duration, prev time.Time, live bool) time.Time {
	at := ttl.ExpiresAt(now, def, prev, live)
	if at.IsZero() {
		return at
	}
	return time.UnixMilli(at.UnixMilli()).UTC()
}

func notFound(it *item) error {
	switch it.kind() {
	case 'm':
		return metricNotFound(&it.Metric)
	case 'a':
		return fmt.Errorf("alert %q: %w", it.Alert.ID, sdk.ErrNotFound)
	}
	return fmt.Errorf("agent state %q: %w", it.State.AgentID, sdk.ErrNotFound)
}

// encodeRequest appends the request of the write it, as decodeItem reads
// it back.
func encodeRequest(it *item, e *abi.Encoder) {
	switch it.Op {
	case abi.OpPutMetric:
		r := abi.PutMetric{Metric: it.Metric, TTL: it.TTL}
		r.Encode(e)
	case abi.OpDeleteMetric:
		k := it.Metric.Key()
		k.Encode(e)
	case abi.OpPutAlert:
		r := abi.PutAlert{Alert: it.Alert, TTL: it.TTL}
		r.Encode(e)
	case abi.OpDeleteAlert:
		e.String(it.Alert.ID)
	case abi.OpPutAgentState:
		r := abi.PutAgentState{State: abi.AgentState{AgentID: it.State.AgentID, State: it.State.State}, TTL: it.TTL, Condition: it.Condition}
		r.Encode(e)
	case abi.OpDeleteAgentState:
		r := abi.DeleteAgentState{AgentID: it.State.AgentID, Condition: it.Condition}
		r.Encode(e)
	}
}

// --- reads ---

// bufferedRead answers the read it from its record's pending r/ entry,
// reporting whether it did (an error of the kv store included).
func (b *backend) bufferedRead(it *item) bool {
	f := b.fb
	f.key = appendRecordKey(f.key[:0], it)
	var rec buffered
	found, err := f.getRecord(it.kind(), f.key, &rec)
	if err != nil {
		it.Err = err
		return true
	}
	if !found {
		return false
	}
	if rec.seq < f.head {
		// Replayed already: Redis has it, or something newer. Once
		// settled, the entry is left for the sweep; delete it now.
		if rec.seq < f.settled {
			_ = f.kv.Delete(f.key, abi.Condition{Mode: abi.IfVersion, Version: rec.rev})
		}
		return false
	}
	kind := it.kind()
	if rec.gone || rec.expired(kind, it.now) {
		it.Err = notFound(it)
		return true
	}
	switch kind {
	case 'm':
		it.Metric = rec.metric
	case 'a':
		it.Alert = rec.alert
	case 's':
		it.State = rec.state
	}
	it.Err = sdk.ErrStale
	return true
}

// recordPending reports whether the record of it has buffered writes not
// yet settled: not replayed, or replayed by a tick whose events the host
// may not have published yet.
func (f *fallback) recordPending(it *item) (bool, error) {
	f.key = appendRecordKey(f.key[:0], it)
	var rec buffered
	found, err := f.getRecord(it.kind(), f.key, &rec)
	return found && rec.seq >= f.settled, err
}
