package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/internal/localstore"
)

// The host ticks a backend whose plugin advertises abi.FeatureTick: one
// goroutine per Store sends abi.OpTick every tickInterval, and again at
// once while the plugin says it has more to do. A tick is an ordinary
// plugin call (an instance from the pool, Limits.CallTimeout), made by no
// caller. Its result carries the writes the plugin acknowledged earlier
// with STALE (into a buffer of its own) that have now taken effect; the
// host publishes their events then, and not when they were acknowledged.
//
// No caller paces ticks, so the host does. The ticks that follow one at
// once because it answered More are a round, of at most moreTicks ticks
// and moreBusy of ticking (waits for the events bucket aside), after
// which the loop waits for the next interval, tickInterval after the
// round began. The events of the writes ticks
// report are published at most tickEventsPerSecond, with bursts of
// tickEventsBurst: a tick whose writes find the bucket short waits for it
// before it publishes them, and the next tick waits too.

const (
	// tickInterval is how often an idle backend is ticked.
	tickInterval = 100 * time.Millisecond
	// closeFlush bounds how long Close ticks to empty the plugin's
	// buffer (less when Close's context ends first).
	closeFlush = 5 * time.Second
	// closeIdleTicks is how many ticks in a row that change nothing make
	// Close give up on emptying the buffer: the primary store is away,
	// or another host is replaying it.
	closeIdleTicks = 3
	// tickLogEvery rate-limits the log of failed ticks.
	tickLogEvery = 10 * time.Second
	// maxTickBackoff bounds the wait between the rounds of a plugin
	// whose ticks keep failing by its own fault (a trap, its call
	// timeout, its own INTERNAL, a store connection lost): the wait
	// doubles from tickInterval at
	// each such round, so a plugin that loops or traps in every tick
	// costs the host a call a minute, not ten a second, with no caller
	// asking for them. A tick that succeeds, or fails for its store
	// (UNAVAILABLE: Redis away), ticks again on the interval.
	maxTickBackoff = time.Minute
	// longRoundRest is how many times what a round of ticks that
	// reported no write ran past idleRoundBusy it rests before the next,
	// up to maxTickBackoff: a tick that spins, to nearly its call timeout
	// or to just under any bound, and answers OK or UNAVAILABLE (which do
	// not back off) holds a CPU a tenth of the time, not all or half of
	// it. A round whose ticks reported writes rests once what it ran past
	// moreBusy: a replay's chunk that took longer on a loaded machine
	// slows by half at most, and a plugin reporting a write each tick to
	// pass for one holds half a CPU at most (and publishes an event a
	// tick for it).
	longRoundRest = 9
	// idleRoundBusy is what a round that reported no write may run before
	// it rests longer: a tick with nothing to do takes well under a
	// millisecond.
	idleRoundBusy = 5 * time.Millisecond
	// moreTicks bounds the ticks of one round: the tick on the interval
	// and those sent at once because the last one answered More.
	moreTicks = 8
	// moreBusy bounds the time one round ticks before it rests.
	moreBusy = tickInterval / 2
	// tickEventsPerSecond and tickEventsBurst bound the events of the
	// writes ticks report, per backend: a replay of the Redis backend's
	// default buffer (10 000 writes, abi.MaxTickWrites a tick) is within
	// the burst, a larger one goes on at about the pace Redis replays
	// (20 000–30 000 writes a second, BENCHMARKS.md), and a plugin
	// reporting writes it never received publishes six ticks' worth a
	// second.
	tickEventsPerSecond = 6 * abi.MaxTickWrites
	tickEventsBurst     = 8 * abi.MaxTickWrites
	// tickEventsChunk is how many of a tick's events are published at
	// once: the next chunk follows as long after as the bucket's rate
	// gives it (spread). A subscriber has room for 1 024 events waiting
	// (events.Options.Buffer), and a tick reports up to 4 096 writes:
	// published at once, they ended every subscription to the backend
	// slow_subscriber however fast it read (an outside check: 60 times
	// in 10 s, a client reconnecting at once).
	tickEventsChunk = 256
)

