package host

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/api"
	"golang.org/x/time/rate"

	"github.com/storage-host/storage-host/abi"
)

// logSink collects log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestLogLimiter(t *testing.T) {
	sink := &logSink{}
	log := hclog.New(&hclog.LoggerOptions{Output: sink, Level: hclog.Info, Name: "plugin.test"})
	lim := newLogLimiter(log, 5, 4096) // 5 lines a second, bursts of 5

	lim.emit(hclog.Debug, "below the level")
	for range 20 {
		lim.emit(hclog.Info, "flood")
	}
	require.Len(t, sink.lines, 5, "only the burst passes; the filtered debug line costs no token")
	require.Equal(t, int64(15), lim.dropped.Load())

	// Once tokens are back, the next line first reports what was dropped.
	lim.limit = rate.NewLimiter(rate.Inf, 1)
	lim.emit(hclog.Warn, "after")
	require.Len(t, sink.lines, 7)
	require.Contains(t, sink.lines[5], "dropped=15")
	require.Contains(t, sink.lines[6], "[WARN]  plugin.test: after")

	lim.emit(hclog.Level(42), "odd level")
	require.Contains(t, sink.lines[7], "[INFO]  plugin.test: odd level", "an unknown level logs at info")

	// A line of control bytes, escaped, stays within the line bound.
	lim.emit(hclog.Info, strings.Repeat("\x1b", 4096))
	require.Len(t, sink.lines, 9)
	require.LessOrEqual(t, len(sink.lines[8]), 4096+maxCutNote+64, "an escaped line is bounded: %d bytes", len(sink.lines[8]))
	require.Contains(t, sink.lines[8], `\x1b\x1b`)
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{max: 8, emit: func(s string) { got = append(got, s) }}
	_, _ = w.Write([]byte("one\ntw"))
	_, _ = w.Write([]byte("o\nthree"))
	require.Equal(t, []string{"one", "two"}, got, "a partial line waits for its end")
	_, _ = w.Write([]byte(strings.Repeat("x", 1<<20)))
	require.LessOrEqual(t, cap(w.buf), 64, "a line with no end keeps at most max bytes")
	require.Equal(t, []string{"one", "two", "threexxx"}, got, "a line reaching max is emitted at once, cut")
	_, _ = w.Write([]byte("yyy\nfour\n"))
	require.Equal(t, []string{"one", "two", "threexxx", "four"}, got, "the rest of that line is dropped")
}

// BenchmarkInstantiate measures making one more pool instance of the
// memory plugin (instantiate, _initialize, handshake, configure) and
// reports the linear memory each instance holds.
func BenchmarkInstantiate(b *testing.B) {
	ctx := b.Context()
	st, err := Open(ctx, Config{}, WithCompilationCache(b.TempDir()))
	require.NoError(b, err)
	defer st.Close(ctx)
	var mem uint32
	for b.Loop() {
		in, err := st.p.newInstance(ctx)
		if err != nil {
			b.Fatal(err)
		}
		mem = in.mem.Size()
		in.close(ctx)
	}
	b.ReportMetric(float64(mem)/1024, "guest-KiB/instance")
}

// TestPoolAccounting traps instances over and over, from concurrent
// callers, and requires the pool's books to balance afterwards: every slot
// held by a live, idle instance, none leaked, and calls still served.
func TestPoolAccounting(t *testing.T) {
	ctx := t.Context()
	st, err := Open(ctx, Config{Plugin: "../testdata/plugins/trap.wasm", Instances: 3}, WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	defer st.Close(ctx)

	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				require.ErrorIs(t, st.Ping(ctx), ErrInternal) // trap.wasm traps on ping
				_, err := st.GetAgentState(ctx, "a")
				require.ErrorIs(t, err, ErrUnsupported) // and answers the rest
			}
		}()
	}
	wg.Wait()

	live := 0
	st.p.instances.Range(func(_, _ any) bool { live++; return true })
	slots, idle, _ := st.p.pool.counts()
	require.Equal(t, slots, live, "every slot belongs to a live instance")
	require.Equal(t, idle, live, "and every live instance is back in the pool")
	require.LessOrEqual(t, live, 3)
	require.GreaterOrEqual(t, live, 1)
}

// A trusted call whose caller was released has its start time cleared,
// yet the host functions it goes on calling (fd_write's loop) must still
// see it as past its deadline.
func TestAbandonedCallIsOverdue(t *testing.T) {
	p := &plugin{limits: Limits{CallTimeout: time.Hour}}
	in := &instance{p: p}
	in.started.Store(time.Now().UnixNano())
	if p.overdue(context.Background(), in) {
		t.Fatal("a call within its timeout is not overdue")
	}
	in.started.Store(0)
	in.state.Store(guestAbandoned)
	if !p.overdue(context.Background(), in) {
		t.Fatal("an abandoned call is overdue")
	}
}

// BenchmarkRefuel measures the host side of one refuel of a call within
// its deadline: what each refill of fuel costs an untrusted guest, beside
// wazero's exit to Go and back.
func BenchmarkRefuel(b *testing.B) {
	p := &plugin{stop: make(chan struct{}), limits: Limits{CallTimeout: time.Hour}, refill: fuelRefill}
	in := &instance{p: p}
	in.started.Store(time.Now().UnixNano())
	var mod api.Module
	p.instances.Store(mod, in)
	ctx := context.Background()
	stack := make([]uint64, 1)
	b.ResetTimer()
	for b.Loop() {
		p.refuel(ctx, mod, stack)
	}
	if stack[0] != fuelRefill {
		b.Fatal("no refill")
	}
}

// TestBuiltinsGetTheLargerRefill: a built-in plugin's guest is refilled
// builtinFuelRefill units of fuel, a module from outside fuelRefill, the
// same module's bytes included.
func TestBuiltinsGetTheLargerRefill(t *testing.T) {
	ctx := t.Context()
	memory, err := BuiltinWASM("memory")
	require.NoError(t, err)
	cache := WithCompilationCache(t.TempDir())
	for _, tc := range []struct {
		name   string
		cfg    Config
		refill int32
	}{
		{"builtin", Config{Plugin: "builtin:memory"}, builtinFuelRefill},
		{"outside", Config{WASM: memory}, fuelRefill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Open(ctx, tc.cfg, cache)
			require.NoError(t, err)
			defer st.Close(ctx)
			require.Equal(t, tc.refill, st.p.refill)
			in, err := st.p.newInstance(ctx)
			require.NoError(t, err)
			defer in.close(ctx)
			stack := make([]uint64, 1)
			st.p.refuel(ctx, in.mod, stack)
			require.Equal(t, uint64(tc.refill), stack[0], "refuel's refill")
		})
	}
}

// TestCapabilityGoName: the hint for a Go SDK author names the constant
// in package abi.
func TestCapabilityGoName(t *testing.T) {
	for c, want := range map[abi.Capability]string{
		abi.CapabilityKV: "KV", abi.CapabilityRedis: "Redis", abi.CapabilityPostgres: "Postgres",
		abi.CapabilityLog: "Log", abi.CapabilityClock: "Clock", abi.CapabilityEvents: "Events",
	} {
		require.Equal(t, want, capabilityGoName(string(c)))
	}
}
