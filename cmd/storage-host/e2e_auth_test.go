package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// The secrets of testdata/config/auth.hcl's tokens.
const (
	adminToken   = "admin-token-0123456789"
	readerToken  = "reader-token-0123456789"
	metricsToken = "metrics-token-0123456789"
)

var authEnv = []string{
	"E2E_ADMIN_TOKEN=" + adminToken,
	"E2E_READER_TOKEN=" + readerToken,
	"E2E_METRICS_TOKEN=" + metricsToken,
}

func bearer(secret string) []string { return []string{"Authorization", "Bearer " + secret} }

// TestAuth: with tokens configured, every refused request is refused
// before it touches a record, and each token reaches only its scopes.
func TestAuth(t *testing.T) {
	t.Parallel()
	// Tokens are what make a network address acceptable.
	d := startDaemon(t, authEnv, "-config", "testdata/config/auth.hcl", "-listen", "0.0.0.0:0")
	url := d.url + "/v1/agents/a1/state"

	r := call(t, "PUT", url, `{"v":1}`, bearer(adminToken)...)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	stored := r.object(t)
	unchanged := func(after string) {
		t.Helper()
		r := call(t, "GET", url, "", bearer(adminToken)...)
		require.Equal(t, http.StatusOK, r.code, "after %s: %s", after, r.body)
		require.Equal(t, stored, r.object(t), "after %s, the state is what admin wrote", after)
	}

	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		header       []string
		code         int
		authenticate string
		message      string
	}{
		{"no token", "PUT", "/v1/agents/a1/state", `{"v":2}`, nil,
			401, `Bearer realm="storage-host"`, ""},
		{"wrong token", "PUT", "/v1/agents/a1/state", `{"v":2}`, bearer("not-a-token-0123456789"),
			401, `Bearer realm="storage-host", error="invalid_token"`, ""},
		{"another scheme", "PUT", "/v1/agents/a1/state", `{"v":2}`, []string{"Authorization", "Basic " + adminToken},
			401, `Bearer realm="storage-host"`, ""},
		{"token outside its kind, writing", "PUT", "/v1/agents/a1/state", `{"v":2}`, bearer(metricsToken),
			403, `Bearer realm="storage-host", error="insufficient_scope", scope="agent_states:write"`, `token "metrics" may not write agent_states`},
		{"token outside its kind, deleting", "DELETE", "/v1/agents/a1/state", "", bearer(metricsToken),
			403, `Bearer realm="storage-host", error="insufficient_scope", scope="agent_states:write"`, `token "metrics" may not write agent_states`},
		{"read-only token writing", "PUT", "/v1/agents/a1/state", `{"v":2}`, bearer(readerToken),
			403, `Bearer realm="storage-host", error="insufficient_scope", scope="agent_states:write"`, `token "states-reader" may not write agent_states`},
		{"read-only token deleting", "DELETE", "/v1/agents/a1/state", "", bearer(readerToken),
			403, `Bearer realm="storage-host", error="insufficient_scope", scope="agent_states:write"`, ""},
		{"read-only token, batch write", "POST", "/v1/agent-states/batch-put", `{"items":[{"agent_id":"a1","state":{"v":2}}]}`, bearer(readerToken),
			403, `Bearer realm="storage-host", error="insufficient_scope", scope="agent_states:write"`, ""},
		{"read-only token, batch delete", "POST", "/v1/agent-states/batch-delete", `{"agent_ids":["a1"]}`, bearer(readerToken),
			403, `Bearer realm="storage-host", error="insufficient_scope", scope="agent_states:write"`, ""},
	} {
		r := call(t, tc.method, d.url+tc.path, tc.body, tc.header...)
		require.Equal(t, tc.code, r.code, "%s: %s", tc.name, r.body)
		want := map[int]string{401: "unauthorized", 403: "forbidden"}[tc.code]
		require.Equal(t, want, r.errorCode(t), tc.name)
		require.Equal(t, tc.authenticate, r.header.Get("WWW-Authenticate"), tc.name)
		if tc.message != "" {
			require.Equal(t, tc.message, r.object(t)["error"].(map[string]any)["message"], tc.name)
		}
		unchanged(tc.name)
	}

	// Reads: the reader reads states, the metrics token does not.
	r = call(t, "GET", url, "", bearer(readerToken)...)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, stored, r.object(t))
	r = call(t, "GET", url, "", bearer(metricsToken)...)
	require.Equal(t, http.StatusForbidden, r.code, "%s", r.body)
	r = call(t, "GET", url, "", "Authorization", "bearer "+readerToken)
	require.Equal(t, http.StatusOK, r.code, "the scheme is case-insensitive: %s", r.body)

	// Probes and the contract stay open; /metrics needs a token, any.
	require.Equal(t, http.StatusNoContent, call(t, "GET", d.url+"/healthz", "").code)
	require.Equal(t, http.StatusNoContent, call(t, "GET", d.url+"/readyz", "").code)
	require.Equal(t, http.StatusOK, call(t, "GET", d.url+"/openapi.yaml", "").code)
	require.Equal(t, http.StatusUnauthorized, call(t, "GET", d.url+"/metrics", "").code)
	require.Equal(t, float64(3), d.metric(`storage_host_http_requests_total{code="401",method="PUT",route="PUT /v1/agents/{agent_id}/state"}`, bearer(metricsToken)...),
		"refusals are counted under their route; the route did not run")

	// A write with the right token still works after all that.
	r = call(t, "PUT", url, `{"v":3}`, bearer(adminToken)...)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)

	d.stop()
	for _, secret := range []string{adminToken, readerToken, metricsToken} {
		require.NotContains(t, d.log.String(), secret, "no secret in the log")
	}
}

