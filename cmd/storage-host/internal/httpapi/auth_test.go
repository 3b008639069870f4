package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
)

const (
	adminSecret   = "admin-0123456789abcdef"
	readerSecret  = "states-reader-0123456789"
	writerSecret  = "states-writer-0123456789"
	metricsSecret = "metrics-rw-0123456789"
	bareSecret    = "no-scopes-0123456789"
)

var testTokens = []httpapi.Token{
	{Name: "admin", Secret: adminSecret, Scopes: []httpapi.Scope{{AllKinds: true}, {AllKinds: true, Write: true}}},
	{Name: "states-reader", Secret: readerSecret, Scopes: []httpapi.Scope{{Kind: abi.KindAgentState}}},
	{Name: "states-writer", Secret: writerSecret, Scopes: []httpapi.Scope{{Kind: abi.KindAgentState, Write: true}}},
	{Name: "metrics-rw", Secret: metricsSecret, Scopes: []httpapi.Scope{{Kind: abi.KindMetric}, {Kind: abi.KindMetric, Write: true}}},
	{Name: "bare", Secret: bareSecret},
}

func withTokens(ts []httpapi.Token) func(*httpapi.Options) {
	return func(o *httpapi.Options) { o.Tokens = ts }
}

func bearer(secret string) []string { return []string{"Authorization", "Bearer " + secret} }

