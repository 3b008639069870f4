package main

// # Fallback: what happens when Redis cannot be reached
//
// With fallback=fail (the default) an unreachable Redis is UNAVAILABLE.
// With fallback=buffer the plugin keeps writes that Redis cannot take in
// the host's kv store (the kv capability: ordered, kept by the host,
// shared by every instance of this backend) and replays them, in the order
// it acknowledged them, when Redis is back. The buffer lives as long as
// the host's kv store: with host.Config.DataDir it is on disk, and a write
// acknowledged from it (the kv store syncs before the call that made it
// returns) survives a Redis outage, a host crash and a restart; without,
// it is in memory and lives as long as the Store (whose Close replays it
// first, if Redis answers).
//
// kv layout:
//
//	c          the queue: head (the sequence number of the next write to
//	           replay), tail (the last one allocated) and settled (the
//	           head when the last tick began: the writes below it are
//	           replayed and the host has published their events), 8 bytes
//	           big-endian each; absent: empty, head and settled 1 (a
//	           16-byte value, from an older plugin, has settled = head).
//	           Writers allocate a number by a CAS (IfVersion) on it, so a
//	           full queue is refused exactly and numbers follow
//	           acknowledgement order across all instances.
//	q/<seq>    one buffered write, seq in 16 hex digits (keys sort in
//	           queue order): op, acknowledgement time, version floor, and
//	           the request as the client sent it.
//	r/m/<agent>\0<name>\0<ts>, r/a/<alert>, r/s/<agent>
//	           the latest buffered value of one record (the write with the
//	           highest seq; a delete is a tombstone), as it was answered:
//	           seq, flag, record. It is pending while seq >= head, and
//	           unsettled while seq >= settled; a settled one is left for
//	           the sweep (below) and read as absent.
//	l          the replay lock: put IfAbsent with an expiry of lockTTL;
//	           its kv revision identifies the holder.
//
// Writes. An unconditional put or delete of any kind that meets
// UNAVAILABLE from Redis, or that arrives while its record has unsettled
// buffered writes (so that it stays behind them), is
// acknowledged once it is in the queue and its record's r/ key is set,
// with STALE (ABI 1.3): a success whose event the host publishes only
// when a tick reports the write replayed, so that no event announces a
// value Redis does not hold yet. A buffered write answers provisional
// results:
//   - an agent state's version is the host clock in microseconds (above
//     the buffered copy's, if any). At replay Redis gives the record a
//     version of its own, always above the provisional one (the replay
//     passes it as a floor), so an IfVersion with a provisional version
//     is a CONFLICT once replayed (and UNAVAILABLE before: see below);
//   - an expiry (TTL default, duration or persist) is absolute, computed
//     at acknowledgement, and replayed as such; a keep-TTL write answers
//     the buffered copy's expiry, or the kind default when the buffer
//     does not hold the record, and at replay Redis keeps the existing
//     record's own;
//   - an alert's created_at is the buffered copy's, else the request's or
//     now; at replay Redis keeps an existing alert's.
//
// A delete of a record whose buffered copy is a tombstone or has expired
// is NOT_FOUND; any other buffered delete is acknowledged (whether Redis has the
// record is not known). Conditional writes (IfVersion, IfAbsent),
// SetAlertStatus and restores (OpRestore, whose mode is a condition and
// whose exact version only Redis can keep) cannot be checked without
// Redis: during an outage they are UNAVAILABLE, never buffered, and while
// the record has unsettled buffered writes they wait for them
// (UNAVAILABLE) even when Redis is back. An alert put must
// be an allowed move from the alert's current status, which only Redis
// knows, so it is buffered only when the buffer holds the alert (its
// move is checked against the buffered copy) or when its status is
// resolved (allowed from every status); otherwise it is UNAVAILABLE. A
// full queue is UNAVAILABLE, never a silent loss.
//
// Catching up. While the queue holds unsettled writes, a write of a
// record with nothing unsettled in the buffer (conditional or not) goes
// to Redis, as it would with the queue empty (during an outage it meets
// UNAVAILABLE there, and is buffered then): only the writes of records
// the buffer holds join the queue. So the order of
// each record's writes is kept, in Redis and in the events (a record is
// unsettled until the tick after the one that replayed its last buffered
// write, that is until the host has published that write's event), while
// writes of other records are neither held up nor counted in the queue.
// Across records the order is not kept during a catch-up: a write of a
// record the buffer does not hold reaches Redis, and its event is
// published, before buffered writes of other records acknowledged
// earlier. The queue's limit (fallback_buffer_entries) bounds an outage:
// a write that Redis has just failed, or that arrives while Redis does
// not answer a PING, is refused when the queue holds that many. While
// Redis answers, the queue may hold up to catchUpFactor times as many:
// only writes of buffered records join it then, and the replay, which
// runs as fast as Redis takes writes, outpaces them, so that once Redis
// is back no write is refused as "catching up" unless writes of buffered
// records alone outrun the replay by a whole buffer. A write whose queue
// entry was put but whose r/ entry was not (a kv error) is answered
// UNKNOWN: it will be replayed, but nothing keeps a later write of its
// record from going to Redis first.
//
// Reads. While the queue may hold writes, a get first looks at the
// record's r/ key: a pending copy is answered with STALE (a tombstone,
// or a copy that has expired, is NOT_FOUND), even when Redis is
// reachable, as it is newer than Redis until replayed; otherwise the read
// goes to Redis, and one that meets UNAVAILABLE looks at the r/ key
// again. Queries read Redis only: during an outage they are UNAVAILABLE,
// and until the replay is done they do not see buffered writes.
//
// Replay. The host ticks the plugin (abi.OpTick, the Tick hook): about
// every 100 ms from a goroutine of its own, at once again while the last
// tick answered More, and until the queue is empty (or a bound) when the
// Store closes. Only ticks replay; requests never do, and the host makes
// one tick at a time, so replay does not slow requests down and an idle
// backend replays as soon as Redis answers. A write still reads the queue
// (one kv get of c) when it starts, and while it holds unsettled writes
// the record's r/ key, so that no write goes straight to Redis ahead of
// one of its record acknowledged from the buffer before it; a read does
// when its hint says the queue may hold writes or was last checked
// hintEvery ago, so that reads cost no kv call while the buffer is empty
// (a read may then miss, for up to hintEvery, a write another instance
// buffered while Redis answered this one).
//
// A tick reads c and settles what the tick before replayed (settled =
// head: the host published that tick's events before it sent this one);
// when the queue holds writes it takes the lock (held by
// another instance: it does nothing), sends a PING (is Redis back?), then
// replays at most replayBudget writes (abi.MaxTickWrites) or for at most
// replayTime, answering More when it stopped there with writes left. It
// reads the queue from head in chunks of replayChunk, renewing the lock
// before each, stops at a gap (a number allocated by a writer that has
// not put its entry yet; one missing for gapTimeout is skipped: its
// writer failed before acknowledging), sends each chunk through the
// normal write path (prepare, one pipelined EvalMany, finish) with the
// acknowledgement time as the write's time and the global index calls of
// the chunk folded into one per index entry (deferredIndex), and advances
// head past what Redis acknowledged: one kv CAS per chunk, so a chunk's
// bookkeeping is a scan, a lock renewal and a CAS, which the kv store
// syncs once, at the end of the tick. The writes Redis applied go into
// the tick's result, with the records as Redis kept them, for the host to
// publish their events; a tick that moved head answers More, so that the
// next one, which settles its writes, follows at once. A write Redis
// refuses for good (CONFLICT,
// INVALID) is dropped with an error log and reported nowhere; if Redis
// fails, the replay stops, keeps the rest, and leaves the lock to expire
// after retryBackoff. A replayer that dies holding the lock (a host
// crash: the lock may be on disk) holds it for lockTTL at most, so a host
// restarted on the same data directory resumes within about a second.
// Writes that arrive meanwhile go to the end of the queue. A write
// replayed twice (a replayer that fails between Redis and advancing head)
// is rewritten with the same value, and reported twice.
//
// Once a tick finds the queue empty, it sweeps what replayed writes left
// in kv, sweepBudget entries at most per tick (answering More while there
// may be more): queue entries below head, and r/ entries of settled
// writes (kv IfVersion, so a newer buffered write's entry is kept).
// Deleting them during the replay would double its kv calls; meanwhile
// they are read as absent. While writes keep the queue from emptying they
// stay, counted in the kv quota.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

