package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// alert is the JSON form of an alert.
type alert struct {
	ID        string            `json:"id"`
	AgentID   string            `json:"agent_id"`
	Severity  string            `json:"severity"`
	Status    string            `json:"status"`
	Message   string            `json:"message"`
	Labels    map[string]string `json:"labels"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	ExpiresAt *time.Time        `json:"expires_at"`
}

func (e *env) putAlert(id string, body map[string]any, pairs ...string) *response {
	e.t.Helper()
	return e.req("PUT", query("/v1/alerts/"+id, pairs...), body)
}

func (e *env) setStatus(id, status string) *response {
	e.t.Helper()
	return e.req("POST", "/v1/alerts/"+id+"/status", map[string]any{"status": status})
}

func TestAlertRoundTrip(t *testing.T) {
	e := newEnv(t)
	res := e.putAlert("al-1", map[string]any{"agent_id": "a1", "severity": "critical", "message": "disk full", "labels": map[string]string{"disk": "/"}}, "ttl", "24h")
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	var a alert
	res.decode(t, &a)
	require.Equal(t, "al-1", a.ID)
	require.Equal(t, "critical", a.Severity)
	require.Equal(t, "firing", a.Status, "a new alert fires unless told otherwise")
	require.Equal(t, map[string]string{"disk": "/"}, a.Labels)
	require.NotNil(t, a.ExpiresAt)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), *a.ExpiresAt, time.Minute)

	res = e.req("GET", "/v1/alerts/al-1", nil)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	var got alert
	res.decode(t, &got)
	require.Equal(t, a, got)

	// The id in the body is optional and must agree with the path.
	res = e.putAlert("al-1", map[string]any{"id": "al-1", "agent_id": "a1", "severity": "warning", "message": "disk 95%"}, "ttl", "keep")
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	res.decode(t, &got)
	require.Equal(t, "warning", got.Severity)
	require.True(t, a.CreatedAt.Equal(got.CreatedAt), "created_at is kept")
	require.True(t, a.ExpiresAt.Equal(*got.ExpiresAt), "ttl=keep keeps the expiry")
	msg := e.putAlert("al-1", map[string]any{"id": "al-2", "agent_id": "a1", "severity": "info"}).requireError(t, http.StatusBadRequest, "invalid")
	require.Contains(t, msg, "differs")

	res = e.req("DELETE", "/v1/alerts/al-1", nil)
	require.Equal(t, http.StatusNoContent, res.code, "%s", res)
	e.req("GET", "/v1/alerts/al-1", nil).requireError(t, http.StatusNotFound, "not_found")
	e.req("DELETE", "/v1/alerts/al-1", nil).requireError(t, http.StatusNotFound, "not_found")
	e.setStatus("al-1", "resolved").requireError(t, http.StatusNotFound, "not_found")
}

func TestAlertTransitions(t *testing.T) {
	e := newEnv(t)
	require.Equal(t, http.StatusOK, e.putAlert("x", map[string]any{"agent_id": "a", "severity": "info"}).code)

	status := func() string {
		var a alert
		e.req("GET", "/v1/alerts/x", nil).decode(t, &a)
		return a.Status
	}
	res := e.setStatus("x", "acknowledged")
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	var a alert
	res.decode(t, &a)
	require.Equal(t, "acknowledged", a.Status)

	e.setStatus("x", "firing").requireError(t, http.StatusConflict, "conflict")
	e.putAlert("x", map[string]any{"agent_id": "a", "severity": "info", "status": "firing"}).requireError(t, http.StatusConflict, "conflict")
	require.Equal(t, "acknowledged", status(), "a refused transition changes nothing")

	require.Equal(t, http.StatusOK, e.setStatus("x", "resolved").code)
	require.Equal(t, http.StatusOK, e.setStatus("x", "resolved").code, "staying is allowed")
	require.Equal(t, http.StatusOK, e.setStatus("x", "firing").code, "a resolved alert may fire again")
	require.Equal(t, "firing", status())

	for _, body := range []any{
		map[string]any{"status": "closed"},
		map[string]any{"status": ""},
		map[string]any{},
		map[string]any{"status": 2},
		map[string]any{"status": "resolved", "note": "x"},
	} {
		e.req("POST", "/v1/alerts/x/status", body).requireError(t, http.StatusBadRequest, "invalid")
	}
	require.Equal(t, "firing", status())
}

func TestAlertBadInput(t *testing.T) {
	e := newEnv(t)
	for name, c := range map[string]struct {
		body map[string]any
		want string
	}{
		"no severity":   {map[string]any{"agent_id": "a"}, "severity is required"},
		"bad severity":  {map[string]any{"agent_id": "a", "severity": "fatal"}, `severity "fatal"`},
		"bad status":    {map[string]any{"agent_id": "a", "severity": "info", "status": "open"}, `status "open"`},
		"no agent":      {map[string]any{"severity": "info"}, "agent_id is required"},
		"server fields": {map[string]any{"agent_id": "a", "severity": "info", "created_at": "2025-01-01T00:00:00Z"}, `unknown field "created_at"`},
		"numeric sev":   {map[string]any{"agent_id": "a", "severity": 3}, `"severity": want a string, got number`},
	} {
		t.Run(name, func(t *testing.T) {
			msg := e.in(t).putAlert("bad", c.body).requireError(t, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, c.want)
		})
	}
	e.req("GET", "/v1/alerts/bad", nil).requireError(t, http.StatusNotFound, "not_found")
}

func TestAlertQuery(t *testing.T) {
	clock := newClock(t0)
	e := newEnvClock(t, clock)
	severities := []string{"info", "warning", "critical"}
	for i := range 36 {
		clock.advance(time.Minute)
		res := e.putAlert(fmt.Sprintf("al-%02d", i), map[string]any{
			"agent_id": fmt.Sprintf("agent-%d", i%2), "severity": severities[i%3],
			"labels": map[string]string{"team": fmt.Sprintf("t%d", i%4)},
		})
		require.Equal(t, http.StatusOK, res.code, "%s", res)
		if i%4 == 0 {
			require.Equal(t, http.StatusOK, e.setStatus(fmt.Sprintf("al-%02d", i), "resolved").code)
		}
	}
	all, pages := collect[alert](e, "/v1/alerts", "limit", "5")
	require.Len(t, all, 36)
	require.GreaterOrEqual(t, pages, 8)
	for i, a := range all {
		require.Equal(t, fmt.Sprintf("al-%02d", i), a.ID, "in ID order")
	}

	count := func(pairs ...string) int {
		got, _ := collect[alert](e, "/v1/alerts", append([]string{"limit", "4"}, pairs...)...)
		return len(got)
	}
	require.Equal(t, 18, count("agent_id", "agent-1"))
	require.Equal(t, 12, count("severity", "critical"))
	require.Equal(t, 24, count("severity", "critical,warning"))
	require.Equal(t, 24, count("severity", "critical", "severity", "info"), "repeated works too")
	require.Equal(t, 9, count("status", "resolved"))
	require.Equal(t, 27, count("status", "firing,acknowledged"))
	require.Equal(t, 9, count("label", "team=t1"))
	require.Equal(t, 6, count("agent_id", "agent-0", "severity", "info,warning", "label", "team=~t0"))
	// from/to select on created_at: alert i was created at t0 + (i+1) min.
	require.Equal(t, 10, count("from", t0.Add(11*time.Minute).Format(time.RFC3339), "to", t0.Add(21*time.Minute).Format(time.RFC3339)))

	for _, pairs := range [][]string{
		{"severity", "fatal"},
		{"status", "open"},
		{"label", "team"},
		{"from", "now"},
		{"prefix", "al"},
	} {
		msg := e.req("GET", query("/v1/alerts", pairs...), nil).requireError(t, http.StatusBadRequest, "invalid")
		require.Contains(t, msg, pairs[0])
	}
}

func TestAlertBulk(t *testing.T) {
	e := newEnv(t)
	put := e.req("POST", "/v1/alerts/batch-put", map[string]any{
		"ttl": "1h",
		"items": []map[string]any{
			{"id": "a", "agent_id": "x", "severity": "info"},
			{"id": "b", "agent_id": "x", "severity": "critical", "status": "resolved", "message": "m"},
			{"id": "", "agent_id": "x", "severity": "info"},
		},
	})
	rs := results[alert](t, put, 3)
	require.Equal(t, []string{"", "", "invalid"}, codes(rs))
	require.NotNil(t, rs[0].Value.ExpiresAt)
	require.Equal(t, "resolved", rs[1].Value.Status)

	require.Equal(t, http.StatusOK, e.setStatus("a", "acknowledged").code)
	again := e.req("POST", "/v1/alerts/batch-put", map[string]any{"items": []map[string]any{
		{"id": "a", "agent_id": "x", "severity": "info", "status": "firing"},
		{"id": "b", "agent_id": "x", "severity": "critical", "status": "firing"},
	}})
	require.Equal(t, []string{"conflict", ""}, codes(results[alert](t, again, 2)), "transitions are checked per item")

	get := e.req("POST", "/v1/alerts/batch-get", map[string]any{"ids": []string{"b", "nope", "a"}})
	rs = results[alert](t, get, 3)
	require.Equal(t, []string{"", "not_found", ""}, codes(rs))
	require.Equal(t, "firing", rs[0].Value.Status)
	require.Equal(t, "acknowledged", rs[2].Value.Status)

	del := e.req("POST", "/v1/alerts/batch-delete", map[string]any{"ids": []string{"a", "nope"}})
	dr := results[map[string]string](t, del, 2)
	require.Equal(t, []string{"", "not_found"}, codes(dr))
	require.Equal(t, map[string]string{"id": "a"}, *dr[0].Value)

	for name, c := range map[string]struct {
		path string
		body any
	}{
		"no id":        {"batch-put", map[string]any{"items": []any{map[string]any{"agent_id": "x", "severity": "info"}}}},
		"bad severity": {"batch-put", map[string]any{"items": []any{map[string]any{"id": "c", "agent_id": "x", "severity": "high"}}}},
		"no items":     {"batch-put", map[string]any{"ttl": "1h"}},
		"agent_ids":    {"batch-get", map[string]any{"agent_ids": []string{"a"}}},
		"no ids":       {"batch-delete", map[string]any{}},
	} {
		t.Run(name, func(t *testing.T) {
			e.in(t).req("POST", "/v1/alerts/"+c.path, c.body).requireError(t, http.StatusBadRequest, "invalid")
		})
	}
	e.req("GET", "/v1/alerts/c", nil).requireError(t, http.StatusNotFound, "not_found")
}
