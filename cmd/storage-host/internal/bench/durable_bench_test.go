package bench_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// BenchmarkBufferedPut is the Redis backend's put while Redis is away
// (fallback=buffer): each write is acknowledged once it is in the
// fallback buffer, in memory (no data directory) or on disk, by
// concurrent callers sharing the disk's commits.
func BenchmarkBufferedPut(b *testing.B) {
	redis.SetLogger(&logging.VoidLogger{}) // every put's refused dial would be logged
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
				putStatesBy(b, st, n)
			})
		}
	}
}
