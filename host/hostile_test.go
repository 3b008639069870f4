package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// The hostile tests load the plugins of testdata/plugins/hostile. Each is
// a valid plugin (handshake, metadata, configure) that misbehaves in one
// way when a test asks it to: by the op, by the first byte of the agent ID
// it is asked for, or by the host clock (SECURITY.md lists the threats).
// For every case the caller gets an error matching the expected sentinel
// and saying what happened, the host keeps running, another backend keeps
// serving, and the hostile backend recovers: well-behaved calls succeed
// afterwards, more times than it has instances, and Close works.
//
// Every wait is bounded: a call that has not returned in time is reported
// as a hang and its context cancelled, so the test goes on to report the
// rest.

const hostileDir = foreignDir + "/hostile"

func hostilePath(name string) string { return filepath.Join(hostileDir, name+".wasm") }

// hostileInstances is the pool size of every hostile backend; recovery is
// checked over more calls than this.
const hostileInstances = 2

// hostileLimits are small, so that every limit is reached quickly; but for
// the call timeout, which must not cut short a call that fails otherwise on
// a loaded machine with -race (a stack overflow alone allocates some 160 MB
// of stack in wazero and takes 50 ms, or over a second with -race).
var hostileLimits = host.Limits{
	MemoryPages:       64, // 4 MiB
	CallTimeout:       20 * time.Second,
	MaxResponseBytes:  1 << 20,
	MaxHostCalls:      1000,
	LogLinesPerSecond: 5,
	MaxLogLineBytes:   100,
}

// hostileLoopLimits are those of the plugins that never return: the call
// timeout is what stops them.
var hostileLoopLimits = func() host.Limits {
	l := hostileLimits
	l.CallTimeout = 200 * time.Millisecond
	return l
}()

// hostileBound bounds every wait for a call that should return.
const hostileBound = 30 * time.Second

// hostileBounded runs f with a context of its own and returns how long it
// took. If f has not returned within bound, that is a hang: it is reported,
// and the context cancelled so that the test can go on; if f ignores that
// too, the test stops. Call it from the test's goroutine only.
func hostileBounded(t *testing.T, bound time.Duration, what string, f func(context.Context) error) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(bound):
	}
	t.Errorf("host bug: %s did not return within %v; cancelling its context", what, bound)
	cancel()
	select {
	case err := <-done:
		t.Logf("%s returned %v after its context was cancelled", what, err)
		return time.Since(start), err
	case <-time.After(hostileBound):
		t.Fatalf("host bug: %s ignored the cancellation of its context for %v", what, hostileBound)
	}
	return 0, nil
}

// hostileBystander is another backend, the built-in memory plugin, that
// must keep serving while the hostile plugins misbehave: a goroutine
// writes and reads it for the whole test, and check makes a round trip on
// demand.
type hostileBystander struct {
	st    *host.Store
	trips atomic.Int64
	next  atomic.Int64
	stop  chan struct{}
	done  chan error
}

func newHostileBystander(t *testing.T) *hostileBystander {
	t.Helper()
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{}, host.WithCompilationCache(""))
	require.NoError(t, err)
	b := &hostileBystander{st: st, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		tick := time.NewTicker(5 * time.Millisecond) // pacing, not timing
		defer tick.Stop()
		for {
			select {
			case <-b.stop:
				b.done <- nil
				return
			case <-tick.C:
			}
			if err := b.roundTrip(); err != nil {
				b.done <- err
				return
			}
			b.trips.Add(1)
		}
	}()
	t.Cleanup(func() {
		close(b.stop)
		select {
		case err := <-b.done:
			assert.NoError(t, err, "the other backend failed while hostile plugins ran")
		case <-time.After(hostileBound):
			t.Error("a round trip to the other backend hung")
		}
		assert.NoError(t, b.roundTrip(), "the other backend after all hostile plugins")
		t.Logf("the other backend made %d round trips in the background", b.trips.Load())
		assert.NoError(t, st.Close(ctx))
	})
	return b
}

// roundTrip writes an agent state to the other backend and reads it back.
func (b *hostileBystander) roundTrip() error {
	ctx, cancel := context.WithTimeout(context.Background(), hostileBound)
	defer cancel()
	id := fmt.Sprintf("bystander-%d", b.next.Add(1))
	put, err := b.st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(id)})
	if err != nil {
		return fmt.Errorf("other backend: put: %w", err)
	}
	got, err := b.st.GetAgentState(ctx, id)
	if err != nil {
		return fmt.Errorf("other backend: get: %w", err)
	}
	if !bytes.Equal(got.State, []byte(id)) || got.Version != put.Version {
		return fmt.Errorf("other backend: got %+v after putting %+v", got, put)
	}
	return nil
}

