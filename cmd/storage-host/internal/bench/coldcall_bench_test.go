package bench_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/storage-host/storage-host/host"
)

// BenchmarkColdCall measures what one plugin call costs when the CPU
// caches no longer hold what it touches, as after a network round trip
// during which other processes (Redis, PostgreSQL) and goroutines ran:
// each call of "cold" follows 32 MiB of unrelated memory traffic, each
// call of "warm" follows the previous call. Two plugins, each for a ping
// (the call alone) and an agent-state get: the built-in memory plugin (Go
// compiled to wasm, through the SDK) and the hand-written WebAssembly text
// plugin of testdata/plugins (no runtime; its records are in the host's
// kv store). call-µs is the call's own time; ns/op includes the traffic.
//
//	go test ./cmd/storage-host/internal/bench -run '^$' -bench ColdCall -benchtime 2000x
func BenchmarkColdCall(b *testing.B) {
	plugins := []struct{ name, plugin string }{
		{"go-memory", "builtin:memory"},
		{"wat-agentstate", filepath.Join("..", "..", "..", "..", "testdata", "plugins", "agentstate.wasm")},
	}
	ctx := context.Background()
	traffic := make([]byte, 32<<20)
	for _, p := range plugins {
		b.Run(p.name, func(b *testing.B) {
			st, err := host.Open(ctx, host.Config{Plugin: p.plugin, DataDir: b.TempDir()}, host.WithCompilationCache(benchCache))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close(ctx)
			const agents = 100
			for i := range agents {
				if err := pluginPutState(ctx, st, i); err != nil {
					b.Fatal(err)
				}
			}
			ops := []struct {
				name string
				call func(i int) error
			}{
				{"ping", func(int) error { return st.Ping(ctx) }},
				{"get", func(i int) error { return pluginGetState(ctx, st, i%agents) }},
			}
			for _, op := range ops {
				for _, cold := range []bool{false, true} {
					name := op.name + "/warm"
					if cold {
						name = op.name + "/cold"
					}
					b.Run(name, func(b *testing.B) {
						var in time.Duration
						for i := range b.N {
							if cold {
								for j := 0; j < len(traffic); j += 64 {
									traffic[j]++
								}
							}
							start := time.Now()
							if err := op.call(i); err != nil {
								b.Fatal(err)
							}
							in += time.Since(start)
						}
						b.ReportMetric(float64(in.Microseconds())/float64(b.N), "call-µs")
					})
				}
			}
		})
	}
}
