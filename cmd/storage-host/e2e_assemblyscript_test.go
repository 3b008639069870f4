package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPluginTestAssemblyScriptExample builds the AssemblyScript SDK's
// example plugin (sdk/assemblyscript/example) with npm and runs
// `storage-host plugin test` on it: every rule passes. Without npm the
// test is skipped, except under CI, where it fails; -short skips it too.
func TestPluginTestAssemblyScriptExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin with npm; skipped with -short")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("npm is not installed; CI needs it to build sdk/assemblyscript")
		}
		t.Skip("npm is not installed: skipping the AssemblyScript example (install Node.js and npm to run it)")
	}
	dir := repoFile("sdk", "assemblyscript")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "assemblyscript")); err != nil {
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "npm ci in %s:\n%s", dir, out)
	}
	wasm := filepath.Join(t.TempDir(), "example.wasm")
	cmd := exec.CommandContext(ctx, npm, "run", "build", "--", "--outFile", wasm)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "npm run build:\n%s", out)

	stdout, stderr, code := runCommand(t, nil, "plugin", "test", wasm)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "plugin as-example 0.1.0, advertising [agent_states,query,batch,ttl,concurrency,restore]")
	require.Regexp(t, `(?m)^ok: [1-9][0-9]* rules passed, 0 failed`, stdout)
}