const (
	// defaultBufferEntries is fallback_buffer_entries by default.
	defaultBufferEntries = 10000
	// hintEvery is how long a read trusts an instance's last look at the
	// queue that found it empty.
	hintEvery = 100 * time.Millisecond
	// lockTTL bounds how long a replayer that died keeps the lock (the kv
	// store may keep it across a host restart); a live one renews it
	// before every chunk.
	lockTTL = time.Second
	// retryBackoff is how long after a failed replay no instance tries
	// again.
	retryBackoff = 200 * time.Millisecond
	// gapTimeout is how long a queue position may stay allocated but
	// unwritten before the replay skips it. A live writer puts its entry
	// right after allocating it.
	gapTimeout = 5 * time.Second
	// replayChunk is how many writes one round trip replays, and
	// replayBudget how many one tick replays at most (all reported in its
	// result), replayTime how long it replays at most before it answers
	// with More set.
	replayChunk  = 1024
	replayBudget = abi.MaxTickWrites
	replayTime   = time.Second
	// sweepBudget is how many kv entries one tick's sweep looks at, at
	// most, in scans of sweepScan.
	sweepBudget = 8192
	sweepScan   = 1000
	// casAttempts bounds the retries of a CAS on a kv key.
	casAttempts = 1000
	// catchUpFactor times fallback_buffer_entries is how many writes the
	// queue may hold while Redis answers: during a catch-up only the
	// writes of records with unsettled buffered writes join it.
	catchUpFactor = 2
)

