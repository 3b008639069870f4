package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/internal/coalesce"
	"github.com/storage-host/storage-host/host/internal/wirepath"
)

// Store serves the storage operations of one backend. It is safe for
// concurrent use; each call runs on a pooled plugin instance of its own.
type Store struct {
	p      *plugin
	closed atomic.Bool
	// calls counts the calls in flight; Close waits for it to drain.
	calls callGate
	// cutShort is set when Close stopped waiting for calls in flight.
	cutShort atomic.Bool

	now    func() time.Time // the host clock
	bus    *events.Bus      // nil with Config.DisableEvents
	expiry *expiryWatch     // nil with Config.DisableEvents
	cache  *readCache       // nil unless Config.Cache.Entries > 0
	ticker *ticker          // nil unless the plugin advertises abi.FeatureTick
	// shared queues the single operations that find every slot taken
	// (one call or batch per CPU), to travel as one batch (shared.go);
	// nil for a backend that does not serve batches.
	shared *coalesce.Coalescer[*sharedCall]
	// shareEvery sends every sharable call as a batch of its own, for
	// tests of the batch path (set before the first call).
	shareEvery bool

	refused  atomic.Uint64 // answers refused as not fitting the request (answers.go)
	refusals refusalLog    // their log's rate limit
}

// Name returns the backend's name.
func (s *Store) Name() string { return s.p.name }

// Metadata returns what the plugin declared about itself.
func (s *Store) Metadata() Metadata { return s.p.meta }

// ErrOutcomeUnknown matches a write whose outcome is unknown: it may or
// may not have taken effect, so it must not be taken for "not applied"
// nor run again blindly; read the record back, or repeat only a write
// that is safe to repeat (an unconditional put of the same value, a
// delete). It is abi.StatusUnknown, so errors.Is matches either:
//   - the plugin answered StatusUnknown (a Redis backend sent the write
//     and lost the reply: a timeout, a dropped connection), for the call
//     or, in a bulk result, for the item;
//   - Close cut the call short after it had reached the plugin; the error
//     then matches ErrClosed too. A call refused because the store was
//     already closed matches ErrClosed alone and never reached the plugin;
//   - the plugin failed (trapped, ran past its deadline, or answered
//     StatusInternal, as the SDK does for a panic it recovered) after its
//     call had written to the kv store or sent Redis or PostgreSQL
//     requests; a panic's or a trap's error matches its status too
//     (ErrInternal), one stopped at its deadline or by ctx does not. In a
//     bulk result, an item answered StatusInternal in a batch whose call
//     did either.
var ErrOutcomeUnknown error = abi.StatusUnknown

// callGate admits calls until it is closed and tells Close when the last
// one admitted has left. It is one atomic counter, so that concurrent
// calls on different CPUs do not queue on a lock to be counted
// (RATIONALE.md, "Why is `Store.Close` a counter of calls, not a
// lock?"); a call
// arriving after Close is refused at once.
type callGate struct {
	// state is the calls in flight, plus gateClosed once closed. A call
	// refused after close counts itself in and out again.
	state   atomic.Int64
	mu      sync.Mutex // serialises close
	drained chan struct{}
	once    sync.Once // closes drained
}

// gateClosed is the bit of callGate.state that close sets.
const gateClosed = 1 << 62

// enter admits a call; false once the gate is closed.
func (g *callGate) enter() bool {
	if g.state.Add(1)&gateClosed != 0 {
		g.leave()
		return false
	}
	return true
}

// hold counts in a call that serves calls admitted already (a shared
// batch's flush), even once the gate is closed: Close waits for it too.
func (g *callGate) hold() { g.state.Add(1) }

// leave ends a call enter admitted (or refused).
func (g *callGate) leave() {
	if g.state.Add(-1) == gateClosed {
		g.drain()
	}
}

// drain closes drained, once; drained is set before the closed bit.
func (g *callGate) drain() { g.once.Do(func() { close(g.drained) }) }

// close refuses new calls and returns a channel closed once none is in
// flight.
func (g *callGate) close() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.drained == nil {
		g.drained = make(chan struct{})
		if g.state.Add(gateClosed) == gateClosed {
			g.drain()
		}
	}
	return g.drained
}

// Recycle replaces the plugin's instances: idle ones are closed at once,
// busy ones when their calls end, and the calls after it run on new
// instances. The host may replace an instance at any time (after a trap,
// when its memory has grown, on a reload), so a plugin keeps its records
// in its stores (kv, Redis, PostgreSQL), never in an instance's memory
// alone (abi/README.md, section 3): the conformance suite (host/storetest)
// writes, recycles and reads back to check it. Nothing is lost for a
// plugin that keeps the rule; the new instances start cold.
func (s *Store) Recycle(ctx context.Context) {
	s.p.pool.recycle(ctx)
}

