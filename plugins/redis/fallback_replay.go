package main

// Fallback, the replay: the Tick hook, which settles what the last tick
// replayed and replays the queue into Redis chunk by chunk. See
// fallback.go for the design.

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// tick is the plugin's Tick hook (abi.OpTick): it replays what the queue
// holds, if Redis answers, and reports the writes replayed. It does so
// with fallback=fail too, which buffers nothing but replays what
// fallback=buffer left in kv (a configuration changed with writes still
// buffered). The host ticks about every 100 ms, and again at once while
// the result has More set.
func (b *backend) tick() (abi.TickResult, error) {
	f := b.fb
	now := sdk.Now()
	if err := f.readMeta(now); err != nil {
		return abi.TickResult{}, err
	}
	f.ticked = f.ticked[:0]
	if sdk.TickResumed() && f.settled < f.head {
		// The host that received the last tick's writes may have stopped
		// before it published their events: they are reported again, as
		// their records stand now, and settled by the next tick, which
		// the host sends at once.
		if err := b.resume(); err != nil {
			return abi.TickResult{}, err
		}
		return abi.TickResult{More: true, Pending: f.length(), Writes: f.ticked}, nil
	}
	// The host published the events of the writes the last tick replayed
	// before it sent this one: they are settled.
	if err := f.settle(now); err != nil {
		return abi.TickResult{}, err
	}
	more := false
	if f.replaying() {
		more = b.replay(now)
	}
	if !f.replaying() {
		// What replayed writes left behind is deleted once the queue is
		// empty, not while the replay races to catch up (nor while Redis
		// is away, when every r/ entry is pending).
		more = f.sweep()
	}
	// What this tick replayed is settled by the next, which the host
	// sends at once when More is set, after publishing this one's events.
	more = more || f.settled < f.head
	return abi.TickResult{More: more, Pending: f.length(), Writes: f.ticked}, nil
}

// replaying reports whether the queue holds writes not yet replayed.
func (f *fallback) replaying() bool { return f.head <= f.tail }

// length is how many queue positions are allocated and not yet replayed.
func (f *fallback) length() uint64 {
	if f.head > f.tail {
		return 0
	}
	return f.tail + 1 - f.head
}

// replay replays queued writes to Redis if no other instance is doing so
// (or failed to, lately). It reports whether it stopped at its budget
// with more to replay.
func (b *backend) replay(now time.Time) (more bool) {
	f := b.fb
	lock, _, err := f.kv.Put(kvLock, nil, now.Add(lockTTL), false, abi.Condition{Mode: abi.IfAbsent})
	if err != nil {
		return false
	}
	held := abi.Condition{Mode: abi.IfVersion, Version: lock}
	ok := false
	if err := b.newAttempt(); err == nil {
		ok, more = b.replaySteps(now, &held)
	}
	if ok {
		_ = f.kv.Delete(kvLock, held)
	} else {
		// Keep the lock for the back-off: no instance retries before.
		_, _, _ = f.kv.Put(kvLock, nil, sdk.Now().Add(retryBackoff), false, held)
	}
	return more
}

// newAttempt numbers the replay attempt about to begin (f.token), and
// sends one command first: a cheap look at whether Redis is back, and a
// single command is what makes the bridge log in again (and make its ACL
// user again) after a Redis restart, which a pipeline does not.
//
// The replayed writes of metric samples carry the number to their
// agent's fence (library.lua, fenced). A write of a replay whose reply
// was lost may still reach Redis later, delivered late by a network or a
// proxy, after a later attempt replayed it again, after its tick
// settled, after later writes of the sample went straight to Redis: a
// state or an alert has the time of its last write to tell it is older,
// a sample has no time of its own, so it is told by its attempt. The
// numbers come from kv, where the buffer is: they rise for as long as
// the buffer lives, whatever Redis loses or keeps (a counter in Redis,
// lost while a fence survived, would have started again below the
// fence, which would then have refused every replayed write of its agent
// for a day). The fences are the buffer's own (named by its id in kv):
// another host's buffer replays other writes, with numbers of its own.
func (b *backend) newAttempt() error {
	f := b.fb
	if f.fence == "" {
		id, err := f.bufferID()
		if err != nil {
			return err
		}
		f.fence = "rf:" + id + ":{"
	}
	if _, err := b.redis.Do(cmdPing); err != nil {
		return err
	}
	token, err := f.nextAttempt()
	f.token = token
	return err
}