// errBufferFull is alloc's answer when the queue holds its limit; the
// caller says why.
var errBufferFull = errors.New("fallback buffer full")

var (
	cmdPing = []byte("PING")
	kvMeta  = []byte("c")
	kvLock  = []byte("l")
	kvQueue = []byte("q/")
	// kvRecords to kvRecordsEnd are the r/ entries.
	kvRecords    = []byte("r/")
	kvRecordsEnd = []byte("r0")
)

// fallback is one instance's side of the buffer; the buffer itself is in
// kv, shared by every instance.
type fallback struct {
	max uint64 // fallback_buffer_entries
	kv  sdk.KV
	enc abi.Encoder // r/ values
	ent abi.Encoder // q/ values
	dec abi.Decoder
	key []byte // scratch: r/ keys
	qk  []byte // scratch: q/ keys
	qe  []byte // scratch: the end of a queue scan

	// The queue as last read (or written) by this instance, at checkedAt;
	// rev is the kv revision of c, 0 when absent. pending is the hint:
	// the queue may hold writes not yet settled (settled <= tail).
	head, tail, settled, rev uint64
	pending                  bool
	checkedAt                time.Time
	// answeredAt is when Redis last answered this instance's PING (see
	// redisAnswers).
	answeredAt time.Time

	// A gap at gapSeq seen since gapSince (zero: none).
	gapSeq   uint64
	gapSince time.Time

	queued []queued
	arena  []byte // the payloads of queued
	items  []item
	ix     deferredIndex // the index calls of a replayed chunk
	// garbage is what sweep deletes next; sweepAt is where its scan of
	// the r/ entries goes on from (empty: their start).
	garbage []kvRef
	sweepAt []byte
	ticked  []abi.TickWrite // the writes this tick replayed
}

// kvRef is a kv entry's key and revision.
type kvRef struct {
	key []byte
	rev uint64
}

// queued is one write of the queue.
type queued struct {
	seq     uint64
	op      abi.Op
	now     time.Time
	floor   uint64
	payload []byte
}

// buffered is a record's r/ entry: its latest buffered value.
type buffered struct {
	seq, rev uint64
	gone     bool // a tombstone
	metric   abi.Metric
	alert    abi.Alert
	state    abi.AgentState // a tombstone keeps the last provisional version
}

// --- routing ---

// fallbackBegin starts a request at now: it looks at the queue, always
// for a request that writes (so that it goes behind the writes buffered
// before it), else when the hint asks for it. Requests never replay: the
// host's ticks do (tick).
func (b *backend) fallbackBegin(now time.Time, writes bool) {
	f := b.fb
	if !writes && !f.pending {
		if d := now.Sub(f.checkedAt); d >= 0 && d < hintEvery {
			return
		}
	}
	if err := f.readMeta(now); err != nil {
		sdk.Logf(abi.LevelWarn, "fallback buffer: %v", err)
	}
}

// runWithFallback serves a single-record request with fallback=buffer.
func (b *backend) runWithFallback(it *item) {
	b.fallbackBegin(it.now, !isRead(it.op))
	if b.fb.pending && b.fromBuffer(it) {
		return
	}
	b.direct(it)
	b.fallBack(it)
}

