package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// ErrBadPosition is returned by Subscribe for a from that is not a
// position its subscriptions issued. It wraps events.ErrBadID.
var ErrBadPosition = fmt.Errorf("manager: not an event position (%w)", events.ErrBadID)

// ErrRerouted ends a subscription when a reload routes a record kind it
// covers to a backend it does not follow: the events of that backend
// would never reach it. It wraps events.ErrClosed, as the end of a
// backend a reload replaced does; resuming from the subscription's last
// position answers events.ErrLost, since that position names no place in
// the new backend's log.
var ErrRerouted = fmt.Errorf("manager: a reload routed the record kinds of this subscription to other backends (%w)", events.ErrClosed)

// Subscribe subscribes to the events f passes from every backend routed
// for the kinds f names (every routed backend when f names none, or names
// a kind of a plugin's own). A backend's events of a record kind are
// passed on only when that kind is routed to it. Events of one backend
// arrive in its log's order; events of different backends interleave. Each event's ID is a
// position covering every backend of the subscription,
// "backend=id;backend=id": pass the last one received as from to resume.
// A position that names no place for one of the backends (one routed for
// the kinds since, or another subscription's position) is events.ErrLost:
// what that backend logged since is not known. The subscription ends when
// any backend's does (ErrSlowSubscriber, a reload that retired the
// backend, ...), or a reload routes one of its record kinds to a backend
// it does not follow (ErrRerouted), and Err says why. With httpapi.LossReported,
// a backend's lost events (events.ErrLost, at the start or later) are
// reported instead, and the subscription goes on (Loss). A subscription
// made while backends open for the first time waits for them (Start).
func (m *Manager) Subscribe(ctx context.Context, f events.Filter, from string, loss httpapi.Loss) (*Subscription, error) {
	if g := m.current.Load(); g != nil {
		// A backend still opening when ctx ends is one not open (below).
		_ = g.started(ctx, g.followed(f.Kinds))
	}
	g := m.current.Load()
	if g == nil {
		return nil, errors.New("manager: closed")
	}
	positions, err := parsePosition(from)
	if err != nil {
		return nil, err
	}
	names := g.followed(f.Kinds)
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{c: make(chan httpapi.Event, 64), done: make(chan struct{}), cancel: cancel, names: names, pos: make([]string, len(names)),
		m: m, kinds: f.Kinds, routed: make([][]abi.RecordKind, len(names)), filter: f, loss: loss, stores: make([]*host.Store, len(names))}
	for _, kind := range abi.RecordKinds() {
		if i := slices.Index(names, g.routes[kind].def.Name); i >= 0 {
			s.routed[i] = append(s.routed[i], kind)
		}
	}
	subs := make([]*events.Subscription, len(names))
	var lost []httpapi.Event
	var lostAt []int // by lost's index: the backend's, in names
	for i, name := range names {
		b := g.backends[name]
		if b.store == nil {
			cancel()
			return nil, b.notOpenError(true)
		}
		pos, named := positions[name]
		var err error
		if from != "" && !named {
			err = fmt.Errorf("backend %s: %w: the position names no place in its log (a reload routed the kinds asked for to it since the position was issued, or the position is another stream's)", name, events.ErrLost)
		} else {
			subs[i], err = b.store.Subscribe(ctx, f, pos)
			if err != nil {
				err = fmt.Errorf("backend %s: %w", name, err)
			}
		}
		if err != nil && loss == httpapi.LossReported && errors.Is(err, events.ErrLost) {
			lost = append(lost, httpapi.Event{Lost: s.lost(i, err)})
			lostAt = append(lostAt, i)
			subs[i], err = b.store.Subscribe(ctx, f, "")
		}
		if err != nil {
			cancel()
			for _, sub := range subs {
				if sub != nil {
					sub.Close()
				}
			}
			return nil, err
		}
		s.stores[i] = b.store
		s.pos[i] = subs[i].Start()
	}
	s.start = s.position()
	if len(lost) > 0 {
		// Until its report is received, a lost backend's position is the
		// one asked for (none, when the position named none for it), so
		// that a subscriber gone before the report resumes to it again:
		// the start is the position asked for, and each report's ID moves
		// only the backends reported so far to where they are followed.
		s.start = from
		shown := slices.Clone(s.pos)
		for _, i := range lostAt {
			shown[i] = positions[names[i]]
		}
		for k, ev := range lost {
			shown[lostAt[k]] = s.pos[lostAt[k]]
			ev.ID = encodePosition(names, shown)
			s.c <- ev // one per backend, fewer than the channel holds
		}
	}
	m.track(s)
	if !s.follows(m.current.Load()) {
		s.end(ErrRerouted) // a reload came between the routes read and track
	}
	var wg sync.WaitGroup
	for i, sub := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.forward(ctx, i, sub)
		}()
	}
	go func() {
		wg.Wait()
		close(s.c)
	}()
	return s, nil
}

