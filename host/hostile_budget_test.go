package host_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/internal/localstore"
)

// The budget tests load the hostile plugins that make the host do or hold
// as much as one call can ask through the host functions: fdwrite (WASI
// fd_write), kvflood (the kv capability) and evflood (the events
// capability). Each call must return within its call timeout, whatever
// the plugin asked; the host's memory must grow by no more than the
// backend's limits allow; a quota is answered with LIMIT, which the plugin
// sees; and the other backend keeps serving.

// budgetHeapBound bounds what one hostile call may allocate on the host's
// heap, far below what each attack allocates without its defence.
const budgetHeapBound = 64 << 20

// budgetMargin is added to the call timeout in the did-not-hang guards:
// generous, for a loaded machine and the race detector.
const budgetMargin = 4 * time.Second

// budgetState decodes the state the budget plugins answer: a status or
// errno, then a count.
func budgetState(t *testing.T, s host.AgentState) (code, count uint32) {
	t.Helper()
	require.Len(t, s.State, 8, "the plugin's report")
	return binary.LittleEndian.Uint32(s.State), binary.LittleEndian.Uint32(s.State[4:])
}

// heapDuring runs f and returns the bytes allocated on the heap meanwhile
// (by every goroutine: the bound is generous) and how much more the heap
// holds after a collection.
func heapDuring(f func()) (allocated uint64, retained int64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// budgetGet asks the plugin for the agent state id, checking that the call
// succeeds and returns within the call timeout and the margin.
func budgetGet(t *testing.T, h *hostileStore, id string) (code, count uint32) {
	t.Helper()
	got, elapsed, err := h.get(t, id)
	require.NoError(t, err, "get %q", id)
	require.Less(t, elapsed, h.limits.CallTimeout+budgetMargin, "get %q returned within the call timeout", id)
	return budgetState(t, got)
}

func TestHostileBudgets(t *testing.T) {
	by := newHostileBystander(t)
	t.Run("fdwrite", func(t *testing.T) { testBudgetFDWrite(t, by) })
	t.Run("kv", func(t *testing.T) { testBudgetKV(t, by) })
	t.Run("events", func(t *testing.T) { testBudgetEvents(t, by) })
}

// WASI errno values.
const (
	wasiFbig     = 22
	wasiTimedout = 73
)

// testBudgetFDWrite: one fd_write of 10 000 iovecs over 32 MiB (320 GiB in
// all) or of a million empty iovecs takes at most Limits.MaxLogBytesPerCall
// and returns at once; with a budget too large to matter, the call's
// deadline stops it.
func testBudgetFDWrite(t *testing.T, by *hostileBystander) {
	limits := hostileLimits
	limits.MemoryPages = 1024
	limits.CallTimeout = time.Second
	budget := host.DefaultLimits.MaxLogBytesPerCall

	t.Run("budget", func(t *testing.T) {
		h := openHostile(t, by, "fdwrite", host.Config{Limits: limits})
		for _, id := range []string{"o", "e"} {
			errno, n := budgetGet(t, h, id)
			require.Zero(t, errno, "%s: the write is cut short, not failed", id)
			require.Positive(t, n, "%s: the write takes the start", id)
			require.Less(t, n, budget, "%s: the write takes at most the budget", id)
		}
		errno, n := budgetGet(t, h, "z")
		require.Equal(t, uint32(wasiFbig), errno, "a million empty iovecs spend the budget")
		require.Zero(t, n)
		errno, _ = budgetGet(t, h, "a")
		require.Equal(t, uint32(wasiFbig), errno, "writes past the budget fail")
		h.requireServes(t)
	})

	t.Run("deadline", func(t *testing.T) {
		// A budget too large to stop anything (4 GiB: seconds of work), and
		// a trusted plugin, so that no fuel check interrupts the guest: only
		// fd_write's own check of the deadline stops it, and the plugin
		// reports how far the write got.
		limits := limits
		limits.MaxLogBytesPerCall = math.MaxUint32
		limits.CallTimeout = 10 * time.Millisecond
		// The timeout must be short (the 4 GiB write takes under 100 ms
		// here), and it bounds the instance's creation too: on a loaded
		// machine that may miss it, which Open answers ErrLimit. Tried again.
		var st *host.Store
		var err error
		for range 20 {
			st, err = host.Open(context.Background(), host.Config{
				Plugin: hostilePath("fdwrite"), Trusted: true, Instances: 1, Limits: limits,
			}, host.WithCompilationCache(""))
			if !errors.Is(err, host.ErrLimit) {
				break
			}
		}
		require.NoError(t, err)
		h := &hostileStore{st: st, log: &foreignLog{}, by: by, limits: limits}
		t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })

		// Two outcomes race at the deadline, both bounded: fd_write sees the
		// deadline and the guest answers with its write cut short, or the
		// caller is released first and the guest goes on in an abandoned
		// instance until its write returns. With one instance, and so one
		// abandoned call allowed, the backend then serves again only once
		// that guest has returned. (That the write of an abandoned call
		// counts as overdue is TestAbandonedCallIsOverdue.)
		got, elapsed, err := h.get(t, "o")
		require.Less(t, elapsed, limits.CallTimeout+budgetMargin)
		if err == nil {
			errno, n := budgetState(t, got)
			require.Zero(t, errno, "the write is cut short, not failed")
			require.Less(t, n, limits.MaxLogBytesPerCall/2, "the deadline stops the write long before its budget")
		} else {
			require.ErrorIs(t, err, host.ErrLimit, "the caller is released at the deadline")
			released := time.Now()
			require.Eventually(t, func() bool { return st.Ping(context.Background()) == nil }, budgetMargin, 5*time.Millisecond,
				"the abandoned write stops at the deadline")
			t.Logf("the abandoned guest returned within %v", time.Since(released))
		}
		// Serves again: pings, each of which a loaded machine may hold past
		// 10 ms, succeed within the margin.
		for i := range 3 {
			require.Eventually(t, func() bool { return st.Ping(context.Background()) == nil }, budgetMargin, 5*time.Millisecond,
				"ping %d after the write", i)
		}
		by.check(t)
	})
}