// nextAttempt increments the buffer's attempt counter in kv (a), and
// returns its new value.
func (f *fallback) nextAttempt() (int64, error) {
	cond := abi.Condition{Mode: abi.IfAbsent}
	var n uint64
	en, err := f.kv.Get(kvAttempts)
	switch {
	case err == nil && len(en.Value) == 8:
		n, cond = binary.BigEndian.Uint64(en.Value), abi.Condition{Mode: abi.IfVersion, Version: en.Revision}
	case err == nil:
		return 0, abi.Errorf(abi.StatusInternal, "fallback buffer: corrupt attempt counter (%d bytes)", len(en.Value))
	case !errors.Is(err, sdk.ErrNotFound):
		return 0, err
	}
	// Above any fence this instance found at a later number than its
	// own (errFenced).
	n = max(n, f.fenceSeen)
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], n+1)
	// Only the replayer holding the lock counts: a conflict is another's
	// attempt, and this one gives way.
	if _, _, err := f.kv.Put(kvAttempts, v[:], time.Time{}, false, cond); err != nil {
		return 0, err
	}
	return int64(n + 1), nil
}

// bufferID reads the buffer's id from kv, making it (the host clock's
// nanoseconds, in base 36: two buffers made in the same nanosecond are
// not a case to plan for) when there is none yet.
func (f *fallback) bufferID() (string, error) {
	for range casAttempts {
		en, err := f.kv.Get(kvID)
		if err == nil {
			return string(en.Value), nil
		}
		if !errors.Is(err, sdk.ErrNotFound) {
			return "", err
		}
		id := strconv.FormatInt(sdk.Now().UnixNano(), 36)
		_, _, err = f.kv.Put(kvID, []byte(id), time.Time{}, false, abi.Condition{Mode: abi.IfAbsent})
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, sdk.ErrConflict) {
			return "", err
		}
	}
	return "", abi.Errorf(abi.StatusUnavailable, "fallback buffer: too much contention")
}

// replaySteps replays up to replayBudget writes in chunks, holding the
// lock held (renewed before each chunk). It reports ok false when the
// replay failed and should be retried after the back-off, and more when
// it stopped at its budget with writes left.
//
// It replays no further than the queue's end as this tick found it:
// writes queued meanwhile wait for the next tick, which the host sends at
// once (more), after publishing this one's events. A tick that chased
// writers arriving as fast as it replays would never end, so the writes
// it replayed would never settle, and writes to their records would go on
// queueing behind them.
func (b *backend) replaySteps(now time.Time, held *abi.Condition) (ok, more bool) {
	f := b.fb
	start := sdk.Now()
	end := f.tail
	for budget := replayBudget; ; {
		if !f.replaying() {
			return true, false
		}
		if budget <= 0 || sdk.Now().Sub(start) >= replayTime || f.head > end {
			return true, true
		}
		head := f.head
		if err := f.readQueue(head, min(replayChunk, budget)); err != nil {
			sdk.Logf(abi.LevelWarn, "fallback replay: %v", err)
			return false, false
		}
		if len(f.queued) == 0 {
			if !f.skipGap(head, now) {
				return true, false // its writer is about to put it
			}
			continue
		}
		f.gapSince = time.Time{}
		rev, _, err := f.kv.Put(kvLock, nil, sdk.Now().Add(lockTTL), false, *held)
		if err != nil {
			return true, false // the lock expired and is another's now
		}
		held.Version = rev
		done, chunkOK := b.replayChunk(f.queued)
		if done > 0 {
			moved, err := f.advance(head, head+uint64(done), now)
			if err != nil || !moved {
				return true, false // another replayer took over
			}
		}
		if !chunkOK {
			return false, false
		}
		budget -= done
	}
}

