package manager_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
	"github.com/storage-host/storage-host/host"
)

// TestDoRunsACallCutShortOnce: a reload retires the store a call is running
// on, and the drain timeout cuts the call short after it reached the
// plugin. Do reports that its outcome is unknown and does not run it
// again on the new store, where a write would be applied twice.
func TestDoRunsACallCutShortOnce(t *testing.T) {
	ctx := context.Background()
	limits := host.DefaultLimits
	limits.CallTimeout = 10 * time.Second
	loop := &config.File{
		Routes: config.Routes{Metrics: "a", Alerts: "a", AgentStates: "a"},
		Backends: []config.Backend{{Name: "a", Digest: "loop", Config: host.Config{
			Name: "a", Plugin: filepath.Join("..", "..", "..", "..", "testdata", "plugins", "hostile", "loop.wasm"),
			Capabilities: []abi.Capability{abi.CapabilityLog, abi.CapabilityClock}, Instances: 2, Limits: limits,
		}}},
	}
	m, err := manager.New(ctx, loop, manager.Options{DrainTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	defer m.Close(ctx)

	var runs atomic.Int32
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- m.Do(ctx, abi.KindAgentState, func(st *host.Store) error {
			if runs.Add(1) == 1 {
				close(started)
			}
			_, err := st.GetAgentState(ctx, "spin") // the loop plugin never answers
			return err
		})
	}()
	<-started
	require.Eventually(t, func() bool {
		st, _ := m.Store("a")
		return st.Stats().InUse == 1
	}, 5*time.Second, time.Millisecond)

	_, err = m.Reload(ctx, file("a", map[string]string{"a": "memory"}))
	require.NoError(t, err)
	select {
	case err := <-done:
		require.ErrorIs(t, err, host.ErrOutcomeUnknown)
		require.ErrorIs(t, err, host.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("the call was not cut short")
	}
	require.Equal(t, int32(1), runs.Load(), "a call that reached the plugin runs once")
}