// Close releases the plugin's instances and its runtime. New calls fail
// with ErrClosed at once, without waiting for anything; calls in flight
// finish first, unless ctx ends or Limits.CallTimeout (plus a second)
// passes before they do, in which case they are cut short (and fail with
// ErrOutcomeUnknown and ErrClosed, unless they complete meanwhile: a call
// waiting for its Redis or PostgreSQL returns when that answers or its
// own deadline passes) and Close returns an error saying so.
//
// A backend whose plugin advertises abi.FeatureTick is then ticked until
// it has no buffered write left (Stats.BufferedWrites), for at most five
// seconds or until ctx ends, and a few ticks that change nothing (its
// primary store away) end it sooner; what is left is logged, and, when
// the buffer was in memory (no Config.DataDir), lost: Close returns an
// error matching ErrBufferLost.
//
// Last, the queued events are appended, within ctx and a second's grace
// (what that leaves no time for is dropped, logged and counted in
// Stats), and the connections released: once ctx has ended Close
// returns, and the release goes on in the background. A second Close
// returns nil at once.
func (s *Store) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.ticker != nil {
		s.ticker.halt()
	}
	drained := s.calls.close()
	// No call may legitimately run longer than the call timeout: the
	// fuel checks stop untrusted ones, and a trusted one's caller is released
	// at the timeout (instance.callTrusted).
	limit := time.NewTimer(s.p.limits.CallTimeout + time.Second)
	defer limit.Stop()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		s.cutShort.Store(true)
		err = fmt.Errorf("backend %s: closed with calls in flight: %w", s.p.name, ctx.Err())
	case <-limit.C:
		s.cutShort.Store(true)
		err = fmt.Errorf("backend %s: closed with calls in flight past the call timeout of %v", s.p.name, s.p.limits.CallTimeout)
	}
	if s.ticker != nil {
		flushCtx := ctx
		if err != nil { // instances may still be busy: stop ticking at once
			var cancel context.CancelFunc
			flushCtx, cancel = context.WithCancel(ctx)
			cancel()
		}
		if n := s.ticker.close(flushCtx); n > 0 && s.p.dataDir == "" {
			err = errors.Join(err, fmt.Errorf("backend %s: %w: %d writes acknowledged into its buffer had not reached its store", s.p.name, ErrBufferLost, n))
		}
	}
	// The events' last appends are made, or dropped and counted, within
	// ctx and a grace (Stats says what was lost). The release waits for
	// the bridges (a Redis or PostgreSQL not answering holds each one's
	// closing up to its own bound): once ctx has ended, Close returns and
	// the release goes on.
	s.closeEvents(ctx)
	released := make(chan struct{})
	go func() {
		defer close(released)
		s.p.close(context.WithoutCancel(ctx))
	}()
	select {
	case <-released:
	case <-ctx.Done(): // nothing is lost by not waiting: say so only in the log
		s.p.log.Debug("closed before its connections were released; they are being, in the background")
	}
	return err
}

// WriteOption changes how a put or delete is applied.
type WriteOption func(*writeOptions)

type writeOptions struct {
	ttl  abi.TTL
	cond abi.Condition
}

// WithTTL expires the record d after this write.
func WithTTL(d time.Duration) WriteOption {
	return func(o *writeOptions) { o.ttl = abi.TTL{Mode: abi.TTLDuration, Duration: d} }
}

// WithPersist makes the record live until deleted.
func WithPersist() WriteOption {
	return func(o *writeOptions) { o.ttl = abi.TTL{Mode: abi.TTLPersist} }
}

// WithKeepTTL keeps the expiry the record had before this write.
func WithKeepTTL() WriteOption {
	return func(o *writeOptions) { o.ttl = abi.TTL{Mode: abi.TTLKeep} }
}

// IfVersion makes an agent-state write or delete succeed only while the
// stored version is v; otherwise it fails with ErrConflict.
func IfVersion(v uint64) WriteOption {
	return func(o *writeOptions) { o.cond = abi.Condition{Mode: abi.IfVersion, Version: v} }
}

// IfAbsent makes an agent-state write succeed only if no state is stored
// (create-only); otherwise it fails with ErrConflict.
func IfAbsent() WriteOption {
	return func(o *writeOptions) { o.cond = abi.Condition{Mode: abi.IfAbsent} }
}