// TestNetworkAddressNeedsAuth: a daemon reachable from the network either
// has tokens or was explicitly told to go without.
func TestNetworkAddressNeedsAuth(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runCommand(t, nil, "serve", "-listen", "0.0.0.0:0")
	require.Equal(t, 1, code)
	require.Empty(t, stdout, "no serving line")
	require.Equal(t, "storage-host: refusing to serve 0.0.0.0:0 without authentication: configure auth tokens, listen on a loopback address, or pass -allow-unauthenticated\n", stderr)

	d := startDaemon(t, nil, "-listen", "0.0.0.0:0", "-allow-unauthenticated")
	r := call(t, "PUT", d.url+"/v1/agents/a1/state", `{"v":1}`)
	require.Equal(t, http.StatusOK, r.code, "no token needed: %s", r.body)
	d.stop()
}

// TestReloadKeepsNetworkAddressAuthenticated: a reload must not do what
// startup refuses. An edit that drops every token (the mistake
// redis-cluster.hcl's allow_unauthenticated comment warns about) must be
// rejected on a network address, and the tokens kept.
func TestReloadKeepsNetworkAddressAuthenticated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	src, err := os.ReadFile("testdata/config/auth.hcl")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, src, 0o600))
	d := startDaemon(t, authEnv, "-config", cfg, "-listen", "0.0.0.0:0")
	d.waitWatching(1)
	url := d.url + "/v1/agents/a1/state"
	require.Equal(t, http.StatusUnauthorized, call(t, "PUT", url, `{"v":1}`).code)

	replaceFile(t, cfg, []byte("backend \"memory\" {\n  plugin = \"builtin:memory\"\n}\n"))
	d.waitLog(regexp.MustCompile(`configuration (reloaded|rejected)`), 1)

	r := call(t, "PUT", url, `{"v":1}`)
	require.Equal(t, http.StatusUnauthorized, r.code, "a reload opened a network address to anyone: %s", r.body)
	require.Equal(t, 1, d.logCount(regexp.MustCompile(`configuration rejected; the previous one keeps serving: trigger="file change" error=".*without authentication`)))
	require.Equal(t, float64(1), d.metric(`storage_host_reloads_total{result="failed"}`, bearer(metricsToken)...))
}