// fromBuffer serves it while the queue holds writes not yet settled,
// reporting whether it did: it answers a read whose record is buffered,
// queues an unconditional write to a record with unsettled buffered
// writes, and refuses a conditional write to such a record. Otherwise the
// item goes to Redis (and a write that meets UNAVAILABLE there is
// buffered then: fallBack).
func (b *backend) fromBuffer(it *item) bool {
	if isRead(it.op) {
		if !b.bufferedRead(it) {
			return false
		}
		it.served = true
		return true
	}
	pending, err := b.fb.recordPending(it)
	switch {
	case err != nil:
		it.err = err
	case !pending:
		return false
	case bufferable(it):
		b.buffer(it, false)
	default:
		it.err = abi.Errorf(abi.StatusUnavailable, "%s waits until the buffered writes of its record are replayed to Redis", it.op)
	}
	it.served = true
	return true
}

// afterUnavailable serves it, which Redis answered UNAVAILABLE, from the
// buffer where it can: an unconditional write is buffered, a read whose
// record is buffered answered from it.
func (b *backend) afterUnavailable(it *item) {
	f := b.fb
	switch {
	case bufferable(it):
		it.err = nil
		b.buffer(it, true)
	case isRead(it.op):
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
	switch it.op {
	case abi.OpPutMetric, abi.OpDeleteMetric, abi.OpPutAlert, abi.OpDeleteAlert:
		return true
	case abi.OpPutAgentState, abi.OpDeleteAgentState:
		return it.cond.Mode == abi.Unconditional
	}
	return false
}

// kind is the kind of record the item is about: 'm', 'a', 's', or 0.
func (it *item) kind() byte {
	switch it.op {
	case abi.OpPutMetric, abi.OpGetMetric, abi.OpDeleteMetric:
		return 'm'
	case abi.OpPutAlert, abi.OpGetAlert, abi.OpDeleteAlert, abi.OpSetAlertStatus:
		return 'a'
	case abi.OpPutAgentState, abi.OpGetAgentState, abi.OpDeleteAgentState:
		return 's'
	case abi.OpRestore:
		switch it.restore {
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
// with its result): acknowledged into the buffer. redisFailed says that
// Redis has just failed the write; otherwise a queue holding
// fallback_buffer_entries writes may grow past them if Redis answers (a
// catch-up, not an outage: see alloc).
func (b *backend) buffer(it *item, redisFailed bool) {
	f := b.fb
	now := it.now
	f.key = appendRecordKey(f.key[:0], it)
	var prev buffered
	exists, err := f.getRecord(it.kind(), f.key, &prev)
	if err != nil {
		it.err = err
		return
	}
	// An entry of a settled write (left behind, see bufferedRead) says
	// nothing about the record: writes may have gone to Redis since. One
	// replayed but not settled is what Redis holds.
	found := exists && prev.seq >= f.settled
	live := found && !prev.gone && !prev.expired(it.kind(), now)

	var rec buffered
	var floor uint64
	switch it.op {
	case abi.OpPutMetric:
		rec.metric = it.metric
		rec.metric.Timestamp = rec.metric.Timestamp.UTC()
		rec.metric.ExpiresAt = expiry(&it.ttl, now, b.metricTTL, prev.metric.ExpiresAt, live)
	case abi.OpPutAlert:
		a := it.alert
		switch {
		case live:
			if !prev.alert.Status.CanTransition(a.Status) {
				it.err = fmt.Errorf("alert %q: cannot go from %s to %s: %w", a.ID, prev.alert.Status, a.Status, sdk.ErrConflict)
				return
			}
		case found: // deleted or expired in the buffer: a create
		case a.Status == abi.AlertResolved: // allowed from every status
		default:
			it.err = abi.Errorf(abi.StatusUnavailable,
				"redis is unreachable and alert %q is not in the fallback buffer: its move to %s cannot be checked", a.ID, a.Status)
			return
		}
		if live {
			a.CreatedAt = prev.alert.CreatedAt
		} else if a.CreatedAt.IsZero() {
			a.CreatedAt = now
		}
		a.UpdatedAt = now
		a.ExpiresAt = expiry(&it.ttl, now, b.alertTTL, prev.alert.ExpiresAt, live)
		rec.alert = a
	case abi.OpPutAgentState:
		s := abi.AgentState{AgentID: it.state.AgentID, State: it.state.State, UpdatedAt: now}
		s.Version = uint64(now.UnixMicro())
		if exists && prev.state.Version >= s.Version {
			s.Version = prev.state.Version + 1
		}
		s.ExpiresAt = expiry(&it.ttl, now, b.stateTTL, prev.state.ExpiresAt, live)
		rec.state = s
		floor = s.Version + 1
	default: // a delete
		if found && !live {
			it.err = notFound(it)
			return
		}
		rec.gone = true
		rec.state.Version = prev.state.Version
	}

	limit := f.max
	seq, err := f.alloc(now, limit)
	if errors.Is(err, errBufferFull) && !redisFailed && b.redisAnswers(now) {
		limit = catchUpFactor * f.max
		seq, err = f.alloc(now, limit)
	}
	switch {
	case errors.Is(err, errBufferFull) && limit == f.max:
		it.err = abi.Errorf(abi.StatusUnavailable, "redis is unreachable and the fallback buffer is full (%d writes)", f.max)
		return
	case errors.Is(err, errBufferFull):
		it.err = abi.Errorf(abi.StatusUnavailable, "the fallback buffer is full (%d writes, twice fallback_buffer_entries while Redis answers): the writes of the records it holds outpace its replay", limit)
		return
	case err != nil:
		it.err = err
		return
	}
	f.ent.Reset()
	f.ent.Uvarint(uint64(it.op))
	f.ent.Time(now)
	f.ent.Uvarint(floor)
	encodeRequest(it, &f.ent)
	f.qk = appendQueueKey(f.qk[:0], seq)
	if _, _, err := f.kv.Put(f.qk, f.ent.Bytes(), time.Time{}, false, abi.Condition{}); err != nil {
		// Not acknowledged; the replay skips the empty position.
		it.err = err
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
		sdk.Logf(abi.LevelWarn, "fallback buffer: keeping the buffered copy of a %s: %v", it.op, err)
		it.err = abi.Errorf(abi.StatusUnknown, "%s queued for replay, but its record's buffered copy could not be kept: %v", it.op, err)
		return
	}
	switch it.op {
	case abi.OpPutMetric:
		it.metric = rec.metric
	case abi.OpPutAlert:
		it.alert = rec.alert
	case abi.OpPutAgentState:
		it.state = rec.state
	}
	// Acknowledged, not yet in Redis: the host publishes the write's
	// event when a tick reports it replayed.
	it.err = sdk.ErrStale
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
		return metricNotFound(&it.metric)
	case 'a':
		return fmt.Errorf("alert %q: %w", it.alert.ID, sdk.ErrNotFound)
	}
	return fmt.Errorf("agent state %q: %w", it.state.AgentID, sdk.ErrNotFound)
}

// encodeRequest appends the request of the write it, as decodeItem reads
// it back.
func encodeRequest(it *item, e *abi.Encoder) {
	switch it.op {
	case abi.OpPutMetric:
		r := abi.PutMetric{Metric: it.metric, TTL: it.ttl}
		r.Encode(e)
	case abi.OpDeleteMetric:
		k := it.metric.Key()
		k.Encode(e)
	case abi.OpPutAlert:
		r := abi.PutAlert{Alert: it.alert, TTL: it.ttl}
		r.Encode(e)
	case abi.OpDeleteAlert:
		e.String(it.alert.ID)
	case abi.OpPutAgentState:
		r := abi.PutAgentState{State: abi.AgentState{AgentID: it.state.AgentID, State: it.state.State}, TTL: it.ttl, Condition: it.cond}
		r.Encode(e)
	case abi.OpDeleteAgentState:
		r := abi.DeleteAgentState{AgentID: it.state.AgentID, Condition: it.cond}
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
		it.err = err
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
		it.err = notFound(it)
		return true
	}
	switch kind {
	case 'm':
		it.metric = rec.metric
	case 'a':
		it.alert = rec.alert
	case 's':
		it.state = rec.state
	}
	it.err = sdk.ErrStale
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

// --- the queue ---

// readMeta reads the queue's head, tail and settled.
func (f *fallback) readMeta(now time.Time) error {
	en, err := f.kv.Get(kvMeta)
	switch {
	case err == nil:
		if len(en.Value) != 16 && len(en.Value) != 24 {
			f.pending = true
			return abi.Errorf(abi.StatusInternal, "fallback buffer: corrupt queue state (%d bytes)", len(en.Value))
		}
		f.head, f.tail, f.rev = binary.BigEndian.Uint64(en.Value), binary.BigEndian.Uint64(en.Value[8:]), en.Revision
		// Without settled (a buffer an older plugin left), no event of a
		// write below head is still to come.
		f.settled = f.head
		if len(en.Value) == 24 {
			f.settled = binary.BigEndian.Uint64(en.Value[16:])
		}
	case errors.Is(err, sdk.ErrNotFound):
		f.head, f.tail, f.settled, f.rev = 1, 0, 1, 0
	default:
		f.pending = true
		return err
	}
	f.pending = f.settled <= f.tail
	f.checkedAt = now
	return nil
}

// writeMeta sets the queue's head, tail and settled if it is still as
// last read.
func (f *fallback) writeMeta(head, tail, settled uint64) error {
	var v [24]byte
	binary.BigEndian.PutUint64(v[:], head)
	binary.BigEndian.PutUint64(v[8:], tail)
	binary.BigEndian.PutUint64(v[16:], settled)
	cond := abi.Condition{Mode: abi.IfAbsent}
	if f.rev != 0 {
		cond = abi.Condition{Mode: abi.IfVersion, Version: f.rev}
	}
	rev, _, err := f.kv.Put(kvMeta, v[:], time.Time{}, false, cond)
	if err != nil {
		return err
	}
	f.head, f.tail, f.settled, f.rev = head, tail, settled, rev
	f.pending = settled <= tail
	return nil
}

// alloc allocates the next queue position, answering errBufferFull when
// the queue holds limit writes.
func (f *fallback) alloc(now time.Time, limit uint64) (uint64, error) {
	fresh := false
	for range casAttempts {
		if f.tail+1-f.head >= limit {
			if !fresh {
				if err := f.readMeta(now); err != nil {
					return 0, err
				}
				fresh = true
				continue
			}
			return 0, errBufferFull
		}
		err := f.writeMeta(f.head, f.tail+1, f.settled)
		if err == nil {
			return f.tail, nil
		}
		if !errors.Is(err, sdk.ErrConflict) {
			return 0, err
		}
		if err := f.readMeta(now); err != nil {
			return 0, err
		}
		fresh = true
	}
	return 0, abi.Errorf(abi.StatusUnavailable, "fallback buffer: too much contention")
}

// redisAnswers reports whether Redis answers a PING, or answered one
// from this instance less than hintEvery ago.
func (b *backend) redisAnswers(now time.Time) bool {
	f := b.fb
	if d := now.Sub(f.answeredAt); !f.answeredAt.IsZero() && d >= 0 && d < hintEvery {
		return true
	}
	if _, err := b.redis.Do(cmdPing); err != nil {
		return false
	}
	f.answeredAt = now
	return true
}

// settle moves settled up to head: the tick that replayed the writes
// below head has returned, and the host has published their events.
func (f *fallback) settle(now time.Time) error {
	for range casAttempts {
		if f.settled >= f.head {
			return nil
		}
		err := f.writeMeta(f.head, f.tail, f.head)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sdk.ErrConflict) {
			return err
		}
		if err := f.readMeta(now); err != nil {
			return err
		}
	}
	return abi.Errorf(abi.StatusUnavailable, "fallback buffer: too much contention")
}

// advance moves head from from to to, reporting false when another
// replayer moved it first.
func (f *fallback) advance(from, to uint64, now time.Time) (bool, error) {
	for range casAttempts {
		if f.head != from {
			return false, nil
		}
		err := f.writeMeta(to, f.tail, f.settled)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sdk.ErrConflict) {
			return false, err
		}
		if err := f.readMeta(now); err != nil {
			return false, err
		}
	}
	return false, abi.Errorf(abi.StatusUnavailable, "fallback buffer: too much contention")
}

// appendQueueKey appends the kv key of queue position seq.
func appendQueueKey(dst []byte, seq uint64) []byte {
	const digits = "0123456789abcdef"
	dst = append(dst, kvQueue...)
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[seq>>uint(shift)&0xf])
	}
	return dst
}

