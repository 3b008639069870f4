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

// TestFuelImportRefused: a module may not import the host's fuel function
// itself, trusted or not.
func TestFuelImportRefused(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x05\x01\x60\x00\x01\x7f" + // type () -> i32
		"\x02\x1b\x01\x10storagehost_fuel\x06refuel\x00\x00") // import it
	for _, trusted := range []bool{false, true} {
		_, err := host.Open(context.Background(), host.Config{WASM: wasm, Trusted: trusted})
		require.ErrorIs(t, err, host.ErrIncompatible, "trusted: %v", trusted)
		require.ErrorContains(t, err, "storagehost_fuel", "trusted: %v", trusted)
	}
}