// tickRequestSince is the ABI minor from which OpTick carries a
// TickRequest; plugins of older minors get an empty body.
const tickRequestSince = 7

// ticker drives a Store's ticks.
type ticker struct {
	s        *Store
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	// writes counts the calls that may write to the store (not ticks);
	// cleanAt is its value when the last tick that found nothing to do
	// began, or -1 (the loop's own; Close reads it once the loop is done).
	writes  atomic.Int64
	cleanAt int64

	pending atomic.Uint64 // as the last tick reported
	// buffered counts the writes answered STALE (acknowledged into the
	// plugin's buffer: Store.acknowledged); since is its value when the
	// tick whose report pending holds began. Stats.BufferedWrites is
	// pending plus the writes acknowledged since (bufferedWrites): a
	// write buffered after the plugin counted its queue is not in the
	// report, and one buffered while no tick ran (its answer before the
	// next tick's) would read as none pending until that tick. A write
	// the report counted too is counted twice until the next tick: an
	// upper bound, never a figure that reads 0 with writes pending.
	// reportMu guards pending's store with since's.
	buffered atomic.Uint64
	since    uint64
	reportMu sync.Mutex
	failures atomic.Uint64
	ticks    atomic.Uint64 // tick calls made, failed or not
	// target names where the plugin's buffer is replayed to (log
	// attributes); announced is set once a tick has answered.
	target    []any
	announced atomic.Bool
	// settled is set once a tick has succeeded: until then each tick
	// tells the plugin it is resumed (abi.TickRequest), since what the
	// last tick of an earlier run reported may never have had its events.
	settled atomic.Bool
	// crashAtWrites is for tests (export_test.go): a tick that reports
	// writes halts the ticker and publishes nothing, as a crash would.
	crashAtWrites atomic.Bool

	// tickMu is held through a tick's call of the plugin; superseded is
	// set once a backend opened later shares the kv store, and so the
	// buffer (see replayers): no tick calls the plugin while it is set.
	tickMu     sync.Mutex
	superseded atomic.Bool
	held       bool // opened WithReplayHeld, not yet released; under replayers

	events *rate.Limiter // the events of reported writes
	waited time.Duration // for events, by the loop, then by close
	// remote is the time ticks waited in redis and postgres calls
	// answered UNAVAILABLE (instance.remoteWait), nanoseconds, summed;
	// the loop's pacing leaves it out.
	remote atomic.Int64
	// lost is set when a tick's redis or postgres call answered UNKNOWN
	// (instance.remoteLost), and lostWait is the time such calls took
	// (instance.lostWait), nanoseconds, summed; the loop reads and clears
	// lost each round. lastLost is when a round last lost an answer
	// (loop's alone).
	lost     atomic.Bool
	lostWait atomic.Int64
	lastLost time.Time

	mu         sync.Mutex // guards the failure log's rate limit
	lastLog    time.Time
	suppressed uint64
	// backoff is the wait before the next round while ticks fail by the
	// plugin's fault (maxTickBackoff); loop's alone.
	backoff time.Duration
}

// startTicker starts ticking s if its plugin advertises the tick feature,
// its replay held until TakeReplay if held (WithReplayHeld). cfg names the
// store its buffer is replayed to, for the log.
func (s *Store) startTicker(cfg *Config, held bool) {
	if !s.p.meta.Features.Has(abi.FeatureTick) {
		return
	}
	t := &ticker{s: s, stop: make(chan struct{}), done: make(chan struct{}), cleanAt: -1,
		events: rate.NewLimiter(tickEventsPerSecond, tickEventsBurst)}
	if cfg.Redis != nil {
		t.target = []any{"redis", strings.Join(cfg.Redis.Servers(), ","), "key_prefix", cfg.Redis.KeyPrefix}
	}
	s.ticker = t
	replayers.take(t, held)
	go t.loop()
}