func (b *hostileBystander) check(t *testing.T) {
	t.Helper()
	require.NoError(t, b.roundTrip())
}

// hostileOpen opens the hostile plugin name as an untrusted plugin (so
// with interruption checks), with hostileLimits and hostileInstances unless
// cfg sets its own, its logs going to log. It does not fail the test: some
// callers expect an error.
func hostileOpen(t *testing.T, name string, cfg host.Config, log *foreignLog, opts ...host.Option) (*host.Store, time.Duration, error) {
	t.Helper()
	cfg.Plugin = hostilePath(name)
	require.False(t, cfg.Trusted, "hostile plugins run untrusted")
	if cfg.Instances == 0 {
		cfg.Instances = hostileInstances
	}
	if cfg.Limits == (host.Limits{}) {
		cfg.Limits = hostileLimits
	}
	opts = append([]host.Option{host.WithCompilationCache(""), host.WithLogger(log.logger())}, opts...)
	// Open runs the plugin for its handshake, metadata and configure, each
	// bounded by the call timeout.
	bound := min(20*cfg.Limits.CallTimeout, hostileBound)
	var st *host.Store
	elapsed, err := hostileBounded(t, bound, "Open "+name, func(ctx context.Context) error {
		var err error
		st, err = host.Open(ctx, cfg, opts...)
		return err
	})
	return st, elapsed, err
}

// hostileStore is an open hostile backend, its log, and the bystander to
// check after each fault.
type hostileStore struct {
	st     *host.Store
	log    *foreignLog
	by     *hostileBystander
	limits host.Limits
}

func openHostile(t *testing.T, by *hostileBystander, name string, cfg host.Config, opts ...host.Option) *hostileStore {
	t.Helper()
	h := &hostileStore{log: &foreignLog{}, by: by, limits: cfg.Limits}
	if h.limits == (host.Limits{}) {
		h.limits = hostileLimits
	}
	var err error
	h.st, _, err = hostileOpen(t, name, cfg, h.log, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := hostileBounded(t, hostileBound, "Close "+name, h.st.Close)
		assert.NoError(t, err)
		assert.NoError(t, by.roundTrip(), "the other backend after %s closed", name)
	})
	return h
}

// discarded is how many instances the backend discarded (its log of them
// is rate-limited).
func (h *hostileStore) discarded() int { return int(h.st.Stats().Traps) }

// get asks the plugin for the agent state id, whose first byte chooses the
// misbehaviour.
func (h *hostileStore) get(t *testing.T, id string) (host.AgentState, time.Duration, error) {
	t.Helper()
	var got host.AgentState
	elapsed, err := hostileBounded(t, hostileBound, "get "+id, func(ctx context.Context) error {
		var err error
		got, err = h.st.GetAgentState(ctx, id)
		return err
	})
	return got, elapsed, err
}

// requireServes checks that the hostile backend serves well-behaved calls,
// more of them than it has instances, and that the other backend does too.
func (h *hostileStore) requireServes(t *testing.T) {
	t.Helper()
	for i := range hostileInstances + 1 {
		_, err := hostileBounded(t, hostileBound, "ping", h.st.Ping)
		require.NoError(t, err, "well-behaved call %d after a fault", i)
	}
	h.by.check(t)
}

// hostileFault is one misbehaviour and what the caller must be told.
type hostileFault struct {
	name string
	do   func(context.Context, *host.Store) error
	want error    // the sentinel the error matches
	says []string // substrings of the error's message
	// discards: the instance is discarded (a trap, a timeout, a bad
	// region), which the host logs once per fault.
	discards bool
	// slow: the fault is a call timeout, so the call lasts at least
	// Limits.CallTimeout.
	slow bool
	// rounds is how many faults each concurrent caller provokes.
	// Default: 3.
	rounds int
}

func hostileGet(id string) func(context.Context, *host.Store) error {
	return func(ctx context.Context, st *host.Store) error {
		_, err := st.GetAgentState(ctx, id)
		return err
	}
}

func (f hostileFault) check(t assert.TestingT, err error) bool {
	if !assert.ErrorIs(t, err, f.want, f.name) {
		return false
	}
	for _, s := range f.says {
		if !assert.ErrorContains(t, err, s, f.name) {
			return false
		}
	}
	return true
}

