package host

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
)

// The store's side of events: every write that succeeds publishes one, and
// the expiry watch publishes one when a record this host wrote expires.

// Subscribe returns a subscription to the backend's events that f passes,
// starting after from: "" for the events from now on, the ID of the last
// event seen to resume (events.ErrLost when the log no longer holds what
// followed it), or events.Beginning. With a Redis backend it carries the
// events of every host sharing that Redis. Close it when done; it also
// ends with ctx. A PostgreSQL backend's log is a table its plugin's role
// may write any row into: an application that routes record kinds to
// several stores passes on each one's events of the kinds it routes there
// only, as the daemon does.
func (s *Store) Subscribe(ctx context.Context, f events.Filter, from string) (*events.Subscription, error) {
	if s.bus == nil {
		return nil, abi.Errorf(abi.StatusUnsupported, "backend %s: events are disabled", s.p.name)
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	sub, err := s.bus.Subscribe(ctx, f, from)
	return sub, stoppedBy(ctx, err)
}

// openEvents opens the backend's event log: the Redis Stream of a
// backend with Redis, else the event table of one with PostgreSQL (of a
// write_events plugin, always), else a log in this process.
func (s *Store) openEvents(ctx context.Context, cfg *Config, st *settings) error {
	if cfg.DisableEvents {
		if s.p.pg != nil && s.p.writesEvents {
			// The plugin's writes name the table, and insert nothing into
			// it while events are off (openPostgres).
			if err := events.EnsurePostgresTable(ctx, pgSQL(s.p.pg), s.p.pg.Schema()); errors.Is(err, events.ErrTableRebuilt) {
				st.logger.Error(err.Error(), "backend", s.p.name)
			} else if err != nil {
				return fmt.Errorf("host: backend %s: %w", s.p.name, err)
			}
		}
		return nil
	}
	logger := st.logger.Named("events").Named(s.p.name)
	// A write_events plugin inserts its writes' events into the
	// PostgreSQL table, which is then the log even beside a Redis.
	pgLog := s.p.pg != nil && (s.p.redis == nil || s.p.writesEvents)
	switch {
	case s.p.redis != nil && !pgLog:
		s.bus = events.NewRedis(s.p.redis.Client(), s.p.redis.Key("events"), cfg.Events, logger)
	case pgLog:
		openCtx, cancel := context.WithTimeout(ctx, pgOpenWait(s.p.limits))
		bus, err := events.NewPostgres(openCtx, pgSQL(s.p.pg), s.p.pg.Schema(), s.p.pg.ConnConfig(), cfg.Events, logger)
		cancel()
		if err != nil {
			return fmt.Errorf("host: backend %s: %w", s.p.name, err)
		}
		s.bus = bus
	default:
		s.bus = events.NewLocal(cfg.Events, logger)
	}
	s.expiry = newExpiryWatch(s)
	s.p.events.Store(s.bus)
	if cfg.Cache.Entries > 0 {
		s.cache = newReadCache(ctx, s, cfg.Cache)
	}
	return nil
}

func (s *Store) closeEvents(ctx context.Context) {
	if s.bus == nil {
		return
	}
	s.expiry.stop()
	if s.cache != nil {
		s.cache.stop()
	}
	// Queued events are appended first, for as long as a call may take:
	// with Redis away they would wait for ever.
	ctx, cancel := context.WithTimeout(ctx, s.p.limits.CallTimeout)
	defer cancel()
	if err := s.bus.Close(ctx); err != nil {
		s.p.log.Warn("events", "error", err)
	}
}

func metricEventKey(name string, ts time.Time) string { return abi.MetricEventKey(name, ts) }

// publish sends one event of a record this host changed (or, when the
// plugin inserted it with the write, has it announced), and keeps the
// expiry watch in step: a write with an expiry is watched, anything else
// on the key stops the watch.
func (s *Store) publish(kind abi.RecordKind, op, agent, key string, version uint64, expires time.Time, mk *MetricKey) {
	if s.bus == nil {
		return
	}
	if s.cache != nil && kind != abi.KindMetric {
		// This host's reads see its own writes at once, not only once the
		// event has come back.
		s.cache.invalidate(cacheKey{kind, key}, 0)
	}
	if s.p.writesEvents {
		s.bus.Written() // the plugin inserted the event with the write
	} else {
		mu := s.expiry.lock(kind, key)
		s.bus.Publish(events.Event{Kind: kind.Name(), Op: op, AgentID: agent, Key: key, Version: version, Time: s.now()})
		mu.Unlock()
	}
	s.expiry.set(kind, key, agent, version, expires, mk)
}

func (s *Store) publishMetric(op string, m *Metric) {
	key := metricEventKey(m.Name, m.Timestamp)
	mk := MetricKey{AgentID: m.AgentID, Name: m.Name, Timestamp: m.Timestamp}
	s.publish(abi.KindMetric, op, m.AgentID, key, 0, m.ExpiresAt, &mk)
}

func (s *Store) publishMetricDelete(k *MetricKey) {
	s.publish(abi.KindMetric, events.OpDelete, k.AgentID, metricEventKey(k.Name, k.Timestamp), 0, time.Time{}, nil)
}

func (s *Store) publishAlert(op string, a *Alert) {
	var version uint64 // none, for a time unset (or before 1970)
	if ns := a.UpdatedAt.UnixNano(); !a.UpdatedAt.IsZero() && ns > 0 {
		version = uint64(ns)
	}
	s.publish(abi.KindAlert, op, a.AgentID, a.ID, version, a.ExpiresAt, nil)
}

func (s *Store) publishAlertDelete(id, agent string) {
	s.publish(abi.KindAlert, events.OpDelete, agent, id, 0, time.Time{}, nil)
}

// alertAgents returns the agent of each alert, for the events of deleting
// them: a delete names only the alert, and subscribers filter by agent.
// With events disabled, or for an alert it cannot read, the agent is "".
func (s *Store) alertAgents(ctx context.Context, ids []string) []string {
	agents := make([]string, len(ids))
	if s.bus == nil || s.p.writesEvents {
		return agents // no event to publish, or the plugin writes it
	}
	if len(ids) == 1 {
		if a, err := s.GetAlert(ctx, ids[0]); err == nil {
			agents[0] = a.AgentID
		}
		return agents
	}
	rs, err := s.GetAlerts(ctx, ids)
	if err != nil {
		return agents
	}
	for i, r := range rs {
		agents[i] = r.Value.AgentID
	}
	return agents
}

func (s *Store) publishState(st *AgentState) {
	s.publish(abi.KindAgentState, events.OpPut, st.AgentID, st.AgentID, st.Version, st.ExpiresAt, nil)
}

func (s *Store) publishStateDelete(agent string) {
	s.publish(abi.KindAgentState, events.OpDelete, agent, agent, 0, time.Time{}, nil)
}

// unsure tells of a write answered ErrOutcomeUnknown (err), which may
// have changed the record of agent at key: this host's cached copy is
// dropped, so that its next read goes to the backend, and an OpUnknown
// event goes to the log, so that subscribers and other hosts' caches
// read it again too. A write that did apply has no event of its own: its
// answer was lost, and with it what it left (version, expiry). A plugin
// that writes its events with its writes (abi.FeatureWriteEvents) wrote
// one if the write applied: nothing is published for it.
func (s *Store) unsure(kind abi.RecordKind, agent, key string, err error) {
	if err == nil || !errors.Is(err, ErrOutcomeUnknown) {
		return
	}
	if s.cache != nil && kind != abi.KindMetric {
		s.cache.invalidate(cacheKey{kind, key}, 0)
	}
	if s.bus != nil && !s.p.writesEvents {
		mu := s.expiry.lock(kind, key)
		s.bus.Publish(events.Event{Kind: kind.Name(), Op: events.OpUnknown, AgentID: agent, Key: key, Time: s.now()})
		mu.Unlock()
	}
}

// unsureItems is unsure for the n items of a bulk write, whose answers
// are errs, or err for the batch as a whole (errs nil); item gives an
// item's agent and key.
func (s *Store) unsureItems(kind abi.RecordKind, n int, errs []error, err error, item func(i int) (agent, key string)) {
	for i := range n {
		e := err
		if errs != nil {
			e = errs[i]
		}
		if e != nil {
			agent, key := item(i)
			s.unsure(kind, agent, key, e)
		}
	}
}

// publishEach publishes the items of a bulk write that succeeded, but
// those buffered (see Store.acknowledgedItems; nil: none).
func publishEach[T any](rs []Result[T], err error, buffered []bool, publish func(*T)) ([]Result[T], error) {
	if err == nil {
		for i := range rs {
			if rs[i].Err == nil && (buffered == nil || !buffered[i]) {
				publish(&rs[i].Value)
			}
		}
	}
	return rs, err
}

// publishDeleted publishes the deletes of a bulk delete that succeeded,
// but those buffered.
func publishDeleted(errs []error, err error, buffered []bool, publish func(i int)) ([]error, error) {
	if err == nil {
		for i, e := range errs {
			if e == nil && (buffered == nil || !buffered[i]) {
				publish(i)
			}
		}
	}
	return errs, err
}

// expiryWatch publishes an expire event when a record this host wrote
// with an expiry is gone once that expiry passed. It checks through the
// plugin (a get answering NOT_FOUND), so it knows nothing of record
// layouts, and it only knows of writes made by this host: on a Redis
// backend shared by several hosts, each watches its own writes. A record
// deleted by another host just before it expired is reported expired too.
type expiryWatch struct {
	s     *Store
	mu    sync.Mutex
	queue watchQueue
	byKey map[watchKey]*watched
	wake  chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup

	dropped atomic.Uint64
	bytes   int // of the watched entries (weigh), under mu

	// keys orders a record's expire event with the events of its writes
	// (lock): check holds its key's stripe from the read that finds the
	// record gone to the expire event's publication, and a write's event
	// is published under it too, so a write that lands in between has
	// its event after the expire event, never before it. Without it an
	// outside drill saw "put v1, put v2, expire v1" for 3 of 2 300
	// agents rewritten about as their TTL passed.
	keys [1024]sync.Mutex
	seed maphash.Seed
}

// lock locks and returns the stripe of the record kind/key (keys).
func (w *expiryWatch) lock(kind abi.RecordKind, key string) *sync.Mutex {
	mu := &w.keys[(maphash.String(w.seed, key)+uint64(kind))%uint64(len(w.keys))]
	mu.Lock()
	return mu
}

// maxWatched and maxWatchedBytes bound the expiries one store watches:
// their count, and the bytes of their keys and agents (each also takes
// watchedBytes of its own). A plugin chooses those strings (IDs of up to
// 512 bytes, in writes its ticks report that nobody sent): counted
// alone, the watch held 650–750 MB of a daemon's heap. Writes past either
// bound are not watched, and counted in Stats.ExpiriesUnwatched.
const (
	maxWatched      = 1 << 18
	maxWatchedBytes = 64 << 20
	watchedBytes    = 200
)

type watchKey struct {
	kind abi.RecordKind
	key  string
}

type watched struct {
	watchKey
	agent   string
	version uint64
	at      time.Time // the record's expiry
	due     time.Time // when to check: at, or later for a recheck
	tries   int       // rechecks so far
	metric  MetricKey
	index   int
}

type watchQueue []*watched

func (q watchQueue) Len() int           { return len(q) }
func (q watchQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q watchQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *watchQueue) Push(x any) {
	w := x.(*watched)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *watchQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return w
}

func newExpiryWatch(s *Store) *expiryWatch {
	w := &expiryWatch{s: s, byKey: map[watchKey]*watched{}, wake: make(chan struct{}, 1), done: make(chan struct{}), seed: maphash.MakeSeed()}
	w.wg.Add(1)
	go w.loop()
	return w
}

func (w *expiryWatch) stop() {
	close(w.done)
	w.wg.Wait()
}

func (w *expiryWatch) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// set watches the record's expiry, replacing what was watched for its key;
// a zero expiry stops the watch.
func (w *expiryWatch) set(kind abi.RecordKind, key, agent string, version uint64, expires time.Time, mk *MetricKey) {
	k := watchKey{kind, key}
	w.mu.Lock()
	defer w.mu.Unlock()
	x, ok := w.byKey[k]
	if expires.IsZero() {
		if ok {
			heap.Remove(&w.queue, x.index)
			delete(w.byKey, k)
			w.bytes -= x.weight()
		}
		return
	}
	if !ok {
		if len(w.queue) >= maxWatched || w.bytes+weigh(key, agent, mk) > maxWatchedBytes {
			w.dropped.Add(1)
			return
		}
		x = &watched{watchKey: k}
		w.byKey[k] = x
		heap.Push(&w.queue, x)
	} else {
		w.bytes -= x.weight()
	}
	x.agent, x.version, x.at, x.due, x.tries = agent, version, expires, expires, 0
	if mk != nil {
		x.metric = *mk
	}
	w.bytes += x.weight()
	heap.Fix(&w.queue, x.index)
	if x.index == 0 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// loop sleeps until the earliest expiry (at most a second, so a test clock
// that jumps is followed), then checks the records that are due.
func (w *expiryWatch) loop() {
	defer w.wg.Done()
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-w.wake:
		case <-timer.C:
		}
		for _, x := range w.due(256) {
			w.check(x)
		}
		wait := time.Second
		w.mu.Lock()
		if len(w.queue) > 0 {
			wait = min(wait, max(w.queue[0].due.Sub(w.s.now()), time.Millisecond))
		}
		w.mu.Unlock()
		timer.Reset(wait)
	}
}