// TakeReplay makes s the store that replays the buffer in its data
// directory, if it was opened WithReplayHeld: the others open there stop
// replaying, and TakeReplay returns once none is in the middle of it.
func (s *Store) TakeReplay() {
	if s.ticker != nil {
		replayers.release(s.ticker)
	}
}

// replayers lists, by kv store, the tickers of the open backends that
// share it, oldest first: a backend rebuilt on its data directory (a
// reload that changed its key prefix, its Redis, an option) opens the
// same store, and the buffer in it, while the old one closes. Only the
// newest not held (WithReplayHeld) ticks, so that the buffer is replayed
// to the store as configured now: the old one, ticked through its Close,
// replayed to the prefix and address it had, and an outside drill found
// 2 500 to 10 900 of 16 500 writes acknowledged during an outage in the
// old prefix, not found by the new backend. A reload opens the new one
// held, and releases it once it is committed: one it refuses closes
// without having replayed anything to a configuration that never served.
// When the newest closes first, the one before it ticks again.
var replayers = replayerSet{byStore: map[*localstore.Store][]*ticker{}}

type replayerSet struct {
	sync.Mutex
	byStore map[*localstore.Store][]*ticker
}

// errSuperseded is a tick's error when a backend opened later ticks
// instead (replayers).
var errSuperseded = errors.New("host: a backend opened later on the same data directory replays its buffer")

// take adds t to its kv store's tickers (a data directory's: one in
// memory is its backend's alone), held or not, and waits for the tick the
// ones it supersedes may be in the middle of.
func (r *replayerSet) take(t *ticker, held bool) {
	kv := t.s.p.kv
	if kv == nil || t.s.p.dataDir == "" {
		return
	}
	r.Lock()
	t.held = held
	r.byStore[kv] = append(r.byStore[kv], t)
	stopped := r.assign(kv)
	r.Unlock()
	waitTicks(stopped)
}

// release ends t's hold (TakeReplay), as take does.
func (r *replayerSet) release(t *ticker) {
	kv := t.s.p.kv
	r.Lock()
	if !t.held {
		r.Unlock()
		return
	}
	t.held = false
	stopped := r.assign(kv)
	r.Unlock()
	waitTicks(stopped)
}

// assign lets the newest ticker of kv not held tick, and no other; it
// returns those it stopped. The caller holds r.
func (r *replayerSet) assign(kv *localstore.Store) (stopped []*ticker) {
	ts := r.byStore[kv]
	ticking := -1
	for i := len(ts) - 1; i >= 0; i-- {
		if !ts[i].held {
			ticking = i
			break
		}
	}
	for i, o := range ts {
		if i == ticking {
			o.superseded.Store(false)
		} else if !o.superseded.Swap(true) {
			stopped = append(stopped, o)
		}
	}
	return stopped
}

// waitTicks waits for the tick each of ts may be in the middle of.
func waitTicks(ts []*ticker) {
	for _, o := range ts {
		o.tickMu.Lock()
		//lint:ignore SA2001 the lock is the wait: a tick calling its plugin holds it
		o.tickMu.Unlock()
	}
}

// call makes the tick call, unless a backend opened later on the same
// data directory replays the buffer (errSuperseded); take waits for it.
func (t *ticker) call(ctx context.Context, encode func(*abi.Encoder), decode func(*abi.Decoder)) error {
	t.tickMu.Lock()
	defer t.tickMu.Unlock()
	if t.superseded.Load() {
		return errSuperseded
	}
	return t.s.callPlugin(ctx, abi.OpTick, true, encode, decode) // a replay writes
}

// leave takes t off its kv store's list, as its backend closes; the
// newest of those left not held ticks again.
func (r *replayerSet) leave(t *ticker) {
	kv := t.s.p.kv
	r.Lock()
	defer r.Unlock()
	ts := slices.DeleteFunc(r.byStore[kv], func(o *ticker) bool { return o == t })
	if len(ts) == 0 {
		delete(r.byStore, kv)
		return
	}
	r.byStore[kv] = ts
	r.assign(kv)
}

