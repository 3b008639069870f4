// Package manager runs the backends a configuration file describes: it
// opens each one, routes every record kind to its backend, and swaps
// backends on reload while requests keep flowing.
//
// A reload rebuilds only the backends whose definition changed (their
// config.Backend.Digest, which covers the plugin's bytes and resolved
// secrets) and keeps the others, with their data and connections. The new
// routes take effect at once for new calls; calls in flight finish on the
// store they started on, which is closed once they have.
package manager

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/host"
)

// ErrUnknownKind is returned by Do for a kind that is not one of
// abi.RecordKinds.
var ErrUnknownKind = errors.New("manager: unknown record kind")

// Options change how a Manager runs its backends.
type Options struct {
	// Logger receives the manager's and the backends' logs; each backend's
	// plugin logs under plugin.<backend>. Default: a null logger.
	Logger hclog.Logger
	// Registry, when set, receives the manager's metrics: plugin call
	// durations, traps, pool sizes, reloads and Redis pool statistics.
	Registry prometheus.Registerer
	// Host are extra options for every host.Open (compilation cache,
	// clock). The manager adds its logger and observer.
	Host []host.Option
	// DrainTimeout bounds how long a replaced backend waits for its calls
	// in flight before it is closed under them.
	// Default: 30s.
	DrainTimeout time.Duration
	// Plugins remembers the plugins ReloadFile's checks inspect, across
	// reloads. Default: none; each reload inspects every plugin again.
	Plugins *config.PluginCache
	// Recheck checks again the backend name of a definition whose plugin
	// failed its check (config.Backend.Unchecked), before each attempt to
	// open it, and returns the definition to open (one still Unchecked is
	// a failure to open). Default: the configuration being served is
	// checked again, that backend's plugin alone run, with Plugins.
	Recheck func(ctx context.Context, name string) (config.Backend, error)
	// Prepare, when set, runs on each backend opened that does not
	// replace one being served, before it serves (the daemon restores
	// backups into it). Its error closes the store and counts as the
	// backend's failure to open.
	Prepare func(ctx context.Context, def config.Backend, st *host.Store) error
}

// Manager serves the backends of one configuration at a time.
type Manager struct {
	opts    Options
	log     hclog.Logger
	metrics *metrics

	// lock serialises Reload, Close and the publishing of a backend that
	// opened late (publish), which may give up waiting for it.
	lock    chan struct{}
	current atomic.Pointer[generation]
	// attempts holds the attempt to open a backend that failed to, one
	// at a time: each may run a plugin's start, which its author may make
	// cost a core up to its call timeout, and several such backends must
	// not take every core from the backends that serve.
	attempts chan struct{}
	closing  sync.WaitGroup // replaced backends still draining
	closed   bool

	// subs holds the subscriptions open, which a reload that routes their
	// record kinds to other backends ends (rerouted).
	subs struct {
		sync.Mutex
		open map[*Subscription]struct{}
	}
}

// generation is one configuration's backends and routes. It is never
// changed once published; a reload publishes a new one.
type generation struct {
	file     *config.File
	backends map[string]*backend
	routes   map[abi.RecordKind]*backend
}

type backend struct {
	def   config.Backend
	store *host.Store // nil while the backend is not open
	// opening, set while store is nil, tries again to open the backend.
	opening *opener
	// started, set on a backend of the first generation (Start), is
	// closed once its first attempt to open has ended and, when it
	// opened, the store serves in its place.
	started chan struct{}
}

// Change says what a reload did, by backend name.
type Change struct {
	Added, Replaced, Removed, Kept []string
	// Rerouted names the record kinds the reload routes to another
	// backend, as "kind: old → new": the records written through the old
	// one stay in it, and this daemon no longer reads them.
	Rerouted []string
}

