package manager

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// ErrNotOpen is the error of a call, a subscription or a tool that needs
// a backend which is not open: it failed to open when the manager started
// (or when a reload replaced one that had not opened either), and the
// manager keeps trying to open it. It matches abi.StatusUnavailable and
// events.ErrUnavailable: the daemon answers it 503.
var ErrNotOpen error = notOpen{}

type notOpen struct{}

func (notOpen) Error() string   { return "backend not open" }
func (notOpen) Unwrap() []error { return []error{abi.StatusUnavailable, events.ErrUnavailable} }

// The delays between attempts to open a backend that failed to: doubled
// after each failure, from openRetryFirst up to openRetryMost.
const (
	openRetryFirst = time.Second
	openRetryMost  = 30 * time.Second
)

// opener tries again, and again, to open a backend that failed to open.
// One plugin that keeps its own backend from opening (a migration that
// fails, role settings of its own, a data directory it filled) must not
// keep the daemon, and so every other backend, from serving: the backend
// waits here, its routes answer ErrNotOpen, and it serves once it opens.
type opener struct {
	mu     sync.Mutex
	err    error     // the last attempt's failure
	tries  int       // attempts failed
	next   time.Time // when the next attempt starts
	cancel context.CancelFunc
	done   chan struct{} // closed when the attempts have stopped
	// first is the first attempt, running since Start, until retryOpen
	// has taken what it found.
	first *attempt
}

// attempt is one attempt to open a backend, running on its own.
type attempt struct {
	st     *host.Store
	err    error
	cancel context.CancelFunc
	done   chan struct{} // closed once st and err are set
}

// errFirstAttempt is the failure a backend whose first attempt to open
// runs is said to have.
var errFirstAttempt = errors.New("its first attempt to open has not ended")

// firstAttempt returns backend def, its first attempt to open started
// under ctx (Start): it serves once retryOpen has published what the
// attempt opened.
func (m *Manager) firstAttempt(ctx context.Context, def config.Backend) *backend {
	ctx, cancel := context.WithCancel(ctx)
	a := &attempt{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.st, a.err = m.open(ctx, def, false, false)
	}()
	return &backend{def: def, opening: &opener{err: errFirstAttempt, first: a, next: time.Now()}, started: make(chan struct{})}
}

// stop cancels a, waits for it, and closes what it opened.
func (a *attempt) stop(ctx context.Context) {
	a.cancel()
	<-a.done
	if a.st != nil {
		_ = a.st.Close(context.WithoutCancel(ctx))
	}
}

// errFirstAttemptStopped is the failure of a backend whose first attempt
// to open was stopped (a reload replacing it, Close).
var errFirstAttemptStopped = errors.New("its first attempt to open was stopped")

// starting reports whether b's first attempt to open has yet to end.
func (b *backend) starting() bool {
	if b.started == nil {
		return false
	}
	select {
	case <-b.started:
		return false
	default:
		return true
	}
}

// logNotOpened logs the failure of a backend's first attempt to open.
func (m *Manager) logNotOpened(name string, err error) {
	m.log.Error("backend did not open; the others serve, its routes answer 503 until it opens, and it is tried again",
		"backend", name, "retry_in", openRetryFirst.String(), "error", err)
}

// failed records an attempt's failure and when the next one starts, and
// reports whether its reason is new (worth logging at error level).
func (o *opener) failed(err error, next time.Time) (tries int, changed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	err = bounded(err)
	changed = o.err == nil || o.err.Error() != err.Error()
	o.err, o.next = err, next
	o.tries++
	return o.tries, changed
}

// notOpenError is the error of a call routed to b, which is not open:
// with why, the last attempt's failure (the log has it too).
func (b *backend) notOpenError(why bool) error {
	o := b.opening
	o.mu.Lock()
	defer o.mu.Unlock()
	if b.starting() {
		return fmt.Errorf("backend %s: %w: %w", b.def.Name, ErrNotOpen, errFirstAttempt)
	}
	reason := ": see the daemon's log for why"
	if why {
		reason = ": " + o.err.Error()
	}
	return fmt.Errorf("backend %s: %w%s (failed %d times; next attempt in %s)", b.def.Name, ErrNotOpen, reason, o.tries,
		max(time.Until(o.next), 0).Round(time.Second))
}

