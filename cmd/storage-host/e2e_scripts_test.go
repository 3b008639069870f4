package main_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// TestRedisScriptsByDefault: a builtin:redis backend whose redis block
// does not mention scripts validates, serves, and takes writes: the
// plugin runs every request as a Lua script, and is granted them. One
// that refuses them is refused by validate and serve, at the attribute.
func TestRedisScriptsByDefault(t *testing.T) {
	t.Parallel()
	addr := redistest.Addr(t)
	dir := t.TempDir()
	write := func(name, scripts string) string {
		cfg := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `backend "r" {
  plugin = "builtin:redis"
  redis {
    addrs      = [%q]
    key_prefix = %q
%s  }
}
`, addr, redistest.Prefix(t, addr), scripts), 0o600))
		return cfg
	}

	cfg := write("default.hcl", "")
	stdout, stderr, code := runCommand(t, nil, "validate", cfg)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, ": ok: ")
	d := startDaemon(t, nil, "-config", cfg, "-watch=false")
	r := call(t, "PUT", d.url+"/v1/agents/a1/state", `{"step": 1}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	r = call(t, "POST", d.url+"/v1/agent-states/batch-put", `{"items": [{"agent_id": "a2", "state": {"step": 2}}]}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	r = call(t, "GET", d.url+"/v1/agents/a1/state", "")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)

	refused := write("refused.hcl", "    scripts    = false\n")
	want := refused + `:6:18: Capability not granted; plugin declares capability "redis_scripts", which this backend does not grant (set scripts = true in its redis block: the plugin runs Lua scripts on Redis, and would fail every request that does)` + "\n"
	for _, args := range [][]string{{"validate", refused}, {"serve", "-listen", "127.0.0.1:0", "-config", refused}} {
		stdout, stderr, code = runCommand(t, nil, args...)
		require.Equal(t, 1, code, "%v: %s", args, stderr)
		require.Empty(t, stdout, "%v", args)
		require.Equal(t, want, stderr, "%v", args)
	}
}