// New opens every backend of f, as Start does, and returns once every
// first attempt to open has ended (Started).
func New(ctx context.Context, f *config.File, opts Options) (*Manager, error) {
	m, err := Start(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	_ = m.Started(ctx)
	return m, nil
}

// Start starts opening every backend of f, all at once, and returns
// without waiting for them: a backend serves once it opened, and until
// then Do and Subscribe wait for its first attempt to end (within their
// context), while the backends already open serve. A plugin slow to open
// (its start, its migrations, each bounded) delays nothing but its own
// routes. A backend that fails to open does not keep the others from
// serving: it is logged, its routes answer ErrNotOpen, Ready names it,
// and the manager keeps trying to open it, at growing intervals (1 s,
// doubled up to 30 s), until it serves. Start fails only for a file that
// cannot be served (a route to a backend it does not define).
func Start(ctx context.Context, f *config.File, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	m := &Manager{opts: opts, log: opts.Logger.Named("manager"), lock: make(chan struct{}, 1), attempts: make(chan struct{}, 1)}
	if opts.Registry != nil {
		m.metrics = newMetrics(m)
		if err := opts.Registry.Register(m.metrics); err != nil {
			return nil, fmt.Errorf("manager: metrics: %w", err)
		}
	}
	g, _, _, err := m.build(ctx, f, nil)
	if err != nil {
		if m.metrics != nil {
			opts.Registry.Unregister(m.metrics)
		}
		return nil, err
	}
	m.current.Store(g)
	m.lock <- struct{}{}
	defer m.unlock()
	m.startOpening(g, nil)
	return m, nil
}

// Started waits until every first attempt to open a backend (Start) has
// ended, or ctx has.
func (m *Manager) Started(ctx context.Context) error {
	g := m.current.Load()
	if g == nil {
		return nil
	}
	return g.started(ctx, slices.Collect(maps.Keys(g.backends)))
}

// started waits until the first attempts to open g's backends names
// have ended, or ctx has.
func (g *generation) started(ctx context.Context, names []string) error {
	for _, name := range names {
		b := g.backends[name]
		if b == nil || b.started == nil {
			continue
		}
		select {
		case <-b.started:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (m *Manager) unlock() { <-m.lock }

// startOpening logs each backend of g that is not open and not served by
// old, and starts its attempts to open. Under m's lock, g being served.
func (m *Manager) startOpening(g, old *generation) {
	for _, def := range g.file.Backends {
		b := g.backends[def.Name]
		if prev, _ := old.backend(def.Name); b.store != nil || prev == b {
			continue
		}
		if b.started == nil { // a first attempt's failure is logged when it ends
			m.logNotOpened(def.Name, b.opening.err)
		}
		m.retryOpen(b)
	}
}

// open opens the backend def and runs Options.Prepare on it, unless it
// replaces a backend being served (replacing). held: its fallback
// buffer's replay waits for TakeReplay.
func (m *Manager) open(ctx context.Context, def config.Backend, replacing, held bool) (*host.Store, error) {
	opts := m.hostOptions()
	if held {
		// A store a reload opens, maybe on the data directory of one
		// still open (replaced, or removed under another name), replays
		// its buffer only once the reload is committed (TakeReplay):
		// one the reload refuses has replayed nothing.
		opts = append(opts, host.WithReplayHeld())
	}
	st, err := host.Open(ctx, def.Config, opts...)
	if err != nil || replacing || m.opts.Prepare == nil {
		return st, err
	}
	if err := m.opts.Prepare(ctx, def, st); err != nil {
		_ = st.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return st, nil
}

// build opens the backends of f that old does not already serve with the
// same definition. A backend that fails to open fails the whole build, and
// what it opened is closed, unless nothing serves that backend now: at the
// start (old is nil), or in place of one that had not opened either. That
// one's attempts are stopped (they would open the same data directory),
// and returned in paused for the caller to start again if it does not
// serve g; g's backends that are not open have not started theirs
// (startOpening).
func (m *Manager) build(ctx context.Context, f *config.File, old *generation) (g *generation, ch Change, paused []*backend, err error) {
	g = &generation{file: f, backends: make(map[string]*backend, len(f.Backends)), routes: make(map[abi.RecordKind]*backend, len(abi.RecordKinds()))}
	// stopped are the attempts paused, kept apart from the result paused,
	// which every error return sets to nil before this deferred call.
	var opened, stopped []*backend
	var starting []*backend // Start's, whose first attempts a failed build stops
	defer func() {
		if err == nil {
			return
		}
		for _, b := range opened {
			_ = b.store.Close(context.WithoutCancel(ctx))
		}
		for _, b := range stopped {
			m.retryOpen(b)
		}
		for _, b := range starting {
			b.opening.first.stop(ctx)
		}
	}()
	for _, def := range f.Backends {
		if def.Digest == "" {
			// A parsed file's backends have no digest, and would all be
			// kept by a reload as the same backend.
			return nil, Change{}, nil, fmt.Errorf("manager: backend %s has no digest: the configuration was parsed, not checked (config.File.Check)", def.Name)
		}
	}
	// The backends to open are opened at once: a plugin slow to open
	// (its start, its migrations, each bounded) delays the others by
	// nothing.
	type opening struct {
		def       config.Backend
		replacing bool // a backend being served
		served    bool // a backend of that name was served, open or not
		st        *host.Store
		err       error
	}
	var opens []*opening
	for _, def := range f.Backends {
		prev, ok := old.backend(def.Name)
		// A backend that is not open is tried again with whatever
		// changed, its backup block included (which Digest leaves out: a
		// restore_on_start turned off, a directory of good backups).
		if ok && prev.def.Digest == def.Digest && (prev.store != nil || reflect.DeepEqual(prev.def.Backup, def.Backup)) {
			g.backends[def.Name] = prev
			ch.Kept = append(ch.Kept, def.Name)
			continue
		}
		if ok {
			ch.Replaced = append(ch.Replaced, def.Name)
		} else {
			ch.Added = append(ch.Added, def.Name)
		}
		if ok && prev.store == nil {
			prev.stopOpening()
			stopped = append(stopped, prev)
		}
		opens = append(opens, &opening{def: def, replacing: ok && prev.store != nil, served: ok})
	}
	if old == nil { // Start: each backend serves once it opened
		for _, o := range opens {
			if o.def.Unchecked != nil {
				g.backends[o.def.Name] = notOpened(o.def, o.def.Unchecked) // not opened until it checks
			} else {
				b := m.firstAttempt(ctx, o.def)
				g.backends[o.def.Name] = b
				starting = append(starting, b)
			}
		}
	}
	var wg sync.WaitGroup
	for _, o := range opens {
		if old == nil {
			break
		}
		if o.def.Unchecked != nil {
			o.err = o.def.Unchecked // not opened until it checks
			continue
		}
		// Held in every reload but in place of a backend not open, whose
		// attempts, stopped, held no store.
		held := old != nil && (!o.served || o.replacing)
		wg.Go(func() { o.st, o.err = m.open(ctx, o.def, o.replacing, held) })
	}
	wg.Wait()
	for _, o := range opens {
		if o.err == nil && old != nil {
			b := &backend{def: o.def, store: o.st}
			opened = append(opened, b)
			g.backends[o.def.Name] = b
		}
	}
	for _, o := range opens {
		if o.err == nil || old == nil {
			continue
		}
		if !o.served || o.replacing {
			return nil, Change{}, nil, fmt.Errorf("backend %s: %w", o.def.Name, o.err)
		}
		g.backends[o.def.Name] = notOpened(o.def, o.err)
	}
	if old != nil {
		for name := range old.backends {
			if _, ok := g.backends[name]; !ok {
				ch.Removed = append(ch.Removed, name)
			}
		}
		slices.Sort(ch.Removed)
	}
	for _, kind := range abi.RecordKinds() {
		name := route(f, kind)
		b, ok := g.backends[name]
		if !ok {
			return nil, Change{}, nil, fmt.Errorf("manager: %s are routed to backend %q, which is not defined", kind.Name(), name)
		}
		g.routes[kind] = b
		if old != nil && old.routes[kind] != nil && old.routes[kind].def.Name != name {
			ch.Rerouted = append(ch.Rerouted, fmt.Sprintf("%s: %s → %s", kind.Name(), old.routes[kind].def.Name, name))
		}
	}
	return g, ch, stopped, nil
}

// route returns the name of the backend f routes kind to.
func route(f *config.File, kind abi.RecordKind) string {
	switch kind {
	case abi.KindMetric:
		return f.Routes.Metrics
	case abi.KindAlert:
		return f.Routes.Alerts
	}
	return f.Routes.AgentStates
}

func (g *generation) backend(name string) (*backend, bool) {
	if g == nil {
		return nil, false
	}
	b, ok := g.backends[name]
	return b, ok
}

func (m *Manager) hostOptions() []host.Option {
	opts := append(slices.Clip(m.opts.Host), host.WithLogger(m.opts.Logger))
	if m.metrics != nil {
		opts = append(opts, host.WithObserver(m.metrics))
	}
	return opts
}

// Do runs fn with the store serving kind. If a reload closed that store
// before fn's call reached it (fn's error matches host.ErrClosed but not
// host.ErrOutcomeUnknown, and the routes have changed), fn runs again on
// the new store: the closed store refused the call without running it. A
// call the closed store cut short after it had reached the plugin
// (host.ErrOutcomeUnknown) is not run again: it may have taken effect,
// and running it twice could apply a write twice or answer a spurious
// conflict. Its error is returned for the caller to decide.
func (m *Manager) Do(ctx context.Context, kind abi.RecordKind, fn func(st *host.Store) error) error {
	for {
		g := m.current.Load()
		if g == nil {
			return host.ErrClosed
		}
		b, ok := g.routes[kind]
		if !ok {
			return fmt.Errorf("%w %q", ErrUnknownKind, kind)
		}
		if b.store == nil {
			if b.starting() {
				select {
				case <-b.started:
					continue
				case <-ctx.Done():
				}
			}
			return b.notOpenError(true)
		}
		err := fn(b.store)
		if err != nil && errors.Is(err, host.ErrClosed) && !errors.Is(err, host.ErrOutcomeUnknown) && m.current.Load() != g {
			continue
		}
		return err
	}
}

// Ready checks every routed backend (host.Store.Ready: its plugin and its
// Redis answer), all at once, and returns the failures, each naming its
// backend, in the order of the kinds they serve.
func (m *Manager) Ready(ctx context.Context) error {
	g := m.current.Load()
	if g == nil {
		return host.ErrClosed
	}
	var checked []*backend
	for _, kind := range abi.RecordKinds() {
		if b := g.routes[kind]; !slices.Contains(checked, b) {
			checked = append(checked, b)
		}
	}
	errs := make([]error, len(checked))
	var wg sync.WaitGroup
	for i, b := range checked {
		wg.Go(func() {
			err := b.ready(ctx)
			if err != nil && !strings.HasPrefix(err.Error(), "backend "+b.def.Name+": ") {
				err = fmt.Errorf("backend %s: %w", b.def.Name, err)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Config returns the configuration being served.
func (m *Manager) Config() *config.File {
	if g := m.current.Load(); g != nil {
		return g.file
	}
	return nil
}

// Store returns the store of the backend name, for tools (backup,
// inspection) that work on one backend; false when the configuration
// does not define it, or it is not open.
func (m *Manager) Store(name string) (*host.Store, bool) {
	b, ok := m.current.Load().backend(name)
	if !ok || b.store == nil {
		return nil, false
	}
	return b.store, true
}

// Reload makes f the configuration being served: backends that are new or
// whose definition changed are opened, and only once all of them are open
// are the routes switched; then backends no longer used are closed after
// their calls in flight finish. If any backend fails to open, nothing
// changes and the old configuration keeps serving; but a backend that
// replaces one that is not open either is not open in its turn (New),
// and does not hold the reload back.
func (m *Manager) Reload(ctx context.Context, f *config.File) (Change, error) {
	m.lock <- struct{}{}
	defer m.unlock()
	if m.closed {
		return Change{}, host.ErrClosed
	}
	old := m.current.Load()
	g, ch, paused, err := m.build(ctx, f, old)
	if err == nil {
		err = takesDown(ctx, old, g)
		if err != nil {
			for name, b := range g.backends {
				if prev, ok := old.backend(name); (!ok || prev != b) && b.store != nil {
					_ = b.store.Close(context.WithoutCancel(ctx))
				}
			}
			for _, b := range paused {
				m.retryOpen(b)
			}
		}
	}
	if err != nil {
		m.metrics.reloaded(false)
		return Change{}, err
	}
	m.current.Store(g)
	for _, name := range append(slices.Clone(ch.Added), ch.Replaced...) {
		if st := g.backends[name].store; st != nil {
			st.TakeReplay()
		}
	}
	m.startOpening(g, old)
	m.metrics.reloaded(true)
	m.rerouted(g)
	for _, name := range append(slices.Clone(ch.Replaced), ch.Removed...) {
		m.retire(old.backends[name])
	}
	return ch, nil
}

// readyWait bounds how long a reload waits for a backend it opened to
// answer (takesDown).
const readyWait = 5 * time.Second

// takesDown returns why g would serve a record kind that old serves with
// a ready backend through a new or replaced one that is not ready (a
// Redis that does not answer: a port or a password mistyped, which the
// file's checks cannot see, since a Redis may be away when a daemon
// starts): the reload is refused and old keeps serving. A kind old
// served with a backend that was not ready either is not held back.
func takesDown(ctx context.Context, old, g *generation) error {
	if old == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	for _, kind := range abi.RecordKinds() {
		nb, ob := g.routes[kind], old.routes[kind]
		if ob == nil || nb == ob {
			continue
		}
		err := nb.ready(ctx)
		if err == nil || ob.ready(ctx) != nil {
			continue
		}
		return fmt.Errorf("backend %s, which the file routes %s to, is not ready (%w), while backend %s serving them now is: the configuration is refused and the old one keeps serving; check the backend's connection, or reload again once its store answers",
			nb.def.Name, kind.Name(), err, ob.def.Name)
	}
	return nil
}

// retire closes a backend that is no longer routed once its calls in
// flight finish (bounded by DrainTimeout), or stops its attempts to open.
func (m *Manager) retire(b *backend) {
	if b.store == nil {
		b.stopOpening()
		return
	}
	m.closing.Add(1)
	go func() {
		defer m.closing.Done()
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.DrainTimeout)
		defer cancel()
		err := b.store.Close(ctx)
		if m.metrics != nil {
			m.metrics.retired(b)
		}
		if err != nil {
			m.log.Warn("retired backend closed with calls in flight", "backend", b.def.Name, "error", err)
			return
		}
		m.log.Debug("retired backend closed", "backend", b.def.Name)
	}()
}

// Close closes every backend after its calls in flight finish, or when ctx
// ends. The backends close at once, each in its own time: a store that
// stopped answering holds only its own backends' Close, which each bound
// by their call timeout.
func (m *Manager) Close(ctx context.Context) error {
	m.lock <- struct{}{}
	defer m.unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	g := m.current.Swap(nil)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, b := range g.backends {
		if b.store == nil {
			b.stopOpeningWithin(ctx)
			continue
		}
		wg.Go(func() {
			if err := b.store.Close(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	m.closing.Wait()
	if m.metrics != nil && m.opts.Registry != nil {
		m.opts.Registry.Unregister(m.metrics)
	}
	return errors.Join(errs...)
}

// backends returns the backends being served, for the metrics collector.
func (m *Manager) backends() []*backend {
	g := m.current.Load()
	if g == nil {
		return nil
	}
	out := make([]*backend, 0, len(g.backends))
	for _, b := range g.backends {
		out = append(out, b)
	}
	return out
}

// ReloadFile loads the configuration file at path, with the data
// directory of the configuration being served (config.WithDataDir),
// checks it (config.File.Check, with Options.Plugins and
// config.DeferPluginRuns) and reloads with it: a backend whose plugin
// failed its check is a backend that does not open.
// check, when set, may refuse the checked file before anything changes
// (the daemon refuses one that would leave a network listener without
// auth). A file that does not load or check is a failed reload like a
// backend that does not open: counted, returned, and the old
// configuration keeps serving.
func (m *Manager) ReloadFile(ctx context.Context, path string, check func(*config.File) error) (*config.File, Change, error) {
	var opts []config.Option
	if g := m.current.Load(); g != nil && g.file.DataDir != "" {
		opts = append(opts, config.WithDataDir(g.file.DataDir))
	}
	f, err := config.Load(path, opts...)
	if err == nil {
		// A plugin that fails when run fails its backend, not the file
		// (config.DeferPluginRuns): a backend waiting to open after such
		// a failure must not keep every other backend from reloading.
		err = f.Check(ctx, config.WithPluginCache(m.opts.Plugins), config.DeferPluginRuns())
	}
	if err == nil && check != nil {
		err = check(f)
	}
	if err != nil {
		m.metrics.reloaded(false)
		return nil, Change{}, err
	}
	ch, err := m.Reload(ctx, f)
	return f, ch, err
}