// ready reports whether b serves: open, and its store ready. A backend
// not open is named without the failure's text, which may hold a
// plugin's words, paths and server messages: readiness needs no token.
func (b *backend) ready(ctx context.Context) error {
	if b.store == nil {
		return b.notOpenError(false)
	}
	return b.store.Ready(ctx)
}

// notOpened returns backend def, waiting to open again after err.
func notOpened(def config.Backend, err error) *backend {
	return &backend{def: def, opening: &opener{err: bounded(err), tries: 1, next: time.Now().Add(openRetryFirst)}}
}

// maxOpenError bounds the text of an open's failure that is kept, logged
// and answered (by every call routed to the backend, and /readyz): a
// plugin's migration may raise an error of megabytes, and its text may
// change at each attempt.
const maxOpenError = 4 << 10

// boundedError is an error whose text is cut to maxOpenError bytes, on
// one line; errors.Is and As see the error it cuts.
type boundedError struct {
	err  error
	text string
}

func (e *boundedError) Error() string { return e.text }
func (e *boundedError) Unwrap() error { return e.err }

// bounded returns err, its text cut to maxOpenError bytes (at a
// character's start, saying how much was cut) and made one line.
func bounded(err error) error {
	text := err.Error()
	cut := len(text)
	if cut > maxOpenError {
		i := maxOpenError
		for i > 0 && !utf8.RuneStart(text[i]) {
			i--
		}
		text = text[:i] + "… (" + strconv.Itoa(cut-i) + " bytes more)"
	}
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(text, "\ufffd"))
	if text == err.Error() {
		return err
	}
	return &boundedError{err: err, text: text}
}

// retryOpen starts the attempts to open b, which is not open, until one
// succeeds (the backend then serves in its place) or stopOpening stops
// them. Under m's lock, with b in the generation being served.
func (m *Manager) retryOpen(b *backend) {
	ctx, cancel := context.WithCancel(context.Background())
	o := b.opening
	o.mu.Lock()
	o.cancel, o.done = cancel, make(chan struct{})
	done, first := o.done, o.first
	o.first = nil
	o.mu.Unlock()
	log := m.log.With("backend", b.def.Name)
	go func() {
		defer close(done)
		if first != nil && m.firstEnded(ctx, b, first) {
			return
		}
		delay := openRetryFirst
		for {
			select {
			case <-time.After(time.Until(o.nextAttempt())):
			case <-ctx.Done():
				return
			}
			select {
			case m.attempts <- struct{}{}:
			case <-ctx.Done():
				return
			}
			def, err := m.recheck(ctx, b.def)
			var st *host.Store
			if err == nil {
				st, err = m.open(ctx, def, false, false)
			}
			<-m.attempts
			if err == nil {
				if m.publish(ctx, b, def, st) {
					log.Info("backend opened: it serves its routes now", "attempts", o.attempts()+1)
					return
				}
				_ = st.Close(context.WithoutCancel(ctx))
				return
			}
			if ctx.Err() != nil {
				return
			}
			delay = min(2*delay, openRetryMost)
			tries, changed := o.failed(err, time.Now().Add(delay))
			if changed {
				log.Error("backend did not open again; its routes answer 503 until it does", "attempts", tries, "retry_in", delay.String(), "error", bounded(err))
			} else {
				log.Debug("backend did not open again", "attempts", tries, "retry_in", delay.String())
			}
		}
	}()
}

