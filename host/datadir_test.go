package host_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

func openLocal(t *testing.T, dir string, options map[string]string) *host.Store {
	t.Helper()
	st, err := host.Open(context.Background(), host.Config{
		Name: "local", Plugin: "builtin:local", DataDir: dir, Options: options,
	}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	return st
}

func TestDataDirKeepsRecordsAcrossClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openLocal(t, dir, nil)
	saved, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{"x":1}`)})
	require.NoError(t, err)
	alert, err := st.PutAlert(ctx, host.Alert{ID: "al1", AgentID: "a1", Severity: abi.SeverityCritical, Status: abi.AlertFiring, Message: "disk"})
	require.NoError(t, err)
	require.NoError(t, st.Close(ctx))
	require.FileExists(t, filepath.Join(dir, "kv.db"))

	st = openLocal(t, dir, nil)
	defer st.Close(ctx)
	got, err := st.GetAgentState(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, saved, got)
	gotAlert, err := st.GetAlert(ctx, "al1")
	require.NoError(t, err)
	assert.Equal(t, alert, gotAlert)
	// Versions go on from where they were: a stale condition is refused.
	next, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{"x":2}`)}, host.IfVersion(saved.Version))
	require.NoError(t, err)
	assert.Greater(t, next.Version, saved.Version)
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a1"}, host.IfVersion(saved.Version))
	require.ErrorIs(t, err, host.ErrConflict)
}

// A rebuild opens the new Store before it closes the old one, with other
// options: both see one kv store, and nothing is lost when the old closes.
func TestDataDirSharedByARebuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := openLocal(t, dir, map[string]string{"agent_state_ttl_seconds": "3600"})
	_, err := old.PutAgentState(ctx, host.AgentState{AgentID: "before", State: []byte(`1`)})
	require.NoError(t, err)

	rebuilt := openLocal(t, dir, map[string]string{"agent_state_ttl_seconds": "7200"})
	defer rebuilt.Close(ctx)
	_, err = old.PutAgentState(ctx, host.AgentState{AgentID: "during", State: []byte(`2`)})
	require.NoError(t, err)
	require.NoError(t, old.Close(ctx))

	for _, id := range []string{"before", "during"} {
		_, err := rebuilt.GetAgentState(ctx, id)
		require.NoError(t, err, id)
	}
	_, err = rebuilt.PutAgentState(ctx, host.AgentState{AgentID: "after", State: []byte(`3`)})
	require.NoError(t, err, "the old Store's Close leaves the shared kv store open")
}

func TestBuiltinLocalNeedsADataDir(t *testing.T) {
	_, err := host.Open(context.Background(), host.Config{Plugin: "builtin:local"}, host.WithCompilationCache(benchCache))
	require.ErrorIs(t, err, host.ErrInvalid)
	require.ErrorContains(t, err, "DataDir")
}

func TestDataDirUnusableIsAnOpenError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := host.Open(context.Background(), host.Config{Plugin: "builtin:local", DataDir: filepath.Join(file, "sub")}, host.WithCompilationCache(benchCache))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "kv store")
}