// readQueue reads up to n queued writes from position head into f.queued,
// stopping at a gap (a position allocated by a writer that has not put its
// entry yet): the rest waits behind it. The payloads are copied into
// f.arena, since the kv calls that follow reuse the scan's buffer.
func (f *fallback) readQueue(head uint64, n int) error {
	f.qk = appendQueueKey(f.qk[:0], head)
	f.qe = appendQueueKey(f.qe[:0], f.tail+1)
	ents, _, err := f.kv.Scan(f.qk, f.qe, n)
	if err != nil {
		return err
	}
	f.queued = f.queued[:0]
	f.arena = f.arena[:0]
	for i := range ents {
		seq, ok := parseQueueKey(ents[i].Key)
		if !ok || seq != head+uint64(i) {
			break
		}
		lo := len(f.arena)
		f.arena = append(f.arena, ents[i].Value...)
		q, err := f.decodeQueued(seq, f.arena[lo:len(f.arena):len(f.arena)])
		if err != nil {
			sdk.Logf(abi.LevelError, "fallback replay: dropping corrupt write %d: %v", seq, err)
			q = queued{seq: seq} // op 0: refused as unknown, dropped
		}
		f.queued = append(f.queued, q)
	}
	return nil
}

// skipGap handles a queue whose head position is allocated but not
// written; it reports whether it skipped it.
func (f *fallback) skipGap(head uint64, now time.Time) bool {
	if f.gapSince.IsZero() || f.gapSeq != head {
		f.gapSeq, f.gapSince = head, now
		return false
	}
	if now.Sub(f.gapSince) < gapTimeout {
		return false
	}
	sdk.Logf(abi.LevelWarn, "fallback replay: write %d was never queued (its writer failed before acknowledging it); skipping it", head)
	f.gapSince = time.Time{}
	moved, err := f.advance(head, head+1, now)
	return err == nil && moved
}

// replayChunk sends the writes qs through the normal write path, each at
// its acknowledgement time, in one round trip, and adds those Redis
// applied to f.ticked. It returns how many of them, from the first, are
// done with (applied, or refused for good), and false when it stopped at
// a failure to retry.
func (b *backend) replayChunk(qs []queued) (done int, ok bool) {
	f := b.fb
	if cap(f.items) < len(qs) {
		f.items = make([]item, len(qs))
	}
	items := f.items[:len(qs)]
	b.rq.reset()
	f.ix.reset()
	b.deferIx = &f.ix
	for i := range qs {
		it := &items[i]
		*it = item{now: qs[i].now}
		b.decodeItem(it, abi.BatchItem{Op: qs[i].op, Payload: qs[i].payload})
		if it.Err == nil {
			it.floor, it.replay = qs[i].floor, true
			b.prepare(it)
		}
	}
	b.deferIx = nil
	records := b.rq.ncalls()
	f.ix.flush(&b.rq)
	var replies []abi.Reply
	if b.rq.ncalls() > 0 {
		var err error
		if replies, err = b.sendPacked(); err != nil {
			sdk.Logf(abi.LevelDebug, "fallback replay: %v", err)
			return 0, false
		}
	}
	for i := records; i < len(replies); i++ {
		if replies[i].Kind == abi.ReplyError {
			// The chunk's writes are rewritten with the same values.
			what := "indexing failed"
			if records > 0 && replies[0].Kind == abi.ReplyError {
				// Redis refused the writes too (a replica's READONLY, OOM):
				// the index call only failed the same way.
				what = "Redis refused the writes"
			}
			sdk.Logf(abi.LevelWarn, "fallback replay: %s, retrying later: %v", what, replies[i].Err())
			return 0, false
		}
	}
	for i := range items {
		it := &items[i]
		if it.Err == nil {
			b.finish(it, replies)
		}
		if it.Err == nil {
			f.ticked = append(f.ticked, tickWrite(it))
			continue
		}
		if errors.Is(it.Err, sdk.ErrNotFound) {
			continue // a delete of a record already gone is done too
		}
		if it.Err == errFenced {
			// A later attempt than this one wrote the sample's agent: this
			// replayer was overtaken (its lock expired while it waited), or
			// numbers its attempts from below the fence (a data directory
			// restored from a copy). It stops here; the next attempt, above
			// the fence, replays the rest.
			sdk.Logf(abi.LevelWarn, "fallback replay: buffered write %d (%s) fenced by a later replay attempt (%d); retrying later", qs[i].seq, it.Op, f.fenceSeen)
			return i, false
		}
		if it.Err == errSuperseded {
			// Its event was published by the host that wrote the newer
			// record, whose value stays.
			sdk.Logf(abi.LevelInfo, "fallback replay: buffered write %d (%s) left out: its record was written after it was acknowledged", qs[i].seq, it.Op)
			continue
		}
		switch sdk.StatusOf(it.Err) {
		case abi.StatusConflict, abi.StatusInvalid, abi.StatusUnsupported:
			sdk.Logf(abi.LevelError, "fallback replay: Redis refused buffered write %d (%s), dropped: %v", qs[i].seq, it.Op, it.Err)
			continue
		}
		sdk.Logf(abi.LevelWarn, "fallback replay: buffered write %d (%s) failed, retrying later: %v", qs[i].seq, it.Op, it.Err)
		return i, false
	}
	return len(items), true
}