func (t *ticker) loop() {
	defer close(t.done)
	// The first round at once: until a tick has reported, Stats knows
	// nothing of writes an earlier run left buffered, and says 0.
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-timer.C:
		}
		// A halt wins over a round due at the same moment (select picks
		// either when both are ready): after halt, no tick begins.
		select {
		case <-t.stop:
			return
		default:
		}
		start, waited, remote, lostWait := time.Now(), t.waited, t.remote.Load(), t.lostWait.Load()
		faulty, progressed := false, false
		for n := 1; ; n++ {
			writes := t.writes.Load()
			r, err := t.tick(context.Background(), t.stop)
			faulty = err != nil && pluginFault(err)
			progressed = progressed || err == nil && len(r.Writes) > 0
			if err == nil {
				t.cleanAt = -1
				if r.Pending == 0 && !r.More {
					t.cleanAt = writes
				}
			}
			busy := time.Since(start) - (t.waited - waited) - time.Duration(t.remote.Load()-remote)
			if err != nil || !r.More || n >= moreTicks || busy >= moreBusy || t.lost.Load() {
				break
			}
			select {
			case <-t.stop:
				return
			default:
			}
		}
		// The next round is on the next interval: a round of long ticks
		// rests no more than a plugin whose every tick is long would.
		// One whose ticks keep failing by its fault waits longer each
		// time (maxTickBackoff); a round whose ticks reported no write
		// and ran past idleRoundBusy rests longRoundRest times what it ran
		// past it, however it ended, so that no plugin keeps the host
		// busy with nobody calling it; one that reported writes (a
		// replay's chunk, slower on a loaded machine) rests as long as
		// what it ran past moreBusy.
		interval := tickInterval
		// A round whose store calls lost their connection backs off as
		// a fault does: a plugin ending its own session at each tick
		// made PostgreSQL open a session ten times a second (70 % of a
		// CPU) with nobody calling, in an outside check.
		//
		// Its wait on the calls that lost their answer counts as its own
		// time, as a store's work does (a plugin ending its own
		// PostgreSQL session after 3.8 s of work a tick passed it off as
		// waiting, in an outside check), unless no round lost one in the
		// minute before: a store frozen while a tick waited on it (a
		// Redis stopped for 6 s, the tick's call answering UNKNOWN at
		// the 2 s read timeout) then delays the replay that follows its
		// return by the backoff alone, not nine times the wait (18 s, in
		// an outside drill). A round that loses an answer ends there.
		silent := time.Duration(0) // of the lost answers' wait, what is left out
		if t.lost.Swap(false) {
			faulty = true
			if t.lastLost.IsZero() || start.Sub(t.lastLost) >= maxTickBackoff {
				silent = time.Duration(t.lostWait.Load() - lostWait) // the first in a minute
			}
			t.lastLost = time.Now()
		}
		if faulty {
			t.backoff = min(max(2*t.backoff, tickInterval), maxTickBackoff)
			interval = t.backoff
		} else {
			t.backoff = 0
		}
		// Busy is the round's own time: not its waits for the events
		// bucket, nor for a Redis or PostgreSQL that answered UNAVAILABLE
		// (a tick waiting on a store that is away does not rest for it;
		// one making its store work does, UNKNOWN answers included but
		// the first in a minute, above).
		busy := time.Since(start) - (t.waited - waited) - time.Duration(t.remote.Load()-remote) - silent
		if progressed {
			if over := busy - moreBusy; over > 0 {
				interval = max(interval, busy+min(over, maxTickBackoff))
			}
		} else if over := busy - idleRoundBusy; over > 0 {
			interval = max(interval, busy+min(longRoundRest*over, maxTickBackoff))
		}
		timer.Reset(max(interval-time.Since(start), 0))
	}
}