// due removes and returns up to n records whose expiry has passed.
func (w *expiryWatch) due(n int) []*watched {
	now := w.s.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*watched
	for len(w.queue) > 0 && len(out) < n && !w.queue[0].due.After(now) {
		x := heap.Pop(&w.queue).(*watched)
		delete(w.byKey, x.watchKey)
		w.bytes -= x.weight()
		out = append(out, x)
	}
	if len(out) == n {
		select { // more may be due
		case w.wake <- struct{}{}:
		default:
		}
	}
	return out
}

// check publishes the expiry of x if its record is gone. A record still
// there with the same expiry is looked at again a little later: the
// backend's clock (Redis's, to the millisecond, keeping a key through the
// millisecond of its expiry) may be behind the host's. A record there with
// another expiry was written again (by another host) and is not this
// watch's concern; nor is one that outlives its expiry by seconds.
func (w *expiryWatch) check(x *watched) {
	ctx, cancel := context.WithTimeout(context.Background(), w.s.p.limits.CallTimeout)
	defer cancel()
	mu := w.lock(x.kind, x.key)
	defer mu.Unlock()
	var err error
	var expires time.Time
	switch x.kind {
	case abi.KindMetric:
		var m Metric
		m, err = w.s.GetMetric(ctx, x.metric)
		expires = m.ExpiresAt
	case abi.KindAlert:
		var a Alert
		a, err = w.s.GetAlert(ctx, x.key)
		expires = a.ExpiresAt
	case abi.KindAgentState:
		var st AgentState
		st, err = w.s.GetAgentState(ctx, x.key)
		expires = st.ExpiresAt
	}
	switch {
	case errors.Is(err, ErrNotFound):
		w.s.bus.Publish(events.Event{Kind: x.kind.Name(), Op: events.OpExpire, AgentID: x.agent, Key: x.key, Version: x.version, Time: x.at})
	case err == nil && expires.Equal(x.at) && x.tries < maxExpiryRechecks:
		x.tries++
		w.recheck(x, w.s.now().Add(time.Duration(x.tries)*20*time.Millisecond))
	case err != nil && !errors.Is(err, ErrNotFound) && x.tries < maxExpiryRechecks:
		// The backend could not answer (Redis away): ask again later.
		x.tries++
		w.recheck(x, w.s.now().Add(time.Duration(x.tries)*100*time.Millisecond))
	}
}

// maxExpiryRechecks bounds how often check looks at a record again: with
// its growing delays, about four seconds past the expiry for a record
// still there, twenty for a backend that cannot answer.
const maxExpiryRechecks = 20

// recheck watches x again at `at`, unless a newer write of its key is
// watched already.
func (w *expiryWatch) recheck(x *watched, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, newer := w.byKey[x.watchKey]; newer || len(w.queue) >= maxWatched || w.bytes+x.weight() > maxWatchedBytes {
		return
	}
	checkAt := *x
	checkAt.due = at
	w.byKey[x.watchKey] = &checkAt
	heap.Push(&w.queue, &checkAt)
	w.bytes += x.weight()
}

// weight is what x counts against maxWatchedBytes.
func (x *watched) weight() int { return weigh(x.key, x.agent, &x.metric) }

// weigh is what an entry of key and agent (and, for a metric, mk) counts
// against maxWatchedBytes.
func weigh(key, agent string, mk *MetricKey) int {
	n := watchedBytes + len(key) + len(agent)
	if mk != nil {
		n += len(mk.AgentID) + len(mk.Name)
	}
	return n
}
