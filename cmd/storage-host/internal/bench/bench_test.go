package bench_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storage-host/storage-host/host"
)

// benchCache is one compilation cache for the benchmarks that do not
// measure compilation.
var benchCache = func() string {
	dir, err := os.MkdirTemp("", "storage-host-bench-")
	if err != nil {
		panic(err)
	}
	return dir
}()

func openBench(b *testing.B, cfg host.Config) *host.Store {
	b.Helper()
	st, err := host.Open(context.Background(), cfg, host.WithCompilationCache(benchCache))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close(context.Background()) })
	return st
}

// callers runs op with 1 caller, and with 8 concurrent callers (RunParallel
// with enough goroutines per GOMAXPROCS to make 8).
func callers(b *testing.B, op func(ctx context.Context, i int) error) {
	ctx := context.Background()
	b.Run("callers=1", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := op(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("callers=8", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(ctx, int(n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkPing is the dispatch overhead: one trivial request through the
// pool, the guest export and back.
func BenchmarkPing(b *testing.B) {
	st := openBench(b, host.Config{})
	callers(b, func(ctx context.Context, _ int) error { return st.Ping(ctx) })
}

const benchAgents = 1000

func seedStates(b *testing.B, st *host.Store) {
	for i := range benchAgents {
		if _, err := st.PutAgentState(context.Background(), host.AgentState{AgentID: "agent-" + strconv.Itoa(i), State: []byte(`{"step":1,"goal":"benchmark"}`)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetAgentState(b *testing.B) {
	st := openBench(b, host.Config{})
	seedStates(b, st)
	callers(b, func(ctx context.Context, i int) error {
		_, err := st.GetAgentState(ctx, "agent-"+strconv.Itoa(i%benchAgents))
		return err
	})
}

// BenchmarkPutAgentState writes with events on (the default: each write
// appended to the in-process event log) and off.
func BenchmarkPutAgentState(b *testing.B) {
	for _, events := range []string{"on", "off"} {
		b.Run("events="+events, func(b *testing.B) {
			st := openBench(b, host.Config{DisableEvents: events == "off"})
			state := []byte(`{"step":1,"goal":"benchmark"}`)
			callers(b, func(ctx context.Context, i int) error {
				_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "agent-" + strconv.Itoa(i%benchAgents), State: state})
				return err
			})
		})
	}
}

func BenchmarkPutMetric(b *testing.B) {
	st := openBench(b, host.Config{})
	labels := map[string]string{"host": "h1", "region": "eu"}
	callers(b, func(ctx context.Context, i int) error {
		_, err := st.PutMetric(ctx, host.Metric{AgentID: "agent-" + strconv.Itoa(i%benchAgents), Name: "cpu", Value: 0.5, Timestamp: time.Unix(int64(i)+1, 0), Labels: labels})
		return err
	})
}

// BenchmarkQueryMetrics reads a page of 10 samples of one series among
// 100 series of 100 samples.
func BenchmarkQueryMetrics(b *testing.B) {
	st := openBench(b, host.Config{})
	ctx := context.Background()
	var batch []host.Metric
	for a := range 100 {
		batch = batch[:0]
		for ts := range 100 {
			batch = append(batch, host.Metric{AgentID: "agent-" + strconv.Itoa(a), Name: "cpu", Value: float64(ts), Timestamp: time.Unix(int64(ts), 0)})
		}
		if _, err := st.PutMetrics(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	callers(b, func(ctx context.Context, i int) error {
		p, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: "agent-" + strconv.Itoa(i%100), Name: "cpu", From: time.Unix(50, 0), Limit: 10})
		if err == nil && len(p.Items) != 10 {
			b.Fatalf("got %d items", len(p.Items))
		}
		return err
	})
}

// BenchmarkBulkPut100 writes 100 agent states in one batch; ns/op is per
// batch.
func BenchmarkBulkPut100(b *testing.B) {
	st := openBench(b, host.Config{})
	states := make([]host.AgentState, 100)
	for i := range states {
		states[i] = host.AgentState{AgentID: "agent-" + strconv.Itoa(i), State: []byte(`{"step":1}`)}
	}
	callers(b, func(ctx context.Context, _ int) error {
		res, err := st.PutAgentStates(ctx, states)
		if err == nil && res[99].Err != nil {
			return res[99].Err
		}
		return err
	})
}

// BenchmarkOpen measures loading the memory plugin: compiling with an
// empty cache (cold) and with a warm one (cached), through the first
// instance's handshake and configuration.
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"cold", "cached"} {
		b.Run(mode, func(b *testing.B) {
			warm := b.TempDir()
			if mode == "cached" {
				st, err := host.Open(ctx, host.Config{}, host.WithCompilationCache(warm))
				if err != nil {
					b.Fatal(err)
				}
				st.Close(ctx)
			}
			for b.Loop() {
				dir := warm
				if mode == "cold" {
					dir = b.TempDir()
				}
				st, err := host.Open(ctx, host.Config{}, host.WithCompilationCache(dir))
				if err != nil {
					b.Fatal(err)
				}
				st.Close(ctx)
			}
		})
	}
}

// BenchmarkInterruptible compares the memory plugin loaded as a
// third-party module (fuel checks written in at load, so the call timeout
// and context cancellation can stop it) with the same module trusted.
func BenchmarkInterruptible(b *testing.B) {
	wasm, err := host.BuiltinWASM("memory")
	if err != nil {
		b.Fatal(err)
	}
	for _, trusted := range []bool{false, true} {
		name := "interruptible"
		if trusted {
			name = "trusted"
		}
		b.Run(name, func(b *testing.B) {
			st := openBench(b, host.Config{WASM: wasm, Trusted: trusted})
			seedStates(b, st)
			b.Run("Ping", func(b *testing.B) {
				callers(b, func(ctx context.Context, _ int) error { return st.Ping(ctx) })
			})
			b.Run("GetAgentState", func(b *testing.B) {
				callers(b, func(ctx context.Context, i int) error {
					_, err := st.GetAgentState(ctx, "agent-"+strconv.Itoa(i%benchAgents))
					return err
				})
			})
		})
	}
}

// BenchmarkDurablePut compares agent-state puts on the in-memory kv store
// (builtin:memory) and on disk (builtin:local, fsynced before each put
// returns), by concurrent callers: callers waiting at once share a commit.
func BenchmarkDurablePut(b *testing.B) {
	for _, store := range []string{"memory", "local"} {
		for _, n := range []int{1, 8, 64} {
			b.Run("store="+store+"/callers="+strconv.Itoa(n), func(b *testing.B) {
				cfg := host.Config{Plugin: "builtin:" + store}
				if store == "local" {
					cfg.DataDir = b.TempDir()
				}
				putStatesBy(b, openBench(b, cfg), n)
			})
		}
	}
}

// putStatesBy runs b.N agent-state puts on st from n concurrent callers.
func putStatesBy(b *testing.B, st *host.Store, n int) {
	state := []byte(`{"step":1,"goal":"benchmark"}`)
	b.ReportAllocs()
	b.SetParallelism(max(1, n/runtime.GOMAXPROCS(0)))
	var next atomic.Int64
	b.ResetTimer() // opening the store is not what is measured
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := int(next.Add(1))
			if _, err := st.PutAgentState(ctx, host.AgentState{AgentID: "agent-" + strconv.Itoa(i%benchAgents), State: state}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