// exercise provokes f more times than the pool has instances, checking the
// error each time and that well-behaved calls are served after it; then
// from several goroutines at once, interleaved with well-behaved calls.
// When f discards instances, it checks that each fault discarded one.
func (h *hostileStore) exercise(t *testing.T, f hostileFault) {
	t.Helper()
	before := h.discarded()
	faults := 0
	for range hostileInstances + 2 {
		elapsed, err := hostileBounded(t, hostileBound, f.name, func(ctx context.Context) error { return f.do(ctx, h.st) })
		faults++
		if !f.check(t, err) {
			t.FailNow()
		}
		if f.slow {
			require.GreaterOrEqual(t, elapsed, h.limits.CallTimeout, "%s: stopped by the call timeout", f.name)
		}
		h.requireServes(t)
	}

	var concurrent atomic.Int64
	var wg sync.WaitGroup
	rounds := f.rounds
	if rounds == 0 {
		rounds = 3
	}
	for range 2 * hostileInstances {
		wg.Go(func() {
			for range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), hostileBound)
				err := f.do(ctx, h.st)
				concurrent.Add(1)
				ok := f.check(t, err)
				if ok {
					ok = assert.NoError(t, h.st.Ping(ctx), "well-behaved call between faults")
				}
				cancel()
				if !ok {
					return
				}
			}
		})
	}
	wg.Wait()
	h.requireServes(t)
	if f.discards {
		require.Equal(t, faults+int(concurrent.Load()), h.discarded()-before,
			"%s: every fault discards its instance, and nothing else does", f.name)
	}
}

// assertOneOf checks that err matches one of the sentinels.
func assertOneOf(t *testing.T, err error, sentinels ...error) bool {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return assert.Failf(t, "unexpected error", "%v matches none of %v", err, sentinels)
}

func TestHostile(t *testing.T) {
	by := newHostileBystander(t)
	t.Run("loop", func(t *testing.T) { testHostileLoop(t, by) })
	t.Run("grow", func(t *testing.T) { testHostileGrow(t, by) })
	t.Run("leak", func(t *testing.T) { testHostileLeak(t, by) })
	t.Run("recursion", func(t *testing.T) { testHostileRecursion(t, by) })
	t.Run("badregion", func(t *testing.T) { testHostileBadRegion(t, by) })
	t.Run("garbage", func(t *testing.T) { testHostileGarbage(t, by) })
	t.Run("hostcalls", func(t *testing.T) { testHostileHostCalls(t, by) })
	t.Run("logflood", func(t *testing.T) { testHostileLogFlood(t, by) })
}