// firstEnded waits for b's first attempt and serves what it opened in b's
// place, and closes b.started then; it reports whether the attempts are
// over: the first opened, or ctx (stopOpening) stopped them, which cancels
// the first and closes what it opened all the same.
func (m *Manager) firstEnded(ctx context.Context, b *backend, first *attempt) bool {
	defer close(b.started)
	select {
	case <-first.done:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		first.stop(ctx)
		b.opening.failed(errFirstAttemptStopped, time.Now().Add(openRetryFirst))
		return true
	}
	first.cancel()
	if first.err == nil {
		if !m.publish(ctx, b, b.def, first.st) {
			_ = first.st.Close(context.WithoutCancel(ctx))
		}
		return true
	}
	b.opening.failed(first.err, time.Now().Add(openRetryFirst))
	m.logNotOpened(b.def.Name, bounded(first.err))
	return false
}

func (o *opener) nextAttempt() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.next
}

func (o *opener) attempts() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tries
}

// stopOpening stops b's attempts, if it is not open, and waits for them:
// a store an attempt opened meanwhile is closed. Under m's lock.
func (b *backend) stopOpening() { b.stopOpeningWithin(context.Background()) }

// stopOpeningWithin is stopOpening, waiting at most until ctx ends (an
// attempt stopped then still closes what it opened, later).
func (b *backend) stopOpeningWithin(ctx context.Context) {
	if b.store != nil {
		return
	}
	o := b.opening
	o.mu.Lock()
	cancel, done := o.cancel, o.done
	o.cancel, o.done = nil, nil
	o.mu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

// recheck returns def, or, when its plugin failed its check
// (config.Backend.Unchecked), the definition a check finds now: with
// Options.Recheck, or else by checking the configuration being served
// again, that backend's plugin alone (config.Only). That configuration's
// routes are the ones the backend would serve; and a plugin file or a
// secret changed since it was loaded is not taken from here, but by the
// reload that applies the change with the rest of the file.
func (m *Manager) recheck(ctx context.Context, def config.Backend) (config.Backend, error) {
	if def.Unchecked == nil {
		return def, nil
	}
	var fresh config.Backend
	var err error
	if m.opts.Recheck != nil {
		fresh, err = m.opts.Recheck(ctx, def.Name)
	} else {
		fresh, err = m.checkServed(ctx, def)
	}
	if err == nil && fresh.Unchecked != nil {
		err = fresh.Unchecked
	}
	return fresh, err
}

// checkServed checks def again as the configuration being served defines
// it.
func (m *Manager) checkServed(ctx context.Context, def config.Backend) (config.Backend, error) {
	g := m.current.Load()
	if g == nil {
		return def, host.ErrClosed
	}
	f := *g.file // Check sets the copy's fields; the served file stays as it is
	if err := f.Check(ctx, config.WithPluginCache(m.opts.Plugins), config.DeferPluginRuns(), config.Only(def.Name)); err != nil {
		return def, err
	}
	fresh, ok := f.Backend(def.Name)
	switch {
	case !ok:
		return def, fmt.Errorf("the configuration served no longer defines backend %s", def.Name)
	case fresh.Digest != def.Digest:
		return def, fmt.Errorf("%w; its plugin file or a secret changed since the configuration was loaded: a reload applies the change", def.Unchecked)
	}
	return fresh, nil
}

// publish serves st, which an attempt opened, in b's place in the
// generation being served; false when b is no longer served (a reload
// replaced or removed it, or the manager closed), and st is then not used.
func (m *Manager) publish(ctx context.Context, b *backend, def config.Backend, st *host.Store) bool {
	select {
	case m.lock <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer m.unlock()
	g := m.current.Load()
	if g == nil || g.backends[b.def.Name] != b {
		return false
	}
	nb := &backend{def: def, store: st}
	ng := &generation{file: g.file, backends: make(map[string]*backend, len(g.backends)), routes: make(map[abi.RecordKind]*backend, len(g.routes))}
	for name, x := range g.backends {
		ng.backends[name] = x
	}
	ng.backends[b.def.Name] = nb
	for kind, x := range g.routes {
		if x == b {
			x = nb
		}
		ng.routes[kind] = x
	}
	m.current.Store(ng)
	return true
}
