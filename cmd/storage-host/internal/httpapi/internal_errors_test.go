package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestPluginTrapDetailStaysInTheLog: a plugin that traps (the leak plugin,
// trusted, executes unreachable) is answered 500 with a generic message and a request ID;
// the trap, its wasm stack trace and the plugin's name are logged under
// that ID, never sent. One that ran out of memory is answered 429, saying
// so, with no more of the trap than that.
func TestPluginTrapDetailStaysInTheLog(t *testing.T) {
	limits := host.DefaultLimits
	limits.MemoryPages = 1
	leaky := openStore(t, host.Config{Name: "leaky-backend", Plugin: "../../../../testdata/plugins/hostile/leak.wasm", Limits: limits})
	res := newEnvWith(t, leaky).req("GET", "/v1/agents/a/state", nil)
	res.requireError(t, http.StatusTooManyRequests, "limit")
	require.Contains(t, string(res.body), "as a plugin does that ran out of memory")
	for _, detail := range []string{"wasm", "stack", "unreachable"} {
		require.NotContains(t, string(res.body), detail, "trap detail in the response")
	}

	// Trusted, the same plugin is not instrumented, so its trap at a
	// memory it never grew is not taken for running out of it.
	st := openStore(t, host.Config{Name: "leaky-backend", Plugin: "../../../../testdata/plugins/hostile/leak.wasm", Limits: limits, Trusted: true})
	e := newEnvWith(t, st)

	res = e.req("GET", "/v1/agents/a/state", nil)
	msg := res.requireError(t, http.StatusInternalServerError, "internal")
	body := string(res.body)
	for _, detail := range []string{"wasm", "stack", "unreachable", "leaky-backend", "plugin failed"} {
		require.NotContains(t, body, detail, "internal detail in the response")
	}
	id := res.header.Get("X-Request-Id")
	require.NotEmpty(t, id)
	require.Equal(t, "internal error (request id "+id+")", msg)

	logs := e.logs.String()
	at := strings.Index(logs, "request_id="+id)
	require.GreaterOrEqual(t, at, 0, "the failure is logged under the request ID")
	require.Contains(t, logs[at:], "wasm stack trace", "with its detail")
}
