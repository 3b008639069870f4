package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// The Go hostile plugins (testdata/plugins/gohostile) misbehave the way a
// real Go plugin would: they panic, leak memory until the Go runtime dies,
// or spin forever. They are built with the standard toolchain, once per
// test binary, the first time a test asks for one.

// goHostileBuilds holds, per plugin name, the build of
// testdata/plugins/gohostile/<name>: each is built once per test binary,
// the first time a test asks for it.
var goHostileBuilds sync.Map // name → *goHostileBuild

type goHostileBuild struct {
	once sync.Once
	wasm []byte
	err  error
}

// goHostilePlugin returns the module of the Go hostile plugin name,
// building it on first use. Like TestSandbox, it skips with -short.
func goHostilePlugin(t *testing.T, name string) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds Go plugins; skipped with -short")
	}
	v, _ := goHostileBuilds.LoadOrStore(name, &goHostileBuild{})
	b := v.(*goHostileBuild)
	b.once.Do(func() { b.wasm, b.err = buildGoHostile(name) })
	require.NoError(t, b.err)
	return b.wasm
}

// buildGoHostile builds one Go hostile plugin and returns its module; the
// build directory is removed before it returns.
func buildGoHostile(name string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "storage-host-gohostile-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, name+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/plugins/gohostile/"+name)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %w\n%s", name, err, b)
	}
	return os.ReadFile(out)
}

// openGoHostile opens cfg, which names a Go hostile plugin by its module,
// and returns the store and its logs (host and plugin, debug and up).
// Stores opened with one cache directory compile the module once: a Go
// module takes seconds to compile under the race detector.
func openGoHostile(t *testing.T, cfg host.Config, cache string) (*host.Store, *foreignLog) {
	t.Helper()
	logs := &foreignLog{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	st, err := host.Open(context.Background(), cfg, host.WithLogger(logger), host.WithCompilationCache(cache))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })
	return st, logs
}

// TestGoHostileInitPanic: a Go plugin that panics while it initialises
// (here the SDK refusing a plugin that serves queries of one kind and
// not the other) is refused at Open with what it wrote on stderr, not
// only the trap's stack.
func TestGoHostileInitPanic(t *testing.T) {
	wasm := goHostilePlugin(t, "halfquery")
	_, err := host.Open(context.Background(), host.Config{WASM: wasm}, host.WithCompilationCache(t.TempDir()))
	require.ErrorIs(t, err, host.ErrIncompatible)
	require.ErrorContains(t, err, "_initialize failed, and wrote on stderr: panic: sdk: queries are served for agent states (QueryAgentStates) but not for alerts (QueryAlerts)")
}

// goHostileDiscarded is what the host logs when it throws an instance away.
const goHostileDiscarded = "plugin instance discarded"

