package bench_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// boundaryFigure is one line of BenchmarkBoundary's table: the product's
// side and the yardstick it is measured against, run one after the other
// in the same run, and the ratio of their throughputs that the product
// aims at. A figure with no yardstick is an absolute throughput (ops/s)
// against its target.
type boundaryFigure struct {
	name     string
	callers  int
	target   float64
	product  func(ctx context.Context, i int) error
	baseline func(ctx context.Context, i int) error // nil: target is in ops/s
}

// BenchmarkBoundary measures what the plugin boundary costs, as a user
// would compare it, and prints one table: the Redis backend through its
// plugin against the plainest go-redis code (GET key, SET key json EX
// ttl, a pipeline of 100 SET EX), a third-party (interruptible) plugin
// against the same module built in (its gets, which the host answers from
// the kv store, and its puts, which run its code), the memory backend's gets/s, and the
// daemon's HTTP API on Redis against a minimal net/http server over
// go-redis. Every response of both sides is checked. The two sides of a
// figure run back to back in one process, so the ratio holds while the
// machine's speed drifts; absolute figures do not.
//
//	make bench-boundary
//
// (go test ./cmd/storage-host/internal/bench -run '^$' -bench '^BenchmarkBoundary$' -benchtime 2s -count 3;
// the table is printed once per count.)
func BenchmarkBoundary(b *testing.B) {
	if testing.Short() {
		b.Skip("needs Redis and runs for minutes; skipped with -short")
	}
	ctx := context.Background()
	addrs := []string{redistest.Addr(b)}

	redisPlugin := openRedisBench(b, addrs, 0)
	plain := newPlainRedis(b, addrs)
	memWASM, err := host.BuiltinWASM("memory")
	if err != nil {
		b.Fatal(err)
	}
	interruptible := openBench(b, host.Config{WASM: memWASM})
	trusted := openBench(b, host.Config{WASM: memWASM, Trusted: true})
	memory := openBench(b, host.Config{})
	for i := range benchAgents {
		for _, put := range []func(context.Context, int) error{
			func(ctx context.Context, i int) error { return pluginPutState(ctx, redisPlugin, i) },
			plain.putState,
			func(ctx context.Context, i int) error { return pluginPutState(ctx, interruptible, i) },
			func(ctx context.Context, i int) error { return pluginPutState(ctx, trusted, i) },
			func(ctx context.Context, i int) error { return pluginPutState(ctx, memory, i) },
		} {
			if err := put(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
	}
	// The daemon's handler on its own Redis backend, and a minimal net/http
	// server over go-redis (httpbench_test.go).
	daemon := newDaemonServer(b, host.Config{
		Name:   "redis",
		Plugin: "builtin:redis",
		Redis:  &redisbridge.Config{Addrs: addrs, KeyPrefix: redistest.Prefix(b, addrs...), Scripts: true},
	})
	web := newHTTPServer(b, "plain", newPlainHTTP(redistest.Prefix(b, addrs...), plain.c))
	for _, s := range []*httpServer{daemon, web} {
		for i := range benchAgents {
			if err := s.put(ctx, i); err != nil {
				b.Fatalf("%s: seeding: %v", s.name, err)
			}
		}
	}
	checkSameShape(b, daemon, web)

	on := func(st *host.Store, op func(context.Context, *host.Store, int) error) func(context.Context, int) error {
		return func(ctx context.Context, i int) error { return op(ctx, st, i) }
	}
	figures := []boundaryFigure{
		{"redis get / GET", 1, 0.9, on(redisPlugin, pluginGetState), plain.getState},
		{"redis get / GET", 64, 1.0, on(redisPlugin, pluginGetState), plain.getState},
		{"redis put / SET EX", 1, 0.8, on(redisPlugin, pluginPutState), plain.putState},
		{"redis put / SET EX", 64, 1.0, on(redisPlugin, pluginPutState), plain.putState},
		{"redis bulk put 100 / pipeline", 1, 0.9, on(redisPlugin, pluginBulkPut100), plain.bulkPut100},
		{"interruptible / trusted get", 1, 0.75, on(interruptible, pluginGetState), on(trusted, pluginGetState)},
		{"interruptible / trusted get", 8, 0.75, on(interruptible, pluginGetState), on(trusted, pluginGetState)},
		// The module declares its gets kv reads (ABI 1.8), which the host
		// serves without entering it, trusted or not: its puts run its code.
		{"interruptible / trusted put", 1, 0.75, on(interruptible, pluginPutState), on(trusted, pluginPutState)},
		{"interruptible / trusted put", 8, 0.75, on(interruptible, pluginPutState), on(trusted, pluginPutState)},
		{"memory get, gets/s", 8, 1e6, on(memory, pluginGetState), nil},
		{"HTTP get on redis / net/http+go-redis", 64, 0.8, daemon.get, web.get},
		{"HTTP put on redis / net/http+go-redis", 64, 0.8, daemon.put, web.put},
	}

	// Warm both sides of every figure first: pool instances made, their
	// memories grown, connections open, as in a process that has served.
	var warm sync.WaitGroup
	for _, f := range figures {
		for _, op := range []func(context.Context, int) error{f.product, f.baseline} {
			if op == nil {
				continue
			}
			for i := range 4 * f.callers {
				warm.Go(func() {
					if err := op(ctx, i); err != nil {
						b.Error(err)
					}
				})
			}
			warm.Wait()
		}
	}

	type result struct{ product, baseline float64 }
	results := make([]result, len(figures))
	for n, f := range figures {
		name := strings.NewReplacer(" / ", "-vs-", " ", "_", ",", "").Replace(f.name)
		b.Run(name+"/callers="+strconv.Itoa(f.callers), func(b *testing.B) {
			b.Run("product", func(b *testing.B) {
				results[n].product = measureCallers(b, plain.c, f.callers, f.product).opsPerSec
			})
			if f.baseline != nil {
				b.Run("baseline", func(b *testing.B) {
					results[n].baseline = measureCallers(b, plain.c, f.callers, f.baseline).opsPerSec
				})
			}
		})
	}

	var t strings.Builder
	fmt.Fprintf(&t, "\n%-40s %7s %12s %12s %7s %7s  %s", "figure", "callers", "product/s", "baseline/s", "ratio", "target", "")
	for n, f := range figures {
		r := results[n]
		if r.product == 0 {
			continue // not run (a -bench filter)
		}
		got, base, target := r.product, "", fmt.Sprintf("%.2f", f.target)
		ratio, verdict := "-", "met"
		switch {
		case f.baseline == nil:
			target = fmt.Sprintf("%.0fk", f.target/1e3)
		case r.baseline == 0:
			base, verdict = "-", "no baseline run" // a -bench filter left it out
		default:
			got = r.product / r.baseline
			base, ratio = fmt.Sprintf("%.0f", r.baseline), fmt.Sprintf("%.2f", got)
		}
		if verdict == "met" && got < f.target {
			verdict = "MISSED"
		}
		fmt.Fprintf(&t, "\n%-40s %7d %12.0f %12s %7s %7s  %s", f.name, f.callers, r.product, base, ratio, target, verdict)
	}
	// Printed, not logged: the testing package cuts a benchmark's log to
	// ten lines.
	if !b.Failed() {
		fmt.Println(t.String())
	}
}
