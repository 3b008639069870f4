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
//	i          the buffer's id, which names its keys in Redis:
//	           rf:<id>:{agent}, the fence of each agent's metric samples
//	           (newAttempt).
//	a          the number of the last replay attempt, 8 bytes big-endian.
//
// Writes. An unconditional put or delete of any kind that meets
// UNAVAILABLE from Redis (nothing sent: one whose outcome is unknown is
// not buffered, see fallBack), or that arrives while its record has
// unsettled buffered writes (so that it stays behind them), is
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
// after retryBackoff. A chunk whose reply was lost may still reach Redis
// after the attempt that replays it again: its writes of agent states
// and alerts then find a later time on their records, its writes of
// metric samples a later attempt's number on their agent's fence, and
// change nothing (errSuperseded, errFenced). A replayer that dies holding the lock (a host
// crash: the lock may be on disk) holds it for lockTTL at most, so a host
// restarted on the same data directory resumes within about a second.
// Writes that arrive meanwhile go to the end of the queue. A write
// replayed twice (a replayer that fails between Redis and advancing head)
// is rewritten with the same value, and reported twice.
//
// A tick the host marks resumed (abi.TickRequest: the first of a backend
// it opened) that finds writes replayed but not settled reports them
// again instead, each as its record stands in Redis now (resume), and
// answers More: the host that received them last may have stopped before
// it published their events. The next tick settles them.
//
// Once a tick finds the queue empty, it sweeps what replayed writes left
// in kv, sweepBudget entries at most per tick (answering More while there
// may be more): queue entries and r/ entries of settled writes (an r/
// entry kv IfVersion, so a newer buffered write's entry is kept).
// Deleting them during the replay would double its kv calls; meanwhile
// they are read as absent. While writes keep the queue from emptying they
// stay, counted in the kv quota.
//
// A changed configuration. The buffer is the kv store's, not the
// options': an instance configured with fallback=fail may find writes
// that fallback=buffer acknowledged (the option changed by a reload or a
// restart while Redis was away). It acknowledges no write into the
// buffer, but honours what is there until it is empty: ticks replay it
// and report it pending, and requests route as during a catch-up, except
// that a write of a record with unsettled buffered writes is UNAVAILABLE
// instead of queued. Having nothing to add to the queue, an instance
// reads c when it is configured, and then in requests only while it found
// writes there (and in the ticks it serves), so that an empty buffer
// costs fail mode's requests nothing. Only a replaced backend's last
// calls, still under fallback=buffer, can add writes meanwhile: its Close
// replays them if Redis answers, else this backend's ticks do, but an
// instance that found the queue empty before does not route around them
// in its requests. Buffered writes are requests:
// they are replayed to the Redis and key prefix the host connects this
// backend to at replay, whatever it was when they were buffered (the host
// logs a warning when a backend opens with writes pending).
//
// The code: fallback_serve.go routes requests and serves them from the
// buffer, fallback_queue.go keeps the queue and the r/ entries in kv,
// fallback_replay.go replays (tick), fallback_sweep.go sweeps.

import (
	"errors"
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
	cmdPing    = []byte("PING")
	kvMeta     = []byte("c")
	kvLock     = []byte("l")
	kvID       = []byte("i")
	kvAttempts = []byte("a")
	kvQueue    = []byte("q/")
	// kvRecords to kvRecordsEnd are the r/ entries.
	kvRecords    = []byte("r/")
	kvRecordsEnd = []byte("r0")
)

// fallback is one instance's side of the buffer; the buffer itself is in
// kv, shared by every instance.
type fallback struct {
	max uint64 // fallback_buffer_entries
	// accept is fallback=buffer: writes may be acknowledged into the
	// buffer. With fallback=fail none is, but what the buffer holds is
	// replayed and honoured as during a catch-up (see fallback.go).
	accept bool
	kv     sdk.KV
	enc    abi.Encoder // r/ values
	ent    abi.Encoder // q/ values
	dec    abi.Decoder
	key    []byte // scratch: r/ keys
	qk     []byte // scratch: q/ keys
	qe     []byte // scratch: the end of a queue scan

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

	// The replay fence of metric samples (newAttempt): fence is the key
	// prefix of this buffer's per-agent fences (empty until the buffer's
	// id is read), token the number of the replay attempt under way.
	fence string
	token int64
	// fenceSeen is the highest fence number a replayed write found above
	// its attempt's (errFenced): the next attempt is numbered above it.
	fenceSeen uint64
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