// testBudgetKV: the kv store holds at most its quota, answering LIMIT past
// it, and a scan's response is cut at Limits.MaxKVScanBytes while it is
// built.
func testBudgetKV(t *testing.T, by *hostileBystander) {
	limits := hostileLimits
	limits.MaxHostCalls = 2_000_000
	const entry = 64<<10 + 4 + localstore.EntryOverhead // a 64 KiB value, its key and the overhead

	t.Run("bytes", func(t *testing.T) {
		limits := limits
		limits.MaxKVBytes = 16 << 20
		h := openHostile(t, by, "kvflood", host.Config{Limits: limits, Instances: 1})
		var st, n uint32
		allocated, retained := heapDuring(func() { st, n = budgetGet(t, h, "f") })
		t.Logf("2000 puts of 64 KiB under a quota of 16 MiB: %d OK, %d bytes allocated, %d retained", n, allocated, retained)
		require.Equal(t, uint32(abi.StatusLimit), st, "a put past the quota is LIMIT")
		require.Equal(t, uint32(limits.MaxKVBytes/entry), n, "the store takes what fits in the quota")
		require.Less(t, allocated, uint64(budgetHeapBound), "the host allocates about the quota")

		st, n = budgetGet(t, h, "f")
		require.Equal(t, uint32(abi.StatusLimit), st, "a full store stays full")
		require.Zero(t, n)
		h.requireServes(t)
	})

	t.Run("entries", func(t *testing.T) {
		limits := limits
		limits.MaxKVEntries = 10_000
		h := openHostile(t, by, "kvflood", host.Config{Limits: limits, Instances: 1})
		var st, n uint32
		allocated, retained := heapDuring(func() { st, n = budgetGet(t, h, "n") })
		t.Logf("a million puts of empty values under a quota of 10 000 entries: %d OK, %d bytes allocated, %d retained", n, allocated, retained)
		require.Equal(t, uint32(abi.StatusLimit), st, "a put past the quota is LIMIT")
		require.Equal(t, limits.MaxKVEntries, n, "the store takes as many entries as the quota")
		require.Less(t, allocated, uint64(budgetHeapBound))
		h.requireServes(t)
	})

	t.Run("scan", func(t *testing.T) {
		// 400-odd entries of 64 KiB: 26 MiB, which one scan of 1000 would
		// return whole, twice over (the response, then its copy kept for
		// storagehost_kv.result).
		limits := limits
		limits.MaxKVBytes = 26 << 20
		h := openHostile(t, by, "kvflood", host.Config{Limits: limits, Instances: 1})
		st, n := budgetGet(t, h, "f")
		require.Equal(t, uint32(abi.StatusLimit), st)
		require.Greater(t, n, uint32(400))

		allocated, retained := heapDuring(func() { st, n = budgetGet(t, h, "S") })
		t.Logf("a scan of 26 MiB: a response of %d bytes, %d bytes allocated, %d retained", n, allocated, retained)
		require.Equal(t, uint32(abi.StatusOK), st, "the scan is served")
		// The scan budget, at most the reply bound: an eighth of the
		// instance's memory (512 KiB of 4 MiB here).
		scanBudget := min(host.DefaultLimits.MaxKVScanBytes, limits.MemoryPages*65536/8)
		require.Equal(t, uint32(512<<10), scanBudget)
		require.LessOrEqual(t, n, scanBudget+entry, "the response stops at the scan budget")
		require.Greater(t, n, scanBudget/2, "the response takes most of the budget")
		require.Less(t, allocated, uint64(16<<20), "the host allocates about the scan budget")
		h.requireServes(t)
	})
}

// testBudgetEvents: one call publishes at most Limits.MaxEventsPerCall
// events, and an event longer than any valid one is refused before it is
// decoded.
func testBudgetEvents(t *testing.T, by *hostileBystander) {
	limits := hostileLimits
	limits.MemoryPages = 1024
	limits.MaxHostCalls = 100_000
	events := host.Config{Limits: limits, Capabilities: append([]abi.Capability{abi.CapabilityEvents}, host.DefaultCapabilities...)}

	t.Run("per call", func(t *testing.T) {
		h := openHostile(t, by, "evflood", events)
		st, n := budgetGet(t, h, "p")
		require.Equal(t, uint32(abi.StatusLimit), st, "a publish past the budget is LIMIT")
		require.Equal(t, host.DefaultLimits.MaxEventsPerCall, n, "one call publishes as many events as its budget")
		h.requireServes(t)
	})

	t.Run("too large", func(t *testing.T) {
		h := openHostile(t, by, "evflood", events)
		var st, n uint32
		allocated, retained := heapDuring(func() { st, n = budgetGet(t, h, "L") })
		t.Logf("10 events of 32 MiB: %d bytes allocated, %d retained", allocated, retained)
		require.Equal(t, uint32(abi.StatusLimit), st, "an event longer than any valid one is LIMIT")
		require.Zero(t, n)
		require.Less(t, allocated, uint64(budgetHeapBound), "the host does not decode it")
		h.requireServes(t)
	})
}
