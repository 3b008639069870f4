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

// TestReadCacheAcrossDaemons: two daemons share one Redis backend with a
// read cache. A state read through B is cached there (the hits counter
// moves); a write through A reaches B as an event, and from the moment
// B's event stream has delivered it, reads through B answer the new
// version, never the cached old one — round after round.
func TestReadCacheAcrossDaemons(t *testing.T) {
	t.Parallel()
	addr := redistest.Addr(t)
	cfg := filepath.Join(t.TempDir(), "cache.hcl")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `backend "shared" {
  plugin = "builtin:redis"
  redis {
    addrs      = [%q]
    key_prefix = %q
    scripts    = true
  }
  cache {
    entries = 1000
  }
}
routes {
  metrics      = "shared"
  alerts       = "shared"
  agent_states = "shared"
}
`, addr, redistest.Prefix(t, addr)), 0o600))
	a := startDaemon(t, nil, "-config", cfg, "-watch=false")
	b := startDaemon(t, nil, "-config", cfg, "-watch=false")
	onB := openEvents(t, b.url, "?kind=agent_states", "")

	get := func() string {
		t.Helper()
		code, _, body := do(t, "GET", b.url+"/v1/agents/cached/state", "")
		require.Equal(t, http.StatusOK, code, "%v", body)
		return body["version"].(string)
	}
	for round := range 20 {
		version := putState(t, a.url, "cached")
		for {
			if c := onB.change(); c.Key == "cached" && c.Version == version {
				break
			}
		}
		for range 3 {
			require.Equal(t, version, get(), "round %d: B answered a version the write through A replaced", round)
		}
	}
	require.GreaterOrEqual(t, b.metric(`storage_host_cache_hits_total{backend="shared"}`), 20.0)
	require.GreaterOrEqual(t, b.metric(`storage_host_cache_invalidations_total{backend="shared"}`), 15.0)
}