// TestGoHostilePanicky: a panic in a Go store is the SDK's to recover. It
// reaches the caller as ErrInternal with the panic value, and the
// instance, which did nothing wrong as far as the ABI goes, is kept with
// everything it holds.
func TestGoHostilePanicky(t *testing.T) {
	wasm := goHostilePlugin(t, "panicky")
	ctx := context.Background()
	cache := t.TempDir()
	panics := []struct{ id, want string }{
		{"panic-nil-map", "assignment to entry in nil map"},
		{"panic-index", "index out of range"},
		{"panic-nil", "nil pointer dereference"},
		{"panic-boom", "panicky: explicit boom"},
	}

	t.Run("instance lives on", func(t *testing.T) {
		// One instance: a state put before the panics is readable after
		// them only if that very instance survived.
		st, logs := openGoHostile(t, host.Config{WASM: wasm, Instances: 1}, cache)
		put, err := st.PutAgentState(ctx, host.AgentState{AgentID: "keep", State: []byte(`{"n":1}`)})
		require.NoError(t, err)
		for round := range 3 {
			for _, p := range panics {
				_, err := st.GetAgentState(ctx, p.id)
				require.ErrorIs(t, err, host.ErrInternal, "round %d, %s", round, p.id)
				require.ErrorContains(t, err, "panic")
				require.ErrorContains(t, err, p.want)
				require.Regexp(t, `at .*panicky/main\.go:\d+ \(main\.\(\*states\)\.GetAgentState\)`, err.Error(), "the SDK names where it panicked")

				got, err := st.GetAgentState(ctx, "keep")
				require.NoError(t, err, "after %s the instance still holds the state put before", p.id)
				require.Equal(t, put, got)
			}
		}
		require.NoError(t, st.Ping(ctx))
		require.NotContains(t, logs.String(), goHostileDiscarded)
	})

	t.Run("hammer", func(t *testing.T) {
		// Many panics at once, far more than there are instances, never
		// cost an instance or a pool slot.
		const instances, workers, each = 2, 8, 25
		st, logs := openGoHostile(t, host.Config{WASM: wasm, Instances: instances}, cache)
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				for i := range each {
					p := panics[(w+i)%len(panics)]
					_, err := st.GetAgentState(ctx, p.id)
					if !isGoHostilePanic(err, p.want) {
						errs <- fmt.Errorf("worker %d call %d (%s): %v", w, i, p.id, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range workers {
			require.NoError(t, <-errs)
		}
		// The pool still serves: one put per instance, at once, all
		// succeed, and nothing was ever discarded.
		var wg sync.WaitGroup
		for i := range instances {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("after-%d", i), State: []byte(`{}`)})
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
		require.NoError(t, st.Ping(ctx))
		require.NotContains(t, logs.String(), goHostileDiscarded)
	})
}

func isGoHostilePanic(err error, want string) bool {
	return errors.Is(err, host.ErrInternal) && strings.Contains(err.Error(), "panic") && strings.Contains(err.Error(), want)
}

// TestGoHostileLeaky: a plugin that leaks a MiB on every put never
// reaches its memory limit: the host closes an instance whose memory grew
// half way to Limits.MemoryPages once its call returns, and serves the
// next calls from a fresh one, holding nothing, cycle after cycle; no call
// fails, and another backend in the same process never notices.
func TestGoHostileLeaky(t *testing.T) {
	wasm := goHostilePlugin(t, "leaky")
	ctx := context.Background()
	// 16 MiB: the leak (1 MiB a put) would reach it within a few calls.
	st, logs := openGoHostile(t, host.Config{WASM: wasm, Instances: 1, Limits: host.Limits{MemoryPages: 256}}, t.TempDir())
	mem, err := host.Open(ctx, host.Config{}, host.WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	defer mem.Close(ctx)

	const puts = 64 // 64 MiB leaked in all: far past the limit
	var memIDs []string
	cycles, most := 0, uint64(0)
	var last uint64
	for i := range puts {
		got, err := st.PutAgentState(ctx, host.AgentState{AgentID: "leak", State: []byte(`{}`)})
		require.NoError(t, err, "put %d", i)
		if got.Version <= last {
			cycles++ // a fresh instance: its hoard started again
		}
		last, most = got.Version, max(most, got.Version)
		// The other backend keeps serving throughout.
		id := fmt.Sprintf("call-%d", i)
		_, err = mem.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(`{}`)})
		require.NoError(t, err)
		memIDs = append(memIDs, id)
	}
	t.Logf("%d puts: %d fresh instances, at most %d MiB hoarded by one", puts, cycles, most)
	require.GreaterOrEqual(t, cycles, 3, "instances were replaced")
	require.Less(t, most, uint64(16), "no instance hoarded up to its 16 MiB")
	stats := st.Stats()
	require.GreaterOrEqual(t, stats.Retired, uint64(cycles))
	require.Zero(t, stats.Traps)
	require.NotContains(t, logs.String(), goHostileDiscarded)
	require.NoError(t, st.Ping(ctx))
	for _, id := range memIDs {
		_, err := mem.GetAgentState(ctx, id)
		require.NoError(t, err, "the memory backend lost %s", id)
	}
}

// TestGoHostileOutOfMemory: a call that needs more memory than the
// instance may have (Go's runtime aborts when its memory cannot grow) is
// answered ErrLimit, as a request too large for the plugin, not
// ErrInternal; the instance is replaced and the next call served.
func TestGoHostileOutOfMemory(t *testing.T) {
	wasm := goHostilePlugin(t, "leaky")
	ctx := context.Background()
	st, _ := openGoHostile(t, host.Config{WASM: wasm, Instances: 1, Limits: host.Limits{MemoryPages: 256}}, t.TempDir())
	_, err := st.GetAgentState(ctx, "hoard-all")
	require.ErrorIs(t, err, host.ErrLimit)
	require.ErrorContains(t, err, "of its 16 MiB (Limits.MemoryPages), as a plugin does that ran out of memory")
	got, err := st.GetAgentState(ctx, "after")
	require.NoError(t, err)
	require.Zero(t, got.Version, "a fresh instance, holding nothing")
	require.EqualValues(t, 1, st.Stats().Traps)

	// One allocation larger than the limit, refused while the memory is
	// small: the same answer, as the host sees the refused memory.grow.
	_, err = st.GetAgentState(ctx, "hoard-at-once")
	require.ErrorIs(t, err, host.ErrLimit)
	require.ErrorContains(t, err, "as a plugin does that ran out of memory")
	require.EqualValues(t, 2, st.Stats().Traps)
	_, err = st.GetAgentState(ctx, "after")
	require.NoError(t, err)
}

// TestGoHostileSpinner: a call that never returns is stopped by
// Limits.CallTimeout (ErrLimit) or by the caller's context
// (context.DeadlineExceeded), in bounded time; the instance is replaced.
func TestGoHostileSpinner(t *testing.T) {
	wasm := goHostilePlugin(t, "spinner")
	ctx := context.Background()
	// A fresh Go instance (its runtime's start included) must start and
	// answer a ping within it, on a loaded machine too.
	const timeout = time.Second
	st, _ := openGoHostile(t, host.Config{WASM: wasm, Instances: 1, Limits: host.Limits{CallTimeout: timeout}}, t.TempDir())
	require.NoError(t, st.Ping(ctx))

	for round := range 2 {
		start := time.Now()
		_, err := st.GetAgentState(ctx, "spin")
		elapsed := time.Since(start)
		require.ErrorIs(t, err, host.ErrLimit, "round %d", round)
		require.Less(t, elapsed, 5*time.Second, "round %d: the call timeout stops a spinning call", round)
		require.GreaterOrEqual(t, elapsed, timeout, "round %d: not before the timeout", round)
		require.NoError(t, st.Ping(ctx), "round %d: a fresh instance serves the next call", round)
		require.Equal(t, uint64(round+1), st.Stats().Traps, "round %d: the spinning instance was discarded", round)
	}

	// The caller's deadline, shorter than the call timeout, stops it too.
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := st.GetAgentState(dctx, "spin")
	elapsed := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, host.ErrLimit, "the caller's deadline came first")
	require.Less(t, elapsed, 5*time.Second)
	require.NoError(t, st.Ping(ctx))
	require.Equal(t, uint64(3), st.Stats().Traps)

	// A spinner on one op does not stop the others from working.
	saved, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte(`{}`)})
	require.NoError(t, err)
	require.Equal(t, "a", saved.AgentID)
}

