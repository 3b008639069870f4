package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestCloseDrainsCallsInFlight closes a store while a call runs in it (the
// loop plugin spins until its call timeout): the call finishes with its
// own outcome, not ErrClosed, Close returns after it, and later calls are
// refused with ErrClosed.
func TestCloseDrainsCallsInFlight(t *testing.T) {
	limits := host.DefaultLimits
	// Long enough that the call is still running when Close starts, on a
	// loaded machine too.
	limits.CallTimeout = 2 * time.Second
	st, err := host.Open(context.Background(), host.Config{Plugin: hostilePath("loop"), Limits: limits, Instances: 1})
	require.NoError(t, err)

	callErr := make(chan error)
	go func() {
		_, err := st.GetAgentState(context.Background(), "spin")
		callErr <- err
	}()
	// Wait until the call holds the only instance.
	require.Eventually(t, func() bool { return st.Stats().InUse == 1 }, 5*time.Second, time.Millisecond)

	start := time.Now()
	require.NoError(t, st.Close(context.Background()))
	closedAfter := time.Since(start)
	err = <-callErr
	require.ErrorIs(t, err, host.ErrLimit, "the call in flight ran to its own end")
	require.NotErrorIs(t, err, host.ErrClosed)
	require.Greater(t, closedAfter, 100*time.Millisecond, "Close waited for the call")
	require.ErrorIs(t, st.Ping(context.Background()), host.ErrClosed)
}

// TestCloseDeadlineCutsCallsShort bounds the drain with Close's context.
func TestCloseDeadlineCutsCallsShort(t *testing.T) {
	limits := host.DefaultLimits
	limits.CallTimeout = 10 * time.Second
	st, err := host.Open(context.Background(), host.Config{Plugin: hostilePath("loop"), Limits: limits, Instances: 1})
	require.NoError(t, err)
	callErr := make(chan error)
	go func() {
		_, err := st.GetAgentState(context.Background(), "spin")
		callErr <- err
	}()
	require.Eventually(t, func() bool { return st.Stats().InUse == 1 }, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, st.Close(ctx), context.DeadlineExceeded)
	select {
	case err := <-callErr:
		require.ErrorIs(t, err, host.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("the call in flight was not cut short")
	}
}
