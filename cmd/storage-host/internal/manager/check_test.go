package manager_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
)

// A parsed file is not served: its backends have no digest yet, and a
// reload would keep every one as unchanged.
func TestUncheckedFileIsRefused(t *testing.T) {
	ctx := context.Background()
	f, err := config.Parse([]byte(`backend "m" { plugin = "builtin:memory" }`), "m.hcl")
	require.NoError(t, err)
	_, err = manager.New(ctx, f, manager.Options{})
	require.ErrorContains(t, err, "not checked")

	require.NoError(t, f.Check(ctx))
	m, err := manager.New(ctx, f, manager.Options{})
	require.NoError(t, err)
	require.NoError(t, m.Close(ctx))
}

// ReloadFile checks the file it loads: a plugin that cannot be read fails
// the reload with the attribute's position, and the old file keeps
// serving.
func TestReloadFileChecksPlugins(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "daemon.hcl")
	require.NoError(t, os.WriteFile(path, []byte(`backend "a" { plugin = "builtin:memory" }`), 0o600))
	reg := prometheus.NewRegistry()
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1"}), manager.Options{Registry: reg, Plugins: new(config.PluginCache)})
	require.NoError(t, err)
	defer m.Close(ctx)
	put(t, m, "x")

	require.NoError(t, os.WriteFile(path, []byte(`backend "a" { plugin = "missing.wasm" }`), 0o600))
	_, _, err = m.ReloadFile(ctx, path, nil)
	require.ErrorContains(t, err, path+":1:24: Unreadable plugin")
	require.Equal(t, 1.0, testutil.ToFloat64(reloads(t, reg, "failed")))
	_, err = get(m, "x")
	require.NoError(t, err, "the old backend keeps serving")

	require.NoError(t, os.WriteFile(path, []byte(`backend "a" { plugin = "builtin:memory" }`), 0o600))
	f, ch, err := m.ReloadFile(ctx, path, nil)
	require.NoError(t, err)
	require.True(t, f.Checked())
	require.Equal(t, []string{"a"}, ch.Replaced)
}