func (s *Store) writeOptions(opts []WriteOption, conditional bool) (writeOptions, error) {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.ttl.Check(); err != nil {
		return o, err
	}
	f := s.p.meta.Features
	if o.ttl.Mode != abi.TTLDefault && !f.Has(abi.FeatureTTL) {
		return o, abi.Errorf(abi.StatusUnsupported, "backend %s does not support TTLs", s.p.name)
	}
	if o.cond.Mode != abi.Unconditional {
		if !conditional {
			return o, abi.Errorf(abi.StatusInvalid, "conditions apply to agent states only")
		}
		if !f.Has(abi.FeatureConcurrency) {
			return o, abi.Errorf(abi.StatusUnsupported, "backend %s does not support conditional writes", s.p.name)
		}
	}
	return o, nil
}

// roundTrip is the one path every operation takes: check the feature,
// take an instance, encode the request into it, call, decode the response
// while the instance is still held, give the instance back.
func (s *Store) roundTrip(ctx context.Context, op abi.Op, encode func(*abi.Encoder), decode func(*abi.Decoder)) error {
	return s.call(ctx, op, op.Writes(), encode, decode, nil)
}

// call is roundTrip; writes says whether the request may change records
// (for a batch, whether its items' op does). reached is set as invoke
// sets it, for a call that does not share a batch.
func (s *Store) call(ctx context.Context, op abi.Op, writes bool, encode func(*abi.Encoder), decode func(*abi.Decoder), reached *bool) error {
	// Refused before anything runs: Manager.Do may run it elsewhere.
	if !s.calls.enter() {
		return ErrClosed
	}
	defer s.calls.leave()
	if s.shared != nil && sharable(op) && s.p.meta.Features.Has(op.Requires()) {
		return stoppedBy(ctx, s.callShared(ctx, op, encode, decode))
	}
	return stoppedBy(ctx, s.callPluginReached(ctx, op, writes, encode, decode, reached))
}

// stoppedBy makes the failure of a call whose caller's context ended
// match that context's error (context.Canceled, context.DeadlineExceeded)
// whatever the backend made of being stopped: an instance interrupted, a
// Redis or PostgreSQL request given up on (ErrUnavailable, which it
// replaces). A call that may have written keeps ErrOutcomeUnknown beside
// it. Any other failure is the call's own, and stays as it is.
func stoppedBy(ctx context.Context, err error) error {
	if err == nil { // the request path's usual case: nothing to look at
		return nil
	}
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
		// A network deadline set from ctx's (go-redis, pgx) can fire
		// before ctx's own timer has ended it.
		cerr = context.DeadlineExceeded
	}
	switch {
	case cerr == nil || errors.Is(err, cerr):
		return err
	case errors.Is(err, ErrOutcomeUnknown):
		return fmt.Errorf("%w: %w", err, cerr)
	case errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrClosed):
		return fmt.Errorf("%w: %s", cerr, err)
	}
	return err
}

// callPlugin is call past the call gate: the ticker's calls, which Close
// makes itself once the gate is closed.
func (s *Store) callPlugin(ctx context.Context, op abi.Op, writes bool, encode func(*abi.Encoder), decode func(*abi.Decoder)) error {
	return s.callPluginReached(ctx, op, writes, encode, decode, nil)
}

// callPluginReached is callPlugin, setting reached as invoke does.
func (s *Store) callPluginReached(ctx context.Context, op abi.Op, writes bool, encode func(*abi.Encoder), decode func(*abi.Decoder), reached *bool) error {
	took, trapped, err := s.invoke(ctx, op, writes, 1, encode, decode, reached)
	if s.p.observer != nil && took >= 0 {
		s.p.observer.PluginCall(s.p.name, op, took, err, trapped)
	}
	return err
}