// testHostileLoop: calls that never return are stopped by the call timeout
// or by the caller's context, wherever the plugin spins.
func testHostileLoop(t *testing.T, by *hostileBystander) {
	t.Run("storage_call", func(t *testing.T) {
		h := openHostile(t, by, "loop", host.Config{Limits: hostileLoopLimits})
		h.exercise(t, hostileFault{
			name:     "get spins in storage_call",
			do:       hostileGet("a"),
			want:     host.ErrLimit,
			says:     []string{"backend loop", "storage_call(get_agent_state) ran past the call timeout of 200ms"},
			discards: true, slow: true,
		})
	})

	t.Run("storage_reserve", func(t *testing.T) {
		h := openHostile(t, by, "loop", host.Config{Limits: hostileLoopLimits})
		h.exercise(t, hostileFault{
			name: "put of 64 KiB spins in storage_reserve",
			do: func(ctx context.Context, st *host.Store) error {
				_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: make([]byte, 64<<10)})
				return err
			},
			want:     host.ErrLimit,
			says:     []string{"backend loop", "storage_reserve ran past the call timeout of 200ms"},
			discards: true, slow: true,
		})
	})

	t.Run("cancelled context", func(t *testing.T) {
		// The call timeout is an hour away: only the caller can stop the call.
		limits := hostileLoopLimits
		limits.CallTimeout = time.Hour
		limits.LogLinesPerSecond = 1000
		h := openHostile(t, by, "loop", host.Config{Limits: limits})
		const spinning = "loop: spinning in storage_call"
		for range hostileInstances + 2 {
			before := strings.Count(h.log.String(), spinning)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := h.st.GetAgentState(ctx, "a")
				done <- err
			}()
			require.Eventually(t, func() bool { return strings.Count(h.log.String(), spinning) > before },
				hostileBound, time.Millisecond, "the plugin logs before it spins")
			cancel()
			select {
			case err := <-done:
				require.ErrorIs(t, err, context.Canceled)
				require.ErrorContains(t, err, "backend loop")
			case <-time.After(hostileBound):
				t.Fatalf("host bug: cancelling the context did not stop a spinning call within %v", hostileBound)
			}
			h.requireServes(t)
		}
		for range hostileInstances + 2 {
			elapsed, err := hostileBounded(t, hostileBound, "get with a deadline", func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
				_, err := h.st.GetAgentState(ctx, "a")
				return err
			})
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorContains(t, err, "backend loop")
			require.GreaterOrEqual(t, elapsed, 50*time.Millisecond)
			h.requireServes(t)
		}
		require.Equal(t, 2*(hostileInstances+2), h.discarded(), "every interrupted instance is discarded")
	})

	// Close waits for a call in flight only until its context ends: then
	// it closes the instance under a call that never returns, and the
	// call fails.
	t.Run("close while spinning", func(t *testing.T) {
		limits := hostileLoopLimits
		limits.CallTimeout = time.Hour
		limits.LogLinesPerSecond = 1000
		var log foreignLog
		st, _, err := hostileOpen(t, "loop", host.Config{Limits: limits}, &log)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			_, err := st.GetAgentState(context.Background(), "a")
			done <- err
		}()
		require.Eventually(t, func() bool { return strings.Contains(log.String(), "loop: spinning in storage_call") },
			hostileBound, time.Millisecond, "the plugin logs before it spins")
		_, err = hostileBounded(t, hostileBound, "Close during a spinning call", func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			return st.Close(ctx)
		})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "closed with calls in flight")
		select {
		case err := <-done:
			t.Log(err)
			require.Error(t, err, "the spinning call is stopped")
		case <-time.After(hostileBound):
			t.Fatalf("host bug: a call spinning when its store was closed did not return within %v", hostileBound)
		}
		_, err = st.GetAgentState(context.Background(), "a")
		require.ErrorIs(t, err, host.ErrClosed)
		by.check(t)
	})

	// Spinning while the first instance is set up: Open must fail within
	// about the call timeout, not hang.
	t.Run("open", func(t *testing.T) {
		for _, tc := range []struct {
			at     int64 // the host clock, which chooses the export that spins
			export string
		}{
			{-1, "_initialize"},
			{-2, "storage_metadata"},
			{-3, "configure"},
		} {
			t.Run(tc.export, func(t *testing.T) {
				clock := newForeignClock()
				clock.ns.Store(tc.at)
				var log foreignLog
				st, elapsed, err := hostileOpen(t, "loop", host.Config{Limits: hostileLoopLimits}, &log, host.WithClock(clock.Now))
				if st != nil {
					assert.NoError(t, st.Close(context.Background()))
				}
				require.Error(t, err, "Open of a plugin spinning in %s", tc.export)
				t.Logf("after %v: %v", elapsed.Round(time.Millisecond), err)
				assert.Less(t, elapsed, 20*hostileLoopLimits.CallTimeout,
					"host bug: Open of a plugin spinning in %s is not bounded by the call timeout", tc.export)
				assertOneOf(t, err, host.ErrIncompatible, host.ErrLimit)
				assert.ErrorContains(t, err, tc.export)
				by.check(t)
			})
		}
	})

	// Spinning while a later instance is set up: the caller that needed it
	// gets ErrLimit, the pool slot is freed, and the next instance serves.
	t.Run("new instance", func(t *testing.T) {
		for _, tc := range []struct {
			at     int64
			export string
		}{
			{-1, "_initialize"},
			{-3, "configure"},
		} {
			t.Run(tc.export, func(t *testing.T) {
				clock := newForeignClock()
				h := openHostile(t, by, "loop", host.Config{Limits: hostileLoopLimits}, host.WithClock(clock.Now))
				for range hostileInstances + 2 {
					// Discard the idle instance, so that the next call needs a new one.
					_, _, err := h.get(t, "a")
					require.ErrorIs(t, err, host.ErrLimit)
					clock.ns.Store(tc.at)
					elapsed, err := hostileBounded(t, hostileBound, "ping needing a new instance", h.st.Ping)
					require.Error(t, err)
					t.Logf("after %v: %v", elapsed.Round(time.Millisecond), err)
					assert.ErrorIs(t, err, host.ErrLimit,
						"host bug: a new instance spinning in %s: Limits.CallTimeout promises ErrLimit", tc.export)
					assert.ErrorContains(t, err, tc.export)
					assert.Less(t, elapsed, 20*hostileLoopLimits.CallTimeout, "bounded by the call timeout")
					clock.ns.Store(newForeignClock().ns.Load())
					h.requireServes(t)
				}
			})
		}
	})
}