// tickWrite is the report of the replayed write it, as the host needs it
// to publish the write's event. An agent state's document is left out:
// events do not carry it.
func tickWrite(it *item) abi.TickWrite {
	w := abi.TickWrite{Op: it.Op}
	switch it.Op {
	case abi.OpPutMetric:
		w.Metric = it.Metric
	case abi.OpDeleteMetric:
		w.Metric = abi.Metric{AgentID: it.Metric.AgentID, Name: it.Metric.Name, Timestamp: it.Metric.Timestamp}
	case abi.OpPutAlert:
		w.Alert = it.Alert
	case abi.OpDeleteAlert:
		w.Alert.ID = it.Alert.ID // its agent is not known here
	case abi.OpPutAgentState, abi.OpDeleteAgentState:
		w.State = abi.AgentState{AgentID: it.State.AgentID, Version: it.State.Version, UpdatedAt: it.State.UpdatedAt, ExpiresAt: it.State.ExpiresAt}
	}
	return w
}

// resume reports the writes replayed but not settled (the queue from
// settled to head) into f.ticked, each as its record stands in Redis
// now: a put of the record found, a delete of one that is gone. A record
// written again since, or written by several of them, is reported as it
// is, which is what its events must say; an event more than the write
// had is harmless to a subscriber, one fewer is not.
func (b *backend) resume() error {
	f := b.fb
	for from := f.settled; from < f.head && len(f.ticked) < abi.MaxTickWrites; {
		n := int(min(f.head-from, replayChunk, uint64(abi.MaxTickWrites-len(f.ticked))))
		if err := f.readQueue(from, n); err != nil {
			return err
		}
		if len(f.queued) == 0 {
			from++ // a position skipped as never written
			continue
		}
		if err := b.reread(f.queued); err != nil {
			return err
		}
		from += uint64(len(f.queued))
	}
	return nil
}

