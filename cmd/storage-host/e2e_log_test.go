package main_test

import (
	"encoding/json"
	"net"
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

// TestJSONLogFailureIsJSON: a daemon with a JSON log that cannot start
// (its port taken, its data directory another daemon's) says why in a
// JSON line, as its log, not in a plain line after it.
func TestJSONLogFailureIsJSON(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	_, stderr, code := runCommand(t, nil, "serve", "-listen", taken.Addr().String(), "-log-format", "json")
	require.Equal(t, 1, code, "stderr: %s", stderr)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for _, line := range lines {
		require.True(t, json.Valid([]byte(line)), "a line that is not JSON: %s", line)
	}
	require.Contains(t, lines[len(lines)-1], "address already in use")

	data := t.TempDir()
	first := startDaemon(t, nil, "-data-dir", data)
	_, stderr, code = runCommand(t, nil, "serve", "-listen", "127.0.0.1:0", "-data-dir", data, "-log-format", "json")
	require.Equal(t, 1, code, "stderr: %s", stderr)
	require.True(t, json.Valid([]byte(strings.TrimSpace(stderr))), "not one JSON line: %s", stderr)
	require.Contains(t, stderr, "give each daemon a -data-dir of its own")
	first.stop()
}
