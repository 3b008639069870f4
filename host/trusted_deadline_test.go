package host_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// The sluggish plugin (testdata/plugins/gohostile/sluggish): its
// GetAgentState("spin-<ms>") computes for that long. Loaded trusted,
// nothing interrupts it; it still reads the clock, so a garbage collection
// can stop it (a guest that never calls out would freeze the test binary
// at the next one: SECURITY.md).

// openTrustedSluggish opens the sluggish plugin as a trusted plugin. Once
// the test and its other cleanups are done, it closes the store and waits
// for the guests the test abandoned to return: Close does not wait for
// them, and their goroutines would outlive the test (TestMain's leak check).
func openTrustedSluggish(t *testing.T, timeout time.Duration, instances int) (*host.Store, *foreignLog) {
	t.Helper()
	logs := &foreignLog{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	wasm := goHostilePlugin(t, "sluggish")
	base := runtime.NumGoroutine()
	st, err := host.Open(context.Background(), host.Config{
		WASM: wasm, Trusted: true, Instances: instances,
		Limits: host.Limits{CallTimeout: timeout},
	}, host.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = st.Close(context.Background())
		deadline := time.Now().Add(15 * time.Second)
		for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > base {
			t.Errorf("the abandoned guests did not return: %d goroutines, %d before Open", n, base)
		}
	})
	return st, logs
}

// TestTrustedCallReleasedAtDeadline: a trusted plugin has no interruption
// checks, yet its caller is released at Limits.CallTimeout with ErrLimit
// while the guest still computes; the same store keeps answering (a
// fresh instance replaces the abandoned one), at most Instances abandoned
// calls may be outstanding before new instances are refused with
// ErrLimit, Close does not wait for the abandoned guests, and once they
// return every goroutine of theirs is gone.
func TestTrustedCallReleasedAtDeadline(t *testing.T) {
	const (
		timeout = 300 * time.Millisecond
		// Far past the timeout, and past what the test does while the
		// guest computes, on a loaded machine too.
		spin = "spin-8000"
	)
	ctx := context.Background()
	st, logs := openTrustedSluggish(t, timeout, 2)
	require.NoError(t, st.Ping(ctx))
	base := runtime.NumGoroutine()

	start := time.Now()
	_, err := st.GetAgentState(ctx, spin)
	elapsed := time.Since(start)
	require.ErrorIs(t, err, host.ErrLimit)
	require.Contains(t, err.Error(), "call timeout")
	require.GreaterOrEqual(t, elapsed, timeout)
	require.Less(t, elapsed, 3*time.Second, "the caller was released before the guest returned (it computes for 8 s)")
	require.Contains(t, logs.String(), "trusted plugin call abandoned")

	// While the abandoned guest computes, the store answers, and a garbage
	// collection (which a /healthz handler would wait on) completes.
	require.NoError(t, st.Ping(ctx))
	got, err := st.GetAgentState(ctx, "plain")
	require.NoError(t, err)
	require.Equal(t, "plain", got.AgentID)
	runtime.GC()

	// A second abandoned call reaches the bound (Instances = 2): no new
	// instance is made until one of them returns.
	_, err = st.GetAgentState(ctx, spin)
	require.ErrorIs(t, err, host.ErrLimit)
	err = st.Ping(ctx)
	require.ErrorIs(t, err, host.ErrLimit, "past the bound of abandoned calls, new instances are refused")
	require.Contains(t, err.Error(), "abandoned calls are still running")

	// Once the guests return, the store serves again and their goroutines
	// have ended.
	require.Eventually(t, func() bool { return st.Ping(ctx) == nil }, 30*time.Second, 50*time.Millisecond)

	closed := make(chan error, 1)
	go func() { closed <- st.Close(ctx) }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung")
	}
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= base }, 10*time.Second, 20*time.Millisecond,
		"goroutines: %d, %d before the first call", runtime.NumGoroutine(), base)
}

// TestTrustedCallReleasedByContext: the caller's context releases it from a
// trusted call as it does from an untrusted one.
func TestTrustedCallReleasedByContext(t *testing.T) {
	st, _ := openTrustedSluggish(t, 10*time.Second, 2)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := st.GetAgentState(ctx, "spin-3000")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2500*time.Millisecond, "released before the guest returned")
	require.False(t, strings.Contains(err.Error(), "wasm"), "no guest internals: %v", err)
	require.NoError(t, st.Ping(context.Background()))
}

// TestTrustedDeadlineIsEachCallsOwn: a trusted instance's deadline timer
// stays armed from an earlier call; when it fires during a later call that
// is still within its own timeout, that call goes on and succeeds, and a
// call that does overrun is still released at its own deadline.
func TestTrustedDeadlineIsEachCallsOwn(t *testing.T) {
	const timeout = 3 * time.Second
	ctx := context.Background()
	st, _ := openTrustedSluggish(t, timeout, 1)
	t.Cleanup(func() { _ = st.Close(ctx) })
	require.NoError(t, st.Ping(ctx)) // arms the timer for about now + 3 s

	// Half the timeout later, a call computing 2 s: the timer armed by the
	// ping fires in its middle, 1.5 s before its own deadline (a margin
	// of 1 s for a loaded machine).
	time.Sleep(timeout / 2)
	got, err := st.GetAgentState(ctx, "spin-2000")
	require.NoError(t, err, "the earlier call's deadline does not cut this one")
	require.Equal(t, "spin-2000", got.AgentID)

	// Past its own deadline, a call is released there, not earlier.
	start := time.Now()
	_, err = st.GetAgentState(ctx, "spin-5000")
	require.ErrorIs(t, err, host.ErrLimit)
	require.GreaterOrEqual(t, time.Since(start), timeout)
	require.Less(t, time.Since(start), 6*time.Second)
}
