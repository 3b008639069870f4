package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/abi"
)

// Options tune a Bus. Zero fields take the defaults.
type Options struct {
	// Retention is how many events the log keeps for subscribers to
	// resume from (a Redis Stream trims to about this many; a PostgreSQL
	// table, at most once a second, to this many, beside events not
	// sequenced yet).
	// Default: 10 000 in-process, 100 000 in Redis or PostgreSQL.
	Retention int
	// Buffer is how many events each subscriber may have waiting; one
	// more disconnects it with ErrSlowSubscriber.
	// Default: 1024.
	Buffer int
	// Queue is how many events may wait to be appended to a Redis or
	// PostgreSQL log (while it is slow or away); past it new events are
	// dropped and counted. In-process logs append at once and have no
	// queue.
	// Default: 65 536.
	Queue int

	linger time.Duration // appendLinger; tests set it longer
	stall  time.Duration // stallAfter; tests set it shorter
	beat   time.Duration // beatEvery; tests set it shorter
	live   time.Duration // liveFor; tests set it shorter
}

func (o Options) withDefaults(redisLog bool) Options {
	if o.Retention <= 0 {
		o.Retention = 10_000
		if redisLog {
			o.Retention = 100_000
		}
	}
	if o.Buffer <= 0 {
		o.Buffer = 1024
	}
	if o.Queue <= 0 {
		o.Queue = 65_536
	}
	if o.linger <= 0 {
		o.linger = appendLinger
	}
	if o.stall <= 0 {
		o.stall = stallAfter
	}
	if o.beat <= 0 {
		o.beat = beatEvery
	}
	if o.live <= 0 {
		o.live = liveFor
	}
	return o
}

// ErrUnavailable ends the subscriptions of a Bus whose log cannot be read
// (its Redis is away); they may resume once it can.
var ErrUnavailable = errors.New("events: the event log cannot be read")