// pluginFault reports whether a failed tick failed by its plugin's fault:
// it trapped, ran past its call timeout or answered INTERNAL.
func pluginFault(err error) bool {
	return errors.Is(err, abi.StatusInternal) || errors.Is(err, abi.StatusLimit)
}

// spread waits, between two chunks of a tick's events, for as long as
// the bucket's rate gives a chunk, until stop is closed or ctx ends.
func (t *ticker) spread(ctx context.Context, stop <-chan struct{}) {
	start := time.Now()
	defer func() { t.waited += time.Since(start) }()
	wait := time.NewTimer(time.Second * tickEventsChunk / tickEventsPerSecond)
	defer wait.Stop()
	select {
	case <-wait.C:
	case <-stop:
	case <-ctx.Done():
	}
}

// tick makes one tick call and publishes the events of the writes it
// reports once the events bucket holds them: it waits for that, until
// stop is closed or ctx ends (then it publishes them at once: one tick's
// writes past the bound, so that no event is lost).
func (t *ticker) tick(ctx context.Context, stop <-chan struct{}) (abi.TickResult, error) {
	s := t.s
	ctx, cancel := context.WithTimeout(ctx, s.p.limits.CallTimeout)
	defer cancel()
	var r abi.TickResult
	req := abi.TickRequest{Resumed: !t.settled.Load()}
	start := t.buffered.Load()
	encode := func(*abi.Encoder) {}
	if s.p.meta.ABI.Minor >= tickRequestSince {
		encode = req.Encode
	}
	err := t.call(ctx, encode, r.Decode)
	if errors.Is(err, errSuperseded) {
		return abi.TickResult{}, err
	}
	t.ticks.Add(1)
	if err != nil {
		t.failed(err)
		return abi.TickResult{}, err
	}
	t.settled.Store(true)
	if len(r.Writes) > 0 && t.crashAtWrites.Load() {
		t.halt()
		return abi.TickResult{}, errors.New("host: ticker halted by a test")
	}
	if r.Pending > 0 && !t.announced.Swap(true) {
		// Most likely left by an earlier run or configuration (the
		// buffer is the data directory's): it goes to the store as
		// configured now, whatever it was buffered for.
		t.s.p.log.Warn("opened with buffered writes pending; they are replayed to the backend's store as configured now",
			append([]any{"pending", r.Pending}, t.target...)...)
	} else if r.Pending == 0 {
		t.announced.Store(true)
	}
	// Published after the warning: whoever sees a pending write in
	// Stats can also find where it goes in the log.
	t.reportMu.Lock()
	t.pending.Store(r.Pending)
	t.since = start
	t.reportMu.Unlock()
	t.pace(ctx, stop, len(r.Writes))
	for i := range r.Writes {
		if i > 0 && i%tickEventsChunk == 0 {
			t.spread(ctx, stop)
		}
		if err := s.publishTicked(&r.Writes[i]); err != nil {
			t.failed(err)
		}
	}
	t.flush(stop, len(r.Writes))
	return r, nil
}

// flush waits, after a tick that reported n writes, until their events
// are in the log (or dropped), stop is closed, or the call timeout passes.
// The plugin forgot those writes with the tick (a replayed buffer's
// entries are deleted, and committed with the call), so an event still
// queued is the only record of them that a crash can lose: without the
// wait, ticks ran ahead of the appender, and a SIGKILL during a replay
// lost the events of about two thousand writes Redis had taken. With it,
// a crash loses at most the events of the tick under way.
func (t *ticker) flush(stop <-chan struct{}, n int) {
	if n == 0 || t.s.bus == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.s.p.limits.CallTimeout)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	defer func() { t.waited += time.Since(start) }()
	_ = t.s.bus.Flush(ctx)
}