// TestGoHostileWriteThenFail: a write whose plugin fails after it wrote to
// its store (a panic the SDK recovers, a trap, a call stopped at its
// deadline) is ErrOutcomeUnknown, besides its own status, and this host's
// read cache forgets the record, so the next read shows what the write
// left; a write that fails before it wrote, and a read, keep their own
// status alone. So do an item of a bulk write and a single write sent in
// a shared batch that the plugin answers INTERNAL.
func TestGoHostileWriteThenFail(t *testing.T) {
	wasm := goHostilePlugin(t, "halfwrite")
	ctx := context.Background()
	st, _ := openGoHostile(t, host.Config{
		WASM:   wasm,
		Cache:  host.CacheOptions{Entries: 16},
		Limits: host.Limits{CallTimeout: time.Second}, // the spin case runs to it
	}, t.TempDir())

	for _, c := range []struct {
		doc    string
		status error // besides ErrOutcomeUnknown
	}{
		{"panic", host.ErrInternal},
		{"exit", host.ErrInternal},
		{"spin", nil},
	} {
		t.Run(c.doc, func(t *testing.T) {
			id := "agent-" + c.doc
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte("before")})
			require.NoError(t, err)
			got, err := st.GetAgentState(ctx, id)
			require.NoError(t, err)
			require.Equal(t, "before", string(got.State), "read, and cached")

			_, err = st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(c.doc)})
			require.ErrorIs(t, err, host.ErrOutcomeUnknown, "it failed after its kv put")
			if c.status != nil {
				require.ErrorIs(t, err, c.status)
			}
			got, err = st.GetAgentState(ctx, id)
			require.NoError(t, err)
			require.Equal(t, c.doc, string(got.State), "the cache forgot the record: the read shows what the write left")
		})
	}

	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "agent-early", State: []byte("panic-before")})
	require.ErrorIs(t, err, host.ErrInternal)
	require.NotErrorIs(t, err, host.ErrOutcomeUnknown, "it failed before it wrote anything")
	_, err = st.GetAgentState(ctx, "agent-early")
	require.ErrorIs(t, err, host.ErrNotFound)

	// In a bulk write the SDK answers a panic for its item alone; which
	// item wrote is unknown, so an item that failed in a batch that wrote
	// is ErrOutcomeUnknown, and one in a batch that wrote nothing is not.
	rs, err := st.PutAgentStates(ctx, []host.AgentState{{AgentID: "bulk-ok", State: []byte("fine")}, {AgentID: "bulk-failed", State: []byte("panic")}})
	require.NoError(t, err)
	require.NoError(t, rs[0].Err)
	require.ErrorIs(t, rs[1].Err, host.ErrOutcomeUnknown)
	require.ErrorIs(t, rs[1].Err, host.ErrInternal)
	got, err := st.GetAgentState(ctx, "bulk-failed")
	require.NoError(t, err)
	require.Equal(t, "panic", string(got.State), "what the failed item's write left")
	rs, err = st.PutAgentStates(ctx, []host.AgentState{{AgentID: "bulk-early", State: []byte("panic-before")}})
	require.NoError(t, err)
	require.ErrorIs(t, rs[0].Err, host.ErrInternal)
	require.NotErrorIs(t, rs[0].Err, host.ErrOutcomeUnknown, "the batch wrote nothing")

	// A single write sent as an item of a shared batch is answered the same.
	host.ShareEveryCall(st)
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "shared", State: []byte("panic")})
	require.ErrorIs(t, err, host.ErrOutcomeUnknown)
	require.ErrorIs(t, err, host.ErrInternal)
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "shared-early", State: []byte("panic-before")})
	require.ErrorIs(t, err, host.ErrInternal)
	require.NotErrorIs(t, err, host.ErrOutcomeUnknown)

	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "panic-read", State: []byte("x")})
	require.NoError(t, err)
	_, err = st.GetAgentState(ctx, "panic-read")
	require.ErrorIs(t, err, host.ErrInternal)
	require.NotErrorIs(t, err, host.ErrOutcomeUnknown, "a read changes nothing")
}