// unreadable is ErrUnavailable for err, a failed read of the log. A read
// has no outcome to be unknown: a bridge's status for a request whose
// connection was lost before its reply (abi.StatusUnknown) says, for a
// write, that it may have run; here only its message is kept.
func unreadable(err error) error {
	var ae *abi.Error
	if errors.As(err, &ae) && ae.Status == abi.StatusUnknown {
		return fmt.Errorf("%w: %s", ErrUnavailable, ae.Message)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Stats counts what a Bus did.
type Stats struct {
	Published    uint64 // events appended to the log
	Dropped      uint64 // events dropped: the append queue was full, or the log refused them
	Refused      uint64 // of Dropped, events the log refused for good (an error reply of Redis's or PostgreSQL's, not an outage)
	Disconnected uint64 // subscriptions ended with ErrSlowSubscriber
	Subscribers  int    // subscriptions open now

	// AppendError is why the last append was refused for good, "" once an
	// append has succeeded since (see Bus.Err).
	AppendError string
}

// ErrRefused wraps the error of an append the log refused for good: the
// events are dropped, not retried (see Bus.Err).
var ErrRefused = errors.New("events: the event log refused the events")

// Bus is one backend's events: the log they are appended to and the
// subscriptions reading it. Its methods are safe for concurrent use.
type Bus struct {
	log    eventLog
	opts   Options
	logger hclog.Logger

	queue    chan Event // nil for a log that appends at once
	closed   atomic.Bool
	quit     chan struct{} // closed by Close
	appended chan struct{} // closed when appendLoop has returned
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu        sync.Mutex
	subs      map[*Subscription]struct{} // live subscriptions
	catching  map[*Subscription]struct{} // subscriptions catching up, not live yet
	observers []Observer
	pos       id // the last event the fan-out delivered
	fanning   bool
	down      bool // the fan-out's last read failed
	// joins counts the subscriptions that became live: a failed read
	// ends only those live before it began (joined), not one that joined
	// while it was in flight, which the next read decides for.
	joins uint64

	// Of lost, on the fan-out's goroutine: when it last warned, and the
	// losses it did not warn of since.
	lostWarned   time.Time
	lostUnlogged int

	published, dropped, disconnected, refused atomic.Uint64
	refusal                                   atomic.Pointer[error]   // the last permanent append error; nil after a success
	failing                                   atomic.Pointer[failure] // the appends failing since, and why; nil after a success

	// unmarked counts the events dropped since the last gap this host
	// appended for them (gaps.go); beating, under mu, whether its beat
	// started.
	unmarked   atomic.Uint64
	beating    bool
	registered atomic.Bool // it published: it beats in the set of hosts
	joining    sync.Mutex  // held while the first Publish joins the set

	// queued counts the events Publish put on the queue, settled those of
	// them the appender is done with (appended or dropped); settle is
	// closed, and replaced, each time settled moves (Flush).
	queued, settled atomic.Uint64
	settleMu        sync.Mutex
	settle          chan struct{}
}

// eventLog is where a Bus keeps its events.
type eventLog interface {
	// append adds evs in order.
	append(ctx context.Context, evs []Event) error
	// read returns up to n events after `after`, waiting up to wait for
	// the first when there is none yet.
	read(ctx context.Context, after id, n int, wait time.Duration) ([]Event, error)
	// last returns the ID of the newest event, zero when there is none.
	last(ctx context.Context) (id, error)
	// anchor returns a position for a subscription to start after that
	// a loss of the log makes unretained, as the zero position
	// (Beginning) is not: with first, one before every event the log
	// holds, or zero (a start at Beginning, as before) where it holds
	// events and no anchor before them; else one at its end.
	anchor(ctx context.Context, first bool) (id, error)
	// retained reports whether every event after `after` is still kept.
	retained(ctx context.Context, after id) (bool, error)
	// async reports whether append is slow enough (a network round trip)
	// that events go through the queue.
	async() bool
	// forget drops what the log remembers of its life (how many entries
	// its stream had added): the Bus has taken the log for a new one.
	forget()
}

// NewLocal returns a Bus whose log is in this process: for a backend
// without Redis, whose records live in this process too.
func NewLocal(opts Options, logger hclog.Logger) *Bus {
	opts = opts.withDefaults(false)
	return newBus(newMemLog(opts.Retention), opts, logger)
}

// NewRedis returns a Bus whose log is the Redis Stream at key, trimmed to
// about Options.Retention events, shared by every host that uses it.
func NewRedis(client redis.UniversalClient, key string, opts Options, logger hclog.Logger) *Bus {
	opts = opts.withDefaults(true)
	return newBus(&redisLog{client: client, key: key, retention: int64(opts.Retention), host: newHostName()}, opts, logger)
}

func newBus(l eventLog, opts Options, logger hclog.Logger) *Bus {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	b := &Bus{log: l, opts: opts, logger: logger, quit: make(chan struct{}), subs: map[*Subscription]struct{}{}, catching: map[*Subscription]struct{}{}}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if l.async() {
		b.queue = make(chan Event, opts.Queue)
		b.appended = make(chan struct{})
		b.settle = make(chan struct{})
		go b.appendLoop()
	}
	return b
}

// Publish appends ev to the log without waiting for any subscriber. An
// in-process log appends at once; a Redis log queues ev for the appender,
// which keeps the order of Publish calls. A full queue drops ev (counted
// in Stats.Dropped). Publish after Close does nothing.
func (b *Bus) Publish(ev Event) {
	if b.closed.Load() {
		return
	}
	if b.queue == nil {
		evs := [1]Event{ev}
		if err := b.log.append(b.ctx, evs[:]); err != nil {
			b.dropped.Add(1)
			return
		}
		b.published.Add(1)
		return
	}
	b.startBeat()
	select {
	case b.queue <- ev:
		b.queued.Add(1)
	default:
		b.unmarked.Add(1)
		if n := b.dropped.Add(1); n&(n-1) == 0 { // log at powers of two
			b.logger.Warn("event queue full: events dropped", "dropped", n)
		}
	}
}

// startBeat joins, at a Redis log's first event, the log's set of hosts,
// and starts the beat that keeps this host in it (gaps.go): a host that
// never published has no event to lose. It joins before that event is
// queued, so before the write it tells of is acknowledged (Publish runs
// first): a host killed just after would otherwise take the event with it
// unknown to the others, which mark gaps only for the hosts in the set.
// Calls that come meanwhile wait for the join; a join that fails (Redis
// away) is left to the beat, once.
func (b *Bus) startBeat() {
	if b.registered.Load() {
		return // the write path's usual case: no lock
	}
	rl, ok := b.log.(*redisLog)
	if !ok {
		return
	}
	b.joining.Lock()
	defer b.joining.Unlock()
	if b.registered.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, joinTimeout)
	if err := rl.join(ctx, b.opts.live); err != nil && b.ctx.Err() == nil {
		b.logger.Warn("events: cannot join the log's set of hosts before the first event; the beat tries again", "error", err)
	}
	cancel()
	b.registered.Store(true)
	b.startBeatLoop(rl)
}

// joinTimeout bounds the first Publish's wait for the join.
const joinTimeout = time.Second

// startBeatLoop starts the beat once: at the first event, or when the
// fan-out starts (a host that only reads looks for dead hosts too, and
// joins the set of hosts once it publishes).
func (b *Bus) startBeatLoop(rl *redisLog) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.beating || b.closed.Load() {
		return
	}
	b.beating = true
	b.wg.Add(1)
	go b.beatLoop(rl)
}