// pace waits until the events bucket holds n events (at most
// abi.MaxTickWrites, within its burst), stop is closed or ctx ends.
func (t *ticker) pace(ctx context.Context, stop <-chan struct{}, n int) {
	if n == 0 {
		return
	}
	d := t.events.ReserveN(time.Now(), n).Delay()
	if d == 0 {
		return
	}
	start := time.Now()
	defer func() { t.waited += time.Since(start) }()
	wait := time.NewTimer(d)
	defer wait.Stop()
	select {
	case <-wait.C:
	case <-stop:
	case <-ctx.Done():
	}
}

// failed counts a failed tick and logs it, at most once per tickLogEvery.
func (t *ticker) failed(err error) {
	t.failures.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if !t.lastLog.IsZero() && now.Sub(t.lastLog) < tickLogEvery {
		t.suppressed++
		return
	}
	t.s.p.log.Warn("tick failed", "error", trapText(err), "suppressed", t.suppressed)
	t.lastLog, t.suppressed = now, 0
}

// bufferedWrites is Stats.BufferedWrites: what the last tick reported
// pending, and the writes acknowledged into the buffer since it began.
func (t *ticker) bufferedWrites() uint64 {
	t.reportMu.Lock()
	defer t.reportMu.Unlock()
	return t.pending.Load() + t.buffered.Load() - t.since
}

// called counts a call to the plugin that has ended, if it may have
// written (a tick after it sees what it buffered). t may be nil.
func (t *ticker) called(op abi.Op, writes bool) {
	if t != nil && writes && op != abi.OpTick {
		t.writes.Add(1)
	}
}

// halt stops the background ticks: none starts after it (the one under
// way finishes). Close halts them first, so that none begins while it
// waits for the calls in flight: with the store not answering, each would
// hold Close for a call timeout.
func (t *ticker) halt() { t.stopOnce.Do(func() { close(t.stop) }) }

// close halts the background ticks, waits for the one under way, then
// ticks until the plugin has nothing pending, Close's ctx ends,
// closeFlush passes, a tick fails UNAVAILABLE (the store is away: nothing
// empties the buffer now), or closeIdleTicks ticks in a row leave no
// fewer writes pending (More alone, or writes reported, is no progress: a
// plugin that always says More does not hold Close for closeFlush); it
// logs what is left. It does not tick at all when the last tick found
// nothing pending and no write has been made since it began. It runs once
// no caller's call is in flight.
// close ticks the plugin until it has no buffered write left (see
// Store.Close) and returns how many are left.
func (t *ticker) close(ctx context.Context) uint64 {
	defer replayers.leave(t)
	t.halt()
	<-t.done
	if ctx.Err() != nil {
		return t.report()
	}
	if t.cleanAt >= 0 && t.cleanAt == t.writes.Load() {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, closeFlush)
	defer cancel()
	idle := 0
	for ctx.Err() == nil {
		before := t.pending.Load()
		r, err := t.tick(ctx, nil)
		if err == nil && r.Pending == 0 && !r.More {
			return 0
		}
		if errors.Is(err, abi.StatusUnavailable) || errors.Is(err, errSuperseded) {
			break
		}
		if err == nil && r.Pending < before {
			idle = 0
			continue
		}
		if idle++; idle >= closeIdleTicks {
			break
		}
		if err == nil && r.More {
			continue // at once, but only while the buffer empties
		}
		select {
		case <-ctx.Done():
		case <-time.After(tickInterval):
		}
	}
	return t.report()
}

// report logs the buffered writes left at close, and returns how many.
func (t *ticker) report() uint64 {
	n := t.bufferedWrites()
	switch {
	case n == 0:
	case t.s.p.dataDir == "":
		t.s.p.log.Error("closed with buffered writes not yet applied to the backend's store; the buffer was in memory (no data directory): they are lost", "lost", n)
	case t.superseded.Load():
		t.s.p.log.Info("closed with buffered writes not yet applied to the backend's store; the backend opened since on its data directory replays them, to the store as it is configured", "pending", n)
	default:
		t.s.p.log.Warn("closed with buffered writes not yet applied to the backend's store; they are replayed by the next store opened on its data directory, whatever its options, to the backend's store as that one is configured", "pending", n)
	}
	return n
}