func parseQueueKey(k []byte) (uint64, bool) {
	if len(k) != len(kvQueue)+16 || !bytes.HasPrefix(k, kvQueue) {
		return 0, false
	}
	var u uint64
	for _, c := range k[len(kvQueue):] {
		switch {
		case c >= '0' && c <= '9':
			u = u<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			u = u<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return u, true
}

func (f *fallback) decodeQueued(seq uint64, v []byte) (queued, error) {
	d := &f.dec
	d.Reset(v)
	q := queued{seq: seq, op: abi.Op(d.Uvarint()), now: d.Time(), floor: d.Uvarint()}
	q.payload = d.Rest()
	return q, d.Finish()
}

// --- per-record entries ---

// appendRecordKey appends the r/ key of the record of it.
func appendRecordKey(dst []byte, it *item) []byte {
	dst = append(dst, "r/"...)
	switch it.kind() {
	case 'm':
		dst = append(dst, "m/"...)
		dst = append(dst, it.metric.AgentID...)
		dst = append(dst, 0)
		dst = appendMember(dst, it.metric.Name, it.metric.Timestamp)
	case 'a':
		dst = append(dst, "a/"...)
		dst = append(dst, it.alert.ID...)
	case 's':
		dst = append(dst, "s/"...)
		dst = append(dst, it.state.AgentID...)
	}
	return dst
}

// getRecord reads the r/ entry at key into out.
func (f *fallback) getRecord(kind byte, key []byte, out *buffered) (bool, error) {
	en, err := f.kv.Get(key)
	if errors.Is(err, sdk.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	d := &f.dec
	d.Reset(en.Value)
	out.seq = d.Uvarint()
	out.gone = d.U8() == 1
	if out.gone {
		out.state.Version = d.Uvarint()
	} else {
		switch kind {
		case 'm':
			out.metric.Decode(d)
		case 'a':
			out.alert.Decode(d)
		case 's':
			out.state.Decode(d)
		}
	}
	if err := d.Finish(); err != nil {
		return false, abi.Errorf(abi.StatusInternal, "fallback buffer: corrupt entry %q: %v", key, err)
	}
	out.rev = en.Revision
	return true, nil
}

func encodeBuffered(e *abi.Encoder, kind byte, r *buffered) {
	e.Uvarint(r.seq)
	if r.gone {
		e.U8(1)
		e.Uvarint(r.state.Version)
		return
	}
	e.U8(0)
	switch kind {
	case 'm':
		r.metric.Encode(e)
	case 'a':
		r.alert.Encode(e)
	case 's':
		r.state.Encode(e)
	}
}

func (r *buffered) expired(kind byte, now time.Time) bool {
	var at time.Time
	switch kind {
	case 'm':
		at = r.metric.ExpiresAt
	case 'a':
		at = r.alert.ExpiresAt
	case 's':
		at = r.state.ExpiresAt
	}
	return !at.IsZero() && !now.Before(at)
}

// putRecord sets the r/ entry at key to value, the record after write
// seq, unless it holds a later write. rev and found are what the caller
// read there before.
func (f *fallback) putRecord(key, value []byte, seq, rev uint64, found bool) error {
	cond := abi.Condition{Mode: abi.IfAbsent}
	if found {
		cond = abi.Condition{Mode: abi.IfVersion, Version: rev}
	}
	for range casAttempts {
		_, _, err := f.kv.Put(key, value, time.Time{}, false, cond)
		if err == nil || !errors.Is(err, sdk.ErrConflict) {
			return err
		}
		en, err := f.kv.Get(key)
		switch {
		case err == nil:
			if s, n := binary.Uvarint(en.Value); n > 0 && s > seq {
				return nil // a later write's copy
			}
			cond = abi.Condition{Mode: abi.IfVersion, Version: en.Revision}
		case errors.Is(err, sdk.ErrNotFound):
			cond = abi.Condition{Mode: abi.IfAbsent}
		default:
			return err
		}
	}
	return abi.Errorf(abi.StatusUnavailable, "fallback buffer: too much contention")
}

// --- replay ---

// tick is the plugin's Tick hook (abi.OpTick): with fallback=buffer it
// replays what the queue holds, if Redis answers, and reports the writes
// replayed. The host ticks about every 100 ms, and again at once while
// the result has More set.
func (b *backend) tick() (abi.TickResult, error) {
	f := b.fb
	if f == nil {
		return abi.TickResult{}, nil
	}
	now := sdk.Now()
	if err := f.readMeta(now); err != nil {
		return abi.TickResult{}, err
	}
	f.ticked = f.ticked[:0]
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
	// One command first: a cheap look at whether Redis is back, and a
	// single command is what makes the bridge log in again (and make its
	// ACL user again) after a Redis restart, which a pipeline does not.
	_, err = b.redis.Do(cmdPing)
	ok := false
	if err == nil {
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

// replaySteps replays up to replayBudget writes in chunks, holding the
// lock held (renewed before each chunk). It reports ok false when the
// replay failed and should be retried after the back-off, and more when
// it stopped at its budget with writes left.
func (b *backend) replaySteps(now time.Time, held *abi.Condition) (ok, more bool) {
	f := b.fb
	start := sdk.Now()
	for budget := replayBudget; ; {
		if !f.replaying() {
			return true, false
		}
		if budget <= 0 || sdk.Now().Sub(start) >= replayTime {
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
		*it = item{op: qs[i].op, now: qs[i].now}
		b.decodeItem(it, qs[i].payload)
		if it.err == nil {
			it.floor = qs[i].floor
			b.prepare(it)
		}
	}
	b.deferIx = nil
	records := b.rq.ncalls()
	f.ix.flush(&b.rq)
	var replies []abi.Reply
	if b.rq.ncalls() > 0 {
		var err error
		if replies, err = b.send(); err != nil {
			sdk.Logf(abi.LevelDebug, "fallback replay: %v", err)
			return 0, false
		}
	}
	for i := records; i < len(replies); i++ {
		if replies[i].Kind == abi.ReplyError {
			// The chunk's writes are rewritten with the same values.
			sdk.Logf(abi.LevelWarn, "fallback replay: indexing failed, retrying later: %v", replies[i].Err())
			return 0, false
		}
	}
	for i := range items {
		it := &items[i]
		if it.err == nil {
			b.finish(it, replies)
		}
		if it.err == nil {
			f.ticked = append(f.ticked, tickWrite(it))
			continue
		}
		if errors.Is(it.err, sdk.ErrNotFound) {
			continue // a delete of a record already gone is done too
		}
		switch s, _ := statusOf(it.err); s {
		case abi.StatusConflict, abi.StatusInvalid, abi.StatusUnsupported:
			sdk.Logf(abi.LevelError, "fallback replay: Redis refused buffered write %d (%s), dropped: %v", qs[i].seq, it.op, it.err)
			continue
		}
		sdk.Logf(abi.LevelWarn, "fallback replay: buffered write %d (%s) failed, retrying later: %v", qs[i].seq, it.op, it.err)
		return i, false
	}
	return len(items), true
}

// tickWrite is the report of the replayed write it, as the host needs it
// to publish the write's event. An agent state's document is left out:
// events do not carry it.
func tickWrite(it *item) abi.TickWrite {
	w := abi.TickWrite{Op: it.op}
	switch it.op {
	case abi.OpPutMetric:
		w.Metric = it.metric
	case abi.OpDeleteMetric:
		w.Metric = abi.Metric{AgentID: it.metric.AgentID, Name: it.metric.Name, Timestamp: it.metric.Timestamp}
	case abi.OpPutAlert:
		w.Alert = it.alert
	case abi.OpDeleteAlert:
		w.Alert.ID = it.alert.ID // its agent is not known here
	case abi.OpPutAgentState, abi.OpDeleteAgentState:
		w.State = abi.AgentState{AgentID: it.state.AgentID, Version: it.state.Version, UpdatedAt: it.state.UpdatedAt, ExpiresAt: it.state.ExpiresAt}
	}
	return w
}

// sweep deletes, up to sweepBudget entries, what replayed writes left in
// kv: the queue entries below head, and the r/ entries whose write is
// settled (below settled; kv IfVersion, so that one a newer write set is
// kept). None of them is read as pending meanwhile (their seq is below
// head). It
// reports whether it stopped at its budget with entries left to look at.
func (f *fallback) sweep() (more bool) {
	budget := sweepBudget
	f.qk = appendQueueKey(f.qk[:0], f.head)
	for budget > 0 {
		ents, _, err := f.kv.Scan(kvQueue, f.qk, min(sweepScan, budget))
		if err != nil || len(ents) == 0 {
			break
		}
		f.keep(ents, false)
		for _, g := range f.garbage {
			_ = f.kv.Delete(g.key, abi.Condition{})
		}
		budget -= len(ents)
	}
	for budget > 0 {
		start := f.sweepAt
		if len(start) == 0 {
			start = kvRecords
		}
		ents, next, err := f.kv.Scan(start, kvRecordsEnd, min(sweepScan, budget))
		if err != nil {
			break
		}
		f.sweepAt = append(f.sweepAt[:0], next...)
		f.keep(ents, true)
		for _, g := range f.garbage {
			_ = f.kv.Delete(g.key, abi.Condition{Mode: abi.IfVersion, Version: g.rev})
		}
		budget -= max(len(ents), 1)
		if len(next) == 0 {
			return false
		}
	}
	return budget <= 0
}

// keep copies into f.garbage the entries of ents to delete: all of them,
// or with records set only the r/ entries of settled writes. The
// copies outlive the scan's buffer, which the deletes reuse.
func (f *fallback) keep(ents []abi.KVEntry, records bool) {
	f.garbage = f.garbage[:0]
	f.arena = f.arena[:0]
	for i := range ents {
		if records {
			if s, n := binary.Uvarint(ents[i].Value); n <= 0 || s >= f.settled {
				continue
			}
		}
		lo := len(f.arena)
		f.arena = append(f.arena, ents[i].Key...)
		f.garbage = append(f.garbage, kvRef{key: f.arena[lo:len(f.arena):len(f.arena)], rev: ents[i].Revision})
	}
}