// invoke runs one request on an instance of the pool: the call itself
// took (-1 if it never reached the plugin), and whether the plugin trapped.
// shares is the calls the request carries (a shared batch's, see
// shared.go): the budgets Limits sets per call are that many times
// theirs. For a write whose answer was decoded, reached, when not nil, is
// set to whether the call wrote to its store or sent it requests (see
// afterReaching).
func (s *Store) invoke(ctx context.Context, op abi.Op, writes bool, shares uint32, encode func(*abi.Encoder), decode func(*abi.Decoder), reached *bool) (took time.Duration, trapped bool, err error) {
	if need := op.Requires(); !s.p.meta.Features.Has(need) {
		return -1, false, s.p.unsupported(op)
	}
	in, err := s.p.pool.get(ctx)
	if err != nil {
		return -1, false, err
	}
	in.enc.Reset()
	encode(&in.enc)
	if err := in.enc.Err(); err != nil {
		s.p.pool.put(in, false)
		return -1, false, unsendable(s.p.name, op, err)
	}
	started := time.Now()
	body, err := in.call(ctx, op, in.enc.Bytes(), shares)
	took = time.Since(started)
	s.ticker.called(op, writes)
	if op == abi.OpTick && s.ticker != nil {
		s.ticker.remote.Add(in.remoteWait.Load())
		if in.remoteLost.Load() {
			s.ticker.lostWait.Add(in.lostWait.Load())
			s.ticker.lost.Store(true)
		}
	}
	if err != nil && errors.Is(err, abi.StatusUnknown) {
		err = s.p.unknownAnswer(op, err)
	}
	if in.notGranted != nil {
		body, err = s.p.notGrantedAnswer(op, in.enc.Bytes(), body, err, in.notGranted)
	}
	stale := err != nil && body != nil && errors.Is(err, abi.StatusStale)
	var trap errTrap
	if err != nil && !stale {
		trap, trapped = asTrap(err)
	}
	if err != nil && !stale {
		if trapped {
			s.p.traps.Add(1)
			s.p.pool.discard(context.WithoutCancel(ctx), in)
			why := trapText(trap.err) // a trap's stack names the plugin's functions
			s.p.logFailure("plugin instance discarded", "op", op.String(), "error", why)
			wrote := writes && in.reachedStore()
			if wrote && (ctx.Err() != nil || in.timedOut.Load()) {
				// Stopped or abandoned at its deadline once it had written
				// to the kv store, or Redis or PostgreSQL had taken some of
				// its requests, or while it waited for them: they may have
				// written.
				return took, true, fmt.Errorf("backend %s: %w: stopped after it wrote to its store or sent it requests (%s)", s.p.name, ErrOutcomeUnknown, why)
			}
			if ctxErr := ctx.Err(); ctxErr != nil && trap.status == abi.StatusUnavailable {
				return took, true, fmt.Errorf("backend %s: %w", s.p.name, ctxErr)
			}
			if s.cutShort.Load() {
				return took, true, fmt.Errorf("backend %s: call cut short by Close after it reached the plugin: %w: %w", s.p.name, ErrOutcomeUnknown, ErrClosed)
			}
			failure := abi.Errorf(trap.status, "backend %s: plugin failed: %s", s.p.name, why)
			if wrote {
				return took, true, mayHaveWritten(s.p.name, failure)
			}
			return took, true, failure
		}
		reachedStore := writes && in.reachedStore()
		err = s.afterReaching(reachedStore, err)
		usedKV, wroteKV := in.usedKV, in.wroteKV.Load()
		s.p.pool.put(in, false)
		// A write that reached its store (Redis, PostgreSQL) may have been
		// applied there whatever the kv store's disk says.
		if serr := s.p.syncKV(ctx, usedKV, wroteKV || reachedStore); serr != nil {
			return took, false, serr
		}
		return took, false, err
	}
	var decodeErr error
	if decode != nil {
		in.dec.Reset(body)
		decode(&in.dec)
		if decodeErr = in.dec.Finish(); decodeErr != nil {
			decodeErr = errors.New(wirepath.Fault(answerMessages[op], body, &in.dec))
		}
	} else if err == nil {
		decodeErr = emptyBody(op, body)
	}
	usedKV, wroteKV := in.usedKV, in.wroteKV.Load()
	wrote := writes && in.reachedStore()
	if reached != nil {
		*reached = wrote
	}
	// The instance serves others while this call waits for the disk, so
	// that callers waiting at once share a commit.
	s.p.pool.put(in, false)
	if err := s.p.syncKV(ctx, usedKV, wroteKV || wrote); err != nil {
		return took, false, err
	}
	if decodeErr != nil {
		failure := abi.Errorf(abi.StatusInternal, "backend %s: %s response: %v", s.p.name, op, decodeErr)
		if wrote {
			return took, false, mayHaveWritten(s.p.name, failure)
		}
		return took, false, failure
	}
	return took, false, err // nil, or ErrStale with the result decoded
}

// pastEpoch moves a query's bound at the Unix epoch 1 ns later: the wire
// reads 0 as unset, and no record can be at the epoch (its time would be
// unset too), so the range [from, to) selects the same records.
func pastEpoch(t time.Time) time.Time {
	if !t.IsZero() && t.UnixNano() == 0 {
		return t.Add(time.Nanosecond)
	}
	return t
}

// unsendable is the error of a request its encoder refused (a time the
// wire cannot carry): the plugin never sees it, and it matches the
// encoder's status (ErrInvalid).
func unsendable(backend string, op abi.Op, err error) error {
	return fmt.Errorf("backend %s: %s not sent: %w", backend, op, err)
}

// afterReaching returns err, an INTERNAL answer (what the SDK answers for
// a panic it recovered) to a write or to an item of a batch of writes, as
// mayHaveWritten when the call had written to its store or sent it
// requests (reached); in a batch, which item did is not known. Any other
// err is returned as it is.
func (s *Store) afterReaching(reached bool, err error) error {
	if reached && err != nil && errors.Is(err, abi.StatusInternal) {
		return mayHaveWritten(s.p.name, err)
	}
	return err
}

