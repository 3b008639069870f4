package storetest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/storetest"
)

// TestSDKExample builds the plugin README.md shows (sdk/example/tiny) with
// the standard toolchain, as a plugin author would, and runs the
// conformance suite on it: it advertises agent states only, so the suite
// checks those and that everything else is refused.
func TestSDKExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin; skipped with -short")
	}
	wasm := filepath.Join(t.TempDir(), "tiny.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasm, ".")
	cmd.Dir = filepath.Join("..", "..", "sdk", "example", "tiny")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	storetest.Run(t, func(t *testing.T) *host.Store {
		st, err := host.Open(t.Context(), host.Config{Plugin: wasm}, host.WithCompilationCache(cacheDir))
		require.NoError(t, err)
		return st
	})
}