// testHostileGrow: a plugin that grows its memory until refused is bounded
// by Limits.MemoryPages; answering or trapping, it fails only its call.
func testHostileGrow(t *testing.T, by *hostileBystander) {
	h := openHostile(t, by, "grow", host.Config{})
	h.exercise(t, hostileFault{
		name: "grow until refused, then answer",
		do:   hostileGet("a"),
		want: host.ErrLimit, // the plugin's own answer
		says: []string{"grow: memory.grow(1) refused at 64 pages"},
	})
	pages := regexp.MustCompile(`refused at (\d+) pages`)
	h.exercise(t, hostileFault{
		name: "one grow to 4 GiB",
		do: func(ctx context.Context, st *host.Store) error {
			err := hostileGet("h")(ctx, st)
			if m := pages.FindStringSubmatch(fmt.Sprint(err)); m != nil {
				if n, _ := strconv.Atoi(m[1]); n < 1 || n > 64 {
					return fmt.Errorf("memory is %d pages: %w", n, err)
				}
			}
			return err
		},
		want: host.ErrLimit,
		says: []string{"grow: memory.grow(65535) refused at"},
	})
	h.exercise(t, hostileFault{
		name:     "grow until refused, then trap",
		do:       hostileGet("t"),
		want:     host.ErrLimit, // a trap at its memory's limit: out of memory
		says:     []string{"backend grow", "storage_call(get_agent_state) failed with its memory at", "as a plugin does that ran out of memory"},
		discards: true,
	})

	// The bound is the configured one.
	limits := hostileLimits
	limits.MemoryPages = 16
	small := openHostile(t, by, "grow", host.Config{Limits: limits})
	_, _, err := small.get(t, "a")
	require.ErrorIs(t, err, host.ErrLimit)
	require.ErrorContains(t, err, "refused at 16 pages")
	small.requireServes(t)
}

// testHostileLeak: a plugin that leaks memory on every call never takes a
// call down: an instance whose memory grew half way to Limits.MemoryPages
// is closed after its call, before the leak reaches the limit, and its
// replacement starts small again.
func testHostileLeak(t *testing.T, by *hostileBystander) {
	h := openHostile(t, by, "leak", host.Config{})
	// Sequential calls take the one idle instance: one page, then 16 more
	// a call; past 32 of the 64 it is closed once the call returns.
	for cycle := range hostileInstances + 1 {
		for _, pages := range []uint64{17, 33} {
			got, _, err := h.get(t, "leak") // the agent it answers for
			require.NoError(t, err)
			require.Equal(t, pages, got.Version, "cycle %d: memory pages after this call", cycle)
		}
		h.requireServes(t)
	}
	require.EqualValues(t, hostileInstances+1, h.st.Stats().Retired)

	// Concurrently: every call grows an instance, none fails.
	var wg sync.WaitGroup
	for range 2 * hostileInstances {
		wg.Go(func() {
			for range 8 {
				ctx, cancel := context.WithTimeout(context.Background(), hostileBound)
				got, err := h.st.GetAgentState(ctx, "leak")
				cancel()
				if !assert.NoError(t, err) {
					return
				}
				assert.Contains(t, []uint64{17, 33}, got.Version)
			}
		})
	}
	wg.Wait()
	require.Zero(t, h.discarded(), "no instance trapped")
	require.Zero(t, h.st.Stats().Traps)
	h.requireServes(t)
}

// testHostileRecursion: unbounded recursion overflows the stack: a trap.
func testHostileRecursion(t *testing.T, by *hostileBystander) {
	h := openHostile(t, by, "recursion", host.Config{})
	h.exercise(t, hostileFault{
		name:     "recurse forever",
		do:       hostileGet("a"),
		want:     host.ErrInternal,
		says:     []string{"backend recursion", "stack overflow"},
		discards: true,
		rounds:   1, // each overflow allocates some 160 MB
	})
}

