package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
)

// FuzzHandler sends arbitrary methods, paths and bodies to a Handler over
// the memory backend. It must never panic nor fail with a 5xx other than
// those a backend reports (501 unsupported, 503 unavailable), and every
// error must be the JSON error body.
func FuzzHandler(f *testing.F) {
	seeds := []struct{ method, path, body string }{
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/openapi.yaml", ""},
		{"GET", "/metrics", ""},
		{"PUT", "/v1/agents/a1/state?ttl=1h", `{"step":1}`},
		{"GET", "/v1/agents/a1/state", ""},
		{"DELETE", "/v1/agents/a1/state", ""},
		{"GET", "/v1/agent-states?prefix=a&limit=2&cursor=AAE", ""},
		{"POST", "/v1/agent-states/batch-get", `{"agent_ids":["a1","a2"]}`},
		{"POST", "/v1/agent-states/batch-put", `{"items":[{"agent_id":"a","state":{},"version":"0"}],"conditional":true,"ttl":"keep"}`},
		{"POST", "/v1/agent-states/batch-delete", `{"agent_ids":["a1"]}`},
		{"POST", "/v1/metrics?ttl=persist", `{"agent_id":"a","name":"cpu","value":"NaN","timestamp":"2025-01-01T00:00:00.5Z","labels":{"k":"v"}}`},
		{"GET", "/v1/agents/a/metrics/cpu/2025-01-01T00:00:00.5Z", ""},
		{"DELETE", "/v1/agents/a/metrics/cpu/2025-01-01T00:00:00%2B01:00", ""},
		{"GET", "/v1/metrics?agent_id=a&label=k%3D~v.*&label=x!%3Dy&from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&limit=1", ""},
		{"POST", "/v1/metrics/batch-get", `{"keys":[{"agent_id":"a","name":"cpu","timestamp":"2025-01-01T00:00:00Z"}]}`},
		{"POST", "/v1/metrics/batch-put", `{"items":[{"agent_id":"a","name":"m","value":1e308,"timestamp":"2025-01-01T00:00:00Z"}],"ttl":"1ms"}`},
		{"POST", "/v1/metrics/batch-delete", `{"keys":[]}`},
		{"PUT", "/v1/alerts/al?ttl=10m", `{"agent_id":"a","severity":"critical","status":"firing","message":"m","labels":{}}`},
		{"POST", "/v1/alerts/al/status", `{"status":"acknowledged"}`},
		{"GET", "/v1/alerts?severity=critical,info&status=firing&label=a!~b", ""},
		{"POST", "/v1/alerts/batch-put", `{"items":[{"id":"x","agent_id":"a","severity":"info"}]}`},
		{"POST", "/v1/alerts/batch-get", `{"ids":["x",""]}`},
		{"POST", "/v1/alerts/batch-delete", `{"ids":["x"]}`},
		{"PATCH", "/v1/alerts/al", `{}`},
		{"GET", "/v1/../healthz", ""},
		{"PUT", "/v1/agents/%00/state", `1`},
		{"POST", "/v1/metrics", `{"agent_id":"a","name":"n","value":1,"timestamp":"0001-01-01T00:00:00Z"}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, []byte(s.body))
	}
	st := openStore(f, host.Config{Plugin: "builtin:memory"})
	h, err := httpapi.New(httpapi.Options{Backends: newBackends(st), MaxBodyBytes: 1 << 16})
	require.NoError(f, err)

	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		r, err := http.NewRequest(method, "http://storage-host"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a server would parse
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		code := rec.Code
		if code >= 500 {
			require.Contains(t, []int{http.StatusNotImplemented, http.StatusServiceUnavailable}, code,
				"%s %s %q: %d %s", method, path, body, code, rec.Body)
		}
		if code >= 400 && method != http.MethodHead {
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "%s %s: %d %s", method, path, code, rec.Body)
			require.NotEmpty(t, e.Error.Code)
		}
	})
}