// followed returns the names of the backends, sorted, a subscription to
// kinds follows: those routed for them (every routed backend when kinds
// is empty or names a kind of a plugin's own).
func (g *generation) followed(kinds []string) []string {
	var names []string
	for _, kind := range abi.RecordKinds() {
		if len(kinds) > 0 && !slices.Contains(kinds, kind.Name()) && !ownKinds(kinds) {
			continue
		}
		if name := g.routes[kind].def.Name; !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// track notes s as open, until it ends.
func (m *Manager) track(s *Subscription) {
	m.subs.Lock()
	defer m.subs.Unlock()
	if m.subs.open == nil {
		m.subs.open = map[*Subscription]struct{}{}
	}
	m.subs.open[s] = struct{}{}
}

// untrack forgets s, which ended.
func (m *Manager) untrack(s *Subscription) {
	m.subs.Lock()
	defer m.subs.Unlock()
	delete(m.subs.open, s)
}

// rerouted ends, with ErrRerouted, every open subscription that g routes
// one of its record kinds away from, to a backend it does not follow.
func (m *Manager) rerouted(g *generation) {
	m.subs.Lock()
	var ended []*Subscription
	for s := range m.subs.open {
		if !s.follows(g) {
			ended = append(ended, s)
		}
	}
	m.subs.Unlock()
	for _, s := range ended {
		s.end(ErrRerouted)
	}
}

// follows reports whether s follows every backend g routes its kinds to
// (a backend g no longer routes them to only falls silent: passes).
func (s *Subscription) follows(g *generation) bool {
	for _, name := range g.followed(s.kinds) {
		if !slices.Contains(s.names, name) {
			return false
		}
	}
	return true
}

// ownKinds reports whether kinds names a kind that is not a record kind:
// a plugin's own, which any backend may publish.
func ownKinds(kinds []string) bool {
	for _, k := range kinds {
		if _, ok := abi.ParseRecordKind(k); !ok {
			return true
		}
	}
	return false
}

// Subscription is a manager's merged subscription. Receive from Events
// until it is closed; then Err says why.
type Subscription struct {
	c      chan httpapi.Event
	done   chan struct{}
	once   sync.Once
	err    error
	cancel context.CancelFunc

	mu    sync.Mutex // orders the sends, so positions only move forward
	names []string
	pos   []string // by names' index: the last position passed
	start string
	// routed holds, by names' index, the record kinds routed to the
	// backend when the subscription began: its events of other record
	// kinds are not passed on unless a reload has routed the kind to it
	// since (passes). A PostgreSQL plugin's role can write any row into
	// its own event table, and must not speak for another backend's
	// records.
	m      *Manager
	kinds  []string // the filter's kinds: which backends the subscription follows
	routed [][]abi.RecordKind

	filter events.Filter
	loss   httpapi.Loss
	stores []*host.Store // by names' index: where a lost backend is followed again
}

// lost is the report of backend i's loss, err.
func (s *Subscription) lost(i int, err error) *httpapi.Lost {
	l := &httpapi.Lost{Backend: s.names[i], Reason: err}
	for _, k := range s.routed[i] {
		if len(s.kinds) == 0 || ownKinds(s.kinds) || slices.Contains(s.kinds, k.Name()) {
			l.Kinds = append(l.Kinds, k.Name())
		}
	}
	return l
}

// passes reports whether the event of kind from backend i is passed on:
// a kind of a plugin's own, or a record kind routed to the backend when
// the subscription began or now (a reload that only moves routes keeps
// the subscription).
func (s *Subscription) passes(i int, kind string) bool {
	k, ok := abi.ParseRecordKind(kind)
	if !ok || slices.Contains(s.routed[i], k) {
		return true
	}
	g := s.m.current.Load()
	return g != nil && g.routes[k].def.Name == s.names[i]
}

// Events returns the channel the events arrive on; each one's ID is the
// position to resume after it.
func (s *Subscription) Events() <-chan httpapi.Event { return s.c }

// Err returns why the subscription ended, once Events is closed; nil after
// Close.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Start returns the position the subscription started after, covering
// every backend: the resume point of a subscriber that has received no
// event yet.
func (s *Subscription) Start() string { return s.start }

// Close ends the subscription.
func (s *Subscription) Close() { s.end(nil) }

func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
		s.cancel()
		s.m.untrack(s)
	})
}