// testHostileBadRegion: every region the host reads or writes is checked
// against the plugin's memory.
func testHostileBadRegion(t *testing.T, by *hostileBystander) {
	t.Run("metadata", func(t *testing.T) {
		for at, region := range map[int64]string{
			-1: "metadata region [2147418112, +26) is outside the plugin's 65536 bytes of memory",
			-2: "metadata region [0, +4294967295) is outside",
			-3: "metadata region [4294967280, +32) is outside",
			-4: "metadata region [65537, +0) is outside",
		} {
			clock := newForeignClock()
			clock.ns.Store(at)
			var log foreignLog
			st, _, err := hostileOpen(t, "badregion", host.Config{}, &log, host.WithClock(clock.Now))
			if st != nil {
				assert.NoError(t, st.Close(context.Background()))
			}
			require.ErrorIs(t, err, host.ErrIncompatible, region)
			require.ErrorContains(t, err, region)
		}
		by.check(t)
	})

	t.Run("storage_reserve", func(t *testing.T) {
		h := openHostile(t, by, "badregion", host.Config{})
		for _, tc := range []struct {
			name  string
			size  int
			where string
		}{
			{"past the end", 0x4000, "[65280, +"},  // 256 bytes before the end of one page
			{"wrapping", 0x8000, "[4294967280, +"}, // 0xfffffff0
			{"far", 0x10000, "[2147418112, +"},     // 0x7fff0000
		} {
			h.exercise(t, hostileFault{
				name: "storage_reserve returns a region " + tc.name,
				do: func(ctx context.Context, st *host.Store) error {
					_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: make([]byte, tc.size)})
					return err
				},
				want:     host.ErrInternal,
				says:     []string{"backend badregion", "storage_reserve returned region " + tc.where, "outside memory"},
				discards: true,
			})
		}
	})

	t.Run("storage_call", func(t *testing.T) {
		h := openHostile(t, by, "badregion", host.Config{})
		for _, tc := range []struct {
			id   string
			want error
			says string
		}{
			{"p", host.ErrInternal, "response region [2147418112, +1) is outside the plugin's 65536 bytes of memory"},
			{"o", host.ErrInternal, "response region [4294967280, +32) is outside"},
			{"m", host.ErrInternal, "response region [0, +65537) is outside"},
			{"e", host.ErrInternal, "response region [65537, +0) is outside"},
			// A region outside memory is a broken plugin whatever its
			// length (INTERNAL, not a LIMIT a client would retry); one in
			// memory is held to Limits.MaxResponseBytes.
			{"l", host.ErrInternal, "response region [0, +4294967295) is outside the plugin's 65536 bytes of memory"},
			{"g", host.ErrLimit, "response of 2097152 bytes is over the limit of 1048576"},
		} {
			h.exercise(t, hostileFault{
				name:     "storage_call answers " + tc.id,
				do:       hostileGet(tc.id),
				want:     tc.want,
				says:     []string{"backend badregion", tc.says},
				discards: true,
			})
		}
	})

	t.Run("no response limit", func(t *testing.T) {
		// With no room under MaxResponseBytes, an absurd length still
		// fails the bounds check; and the 2 MiB response was legitimate.
		limits := hostileLimits
		limits.MaxResponseBytes = math.MaxUint32
		h := openHostile(t, by, "badregion", host.Config{Limits: limits})
		h.exercise(t, hostileFault{
			name:     "storage_call answers a region of 4 GiB",
			do:       hostileGet("l"),
			want:     host.ErrInternal,
			says:     []string{"response region [0, +4294967295) is outside"},
			discards: true,
		})
		got, _, err := h.get(t, "g")
		require.NoError(t, err)
		require.Equal(t, "g", got.AgentID)
		require.Len(t, got.State, 2<<20-9)
		h.requireServes(t)
	})
}