// mayHaveWritten is the error of a write that failed (a trap, or an
// INTERNAL answer) after its call had written to the kv store or sent
// Redis or PostgreSQL requests: what it left in the store is unknown, so
// the caller is told ErrOutcomeUnknown, and err's status still matches.
func mayHaveWritten(backend string, err error) error {
	return fmt.Errorf("backend %s: %w: the plugin failed after it wrote to its store or sent it requests: %w", backend, ErrOutcomeUnknown, err)
}

// asTrap returns the errTrap in err's chain. It is a function of its own
// so that the errTrap errors.As fills is allocated only for a failed call.
func asTrap(err error) (errTrap, bool) {
	var trap errTrap
	ok := errors.As(err, &trap)
	return trap, ok
}

// Ping makes a trivial round trip through the plugin.
func (s *Store) Ping(ctx context.Context) error {
	return s.roundTrip(ctx, abi.OpPing, func(*abi.Encoder) {}, nil)
}

// Ready reports whether the backend can serve: its plugin answers a ping,
// every connection the host holds for it (Redis, PostgreSQL) answers too, Redis is
// not loading its dataset nor out of memory (redisbridge.Bridge.Ready),
// its local data's disk is not failing, and its event log has not refused
// the last append (events.ErrRefused) nor taken none for ten seconds
// (events.ErrStalled). A
// backend whose plugin falls back while Redis is away still serves, but
// is not ready.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	if s.p.redis != nil {
		if err := s.p.redis.Ready(ctx); err != nil {
			return fmt.Errorf("backend %s: %w", s.p.name, err)
		}
	}
	if s.p.pg != nil {
		if err := s.p.pg.Ready(ctx); err != nil {
			return fmt.Errorf("backend %s: %w", s.p.name, err)
		}
	}
	// A local store whose disk failed refuses writes until a commit
	// succeeds again.
	if s.p.kv != nil {
		if err := s.p.kv.Err(); err != nil {
			return fmt.Errorf("backend %s: %w", s.p.name, err)
		}
	}
	// An event log that refuses appends for good (events.ErrRefused), or
	// takes none for a while (events.ErrStalled), leaves subscribers and
	// other hosts' read caches behind every write.
	if s.bus != nil {
		if err := s.bus.Err(); err != nil {
			return fmt.Errorf("backend %s: %w", s.p.name, err)
		}
	}
	return nil
}

// PutMetric stores m, replacing the sample with the same key, and returns it
// as stored (with its expiry).
func (s *Store) PutMetric(ctx context.Context, m Metric, opts ...WriteOption) (Metric, error) {
	o, err := s.writeOptions(opts, false)
	if err != nil {
		return Metric{}, err
	}
	if err := checkLabels(m.Labels); err != nil {
		return Metric{}, err
	}
	req := abi.PutMetric{Metric: m, TTL: o.ttl}
	var out Metric
	err = s.roundTrip(ctx, abi.OpPutMetric, req.Encode, out.Decode)
	err = s.checkAnswer(abi.OpPutMetric, err, func() string { return metricKeyMismatch(&out, m.AgentID, m.Name, m.Timestamp) })
	s.unsure(abi.KindMetric, m.AgentID, metricEventKey(m.Name, m.Timestamp), err)
	publish, err := s.acknowledged(abi.OpPutMetric, err, cacheKey{})
	if err != nil {
		return Metric{}, err
	}
	if publish {
		s.publishMetric(events.OpPut, &out)
	}
	return out, nil
}

// GetMetric returns the sample at k, or an error matching ErrNotFound.
func (s *Store) GetMetric(ctx context.Context, k MetricKey) (Metric, error) {
	var out Metric
	err := s.roundTrip(ctx, abi.OpGetMetric, k.Encode, out.Decode)
	if err = s.checkAnswer(abi.OpGetMetric, err, func() string { return metricKeyMismatch(&out, k.AgentID, k.Name, k.Timestamp) }); !answered(err) {
		return Metric{}, err
	}
	return out, err
}

// DeleteMetric removes the sample at k; a missing one is ErrNotFound.
func (s *Store) DeleteMetric(ctx context.Context, k MetricKey) error {
	err := s.roundTrip(ctx, abi.OpDeleteMetric, k.Encode, nil)
	s.unsure(abi.KindMetric, k.AgentID, metricEventKey(k.Name, k.Timestamp), err)
	publish, err := s.acknowledged(abi.OpDeleteMetric, err, cacheKey{})
	if publish {
		s.publishMetricDelete(&k)
	}
	return err
}

