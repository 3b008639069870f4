package host_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// BenchmarkBufferedPut is the Redis backend's put while Redis is away
// (fallback=buffer): each write is acknowledged once it is in the
// fallback buffer, in memory (no data directory) or on disk, by
// concurrent callers sharing the disk's commits.
func BenchmarkBufferedPut(b *testing.B) {
	state := []byte(`{"step":1,"goal":"benchmark"}`)
	for _, disk := range []bool{false, true} {
		for _, n := range []int{1, 8, 64} {
			b.Run("disk="+strconv.FormatBool(disk)+"/callers="+strconv.Itoa(n), func(b *testing.B) {
				srv := redistest.NewServer(b)
				cfg := host.Config{
					Name:    "buffered",
					Plugin:  "builtin:redis",
					Options: map[string]string{"fallback": "buffer", "fallback_buffer_entries": "10000000"},
					Limits:  host.Limits{CallTimeout: time.Second, MaxKVEntries: 1 << 24, MaxKVBytes: 4 << 30},
					Redis:   &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: "buffered:", Scripts: true},
				}
				if disk {
					cfg.DataDir = b.TempDir()
				}
				st := openBench(b, cfg)
				srv.Stop()
				b.ReportAllocs()
				b.SetParallelism(max(1, n/runtime.GOMAXPROCS(0)))
				var next atomic.Int64
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
			})
		}
	}
}