// testHostileGarbage: bytes that do not decode are refused with a clear
// error, at Open for the metadata, per call for responses.
func testHostileGarbage(t *testing.T, by *hostileBystander) {
	t.Run("metadata", func(t *testing.T) {
		for at, says := range map[int64]string{
			// Where the decoder stopped, and in which field of the ABI's
			// description (abi/messages.json), for the plugin's author.
			-1: "metadata: abi: malformed message at byte 0 of 11, in Metadata.abi_major (u16): an unsigned LEB128 longer than 10 bytes", // an overlong uvarint
			-2: "metadata: abi: truncated message at byte 10 of 10, in Metadata.version (string length): past the end of the message",    // cut after the name
			-3: "metadata: abi: malformed message at byte 24 of 25, after the last field of Metadata, which ends at byte 24",             // a trailing byte
			-4: "metadata: abi: malformed message at byte 17 of 22, in Metadata.capabilities (count): 4294967295 elements in 0 bytes",    // 2^32 - 1 capabilities
			-5: "metadata: abi: malformed message at byte 0 of 20, in Metadata.abi_major (u16): 70000 does not fit u16",                  // abi major 70000
			-6: "metadata: storage_metadata returned no bytes",                                                                           // empty
		} {
			clock := newForeignClock()
			clock.ns.Store(at)
			var log foreignLog
			st, _, err := hostileOpen(t, "garbage", host.Config{}, &log, host.WithClock(clock.Now))
			if st != nil {
				assert.NoError(t, st.Close(context.Background()))
			}
			require.ErrorIs(t, err, host.ErrIncompatible, "clock %d", at)
			require.ErrorContains(t, err, says, "clock %d", at)
		}
		// A configure answered OK with a body where the ABI gives an
		// empty one fails the Open, naming it.
		clock := newForeignClock()
		clock.ns.Store(-7)
		var log foreignLog
		st, _, err := hostileOpen(t, "garbage", host.Config{}, &log, host.WithClock(clock.Now))
		if st != nil {
			assert.NoError(t, st.Close(context.Background()))
		}
		require.ErrorIs(t, err, host.ErrInternal)
		require.ErrorContains(t, err, "configure response: answered OK with 10 bytes of body; the OK body of configure is empty")
		by.check(t)
	})

	t.Run("responses", func(t *testing.T) {
		h := openHostile(t, by, "garbage", host.Config{})
		got, _, err := h.get(t, "v")
		require.NoError(t, err, "the well-formed answer")
		require.Equal(t, "v", got.AgentID)
		for _, tc := range []struct {
			id   string
			says []string
		}{
			{"u", []string{"unknown status 200 (a response starts with its status, one byte below 10: is it missing?): garbage: status 200"}},
			// Where the decoder stopped, for the plugin's author: the
			// overlong varint at its start, the trailing byte past the end.
			{"b", []string{"backend garbage", "get_agent_state response: abi: malformed message at byte 0 of 11, in AgentState.agent_id (string length): an unsigned LEB128"}},
			{"t", []string{"backend garbage", "get_agent_state response: abi: malformed message at byte 6 of 7, after the last field of AgentState, which ends at byte 6"}},
			{"s", []string{"backend garbage", "get_agent_state response: abi: truncated message"}},
			{"n", []string{"backend garbage", "get_agent_state response: abi: truncated message"}},
			{"e", []string{"empty response"}},
		} {
			h.exercise(t, hostileFault{
				name: "storage_call answers " + tc.id,
				do:   hostileGet(tc.id),
				want: host.ErrInternal,
				says: tc.says,
			})
		}
		// An OK answer with a body where the ABI gives an empty one.
		h.exercise(t, hostileFault{
			name: "delete answers OK with a body",
			do:   func(ctx context.Context, st *host.Store) error { return st.DeleteAgentState(ctx, "x") },
			want: host.ErrInternal,
			says: []string{"backend garbage", "delete_agent_state response: answered OK with 7 bytes of body; the OK body of delete_agent_state is empty"},
		})
		require.NoError(t, h.st.DeleteAgentState(context.Background(), "y"), "an empty OK body")
		got, _, err = h.get(t, "v")
		require.NoError(t, err)
		require.Equal(t, "v", got.AgentID)
	})
}

// testHostileHostCalls: host functions trap a call that hands them bad
// regions, asks for a result it has not got, or calls them too often.
func testHostileHostCalls(t *testing.T, by *hostileBystander) {
	h := openHostile(t, by, "hostcalls", host.Config{})
	for _, tc := range []struct{ id, what, says string }{
		{"l", "log message past memory", "log message region [2147418112, +5) is outside the plugin's 65536 bytes of memory"},
		{"L", "log message of 4 GiB", "log message region [0, +4294967295) is outside"},
		{"W", "log message wrapping", "log message region [4294967280, +32) is outside"},
		{"q", "kv request past memory", "kv request region [2147418112, +3) is outside"},
		{"S", "kv request's pointer and length swapped", "kv request region [3, +65534) is outside the plugin's 65536 bytes of memory (a length of 65534 is an address in memory, a pointer of 3 looks like a length: are they swapped?"},
		{"o", "kv output past memory", "kv output region [2147418112, +256) is outside"},
		{"w", "kv output wrapping", "kv output region [4294967288, +16) is outside"},
		{"r", "kv result never asked for", "storagehost_kv.result called with no pending result"},
		{"R", "kv result past memory", "kv output region [2147418112, +256) is outside"},
		{"c", "a million clock calls", "more than 1000 host calls in one request"},
		{"k", "a million kv calls", "more than 1000 host calls in one request"},
		{"f", "clock calls forever", "more than 1000 host calls in one request"},
	} {
		h.exercise(t, hostileFault{
			name:     tc.what,
			do:       hostileGet(tc.id),
			want:     host.ErrInternal,
			says:     []string{"backend hostcalls", tc.says},
			discards: true,
		})
	}
	// A kv call whose output region is outside memory traps before the
	// request is served: the put it asked for is not applied.
	h.exercise(t, hostileFault{
		name:     "kv put with its output past memory",
		do:       hostileGet("P"),
		want:     host.ErrInternal,
		says:     []string{"backend hostcalls", "kv output region [2147418112, +256) is outside"},
		discards: true,
	})
	_, _, err := h.get(t, "Q")
	require.ErrorIs(t, err, host.ErrNotFound, "the put of a call that trapped on its output region was not applied")

	// The count is per request: 900 calls, again and again, are fine.
	before := h.discarded()
	for range 2 * hostileInstances {
		got, _, err := h.get(t, "g")
		require.NoError(t, err)
		require.Equal(t, "g", got.AgentID)
	}
	require.Equal(t, before, h.discarded())
}