// QueryMetrics returns one page of the metrics q selects.
func (s *Store) QueryMetrics(ctx context.Context, q MetricQuery) (Page[Metric], error) {
	if err := CheckMatchers(q.Labels); err != nil {
		return Page[Metric]{}, err
	}
	q.From, q.To = pastEpoch(q.From), pastEpoch(q.To)
	var out Page[Metric]
	var claimed int // records the page claims; more than the limit are not decoded
	err := s.roundTrip(ctx, abi.OpQueryMetrics, q.Encode, func(d *abi.Decoder) { out, claimed = abi.DecodePageAtMost[Metric](d, abi.PageLimit(q.Limit)) })
	if err = s.checkAnswer(abi.OpQueryMetrics, err, func() string { return cmp.Or(pageOverLimit(claimed, q.Limit), metricsOutside(&out, &q)) }); err != nil {
		return Page[Metric]{}, err
	}
	return out, nil
}

// PutAlert creates or replaces an alert and returns it as stored.
// Replacing one must be an allowed status transition (ErrConflict if not).
func (s *Store) PutAlert(ctx context.Context, a Alert, opts ...WriteOption) (Alert, error) {
	o, err := s.writeOptions(opts, false)
	if err != nil {
		return Alert{}, err
	}
	if err := checkLabels(a.Labels); err != nil {
		return Alert{}, err
	}
	if err := s.checkReadable("alert", a.ID, alertSize(&a)); err != nil {
		return Alert{}, err
	}
	req := abi.PutAlert{Alert: a, TTL: o.ttl}
	var out Alert
	err = s.roundTrip(ctx, abi.OpPutAlert, req.Encode, out.Decode)
	err = s.checkAnswer(abi.OpPutAlert, err, func() string { return putAlertMismatch(&out, &a) })
	s.unsure(abi.KindAlert, a.AgentID, a.ID, err)
	publish, err := s.acknowledged(abi.OpPutAlert, err, cacheKey{abi.KindAlert, a.ID})
	if err != nil {
		return Alert{}, err
	}
	if publish {
		s.publishAlert(events.OpPut, &out)
	}
	return out, nil
}

// GetAlert returns the alert id, or an error matching ErrNotFound.
func (s *Store) GetAlert(ctx context.Context, id string) (Alert, error) {
	read := func() (Alert, error) {
		var out Alert
		served, err := s.readKV(ctx, abi.OpGetAlert, abi.KindAlert, id, func(d *abi.Decoder, _ uint64, expires time.Time) {
			out.Decode(d)
			out.ExpiresAt = expires
		}, func() string { return alertMismatch(&out, id) })
		if !served {
			served, err = s.readRedis(ctx, abi.KindAlert, id, func(f []abi.Reply) (bool, string) {
				return decodeRedisAlert(f, id, s.now(), &out)
			}, func() string { return alertMismatch(&out, id) })
		}
		if !served {
			served, err = s.readPG(ctx, abi.KindAlert, id, func(row []abi.PGValue, now time.Time) string {
				return decodePGAlert(row, id, now, &out)
			}, func() string { return alertMismatch(&out, id) })
		}
		if !served { // a declared read checked its record (readKV, readRedis, readPG)
			err = s.alertFromPlugin(ctx, id, &out)
		}
		err = stoppedBy(ctx, err)
		if !answered(err) {
			return Alert{}, err
		}
		return out, err
	}
	if s.cache != nil {
		return s.cachedAlert(id, read)
	}
	return read()
}

// alertFromPlugin asks the plugin for the alert id, into out: the get no
// declared read served.
func (s *Store) alertFromPlugin(ctx context.Context, id string, out *Alert) error {
	*out = Alert{}
	err := s.roundTrip(ctx, abi.OpGetAlert, func(e *abi.Encoder) { e.String(id) }, out.Decode)
	return s.checkAnswer(abi.OpGetAlert, err, func() string { return alertMismatch(out, id) })
}

// DeleteAlert removes the alert id; a missing one is ErrNotFound.
func (s *Store) DeleteAlert(ctx context.Context, id string) error {
	agent := s.alertAgents(ctx, []string{id})
	err := s.roundTrip(ctx, abi.OpDeleteAlert, func(e *abi.Encoder) { e.String(id) }, nil)
	s.unsure(abi.KindAlert, agent[0], id, err)
	publish, err := s.acknowledged(abi.OpDeleteAlert, err, cacheKey{abi.KindAlert, id})
	if publish {
		s.publishAlertDelete(id, agent[0])
	}
	return err
}

