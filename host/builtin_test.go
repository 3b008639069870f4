package host_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestBuiltinsMatchSource rebuilds every embedded plugin from its source
// and requires the bytes to be those embedded, so the host never ships a
// plugin older than its code. Go builds are reproducible only with the same
// toolchain, recorded in builtin/GOVERSION by `make plugins`.
func TestBuiltinsMatchSource(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugins; skipped with -short")
	}
	recorded, err := os.ReadFile("builtin/GOVERSION")
	require.NoError(t, err)
	if v := strings.TrimSpace(string(recorded)); v != runtime.Version() {
		msg := "built-in plugins were built with " + v + ", this is " + runtime.Version() + ": rebuild with `make plugins` to compare"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, name := range []string{"memory", "redis", "postgres"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), name+".wasm")
			cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-buildmode=c-shared", "-o", out, "./plugins/"+name)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			msg, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", msg)
			built, err := os.ReadFile(out)
			require.NoError(t, err)
			embedded, err := host.BuiltinWASM(name)
			require.NoError(t, err)
			require.True(t, bytes.Equal(built, embedded), "host/builtin/%s.wasm is stale: run `make plugins` and commit it", name)
		})
	}
}
