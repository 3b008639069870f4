package main_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// TestJSONLogStaysJSON: with the JSON log format, every line the daemon
// writes to its log is a JSON object, through a Redis outage too, when
// go-redis logs each refused dial (those are debug lines of the
// storage-host.redis logger, not raw text on stderr).
func TestJSONLogStaysJSON(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	cfg := configFile(t, `backend "r" {
  plugin = "builtin:redis"
  redis {
    addrs      = [%q]
    key_prefix = "jsonlog:"
  }
}
`, srv.Addr())
	d := startDaemon(t, nil, "-config", cfg, "-watch=false", "-log-format", "json", "-log-level", "debug")
	putState(t, d.url, "before")
	srv.Stop()
	for range 3 {
		r := call(t, "PUT", d.url+"/v1/agents/during/state", `{"n":1}`)
		require.Contains(t, []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout}, r.code, "%s", r.body)
	}
	srv.Start() // for the clean-up of the test's keys
	d.stop()
	log := d.log.String()
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		require.True(t, json.Valid([]byte(line)), "a log line that is not JSON: %s", line)
	}
	require.Contains(t, log, `"@module":"storage-host.redis"`, "go-redis's lines reach the daemon's log")
}