// SetAlertStatus moves the alert id to status, keeping its expiry. A
// transition abi.AlertStatus.CanTransition refuses fails with ErrConflict.
func (s *Store) SetAlertStatus(ctx context.Context, id string, status abi.AlertStatus) (Alert, error) {
	req := abi.SetAlertStatus{ID: id, Status: status}
	var out Alert
	err := s.roundTrip(ctx, abi.OpSetAlertStatus, req.Encode, out.Decode)
	err = s.checkAnswer(abi.OpSetAlertStatus, err, func() string { return statusMismatch(&out, id, status) })
	if err != nil && errors.Is(err, ErrOutcomeUnknown) {
		// Its event names the alert's agent, read now: the caller's
		// context may be what ended the call.
		lookup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		s.unsure(abi.KindAlert, s.alertAgents(lookup, []string{id})[0], id, err)
		cancel()
	}
	publish, err := s.acknowledged(abi.OpSetAlertStatus, err, cacheKey{abi.KindAlert, id})
	if err != nil {
		return Alert{}, err
	}
	if publish {
		s.publishAlert(events.OpStatus, &out)
	}
	return out, nil
}

// QueryAlerts returns one page of the alerts q selects.
func (s *Store) QueryAlerts(ctx context.Context, q AlertQuery) (Page[Alert], error) {
	if err := CheckMatchers(q.Labels); err != nil {
		return Page[Alert]{}, err
	}
	q.From, q.To = pastEpoch(q.From), pastEpoch(q.To)
	var out Page[Alert]
	var claimed int // records the page claims; more than the limit are not decoded
	err := s.roundTrip(ctx, abi.OpQueryAlerts, q.Encode, func(d *abi.Decoder) { out, claimed = abi.DecodePageAtMost[Alert](d, abi.PageLimit(q.Limit)) })
	if err = s.checkAnswer(abi.OpQueryAlerts, err, func() string { return cmp.Or(pageOverLimit(claimed, q.Limit), alertsOutside(&out, &q)) }); err != nil {
		return Page[Alert]{}, err
	}
	return out, nil
}

// PutAgentState stores st and returns it with its new version. With
// IfVersion or IfAbsent, a failed condition is ErrConflict.
func (s *Store) PutAgentState(ctx context.Context, st AgentState, opts ...WriteOption) (AgentState, error) {
	o, err := s.writeOptions(opts, true)
	if err != nil {
		return AgentState{}, err
	}
	if err := s.checkReadable("agent state", st.AgentID, stateSize(&st)); err != nil {
		return AgentState{}, err
	}
	req := abi.PutAgentState{State: st, TTL: o.ttl, Condition: o.cond}
	var out AgentState
	err = s.roundTrip(ctx, abi.OpPutAgentState, req.Encode, func(d *abi.Decoder) { decodeAgentState(d, &out, st.AgentID) })
	err = s.checkAnswer(abi.OpPutAgentState, err, func() string { return putStateMismatch(&out, st.AgentID, o.cond) })
	s.unsure(abi.KindAgentState, st.AgentID, st.AgentID, err)
	publish, err := s.acknowledged(abi.OpPutAgentState, err, cacheKey{abi.KindAgentState, st.AgentID})
	if err != nil {
		return AgentState{}, err
	}
	if publish {
		s.publishState(&out)
	}
	return out, nil
}

// decodeAgentState decodes an answered agent state as AgentState.Decode
// does, except that an agent ID equal to asked (the caller's) is not
// copied: the caller's string is used.
func decodeAgentState(d *abi.Decoder, out *AgentState, asked string) {
	if id := d.View(); string(id) == asked {
		out.AgentID = asked
	} else {
		out.AgentID = string(id)
	}
	out.State = d.BytesField()
	out.Version = d.Uvarint()
	out.UpdatedAt = d.Time()
	out.ExpiresAt = d.Time()
}

// GetAgentState returns the state of agentID, or an error matching
// ErrNotFound.
func (s *Store) GetAgentState(ctx context.Context, agentID string) (AgentState, error) {
	read := func() (AgentState, error) {
		var out AgentState
		served, err := s.readKV(ctx, abi.OpGetAgentState, abi.KindAgentState, agentID, func(d *abi.Decoder, revision uint64, expires time.Time) {
			decodeAgentState(d, &out, agentID)
			out.Version, out.ExpiresAt = revision, expires
		}, func() string { return stateMismatch(&out, agentID) })
		if !served {
			served, err = s.readRedis(ctx, abi.KindAgentState, agentID, func(f []abi.Reply) (bool, string) {
				return decodeRedisState(f, agentID, s.now(), &out)
			}, func() string { return stateMismatch(&out, agentID) })
		}
		if !served {
			served, err = s.readPG(ctx, abi.KindAgentState, agentID, func(row []abi.PGValue, now time.Time) string {
				return decodePGState(row, agentID, now, &out)
			}, func() string { return stateMismatch(&out, agentID) })
		}
		if !served { // a declared read checked its record (readKV, readRedis, readPG)
			err = s.agentStateFromPlugin(ctx, agentID, &out)
		}
		err = stoppedBy(ctx, err)
		if !answered(err) {
			return AgentState{}, err
		}
		return out, err
	}
	if s.cache != nil {
		return s.cachedAgentState(agentID, read)
	}
	return read()
}

