package host

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// guestPages returns the linear-memory size of every idle instance.
func guestPages(p *plugin) []uint32 {
	p.pool.mu.Lock()
	defer p.pool.mu.Unlock()
	var sizes []uint32
	for _, in := range p.pool.idle {
		sizes = append(sizes, in.mem.Size()/65536)
	}
	return sizes
}

func hostHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestSoak runs a million mixed operations through the memory plugin and
// requires guest and host memory to stay flat: the Go guest's GC must run
// inside exports, and nothing may accumulate in the host.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a million operations; skipped with -short")
	}
	ops := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("STORAGE_HOST_SOAK_OPS")); err == nil {
		ops = n
	}
	ctx := context.Background()
	st, err := Open(ctx, Config{Instances: 1}, WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	defer st.Close(ctx)

	// A working set of 1000 agents and 1000 metric series, rewritten over
	// and over: the data stays the same size, so memory must too.
	const agents = 1000
	state := []byte(`{"step":0,"plan":"` + string(make([]byte, 200)) + `"}`)
	round := func(i int) {
		id := "agent-" + strconv.Itoa(i/4%agents)
		switch i % 4 {
		case 0:
			_, err = st.PutAgentState(ctx, AgentState{AgentID: id, State: state})
		case 1:
			_, err = st.GetAgentState(ctx, id)
		case 2:
			_, err = st.PutMetric(ctx, Metric{AgentID: id, Name: "cpu", Value: float64(i), Timestamp: time.Unix(int64(i%agents), 0), Labels: map[string]string{"host": "h1"}})
		case 3:
			_, err = st.QueryMetrics(ctx, MetricQuery{AgentID: id, Name: "cpu", Limit: 10})
		}
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	// Warm up to the steady state, then measure.
	for i := range 4 * agents {
		round(i)
	}
	pagesBefore, heapBefore := guestPages(st.p), hostHeap()
	start := time.Now()
	for i := range ops / 2 {
		round(i)
	}
	pagesHalf, heapHalf := guestPages(st.p), hostHeap()
	for i := ops / 2; i < ops; i++ {
		round(i)
	}
	elapsed := time.Since(start)
	pagesAfter, heapAfter := guestPages(st.p), hostHeap()
	t.Logf("%d ops in %v (%.0f ops/s); guest pages (64 KiB) %v -> %v -> %v; host heap KiB %d -> %d -> %d; kv entries %d",
		ops, elapsed, float64(ops)/elapsed.Seconds(), pagesBefore, pagesHalf, pagesAfter,
		heapBefore>>10, heapHalf>>10, heapAfter>>10, st.p.kv.Len())

	// The Go guest sizes its heap to GOGC, so memory may rise once after the
	// warm-up (at most 4 MiB); over the second half it must not rise at all
	// beyond a page or two of noise.
	require.Len(t, pagesAfter, len(pagesBefore))
	for i := range pagesBefore {
		require.LessOrEqual(t, pagesAfter[i], pagesBefore[i]+64, "guest memory grew")
		require.LessOrEqual(t, pagesAfter[i], pagesHalf[i]+2, "guest memory still growing in the second half")
	}
	require.Less(t, heapAfter, heapBefore+8<<20, "host heap grew")
	require.Less(t, heapAfter, heapHalf+2<<20, "host heap still growing in the second half")
}