func TestAuthRefusals(t *testing.T) {
	e := newEnv(t, withTokens(testTokens))
	admin := bearer(adminSecret)
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/kept/state", `{"v":1}`, admin...).code)

	// stateOf reads agent state id as admin: its "v", or nil when absent.
	stateOf := func(id string) any {
		res := e.req("GET", "/v1/agents/"+id+"/state", nil, admin...)
		if res.code == http.StatusNotFound {
			return nil
		}
		require.Equal(t, http.StatusOK, res.code, "%s", res)
		var s agentState
		res.decode(t, &s)
		return s.field("v")
	}

	type attempt struct {
		method, path string
		body         any
		auth         []string
	}
	unauthorized := map[string]attempt{
		"no token":          {"PUT", "/v1/agents/new/state", `{"v":2}`, []string{"Authorization", ""}},
		"wrong token":       {"PUT", "/v1/agents/new/state", `{"v":2}`, bearer("guess-0123456789")},
		"prefix of a token": {"PUT", "/v1/agents/new/state", `{"v":2}`, bearer(adminSecret[:10])},
		"basic auth":        {"PUT", "/v1/agents/new/state", `{"v":2}`, []string{"Authorization", "Basic " + adminSecret}},
		"empty bearer":      {"PUT", "/v1/agents/new/state", `{"v":2}`, []string{"Authorization", "Bearer "}},
		"bad body too":      {"PUT", "/v1/agents/new/state", `{"v":`, nil},
		"delete":            {"DELETE", "/v1/agents/kept/state", nil, bearer("wrong-0123456789")},
		"batch":             {"POST", "/v1/agent-states/batch-put", map[string]any{"items": []any{map[string]any{"agent_id": "kept", "state": 9}}}, nil},
	}
	for name, a := range unauthorized {
		t.Run("401 "+name, func(t *testing.T) {
			auth := a.auth
			if auth == nil {
				auth = []string{"Authorization", ""}
			}
			res := e.in(t).req(a.method, a.path, a.body, auth...)
			res.requireError(t, http.StatusUnauthorized, "unauthorized")
			require.True(t, strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer "), res.header.Get("WWW-Authenticate"))
		})
	}
	forbidden := map[string]attempt{
		"other kind":          {"PUT", "/v1/agents/new/state", `{"v":2}`, bearer(metricsSecret)},
		"reader writes":       {"PUT", "/v1/agents/new/state", `{"v":2}`, bearer(readerSecret)},
		"reader deletes":      {"DELETE", "/v1/agents/kept/state", nil, bearer(readerSecret)},
		"reader batch-puts":   {"POST", "/v1/agent-states/batch-put", map[string]any{"items": []any{map[string]any{"agent_id": "kept", "state": 9}}}, bearer(readerSecret)},
		"reader batch-dels":   {"POST", "/v1/agent-states/batch-delete", map[string]any{"agent_ids": []string{"kept"}}, bearer(readerSecret)},
		"writer reads":        {"GET", "/v1/agents/kept/state", nil, bearer(writerSecret)},
		"writer lists":        {"GET", "/v1/agent-states", nil, bearer(writerSecret)},
		"writer batch-gets":   {"POST", "/v1/agent-states/batch-get", map[string]any{"agent_ids": []string{"kept"}}, bearer(writerSecret)},
		"writer alerts":       {"PUT", "/v1/alerts/a", map[string]any{"agent_id": "x", "severity": "info"}, bearer(writerSecret)},
		"writer metrics":      {"POST", "/v1/metrics", map[string]any{"agent_id": "x", "name": "n", "value": 1, "timestamp": t0}, bearer(writerSecret)},
		"no scopes":           {"GET", "/v1/alerts", nil, bearer(bareSecret)},
		"metrics sets status": {"POST", "/v1/alerts/a/status", map[string]any{"status": "resolved"}, bearer(metricsSecret)},
	}
	for name, a := range forbidden {
		t.Run("403 "+name, func(t *testing.T) {
			res := e.in(t).req(a.method, a.path, a.body, a.auth...)
			msg := res.requireError(t, http.StatusForbidden, "forbidden")
			require.Contains(t, res.header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
			require.NotContains(t, msg, "0123456789", "messages never carry a secret")
		})
	}
	require.Equal(t, 1.0, stateOf("kept"), "no refused request changed anything")
	require.Nil(t, stateOf("new"))
	require.Equal(t, http.StatusNotFound, e.req("GET", "/v1/alerts/a", nil, admin...).code)
	metrics, _ := collect[metric](e.withToken(adminSecret), "/v1/metrics")
	require.Empty(t, metrics)

	// What the scopes do allow.
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/w/state", `{"v":3}`, bearer(writerSecret)...).code)
	require.Equal(t, http.StatusOK, e.req("GET", "/v1/agents/w/state", nil, bearer(readerSecret)...).code)
	require.Equal(t, http.StatusOK, e.req("POST", "/v1/agent-states/batch-get", map[string]any{"agent_ids": []string{"w"}}, bearer(readerSecret)...).code)
	require.Equal(t, http.StatusOK, e.req("GET", "/v1/agents/w/state", nil, "Authorization", "bearer "+readerSecret).code, "the scheme is case-insensitive")
	require.Equal(t, http.StatusOK, e.req("POST", "/v1/metrics", map[string]any{"agent_id": "x", "name": "n", "value": 1, "timestamp": t0}, bearer(metricsSecret)...).code)
	require.Equal(t, 3.0, stateOf("w"))

	// Open routes, and /metrics for any valid token.
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml"} {
		res := e.req("GET", path, nil, "Authorization", "")
		require.Less(t, res.code, 300, "%s: %s", path, res)
	}
	e.req("GET", "/metrics", nil, "Authorization", "").requireError(t, http.StatusUnauthorized, "unauthorized")
	e.req("GET", "/metrics", nil, bearer("wrong-0123456789")...).requireError(t, http.StatusUnauthorized, "unauthorized")
	require.Equal(t, http.StatusOK, e.req("GET", "/metrics", nil, bearer(bareSecret)...).code)

	// Unknown routes are 404 whoever asks.
	e.req("GET", "/v1/unknown", nil, "Authorization", "").requireError(t, http.StatusNotFound, "not_found")
}

// withToken returns e sending secret on every request.
func (e *env) withToken(secret string) *env {
	c := *e
	c.token = secret
	return &c
}

func TestSetTokens(t *testing.T) {
	e := newEnv(t, withTokens(testTokens[:1]))
	admin := bearer(adminSecret)
	require.Equal(t, http.StatusNotFound, e.req("GET", "/v1/agents/a/state", nil, admin...).code)

	e.h.SetTokens([]httpapi.Token{{Name: "new", Secret: "new-secret-0123456789", Scopes: []httpapi.Scope{{Kind: abi.KindAgentState}}}})
	e.req("GET", "/v1/agents/a/state", nil, admin...).requireError(t, http.StatusUnauthorized, "unauthorized")
	require.Equal(t, http.StatusNotFound, e.req("GET", "/v1/agents/a/state", nil, bearer("new-secret-0123456789")...).code)

	// Tokens New would refuse are not applied.
	e.h.SetTokens([]httpapi.Token{{Name: "broken"}})
	require.Equal(t, http.StatusNotFound, e.req("GET", "/v1/agents/a/state", nil, bearer("new-secret-0123456789")...).code)
	require.Contains(t, e.logs.String(), "tokens not replaced")

	// No tokens: no authentication, as in Options.
	e.h.SetTokens(nil)
	require.Equal(t, http.StatusNotFound, e.req("GET", "/v1/agents/a/state", nil, "Authorization", "").code)
}