// TestRecycleReplacesInstances: Store.Recycle closes idle instances at
// once and a busy one when its call ends, so that a plugin keeping its
// records in an instance's memory (testdata/plugins/gohostile/forgetful)
// is seen to lose them, as it would when the host replaces an instance
// for any other reason; the conformance suite's NewInstances rules rest
// on it.
func TestRecycleReplacesInstances(t *testing.T) {
	wasm := goHostilePlugin(t, "forgetful")
	ctx := context.Background()
	st, _ := openGoHostile(t, host.Config{WASM: wasm, Instances: 2}, t.TempDir())

	put, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("one")})
	require.NoError(t, err)
	got, err := st.GetAgentState(ctx, "a")
	require.NoError(t, err, "the instance that took the write serves the read")
	require.Equal(t, put.Version, got.Version)

	st.Recycle(ctx)
	_, err = st.GetAgentState(ctx, "a")
	require.ErrorIs(t, err, host.ErrNotFound, "a new instance holds nothing of the old one's memory")

	// A busy instance is closed when its call ends: recycled while it
	// serves a slow read, the instance that took "b" is not used again.
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "b", State: []byte("two")})
	require.NoError(t, err)
	busy := make(chan error)
	go func() {
		_, err := st.GetAgentState(ctx, "slow") // 300 ms in the instance
		busy <- err
	}()
	require.Eventually(t, func() bool { return st.Stats().InUse > 0 }, 5*time.Second, time.Millisecond)
	st.Recycle(ctx)
	require.ErrorIs(t, <-busy, host.ErrNotFound, "the call under way ends as it would have")
	_, err = st.GetAgentState(ctx, "b")
	require.ErrorIs(t, err, host.ErrNotFound, "the busy instance was closed when its call ended")
}