// testHostileLogFlood: floods through storagehost_log and WASI stdout are
// rate-limited and counted, long lines truncated; the calls succeed.
func testHostileLogFlood(t *testing.T, by *hostileBystander) {
	// Room for the 10 000 calls of a flood through storagehost_log. (WASI
	// calls are not host calls: Limits.MaxHostCalls does not count them.)
	limits := hostileLimits
	limits.MaxHostCalls = 100_000
	burst := int(limits.LogLinesPerSecond)

	flood := func(t *testing.T, id, line string) {
		start := time.Now()
		h := openHostile(t, by, "logflood", host.Config{Limits: limits})
		got, _, err := h.get(t, id)
		require.NoError(t, err, "a flood of log lines fails nothing")
		require.Equal(t, id, got.AgentID)
		// The bucket starts full: the burst, then the rate since.
		allowed := burst + int(limits.LogLinesPerSecond*time.Since(start).Seconds()) + 1
		n := strings.Count(h.log.String(), line)
		require.Positive(t, n, "the first lines get through")
		require.LessOrEqual(t, n, allowed, "at most the burst and the rate get through")

		// The dropped lines are counted in warnings, each logged with the
		// next line that passes: a ping logs one.
		dropped := regexp.MustCompile(`plugin log lines dropped by the rate limit: dropped=(\d+)`)
		counted := func() (sum int) {
			for _, m := range dropped.FindAllStringSubmatch(h.log.String(), -1) {
				d, _ := strconv.Atoi(m[1]) // digits, by the pattern
				sum += d
			}
			return sum
		}
		require.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), hostileBound)
			defer cancel()
			return assert.NoError(t, h.st.Ping(ctx)) && counted()+strings.Count(h.log.String(), line) >= 10_000
		}, hostileBound, 50*time.Millisecond, "every line of the flood is logged or counted as dropped")
		require.Equal(t, n, strings.Count(h.log.String(), line), "no flood line is logged after the call")
		h.requireServes(t)
	}
	t.Run("storagehost_log", func(t *testing.T) { flood(t, "f", "logflood: flood line") })
	t.Run("wasi fd_write per line", func(t *testing.T) { flood(t, "w", "logflood: wasi flood line") })
	t.Run("wasi fd_write of many lines", func(t *testing.T) { flood(t, "W", "logflood: x\n") })

	long := func(t *testing.T, id string, fill byte) {
		h := openHostile(t, by, "logflood", host.Config{})
		_, _, err := h.get(t, id)
		require.NoError(t, err)
		longest := 0
		for _, r := range regexp.MustCompile(regexp.QuoteMeta(string(fill))+"+").FindAllString(h.log.String(), -1) {
			longest = max(longest, len(r))
		}
		require.Positive(t, longest, "the long line is logged")
		assert.Equal(t, int(hostileLimits.MaxLogLineBytes), longest,
			"a line of 10 000 bytes is truncated to Limits.MaxLogLineBytes")
		h.requireServes(t)
	}
	t.Run("long line through storagehost_log", func(t *testing.T) { long(t, "T", 'A') })
	t.Run("long line through wasi", func(t *testing.T) { long(t, "U", 'B') })
	t.Run("long unterminated line through wasi", func(t *testing.T) { long(t, "V", 'C') })
}