// reread reads the records of the queued writes qs from Redis, in one
// round trip, and adds to f.ticked what each now is.
func (b *backend) reread(qs []queued) error {
	f := b.fb
	if cap(f.items) < len(qs) {
		f.items = make([]item, len(qs))
	}
	items := f.items[:len(qs)]
	b.rq.reset()
	now := sdk.Now()
	for i := range qs {
		it := &items[i]
		*it = item{now: now}
		b.decodeItem(it, abi.BatchItem{Op: qs[i].op, Payload: qs[i].payload})
		get, ok := readOf(it.Op)
		if it.Err != nil || !ok {
			it.Err = errSkipped
			continue
		}
		*it = item{BatchOp: sdk.BatchOp{Op: get, Metric: abi.Metric{AgentID: it.Metric.AgentID, Name: it.Metric.Name, Timestamp: it.Metric.Timestamp},
			Alert: abi.Alert{ID: it.Alert.ID}, State: abi.AgentState{AgentID: it.State.AgentID}}, now: now}
		b.prepare(it)
	}
	var replies []abi.Reply
	if b.rq.ncalls() > 0 {
		var err error
		if replies, err = b.sendPacked(); err != nil {
			return err
		}
	}
	for i := range items {
		it := &items[i]
		if it.Err != nil {
			continue
		}
		b.finish(it, replies)
		put, del := writesOf(it.Op)
		w := abi.TickWrite{}
		switch {
		case it.Err == nil:
			w.Op = put
			w.Metric, w.Alert = it.Metric, it.Alert
			w.State = abi.AgentState{AgentID: it.State.AgentID, Version: it.State.Version, UpdatedAt: it.State.UpdatedAt, ExpiresAt: it.State.ExpiresAt}
		case errors.Is(it.Err, sdk.ErrNotFound):
			w.Op = del
			w.Metric = abi.Metric{AgentID: it.Metric.AgentID, Name: it.Metric.Name, Timestamp: it.Metric.Timestamp}
			w.Alert = abi.Alert{ID: it.Alert.ID}
			w.State = abi.AgentState{AgentID: it.State.AgentID}
		default:
			return it.Err
		}
		f.ticked = append(f.ticked, w)
	}
	return nil
}

// errSkipped marks an item reread leaves out: a queued write that does
// not decode (the replay dropped it too) or is not of a record.
var errSkipped = errors.New("skipped")

// readOf is the get of the record a write op writes.
func readOf(op abi.Op) (abi.Op, bool) {
	switch op {
	case abi.OpPutMetric, abi.OpDeleteMetric:
		return abi.OpGetMetric, true
	case abi.OpPutAlert, abi.OpDeleteAlert, abi.OpSetAlertStatus:
		return abi.OpGetAlert, true
	case abi.OpPutAgentState, abi.OpDeleteAgentState:
		return abi.OpGetAgentState, true
	}
	return 0, false
}

// writesOf are the put and the delete of the record a get op reads.
func writesOf(get abi.Op) (put, del abi.Op) {
	switch get {
	case abi.OpGetMetric:
		return abi.OpPutMetric, abi.OpDeleteMetric
	case abi.OpGetAlert:
		return abi.OpPutAlert, abi.OpDeleteAlert
	}
	return abi.OpPutAgentState, abi.OpDeleteAgentState
}

// errFenced is the error of a replayed write of a metric sample that
// found its agent's fence at a later attempt's number (kept in
// fallback.fenceSeen): not done, to be replayed by a later attempt.
var errFenced = errors.New("fenced by a later replay attempt")

// fencedBy reports whether r, the answer of the replayed metric write it,
// says the write was fenced (library.lua, fenced), setting it.err and
// noting the fence's number.
func (b *backend) fencedBy(it *item, r *abi.Reply) bool {
	if r.Kind != abi.ReplyArray || len(r.Array) != 2 || r.Array[0].Kind != abi.ReplyInt || r.Array[0].Int != 3 {
		return false
	}
	it.Err = errFenced
	if r.Array[1].Kind == abi.ReplyInt && r.Array[1].Int > 0 {
		b.fb.fenceSeen = max(b.fb.fenceSeen, uint64(r.Array[1].Int))
	}
	return true
}

// errSuperseded is the error of a replayed write of an agent state or an
// alert that found its record written after the write was acknowledged
// (item.replay): the newer record stays, and the buffered write is done
// with.
var errSuperseded = errors.New("superseded by a later write")
