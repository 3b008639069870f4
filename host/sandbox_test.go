package host_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestSandbox loads a Go plugin that tries to read files, list
// directories, write, read the environment and arguments, and dial out,
// and requires every attempt to fail: a plugin gets WASI with no
// filesystem, no environment, no arguments and no sockets.
func TestSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin; skipped with -short")
	}
	t.Setenv("STORAGE_HOST_SECRET", "must-not-leak")
	wasm := filepath.Join(t.TempDir(), "sandbox.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasm, "./testdata/plugins/sandbox")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	var logs strings.Builder
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	st, err := host.Open(context.Background(), host.Config{Plugin: wasm}, host.WithLogger(logger), host.WithCompilationCache(t.TempDir()))
	require.NoError(t, err, "the plugin's configure fails when any probe gets through; logs:\n%s", logs.String())
	defer st.Close(context.Background())

	// The probes ran (configure logs one line each) and found nothing.
	require.Equal(t, 10, strings.Count(logs.String(), "sandbox probe"), "logs:\n%s", logs.String())
	require.NotContains(t, logs.String(), "reachable=true")
	require.NotContains(t, logs.String(), "must-not-leak")
	require.NoError(t, st.Ping(context.Background()))
}
