package bench_test

import (
	"testing"

	"github.com/storage-host/storage-host/host/redistest"
)

// TestMain stops the Redis servers the benchmarks started and fails the
// binary if a goroutine outlives them.
func TestMain(m *testing.M) { redistest.Main(m) }
