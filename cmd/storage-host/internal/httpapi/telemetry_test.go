package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
)

// series finds the series of family name whose labels include want.
func series(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func TestHTTPMetrics(t *testing.T) {
	e := newEnv(t)
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/a1/state", `{}`).code)
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/a2/state", `{}`).code)
	require.Equal(t, http.StatusNotFound, e.req("GET", "/v1/agents/zz/state", nil).code)
	require.Equal(t, http.StatusNotFound, e.req("GET", "/v1/no-such-route-xyz", nil).code)
	require.Equal(t, http.StatusMethodNotAllowed, e.req("PATCH", "/v1/agents/a1/state", `{}`).code)

	counter := func(route, method, code string) float64 {
		ms := series(t, e.reg, "storage_host_http_requests_total", map[string]string{"route": route, "method": method, "code": code})
		require.Len(t, ms, 1, "%s %s %s", route, method, code)
		return ms[0].GetCounter().GetValue()
	}
	require.Equal(t, 2.0, counter("PUT /v1/agents/{agent_id}/state", "PUT", "200"))
	require.Equal(t, 1.0, counter("GET /v1/agents/{agent_id}/state", "GET", "404"))
	require.Equal(t, 1.0, counter("unmatched", "GET", "404"))
	require.Equal(t, 1.0, counter("unmatched", "PATCH", "405"))

	hist := series(t, e.reg, "storage_host_http_request_duration_seconds", map[string]string{"route": "PUT /v1/agents/{agent_id}/state"})
	require.Len(t, hist, 1)
	require.Equal(t, uint64(2), hist[0].GetHistogram().GetSampleCount())

	ops := series(t, e.reg, "storage_host_operation_duration_seconds", map[string]string{"operation": "put_agent_state", "backend": "memory"})
	require.Len(t, ops, 1)
	require.Equal(t, uint64(2), ops[0].GetHistogram().GetSampleCount())
	require.Len(t, series(t, e.reg, "storage_host_operation_duration_seconds", map[string]string{"operation": "get_agent_state"}), 1)

	// The scrape serves the same, and no label holds a raw path.
	res := e.req("GET", "/metrics", nil)
	require.Equal(t, http.StatusOK, res.code)
	text := string(res.body)
	require.Contains(t, text, `storage_host_http_requests_total{code="200",method="PUT",route="PUT /v1/agents/{agent_id}/state"} 2`)
	require.NotContains(t, text, "no-such-route-xyz")
	require.NotContains(t, text, "a1")
}

func TestNoRegistry(t *testing.T) {
	st := openStore(t, host.Config{Plugin: "builtin:memory"})
	h, err := httpapi.New(httpapi.Options{Backends: newBackends(st)})
	require.NoError(t, err)
	rec := newRecorder()
	h.ServeHTTP(rec, mustRequest(t, "GET", "/metrics", ""))
	require.Equal(t, http.StatusNotFound, rec.Code)
	rec = newRecorder()
	h.ServeHTTP(rec, mustRequest(t, "PUT", "/v1/agents/a/state", "{}"))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// TestSharedRegistry checks that a second Handler on one registry (a
// daemon that rebuilds its handler) shares the series instead of failing.
func TestSharedRegistry(t *testing.T) {
	st := openStore(t, host.Config{Plugin: "builtin:memory"})
	reg := prometheus.NewRegistry()
	h1, err := httpapi.New(httpapi.Options{Backends: newBackends(st), Registry: reg})
	require.NoError(t, err)
	h2, err := httpapi.New(httpapi.Options{Backends: newBackends(st), Registry: reg})
	require.NoError(t, err)
	for _, h := range []*httpapi.Handler{h1, h2} {
		h.ServeHTTP(newRecorder(), mustRequest(t, "GET", "/healthz", ""))
	}
	ms := series(t, reg, "storage_host_http_requests_total", map[string]string{"route": "GET /healthz"})
	require.Len(t, ms, 1)
	require.Equal(t, 2.0, ms[0].GetCounter().GetValue())

	// A collector of another shape under the same name is an error.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "storage_host_http_requests_total", Help: "x"}))
	_, err = httpapi.New(httpapi.Options{Backends: newBackends(st), Registry: reg2})
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "storage_host_http_requests_total"), "%v", err)
}

// TestOperationMetricsFollowTheBackend checks that the cached series of an
// operation follow the backend it runs on, as after a reload, and that a
// HEAD on a GET route is counted under its own method.
func TestOperationMetricsFollowTheBackend(t *testing.T) {
	e := newEnv(t)
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/a1/state", `{}`).code)
	other := openStore(t, host.Config{Name: "other", Plugin: "builtin:memory"})
	e.be.stores[abi.KindAgentState] = other
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/a1/state", `{}`).code)
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/a2/state", `{}`).code)

	count := func(backend string) uint64 {
		ms := series(t, e.reg, "storage_host_operation_duration_seconds", map[string]string{"operation": "put_agent_state", "backend": backend})
		require.Len(t, ms, 1, backend)
		return ms[0].GetHistogram().GetSampleCount()
	}
	require.Equal(t, uint64(1), count("memory"))
	require.Equal(t, uint64(2), count("other"))
}
