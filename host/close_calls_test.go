package host_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestCloseRefusesNewCallsAtOnce: once Close has begun, a new call fails
// with ErrClosed without waiting behind the call in flight (the loop
// plugin spins until its call timeout), and it is a refusal, not a call
// cut short. A second instance serves the pings until then.
func TestCloseRefusesNewCallsAtOnce(t *testing.T) {
	limits := host.DefaultLimits
	limits.CallTimeout = 3 * time.Second
	st, err := host.Open(context.Background(), host.Config{Plugin: hostilePath("loop"), Limits: limits, Instances: 2})
	require.NoError(t, err)

	callErr := make(chan error, 1)
	go func() {
		_, err := st.GetAgentState(context.Background(), "spin")
		callErr <- err
	}()
	require.Eventually(t, func() bool { return st.Stats().InUse == 1 }, 5*time.Second, time.Millisecond)

	closeErr := make(chan error, 1)
	go func() { closeErr <- st.Close(context.Background()) }()
	// The first ping after Close has marked the store closed is refused;
	// every ping returns while the spinning call is still running.
	for {
		err := st.Ping(context.Background())
		select {
		case <-callErr:
			t.Fatal("a ping waited for the call in flight to end")
		default:
		}
		if err != nil {
			require.ErrorIs(t, err, host.ErrClosed)
			require.NotErrorIs(t, err, host.ErrOutcomeUnknown, "refused, not cut short")
			break
		}
		runtime.Gosched()
	}
	require.ErrorIs(t, <-callErr, host.ErrLimit, "the call in flight ran to its own end")
	require.NoError(t, <-closeErr)
}

// TestCloseCutsTrustedCallShort: Close whose context ends while a trusted
// call computes returns at once, starts no goroutine that outlives it, and
// releases the call's caller with ErrOutcomeUnknown (which matches
// ErrClosed too): the call had reached the plugin.
func TestCloseCutsTrustedCallShort(t *testing.T) {
	st, _ := openTrustedSluggish(t, 10*time.Second, 1)
	callErr := make(chan error, 1)
	go func() {
		_, err := st.GetAgentState(context.Background(), "spin-3000")
		callErr <- err
	}()
	require.Eventually(t, func() bool { return st.Stats().InUse == 1 }, 5*time.Second, time.Millisecond)
	base := runtime.NumGoroutine()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.ErrorIs(t, st.Close(ctx), context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second, "Close did not wait for the guest")
	select {
	case err := <-callErr:
		require.ErrorIs(t, err, host.ErrOutcomeUnknown)
		require.ErrorIs(t, err, host.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("the caller was not released when Close cut its call short")
	}
	// The caller's goroutine has ended; Close left nothing waiting behind.
	require.LessOrEqual(t, runtime.NumGoroutine(), base, "Close leaves no goroutine behind")
	// When the guest returns, its worker ends too.
	require.Eventually(t, func() bool { return runtime.NumGoroutine() < base-1 }, 10*time.Second, 20*time.Millisecond)
	require.ErrorIs(t, st.Ping(context.Background()), host.ErrClosed)
}
