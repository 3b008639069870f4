package main_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// TestWriteOutcomeUnknownOverHTTP: the daemon on a Redis that stops
// answering once it was sent a write (fallback=fail) answers that write
// 504 outcome_unknown, never 503 unavailable, and the write is there once
// Redis answers again; a read in the same plight is 503.
func TestWriteOutcomeUnknownOverHTTP(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	cfg := configFile(t, `backend "r" {
  plugin = "builtin:redis"
  redis {
    addrs        = [%q]
    key_prefix   = "outcome:"
    scripts      = true
    read_timeout = "1s"
  }
}
routes {
  metrics      = "r"
  alerts       = "r"
  agent_states = "r"
}
`, srv.Addr())
	d := startDaemon(t, nil, "-config", cfg, "-watch=false")
	putState(t, d.url, "warm") // a pooled connection
	code, _, body := do(t, "GET", d.url+"/v1/agents/warm/state", "")
	require.Equal(t, http.StatusOK, code, "%v", body)

	srv.Pause()
	t.Cleanup(srv.Resume)
	r := call(t, "PUT", d.url+"/v1/agents/a1/state", `{"n":42}`)
	require.Equal(t, http.StatusGatewayTimeout, r.code, "%s", r.body)
	require.Equal(t, "outcome_unknown", r.errorCode(t))
	r = call(t, "GET", d.url+"/v1/agents/warm/state", "")
	require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
	require.Equal(t, "unavailable", r.errorCode(t))
	srv.Resume()

	var got map[string]any
	redistest.WaitFor(t, 10*time.Second, 50*time.Millisecond, func() bool {
		code, _, got = do(t, "GET", d.url+"/v1/agents/a1/state", "")
		return code == http.StatusOK
	}, "the write whose outcome was unknown was applied")
	require.Equal(t, map[string]any{"n": float64(42)}, got["state"])
}