// tickedKind is the kind of record a tick's write of op is about.
func tickedKind(op abi.Op) (abi.RecordKind, bool) {
	switch op {
	case abi.OpPutMetric, abi.OpDeleteMetric:
		return abi.KindMetric, true
	case abi.OpPutAlert, abi.OpSetAlertStatus, abi.OpDeleteAlert:
		return abi.KindAlert, true
	case abi.OpPutAgentState, abi.OpDeleteAgentState:
		return abi.KindAgentState, true
	}
	return 0, false
}

// publishTicked publishes the event of a write a tick reports, as the
// write's own call would have had the plugin answered it OK.
func (s *Store) publishTicked(w *abi.TickWrite) error {
	var err error
	if kind, ok := tickedKind(w.Op); ok && !s.p.meta.Features.Has(kind.Feature()) {
		return s.refuse(abi.OpTick, fmt.Sprintf("reported a %s write, of %s, which the backend does not serve", w.Op, kind.Name()))
	}
	switch w.Op {
	case abi.OpPutMetric:
		if err = w.Metric.Check(); err == nil {
			s.publishMetric(events.OpPut, &w.Metric)
		}
	case abi.OpDeleteMetric:
		k := w.Metric.Key()
		if err = k.Check(); err == nil {
			s.publishMetricDelete(&k)
		}
	case abi.OpPutAlert, abi.OpSetAlertStatus:
		if err = w.Alert.Check(); err == nil {
			op := events.OpPut
			if w.Op == abi.OpSetAlertStatus {
				op = events.OpStatus
			}
			s.publishAlert(op, &w.Alert)
		}
	case abi.OpDeleteAlert:
		if err = abi.CheckID("alert id", w.Alert.ID); err == nil && w.Alert.AgentID != "" {
			err = abi.CheckID("agent id", w.Alert.AgentID)
		}
		if err == nil {
			s.publishAlertDelete(w.Alert.ID, w.Alert.AgentID)
		}
	case abi.OpPutAgentState, abi.OpDeleteAgentState:
		if err = w.State.Check(); err == nil {
			if w.Op == abi.OpPutAgentState {
				s.publishState(&w.State)
			} else {
				s.publishStateDelete(w.State.AgentID)
			}
		}
	default:
		err = fmt.Errorf("unknown op %s", w.Op)
	}
	if err != nil {
		return s.refuse(abi.OpTick, fmt.Sprintf("reported a %s write that is not valid: %v", w.Op, err))
	}
	return nil
}

// acknowledged turns the answer of a single write into its caller's error
// and says whether its event is due now. A write answered STALE was
// acknowledged into the plugin's buffer: a success for the caller, whose
// event a tick publishes once it has taken effect. This host's read cache
// drops the record at once all the same, so that its reads see the write.
func (s *Store) acknowledged(op abi.Op, err error, k cacheKey) (publish bool, _ error) {
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, abi.StatusStale) {
		return false, err
	}
	if !s.p.meta.Features.Has(abi.FeatureTick) {
		return false, s.refuse(op, "a write answered STALE by a plugin that does not advertise tick")
	}
	if s.cache != nil && k.kind != abi.KindMetric && k.kind != 0 {
		s.cache.invalidate(k, 0)
	}
	s.ticker.buffered.Add(1)
	return false, nil
}

// acknowledgedItems does what acknowledged does for the items of a bulk
// write, in place: an item answered STALE becomes a success. It returns
// which items were buffered (nil when none was), whose events are not due.
func (s *Store) acknowledgedItems(op abi.Op, errs []error, key func(i int) cacheKey) []bool {
	var buffered []bool
	for i, e := range errs {
		if e == nil || !errors.Is(e, abi.StatusStale) {
			continue
		}
		if buffered == nil {
			buffered = make([]bool, len(errs))
		}
		publish, err := s.acknowledged(op, e, key(i))
		errs[i], buffered[i] = err, !publish
	}
	return buffered
}
