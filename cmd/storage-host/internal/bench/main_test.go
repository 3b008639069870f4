package bench_test

import (
	"os"
	"testing"

	"github.com/storage-host/storage-host/host/redistest"
)

// TestMain stops the Redis servers the benchmarks started, removes their
// compilation cache, and fails the binary if a goroutine outlives them.
func TestMain(m *testing.M) {
	code := redistest.Run(m)
	_ = os.RemoveAll(benchCache) // tens of megabytes of compiled modules
	os.Exit(code)
}