// agentStateFromPlugin asks the plugin for the state of agentID, into
// out: the get no declared read served.
func (s *Store) agentStateFromPlugin(ctx context.Context, agentID string, out *AgentState) error {
	*out = AgentState{}
	err := s.roundTrip(ctx, abi.OpGetAgentState, func(e *abi.Encoder) { e.String(agentID) }, func(d *abi.Decoder) { decodeAgentState(d, out, agentID) })
	return s.checkAnswer(abi.OpGetAgentState, err, func() string { return stateMismatch(out, agentID) })
}

// DeleteAgentState removes the state of agentID; a missing one is
// ErrNotFound. IfVersion makes the delete conditional.
func (s *Store) DeleteAgentState(ctx context.Context, agentID string, opts ...WriteOption) error {
	o, err := s.writeOptions(opts, true)
	if err != nil {
		return err
	}
	req := abi.DeleteAgentState{AgentID: agentID, Condition: o.cond}
	err = s.roundTrip(ctx, abi.OpDeleteAgentState, req.Encode, nil)
	publish, err := s.acknowledged(abi.OpDeleteAgentState, err, cacheKey{abi.KindAgentState, agentID})
	if publish {
		s.publishStateDelete(agentID)
	}
	s.unsure(abi.KindAgentState, agentID, agentID, err)
	return err
}

// QueryAgentStates returns one page of the agent states q selects.
func (s *Store) QueryAgentStates(ctx context.Context, q AgentStateQuery) (Page[AgentState], error) {
	var out Page[AgentState]
	var claimed int // records the page claims; more than the limit are not decoded
	err := s.roundTrip(ctx, abi.OpQueryAgentStates, q.Encode, func(d *abi.Decoder) { out, claimed = abi.DecodePageAtMost[AgentState](d, abi.PageLimit(q.Limit)) })
	if err = s.checkAnswer(abi.OpQueryAgentStates, err, func() string { return cmp.Or(pageOverLimit(claimed, q.Limit), statesOutside(&out, &q)) }); err != nil {
		return Page[AgentState]{}, err
	}
	return out, nil
}

// notGrantedAnswer rewrites the answer of a call in which the Redis bridge
// refused a request for what the backend's configuration does not grant
// (why): the INVALID the plugin was told is its own answer too, most
// likely, but the fault is the configuration's, not the caller's. The
// call's INVALID, or each INVALID item of a batch, becomes ErrInternal,
// naming the grant. Any INVALID of such a call is taken for the grant's:
// the host cannot tell which of a batch's items met the refusal.
//
// req is the call's request: a batch's starts with its item count, the
// most results its answer may have.
func (p *plugin) notGrantedAnswer(op abi.Op, req, body []byte, err error, why error) ([]byte, error) {
	internal := func(msg string) string {
		return fmt.Sprintf("backend %s: the backend's configuration does not grant what the plugin asked of Redis (%v); the plugin answered: %s", p.name, why, msg)
	}
	if err != nil {
		if errors.Is(err, abi.StatusInvalid) {
			return body, fmt.Errorf("%w: %s", ErrInternal, internal(message(err)))
		}
		return body, err
	}
	if op != abi.OpBatch {
		return body, nil
	}
	sent := int(min(abi.NewDecoder(req).Uvarint(), 1<<24))
	d := abi.NewDecoder(body)
	results, claimed := abi.DecodeBatchResultsAtMost(d, sent)
	if d.Finish() != nil || claimed > sent || !slices.ContainsFunc(results, func(r abi.BatchResult) bool { return r.Status == abi.StatusInvalid }) {
		return body, nil // a malformed answer is refused as such by the caller
	}
	for i := range results {
		if results[i].Status == abi.StatusInvalid {
			results[i] = abi.BatchResult{Status: abi.StatusInternal, Body: []byte(internal(string(results[i].Body)))}
		}
	}
	var e abi.Encoder
	abi.EncodeBatchResults(&e, results)
	return e.Bytes(), nil
}

// message is the text of an error from a plugin: an *abi.Error's own
// message, else the whole error.
func message(err error) string {
	var ae *abi.Error
	if errors.As(err, &ae) && ae.Message != "" {
		return ae.Message
	}
	return err.Error()
}