func (s *Subscription) forward(ctx context.Context, i int, sub *events.Subscription) {
	for {
		if !s.pass(i, sub) {
			return
		}
		err := sub.Err()
		if err == nil && ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if errors.Is(err, events.ErrClosed) || errors.Is(err, host.ErrClosed) {
			err = fmt.Errorf("a reload replaced or removed it: %w", err)
		}
		err = fmt.Errorf("backend %s: %w", s.names[i], err)
		if s.loss != httpapi.LossReported || ctx.Err() != nil || !(errors.Is(err, events.ErrLost) || errors.Is(err, events.ErrUnavailable)) {
			s.end(err)
			return
		}
		// A log that lost events ends its subscriptions (ErrUnavailable,
		// or ErrLost at a gap), and resuming from the last position
		// tells which: ErrLost, or a log read again that lost nothing.
		s.mu.Lock()
		pos := s.pos[i]
		s.mu.Unlock()
		next, serr := s.stores[i].Subscribe(ctx, s.filter, pos)
		if serr == nil {
			sub = next
			continue
		}
		if !errors.Is(serr, events.ErrLost) {
			s.end(err) // unreadable (its Redis is away): as LossEnds
			return
		}
		// Followed again from now on: what it logs after this
		// subscription starts reaches the subscriber after the report,
		// which sends it to read the backend's records again.
		lostErr := fmt.Errorf("backend %s: %w", s.names[i], serr)
		next, serr = s.stores[i].Subscribe(ctx, s.filter, "")
		if serr != nil {
			s.end(fmt.Errorf("%w; following it again after the loss: %w", err, serr))
			return
		}
		s.mu.Lock()
		s.pos[i] = next.Start()
		ev := httpapi.Event{Event: events.Event{ID: s.position()}, Lost: s.lost(i, lostErr)}
		select {
		case s.c <- ev:
			s.mu.Unlock()
		case <-s.done:
			s.mu.Unlock()
			next.Close()
			return
		}
		sub = next
	}
}

// pass passes sub's events on, as backend i's, until sub ends (true) or
// the subscription does (false).
func (s *Subscription) pass(i int, sub *events.Subscription) bool {
	for ev := range sub.Events() {
		if !s.passes(i, ev.Kind) {
			s.mu.Lock()
			s.pos[i] = ev.ID // passed over: a later position covers it
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		prev := s.pos[i]
		s.pos[i] = ev.ID
		ev.ID = s.position()
		select {
		case s.c <- httpapi.Event{Event: ev}:
			s.mu.Unlock()
		case <-s.done:
			s.pos[i] = prev // not delivered: no later position may count it
			s.mu.Unlock()
			return false
		}
	}
	return true
}

// position encodes every backend's position; under mu.
func (s *Subscription) position() string { return encodePosition(s.names, s.pos) }

// encodePosition encodes the positions pos of the backends names (by
// index), leaving out those without one.
func encodePosition(names, pos []string) string {
	var b strings.Builder
	for i, name := range names {
		if pos[i] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(pos[i])
	}
	return b.String()
}

// parsePosition decodes a position into each backend's event ID.
func parsePosition(from string) (map[string]string, error) {
	out := map[string]string{}
	if from == "" {
		return out, nil
	}
	for part := range strings.SplitSeq(from, ";") {
		name, id, ok := strings.Cut(part, "=")
		if !ok || name == "" || id == "" {
			return nil, fmt.Errorf("%w: %q", ErrBadPosition, from)
		}
		out[name] = id
	}
	return out, nil
}
