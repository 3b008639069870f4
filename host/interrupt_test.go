package host_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestInterruptedByClose: Close, given up waiting for a spinning untrusted
// call, ends that call at once (ErrClosed) rather than at its call timeout.
func TestInterruptedByClose(t *testing.T) {
	wasm := goHostilePlugin(t, "spinner")
	st, logs := openGoHostile(t, host.Config{WASM: wasm, Instances: 1, Limits: host.Limits{CallTimeout: time.Minute}}, t.TempDir())
	ctx := context.Background()
	require.NoError(t, st.Ping(ctx))

	errs := make(chan error, 1)
	go func() {
		_, err := st.GetAgentState(ctx, "spin")
		errs <- err
	}()
	require.Eventually(t, func() bool { return st.Stats().InUse > 0 }, 10*time.Second, time.Millisecond)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	require.Error(t, st.Close(cctx), "Close gave up waiting for the spinning call")
	start := time.Now()
	select {
	case err := <-errs:
		require.ErrorIs(t, err, host.ErrClosed)
		require.Less(t, time.Since(start), 5*time.Second)
	case <-time.After(30 * time.Second):
		t.Fatal("the spinning call still runs after Close")
	}
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), goHostileDiscarded) }, 5*time.Second, time.Millisecond)
}
