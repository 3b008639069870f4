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

// BenchmarkCache measures the read cache and the events that keep it
// correct, on the redis plugin, side by side in one run:
//
//   - Get: GetAgentState over 1000 agents, read only, with the cache off
//     and on (every read a hit once warm), and go-redis issuing the
//     plugin's own EVALSHA directly (as BenchmarkRedis's "direct").
//   - Get90Put10: nine reads to one write over the same 1000 agents, the
//     writes invalidating the entries they replace (through events, as
//     any host's writes would).
//   - Put: PutAgentState with events on (the default: one XADD per
//     write, pipelined by the appender) and off (Config.DisableEvents).
//
// At the end it prints a summary whose ratio column is each variant's
// ops/s over the cache-off (events-on for Put) variant's.
//
//	go test ./cmd/storage-host/internal/bench -run '^$' -bench Cache -benchtime 3s
func BenchmarkCache(b *testing.B) {
	ctx := context.Background()
	addrs := []string{redistest.Addr(b)}
	open := func(cfg host.Config) *host.Store {
		cfg.Plugin = "builtin:redis"
		cfg.Redis = &redisbridge.Config{Addrs: addrs, KeyPrefix: redistest.Prefix(b, addrs...), Scripts: true}
		st, err := host.Open(ctx, cfg, host.WithCompilationCache(benchCache))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close(context.Background()) })
		return st
	}
	off := open(host.Config{})
	on := open(host.Config{Cache: host.CacheOptions{Entries: 10_000}})
	noEvents := open(host.Config{DisableEvents: true})
	direct := newDirectRedis(b, addrs)
	for i := range benchAgents {
		for _, st := range []*host.Store{off, on, noEvents} {
			if err := pluginPutState(ctx, st, i); err != nil {
				b.Fatal(err)
			}
		}
		if err := direct.putState(ctx, i); err != nil {
			b.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 64 { // warm every pool, and the cache
		wg.Go(func() {
			for _, st := range []*host.Store{off, on, noEvents} {
				_ = pluginGetState(ctx, st, i)
			}
			_ = direct.getState(ctx, i)
		})
	}
	wg.Wait()
	for i := range benchAgents {
		_ = pluginGetState(ctx, on, i)
	}

	mixed := func(st *host.Store) func(context.Context, int) error {
		// Op i reads, or one time in ten writes, an agent drawn from i by
		// a multiplicative hash: every agent is read and written, in no
		// order, about once per 1000 ops.
		return func(ctx context.Context, i int) error {
			agent := int(uint32(i) * 2654435761 >> 7)
			if i%10 == 9 {
				return pluginPutState(ctx, st, agent)
			}
			return pluginGetState(ctx, st, agent)
		}
	}
	type variant struct {
		name string
		op   func(context.Context, int) error
	}
	workloads := []struct {
		name     string
		variants []variant
	}{
		{"Get", []variant{
			{"cache-off", func(ctx context.Context, i int) error { return pluginGetState(ctx, off, i) }},
			{"cache-on", func(ctx context.Context, i int) error { return pluginGetState(ctx, on, i) }},
			{"direct", func(ctx context.Context, i int) error { return direct.getState(ctx, i) }},
		}},
		{"Get90Put10", []variant{
			{"cache-off", mixed(off)},
			{"cache-on", mixed(on)},
		}},
		{"Put", []variant{
			{"events-on", func(ctx context.Context, i int) error { return pluginPutState(ctx, off, i) }},
			{"events-off", func(ctx context.Context, i int) error { return pluginPutState(ctx, noEvents, i) }},
		}},
	}
	sum := map[string]latencyResult{}
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) {
			for _, callers := range []int{1, 64} {
				b.Run("callers="+strconv.Itoa(callers), func(b *testing.B) {
					for _, v := range w.variants {
						b.Run(v.name, func(b *testing.B) {
							sum[w.name+"/"+strconv.Itoa(callers)+"/"+v.name] = measureCallers(b, direct.c, callers, v.op)
						})
					}
				})
			}
		})
	}
	hits := on.Stats().Cache
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-11s %7s %-10s %10s %9s %9s %7s %9s", "workload", "callers", "variant", "ops/s", "p50-µs", "p99-µs", "ratio", "host-cpu")
	for _, w := range workloads {
		for _, callers := range []int{1, 64} {
			key := w.name + "/" + strconv.Itoa(callers) + "/"
			base, ok := sum[key+w.variants[0].name]
			if !ok {
				continue
			}
			for _, v := range w.variants {
				r := sum[key+v.name]
				fmt.Fprintf(&t, "\n%-11s %7d %-10s %10.0f %9.1f %9.1f %7.2f %9.1f", w.name, callers, v.name, r.opsPerSec, r.p50, r.p99, r.opsPerSec/base.opsPerSec, r.hostCPU)
			}
		}
	}
	fmt.Fprintf(&t, "\ncache: %d hits, %d misses, %d invalidations", hits.Hits, hits.Misses, hits.Invalidations)
	if !b.Failed() {
		fmt.Println(t.String())
	}
}
