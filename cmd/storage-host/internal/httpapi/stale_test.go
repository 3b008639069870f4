package httpapi_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestStaleReads serves reads from testdata/staleplugin, which answers
// every agent-state read as stale, as a Redis backend does from its
// fallback buffer: the value comes with Storage-Stale: true, and bulk
// items are marked.
func TestStaleReads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin with GOOS=wasip1; skipped with -short")
	}
	wasm := filepath.Join(t.TempDir(), "stale.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasm, ".")
	cmd.Dir = filepath.Join("testdata", "staleplugin")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	e := newEnvWith(t, openStore(t, host.Config{Plugin: wasm}))
	res := e.req("PUT", "/v1/agents/a/state", `{"n":1}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	require.Empty(t, res.header.Get("Storage-Stale"), "writes are never stale")

	res = e.req("GET", "/v1/agents/a/state", nil)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	require.Equal(t, "true", res.header.Get("Storage-Stale"))
	var s agentState
	res.decode(t, &s)
	require.Equal(t, 1.0, s.field("n"), "a stale read carries the value")

	res = e.req("POST", "/v1/agent-states/batch-get", map[string]any{"agent_ids": []string{"a", "missing"}})
	require.Equal(t, "true", res.header.Get("Storage-Stale"))
	rs := results[agentState](t, res, 2)
	require.True(t, rs[0].Stale)
	require.Equal(t, 1.0, rs[0].Value.field("n"))
	require.Equal(t, "not_found", rs[1].Error.Code)
	require.False(t, rs[1].Stale)

	e.req("GET", "/v1/agents/missing/state", nil).requireError(t, http.StatusNotFound, "not_found")
}
