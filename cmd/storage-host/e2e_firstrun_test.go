package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFirstRun is a new user's first session: storage-host with no
// command and no configuration serves the embedded local backend, its
// records on disk in the data directory, on loopback; an agent state goes
// in, comes back and goes away.
func TestFirstRun(t *testing.T) {
	t.Parallel()
	// No command means serve; only the port is chosen here, since the
	// default 127.0.0.1:8474 may be taken. The data directory is the
	// environment's (as $STORAGE_HOST_DATA_DIR); the daemon creates it.
	data := filepath.Join(t.TempDir(), "data")
	d := launch(t, []string{"STORAGE_HOST_DATA_DIR=" + data}, "-listen", "127.0.0.1:0")
	require.Regexp(t, `^storage-host: serving backend "local" \(data: `+regexp.QuoteMeta(data)+`\) on http://127\.0\.0\.1:\d+$`, d.serving)
	fi, err := os.Stat(data)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "the data directory is the user's only")

	require.Equal(t, http.StatusNoContent, call(t, "GET", d.url+"/healthz", "").code)
	require.Equal(t, http.StatusNoContent, call(t, "GET", d.url+"/readyz", "").code)

	url := d.url + "/v1/agents/a1/state"
	r := call(t, "GET", url, "")
	require.Equal(t, http.StatusNotFound, r.code)
	require.Equal(t, "not_found", r.errorCode(t))

	r = call(t, "PUT", url, `{"step":3,"plan":["look","act"]}`, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	put := r.object(t)
	require.Equal(t, "a1", put["agent_id"])
	require.Equal(t, map[string]any{"step": float64(3), "plan": []any{"look", "act"}}, put["state"])
	version, _ := put["version"].(string)
	require.NotEmpty(t, version)
	require.Equal(t, `"`+version+`"`, r.header.Get("ETag"))
	updated, err := time.Parse(time.RFC3339Nano, put["updated_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), updated, time.Minute)

	r = call(t, "GET", url, "")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, put, r.object(t), "GET returns what PUT stored")
	require.Equal(t, `"`+version+`"`, r.header.Get("ETag"))

	r = call(t, "GET", url, "", "If-None-Match", `"`+version+`"`)
	require.Equal(t, http.StatusNotModified, r.code)
	require.Empty(t, r.body)

	// A write conditional on another version is refused and changes
	// nothing.
	r = call(t, "PUT", url, `{"step":4}`, "If-Match", `"999999"`)
	require.Equal(t, http.StatusPreconditionFailed, r.code, "%s", r.body)
	require.Equal(t, "precondition_failed", r.errorCode(t))
	r = call(t, "PUT", url, `{"step":`)
	require.Equal(t, http.StatusBadRequest, r.code, "malformed JSON: %s", r.body)
	require.Equal(t, "invalid", r.errorCode(t))
	r = call(t, "GET", url, "")
	require.Equal(t, put, r.object(t), "refused writes lose and change nothing")

	r = call(t, "PUT", url, `{"step":4}`, "If-Match", `"`+version+`"`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.NotEqual(t, version, r.object(t)["version"], "every write changes the version")

	// A TTL per write; one whose expiry would wrap past the year 2262
	// (once found by a fuzzer) is refused.
	r = call(t, "PUT", d.url+"/v1/agents/a2/state?ttl=1h", `{}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	exp, err := time.Parse(time.RFC3339Nano, r.object(t)["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), exp, time.Minute)
	r = call(t, "PUT", d.url+"/v1/agents/a2/state?ttl=2562047h", `{}`)
	require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
	require.Equal(t, "invalid", r.errorCode(t))

	require.Equal(t, http.StatusNoContent, call(t, "DELETE", url, "").code)
	r = call(t, "GET", url, "")
	require.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
	require.Equal(t, "not_found", r.errorCode(t))
	require.Equal(t, http.StatusNotFound, call(t, "DELETE", url, "").code)

	// The daemon's own telemetry and contract.
	require.Equal(t, float64(1), d.metric(`storage_host_http_requests_total{code="204",method="DELETE",route="DELETE /v1/agents/{agent_id}/state"}`))
	require.Equal(t, float64(2), d.metric(`storage_host_http_requests_total{code="404",method="GET",route="GET /v1/agents/{agent_id}/state"}`))
	require.Positive(t, d.metric(`storage_host_plugin_call_duration_seconds_count{backend="local",op="put_agent_state"}`))
	r = call(t, "GET", d.url+"/openapi.yaml", "")
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "application/yaml", r.header.Get("Content-Type"))
	doc, err := os.ReadFile(repoFile("cmd", "storage-host", "internal", "httpapi", "openapi.yaml"))
	require.NoError(t, err)
	require.Equal(t, string(doc), string(r.body), "/openapi.yaml is the API's contract")
	require.True(t, strings.HasPrefix(string(r.body), "openapi: 3."))

	// Without a file, SIGHUP has nothing to reload and changes nothing.
	d.signal(syscall.SIGHUP)
	d.waitLog(regexp.MustCompile(`no configuration file to reload: trigger=SIGHUP`), 1)
	require.Equal(t, http.StatusNoContent, call(t, "GET", d.url+"/healthz", "").code)

	d.stop()
}