// Written tells the bus that events reached its log other than through
// Publish: a write_events plugin's writes inserted them into a
// PostgreSQL log (abi/README.md, section 16.6). This host's subscribers
// look at the log at once, and other hosts' are notified. It does
// nothing for another log.
func (b *Bus) Written() {
	if w, ok := b.log.(interface{ appended() }); ok && !b.closed.Load() {
		w.appended()
	}
}

// Flush waits until the events published before it was called are
// appended to the log, or dropped (the log refused them, or the bus
// closed), or ctx ends. For a log that appends at once it returns at
// once. A caller that must not let a crash lose events it published,
// before it forgets what they record (a replayed buffer), waits here.
func (b *Bus) Flush(ctx context.Context) error {
	if b.queue == nil {
		return nil
	}
	// Publish counts an event after queueing it: one the appender took
	// first may be settled before it is queued, so settled may pass
	// queued for a moment, never stay behind it once all are done.
	target := b.queued.Load()
	for {
		b.settleMu.Lock()
		moved := b.settle
		b.settleMu.Unlock()
		if b.settled.Load() >= target {
			return nil
		}
		select {
		case <-moved:
		case <-b.appended:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// settleN records that the appender is done with n more queued events.
func (b *Bus) settleN(n int) {
	b.settled.Add(uint64(n))
	b.settleMu.Lock()
	close(b.settle)
	b.settle = make(chan struct{})
	b.settleMu.Unlock()
}

// appendLinger is how long the appender holds an event that arrived
// alone, so that the events of the writes after it go in the same append
// (RATIONALE.md, "Why does the appender hold a lone event for a
// millisecond?").
const appendLinger = time.Millisecond

// appendLoop appends queued events in batches, in order, retrying while
// the log refuses them. An event that finds the queue otherwise empty is
// held for appendLinger first. Once Close closes quit it appends what is
// still queued at once, then returns; if Close cancels b.ctx first, what
// is left is dropped and counted.
func (b *Bus) appendLoop() {
	defer close(b.appended)
	batch := make([]Event, 0, 512)
	backoff := 50 * time.Millisecond
	linger := time.NewTimer(b.opts.linger)
	linger.Stop()
	closing := false
	for {
		select {
		case ev := <-b.queue:
			batch = append(batch[:0], ev)
		case <-b.quit:
			closing = true
			select {
			case ev := <-b.queue:
				batch = append(batch[:0], ev)
			default:
				return // closing, and nothing is left
			}
		}
		if len(b.queue) == 0 && !closing {
			// A lone event: let the writes that follow it share its
			// append. The appender sleeps rather than wait on the queue,
			// so those events are queued without waking it.
			linger.Reset(b.opts.linger)
			select {
			case <-linger.C:
			case <-b.quit:
				closing = true
				linger.Stop()
			}
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case ev := <-b.queue:
				batch = append(batch, ev)
			default:
				break fill
			}
		}
		for {
			if rl, ok := b.log.(*redisLog); ok {
				if err := b.markDrops(b.ctx, rl); err != nil {
					b.logger.Warn("cannot mark the gap of dropped events; trying again with the next events", "error", err)
				}
			}
			err := b.log.append(b.ctx, batch)
			if err == nil {
				b.published.Add(uint64(len(batch)))
				b.refusal.Store(nil)
				if f := b.failing.Swap(nil); f != nil {
					// Its failures were logged; so is their end.
					b.logger.Info("events appended again", "after", time.Since(f.since).Round(time.Millisecond), "events", len(batch))
				}
				backoff = 50 * time.Millisecond
				b.settleN(len(batch))
				break
			}
			if b.ctx.Err() != nil {
				n := uint64(len(batch) + len(b.queue))
				b.dropped.Add(n)
				b.unmarked.Add(n)
				return
			}
			if permanent(err) {
				// Retrying would be refused the same way for ever (a stream
				// at the greatest ID, a key of another type, no permission)
				// and hold up every later event: the batch is dropped,
				// counted and the error kept for Err.
				b.refuse(batch, err)
				b.settleN(len(batch))
				break
			}
			since := time.Now()
			if f := b.failing.Load(); f != nil {
				since = f.since
			}
			b.failing.Store(&failure{since: since, err: err, batch: len(batch)})
			b.logger.Warn("cannot append events; retrying", "events", len(batch), "error", err)
			select {
			case <-time.After(backoff):
			case <-b.ctx.Done():
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// refuse drops the events of batch that the log did not take, after an
// append failed for good with err.
func (b *Bus) refuse(batch []Event, err error) {
	var took uint64
	for i := range batch {
		if batch[i].ID != "" {
			took++ // appended by the pipeline before the refusal
		}
	}
	n := uint64(len(batch)) - took
	b.published.Add(took)
	b.dropped.Add(n)
	b.unmarked.Add(n)
	b.refused.Add(n)
	wrapped := fmt.Errorf("%w: %w", ErrRefused, err)
	b.refusal.Store(&wrapped)
	b.logger.Error("the event log refused events; they are dropped", "events", n, "error", err)
}

// permanent reports whether err is an error reply of Redis's that the
// same append would get again (ERR, WRONGTYPE, NOPERM ...), or a
// statement PostgreSQL refused for a reason that stays (bad data, no
// privilege), as opposed to a failure to reach either or a reply that
// means "not now".
func permanent(err error) bool {
	var pe *abi.PGError
	if errors.As(err, &pe) {
		switch pe.SQLState[:min(2, len(pe.SQLState))] {
		case "08", "40", "53", "55", "57", "58", "XX":
			// connection, rollback (serialization, deadlock), resources,
			// lock not available, cancelled or shutting down, system, internal
			return false
		}
		return true
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := err.Error()
	for _, p := range transientReplies {
		if strings.HasPrefix(msg, p) {
			return false
		}
	}
	return true
}

// transientReplies are error replies that a later try may not get. OOM
// is one: Redis at maxmemory under noeviction refuses an XADD until memory
// is freed (a delete, whose event it refused, frees some), and the writes
// it still took meanwhile must not lose their events (a 10 s stretch at
// maxmemory dropped the events of writes answered 200). So is a password
// set on a running Redis, which the operator gives the host without the
// event at fault: Redis answers a connection that has not authenticated
// NOAUTH, or, for a command of more than 10 arguments such as an XADD of
// an event, a protocol error (an outage drill dropped the events of writes
// answered 200 that way).
var transientReplies = []string{"LOADING", "BUSY", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "MOVED", "ASK", "NOAUTH", "WRONGPASS",
	"ERR Protocol error: unauthenticated", "ERR max number of clients", "OOM"}

// ErrStalled is why a log has taken none of the appends tried for longer
// than a while (a Redis that refuses the log's login, say, while the
// backend's writes go on): events queue in memory, subscribers and other
// hosts' read caches fall behind, and a stop or a reload drops what is
// queued.
var ErrStalled = errors.New("events: the event log takes no appends")

// stallAfter is how long appends may fail before Err reports it.
const stallAfter = 10 * time.Second

// failure is how long the appends have been failing, and the last error.
type failure struct {
	since time.Time
	err   error
	batch int // the events of the append that failed
}

// Err returns why the log refused the last append for good (wrapping
// ErrRefused: while it is not nil, events are being dropped), or why it has
// taken no append tried for longer than a while (wrapping ErrStalled:
// events are being held back), or nil.
func (b *Bus) Err() error {
	if p := b.refusal.Load(); p != nil {
		return *p
	}
	if f := b.failing.Load(); f != nil && time.Since(f.since) > b.opts.stall {
		return fmt.Errorf("%w: none appended for %v, %d events waiting: %w", ErrStalled, time.Since(f.since).Round(time.Second), f.batch+len(b.queue), f.err)
	}
	return nil
}

// Stats returns the Bus's counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	n := len(b.subs)
	b.mu.Unlock()
	st := Stats{Published: b.published.Load(), Dropped: b.dropped.Load(), Refused: b.refused.Load(), Disconnected: b.disconnected.Load(), Subscribers: n}
	if err := b.Err(); err != nil {
		st.AppendError = err.Error()
	}
	return st
}

// Retention is how many events the log keeps (Options.Retention, or its
// default).
func (b *Bus) Retention() int { return b.opts.Retention }

// Taken counts the events Publish has taken from this process: appended
// to an in-process log, or queued for another. Events it dropped are not
// counted. The log keeps none of the events this process had Publish
// take more than Retention events ago (about none, for a Redis Stream or
// a table trimmed now and then).
func (b *Bus) Taken() uint64 {
	if b.queue == nil {
		return b.published.Load()
	}
	return b.queued.Load()
}

// closeGrace is how long Close waits, once its context has ended, for an
// append under way to give up.
const closeGrace = time.Second

// Close stops the Bus: queued events are appended first unless ctx ends
// (the rest are dropped and counted; an append the log does not answer is
// waited for closeGrace more), then every subscription ends with
// ErrClosed.
func (b *Bus) Close(ctx context.Context) error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.quit)
	var err error
	if b.queue != nil {
		select {
		case <-b.appended:
		case <-ctx.Done():
			before := b.dropped.Load()
			b.cancel()
			select {
			case <-b.appended:
				err = fmt.Errorf("events: closed with %d events not appended: %w", b.dropped.Load()-before, ctx.Err())
			case <-time.After(closeGrace):
				// An append blocked on a log that does not answer, which
				// a cancel does not reach (a Redis read waits for its read
				// timeout): it ends when the log's connections close,
				// which the bus's owner does next.
				err = fmt.Errorf("events: closed with an append the log has not answered; it and the events queued behind it are dropped: %w", ctx.Err())
			}
		}
	}
	b.mu.Lock() // no beat starts past here (startBeat)
	beating := b.beating
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	if rl, ok := b.log.(*redisLog); ok && beating && b.registered.Load() && err == nil && b.unmarked.Load() == 0 {
		// Every event published is in the log: this host leaves the set
		// of hosts, and no gap is marked for it. Otherwise its key
		// expires and another host marks one.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeGrace)
		if lerr := rl.leave(lctx); lerr != nil {
			b.logger.Debug("events: cannot leave the log's set of hosts", "error", lerr)
		}
		cancel()
	}
	if c, ok := b.log.(interface{ close() }); ok {
		c.close()
	}
	b.mu.Lock()
	for s := range b.subs {
		s.endLocked(ErrClosed)
	}
	for s := range b.catching {
		s.endLocked(ErrClosed)
	}
	b.mu.Unlock()
	return err
}

// Subscribe returns a subscription to the events f passes. from is where
// to start: "" for the events appended from now on, an Event.ID to resume
// after that event, Beginning for the oldest retained event. A position
// whose successors the log no longer holds is ErrLost. The subscription
// ends when ctx does, when it is closed, or on ErrSlowSubscriber,
// ErrUnavailable or ErrClosed.
func (b *Bus) Subscribe(ctx context.Context, f Filter, from string) (*Subscription, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	var after id
	if from != "" {
		var err error
		if after, err = parseID(from); err != nil {
			return nil, err
		}
		ok, err := b.log.retained(ctx, after)
		if err != nil {
			return nil, unreadable(err)
		}
		if !ok {
			return nil, ErrLost
		}
	}
	if err := b.startFanOut(ctx); err != nil {
		return nil, err
	}
	if from == "" {
		b.checkPosition(ctx)
	}
	// A start at the zero position, Beginning, would resume across a loss
	// of the log unknowing: its events gone and new ones come, the
	// position is still the beginning. A log without events gives the
	// subscription a position of its own that the loss takes with it.
	var anchor id
	if b.startsAtZero(from) {
		var err error
		if anchor, err = b.log.anchor(ctx, from == Beginning); err != nil {
			return nil, unreadable(err)
		}
	}
	s := &Subscription{b: b, c: make(chan Event, b.opts.Buffer), filter: compile(f), done: make(chan struct{}), all: from == Beginning}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if from == "" {
		// The events up to the anchor were in the log before the
		// subscription: offer passes them.
		s.pos, s.live = b.pos, true
		if s.pos.less(anchor) {
			s.pos = anchor
		}
		s.start = s.pos.String()
		b.join(s)
		b.mu.Unlock()
	} else if anchor != (id{}) {
		s.pos, s.start = anchor, anchor.String()
		b.catching[s] = struct{}{}
		b.mu.Unlock()
		go s.catchUp(ctx)
	} else {
		s.pos, s.start = after, after.String()
		b.catching[s] = struct{}{}
		b.mu.Unlock()
		go s.catchUp(ctx)
	}
	stop := context.AfterFunc(ctx, func() { s.end(ctx.Err()) })
	go func() {
		<-s.done
		stop()
	}()
	return s, nil
}

// join makes s live; under b.mu.
func (b *Bus) join(s *Subscription) {
	b.joins++
	s.joined = b.joins
	b.subs[s] = struct{}{}
}

// startsAtZero reports whether a subscription from `from` would start at
// the zero position: from Beginning, or from now while the fan-out has
// read no event of the log.
func (b *Bus) startsAtZero(from string) bool {
	switch from {
	case Beginning:
		return true
	case "":
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.pos == (id{})
	}
	return false
}

// Observer sees every event the Bus reads from its log, on the goroutine
// that reads it and before any subscription is handed it, and is told
// when that reading fails and recovers. Its methods must be quick and
// must not call back into the Bus.
type Observer interface {
	// Event is called for each event, in log order.
	Event(ev *Event)
	// Down is called when the log cannot be read: events are delayed
	// (and lost if the log trims them before it recovers).
	Down(err error)
	// Up is called when the log can be read again after Down (reading
	// resumes after the last event seen), and by Observe when it can be
	// read at once.
	Up()
}

// Observe registers o for the Bus's life, starting the log reader if
// needed, and calls o.Up or o.Down with the log's state. It fails when
// the log reader cannot start now (Redis away).
func (b *Bus) Observe(ctx context.Context, o Observer) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if err := b.startFanOut(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.observers = append(b.observers, o)
	if b.down {
		o.Down(ErrUnavailable)
	} else {
		o.Up()
	}
	return nil
}

// startFanOut starts, on the first subscription, the goroutine that reads
// the log and hands each event to the live subscriptions.
func (b *Bus) startFanOut(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fanning {
		return nil
	}
	last, err := b.log.last(ctx)
	if err != nil {
		return unreadable(err)
	}
	b.pos, b.fanning = last, true
	b.wg.Add(1)
	go b.fanOut()
	if rl, ok := b.log.(*redisLog); ok && !b.beating && !b.closed.Load() {
		b.beating = true // startBeatLoop, under the mu held here
		b.wg.Add(1)
		go b.beatLoop(rl)
	}
	return nil
}

// lostWarnGap is the least time between two warnings of lost events.
const lostWarnGap = 10 * time.Second

// readWait is how long one read of the log waits for new events. A
// blocked XREAD does not see its context end, so Close waits for it: a
// short wait keeps Close quick, at a few idle reads a second per Bus.
const readWait = 200 * time.Millisecond

func (b *Bus) fanOut() {
	defer b.wg.Done()
	backoff := 50 * time.Millisecond
	for b.ctx.Err() == nil {
		// Subscribe may move the position (a loss it found first), so
		// the read's is compared with it again before delivering.
		b.mu.Lock()
		pos, joins := b.pos, b.joins
		b.mu.Unlock()
		evs, err := b.log.read(b.ctx, pos, 512, readWait)
		if lost := (*lostError)(nil); errors.As(err, &lost) {
			lost.after = pos
			b.lost(lost)
			continue
		}
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			b.logger.Warn("cannot read events; subscriptions end", "error", err)
			b.mu.Lock()
			for s := range b.subs {
				if s.joined <= joins {
					s.endLocked(unreadable(err))
				}
			}
			if !b.down {
				b.down = true
				for _, o := range b.observers {
					o.Down(err)
				}
			}
			b.mu.Unlock()
			select {
			case <-time.After(backoff):
			case <-b.ctx.Done():
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if len(evs) == 0 && !b.down {
			continue
		}
		b.mu.Lock()
		if b.pos != pos {
			b.mu.Unlock()
			continue // read from a position a loss has since replaced
		}
		if b.down {
			b.down = false
			for _, o := range b.observers {
				o.Up()
			}
		}
		for i := range evs {
			ev := &evs[i]
			evID, _ := parseID(ev.ID)
			if !ev.anchor {
				for _, o := range b.observers {
					o.Event(ev)
				}
				for s := range b.subs {
					s.offer(ev, evID)
				}
			}
			b.pos = evID
		}
		b.mu.Unlock()
	}
}

// lost handles a log that lost events without failing to be read (Redis
// lost its data, PostgreSQL's event table was emptied or restored, or
// events were trimmed before they were read): observers are told Down
// then Up at once (a read cache flushes what those events would have
// invalidated), and subscriptions end with ErrUnavailable, so that
// resuming tells them ErrLost. Reading goes on from err.resume. For
// records lost with the log whole, only observers are told.
//
// It warns at most once every lostWarnGap, counting the losses between:
// a plugin may delete its PostgreSQL backend's events at every read.
func (b *Bus) lost(err *lostError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pos != err.after {
		return // found from a position a loss has since replaced: handled
	}
	if time.Since(b.lostWarned) >= lostWarnGap {
		msg := "the event log lost events; subscriptions end and caches are flushed"
		if err.records {
			msg = "the backend's records were lost without events; caches are flushed"
		}
		args := []any{"error", err}
		if b.lostUnlogged > 0 {
			args = append(args, "losses_since_last_warning", b.lostUnlogged)
		}
		b.logger.Warn(msg, args...)
		b.lostWarned, b.lostUnlogged = time.Now(), 0
	} else {
		b.lostUnlogged++
	}
	if !err.records {
		for s := range b.subs {
			s.endLocked(unreadable(err))
		}
		for s := range b.catching {
			s.endLocked(unreadable(err))
		}
	}
	for _, o := range b.observers {
		if !b.down {
			o.Down(err)
		}
		o.Up()
	}
	b.down = false
	b.pos = err.resume
	b.log.forget()
}

// checkPosition handles, before a subscription starts live at the
// fan-out's position, a loss of the log the fan-out has not read yet
// (Redis restarted empty and a write created the stream again): a
// subscriber that was told ErrLost and subscribes afresh would otherwise
// start at a position of the lost log, and be ended as lost once the
// fan-out reads the new one, with the events of the writes between. A
// log that cannot be asked is left to the fan-out.
func (b *Bus) checkPosition(ctx context.Context) {
	b.mu.Lock()
	pos := b.pos
	b.mu.Unlock()
	if ok, err := b.log.retained(ctx, pos); err != nil || ok {
		return
	}
	newest, err := b.log.last(ctx)
	if err != nil {
		return
	}
	b.lost(&lostError{after: pos, resume: newest, why: "the log no longer holds the position a new subscription would start at"})
}

// Subscription is a stream of events. Receive from Events until it is
// closed, then Err says why.
type Subscription struct {
	b      *Bus
	c      chan Event
	filter matcher
	done   chan struct{}
	once   sync.Once
	err    error
	start  string
	// all: subscribed from Beginning, for what the log retains (its
	// start may be an anchor): a gap is passed over.
	all bool

	// Guarded by b.mu once live; owned by the catch-up goroutine before.
	pos    id
	live   bool
	joined uint64 // b.joins when it became live
}

// Events returns the channel the events arrive on, in log order. It is
// closed when the subscription ends.
func (s *Subscription) Events() <-chan Event { return s.c }

// Err returns why the subscription ended, once Events is closed: the
// context's error, ErrSlowSubscriber, ErrUnavailable, ErrClosed, or nil
// after Close.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Start returns the position the subscription started after: the ID
// Subscribe was given, or the log's position at the time for "", or, for
// "" or Beginning on a log without events, a position of that log's own
// (a Redis stream's anchor entry), which the log's loss takes with it.
// Passed back to Subscribe, it resumes with the first event this
// subscription would deliver, which makes it the resume point of a
// subscriber that has received nothing yet (as a position, not as
// Beginning: a gap after it is ErrLost).
func (s *Subscription) Start() string { return s.start }

// Close ends the subscription. Safe to call more than once.
func (s *Subscription) Close() { s.end(nil) }

// offer hands a live subscription one event, under b.mu, never waiting.
func (s *Subscription) offer(ev *Event, evID id) {
	if !s.pos.less(evID) {
		return // already delivered while catching up
	}
	s.pos = evID
	if !s.filter.match(ev) {
		return
	}
	select {
	case s.c <- *ev:
	default:
		s.b.disconnected.Add(1)
		s.endLocked(ErrSlowSubscriber)
	}
}

func (s *Subscription) end(err error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.endLocked(err)
}

// endLocked ends s under b.mu. A live subscription's channel is closed
// here; one still catching up closes it from its own goroutine.
func (s *Subscription) endLocked(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
		delete(s.b.catching, s)
		if s.live {
			delete(s.b.subs, s)
			close(s.c)
		}
	})
}

// catchUp delivers the retained events after s.pos, waiting for the
// subscriber as long as it takes, then joins the live subscriptions.
func (s *Subscription) catchUp(ctx context.Context) {
	b := s.b
	for {
		evs, err := b.log.read(ctx, s.pos, 512, 0)
		if err == nil && len(evs) == 0 {
			// Caught up, perhaps: check again with the fan-out held, so no
			// event can be handed out between this read and joining.
			b.mu.Lock()
			evs, err = b.log.read(ctx, s.pos, 512, 0)
			if err == nil && len(evs) == 0 {
				select {
				case <-s.done:
					b.mu.Unlock()
					close(s.c)
				default:
					if b.closed.Load() {
						b.mu.Unlock()
						s.end(ErrClosed)
						close(s.c)
						return
					}
					// The fan-out may be behind s.pos: offer skips
					// what s already has.
					s.live = true
					delete(b.catching, s)
					b.join(s)
					b.mu.Unlock()
				}
				return
			}
			b.mu.Unlock()
		}
		if lost := (*lostError)(nil); errors.As(err, &lost) && lost.gap {
			if s.all {
				// Asked for what the log retains, not for all that
				// happened: a gap is passed over.
				s.pos = lost.resume
				continue
			}
			s.end(ErrLost) // a gap after s.pos: what it lost is lost to s
			close(s.c)
			return
		}
		if err != nil {
			s.end(unreadable(err))
			close(s.c)
			return
		}
		for i := range evs {
			ev := evs[i]
			s.pos, _ = parseID(ev.ID)
			if ev.anchor || !s.filter.match(&ev) {
				continue
			}
			select {
			case s.c <- ev:
			case <-s.done:
				close(s.c)
				return
			}
		}
	}
}
