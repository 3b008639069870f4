package httpapi_test

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// metric is the JSON form of a metric; Value is any because non-finite
// values are strings.
type metric struct {
	AgentID   string            `json:"agent_id"`
	Name      string            `json:"name"`
	Value     any               `json:"value"`
	Timestamp time.Time         `json:"timestamp"`
	Labels    map[string]string `json:"labels"`
	ExpiresAt *time.Time        `json:"expires_at"`
}

// metricPath is the route of one sample.
func metricPath(agent, name string, ts time.Time) string {
	return "/v1/agents/" + url.PathEscape(agent) + "/metrics/" + url.PathEscape(name) + "/" + ts.Format(time.RFC3339Nano)
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

func TestMetricRoundTrip(t *testing.T) {
	e := newEnv(t)
	res := e.req("POST", "/v1/metrics?ttl=30m", map[string]any{
		"agent_id": "a1", "name": "cpu", "value": 0.75,
		"timestamp": t0.Format(time.RFC3339Nano), "labels": map[string]string{"host": "h1"},
	})
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	var m metric
	res.decode(t, &m)
	require.Equal(t, "a1", m.AgentID)
	require.Equal(t, 0.75, m.Value)
	require.True(t, t0.Equal(m.Timestamp))
	require.Equal(t, map[string]string{"host": "h1"}, m.Labels)
	require.NotNil(t, m.ExpiresAt)
	require.WithinDuration(t, time.Now().Add(30*time.Minute), *m.ExpiresAt, time.Minute)
	require.Contains(t, string(res.body), `"timestamp":"2025-03-01T12:00:00.123456789Z"`)

	res = e.req("GET", metricPath("a1", "cpu", t0), nil)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	var got metric
	res.decode(t, &got)
	require.Equal(t, m, got)

	// The same instant written with an offset names the same sample.
	res = e.req("GET", metricPath("a1", "cpu", t0.In(time.FixedZone("", -5*3600))), nil)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	res = e.req("GET", "/v1/agents/a1/metrics/cpu/2025-03-01T13:00:00.123456789%2B01:00", nil)
	require.Equal(t, http.StatusOK, res.code, "%s", res)

	// A sample without labels still has a labels object; non-finite
	// values travel as strings.
	for _, v := range []any{"NaN", "+Inf", "-Inf", -1e300, 0} {
		res = e.req("POST", "/v1/metrics", map[string]any{"agent_id": "a1", "name": "odd", "value": v, "timestamp": t0.Format(time.RFC3339)})
		require.Equal(t, http.StatusOK, res.code, "%v: %s", v, res)
		var m metric
		res.decode(t, &m)
		require.Equal(t, map[string]string{}, m.Labels)
		res = e.req("GET", metricPath("a1", "odd", t0.Truncate(time.Second)), nil)
		res.decode(t, &m)
		if f, ok := v.(int); ok {
			v = float64(f)
		}
		require.Equal(t, v, m.Value)
	}

	res = e.req("DELETE", metricPath("a1", "cpu", t0), nil)
	require.Equal(t, http.StatusNoContent, res.code, "%s", res)
	e.req("GET", metricPath("a1", "cpu", t0), nil).requireError(t, http.StatusNotFound, "not_found")
	e.req("DELETE", metricPath("a1", "cpu", t0), nil).requireError(t, http.StatusNotFound, "not_found")
}

func TestMetricPathEscapes(t *testing.T) {
	e := newEnv(t)
	res := e.req("POST", "/v1/metrics", map[string]any{"agent_id": "a/b", "name": "disk /var", "value": 1, "timestamp": t0})
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	res = e.reqRaw("GET", metricPath("a/b", "disk /var", t0), nil)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	var m metric
	res.decode(t, &m)
	require.Equal(t, "disk /var", m.Name)
}

func TestMetricBadInput(t *testing.T) {
	e := newEnv(t)
	ts := t0.Format(time.RFC3339Nano)
	for name, c := range map[string]struct {
		body any
		want string // in the message
	}{
		"unknown field":     {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": ts, "unit": "s"}, `unknown field "unit"`},
		"server field":      {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": ts, "expires_at": ts}, `unknown field "expires_at"`},
		"wrong type":        {map[string]any{"agent_id": 7, "name": "n", "value": 1, "timestamp": ts}, `"agent_id": want a string, got number`},
		"labels type":       {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": ts, "labels": map[string]int{"x": 1}}, `"labels": want a string, got number`},
		"no value":          {map[string]any{"agent_id": "a", "name": "n", "timestamp": ts}, "value is required"},
		"bool value":        {map[string]any{"agent_id": "a", "name": "n", "value": true, "timestamp": ts}, "value: want a number"},
		"string value":      {map[string]any{"agent_id": "a", "name": "n", "value": "1.5", "timestamp": ts}, "value"},
		"huge value":        {`{"agent_id":"a","name":"n","value":1e999,"timestamp":"` + ts + `"}`, "out of range"},
		"no timestamp":      {map[string]any{"agent_id": "a", "name": "n", "value": 1}, "timestamp is required"},
		"bad timestamp":     {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": "yesterday"}, "RFC 3339"},
		"no zone":           {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": "2025-03-01T12:00:00"}, "RFC 3339"},
		"the epoch":         {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": "1970-01-01T00:00:00Z"}, "is the Unix epoch itself"},
		"year 3000":         {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": "3000-01-01T00:00:00Z"}, "out of range"},
		"ten digits":        {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": "2025-03-01T12:00:00.1234567891Z"}, "at most nine fractional digits"},
		"offset 24:00":      {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": "2025-03-01T12:00:00+24:00"}, "an offset within ±23:59"},
		"no agent":          {map[string]any{"name": "n", "value": 1, "timestamp": ts}, "agent_id is required"},
		"empty agent":       {map[string]any{"agent_id": "", "name": "n", "value": 1, "timestamp": ts}, "agent id is empty"},
		"array":             {[]any{1}, "want an object, got array"},
		"malformed":         {`{"agent_id":`, "JSON ends early"},
		"syntax":            {`{"agent_id" "a"}`, "malformed JSON at byte"},
		"two objects":       {`{} {}`, "more than one JSON value"},
		"trailing garbage":  {`{"agent_id":"a","name":"n","value":1,"timestamp":"` + ts + `"} x`, "more than one JSON value"},
		"bad ttl parameter": {map[string]any{"agent_id": "a", "name": "n", "value": 1, "timestamp": ts, "ttl": "1h"}, `unknown field "ttl"`},
		// encoding/json would take these: the last of a repeated name, a
		// name in another case or folded (ſ is s) for the field's.
		"repeated member": {`{"agent_id":"a","name":"n","value":1,"timestamp":"` + ts + `","agent_id":"zz"}`, `member "agent_id" appears twice in one object`},
		"escaped repeat":  {`{"agent_id":"a","name":"n","value":1,"timestamp":"` + ts + `","agent\u005fid":"zz"}`, `member "agent_id" appears twice`},
		"member case":     {`{"agent_id":"a","name":"n","value":1,"timestamp":"` + ts + `","Agent_ID":"zz"}`, `member "Agent_ID" is not a member of this request`},
		"folded member":   {`{"agent_id":"a","name":"n","value":1,"timestamp":"` + ts + `","labelſ":{"x":"1"}}`, `member "labelſ" is not a member`},
		"repeated label":  {`{"agent_id":"a","name":"n","value":1,"timestamp":"` + ts + `","labels":{"x":"1","x":"2"}}`, `member "x" appears twice`},
	} {
		t.Run(name, func(t *testing.T) {
			msg := e.in(t).req("POST", "/v1/metrics", c.body).requireError(t, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, c.want)
		})
	}
	for _, path := range []string{
		"/v1/agents/a/metrics/n/yesterday",
		"/v1/agents/a/metrics/n/2025-03-01",
		"/v1/agents/a/metrics/n/1740830400",
	} {
		msg := e.req("GET", path, nil).requireError(t, http.StatusBadRequest, "invalid")
		require.Contains(t, msg, "timestamp")
		e.req("DELETE", path, nil).requireError(t, http.StatusBadRequest, "invalid")
	}
	all, _ := collect[metric](e, "/v1/metrics")
	require.Empty(t, all, "no refused request wrote anything")
}

func TestMetricOversizedBody(t *testing.T) {
	e := newEnv(t, withMaxBody(1024))
	items := make([]map[string]any, 50)
	for i := range items {
		items[i] = map[string]any{"agent_id": "a", "name": "n", "value": i, "timestamp": t0.Add(time.Duration(i) * time.Second)}
	}
	e.req("POST", "/v1/metrics/batch-put", map[string]any{"items": items}).requireError(t, http.StatusRequestEntityTooLarge, "too_large")
	// Without a Content-Length the limit still holds.
	body := fmt.Sprintf(`{"agent_id":"a","name":"n","value":1,"timestamp":%q,"labels":{"pad":%q}}`, t0.Format(time.RFC3339), make([]byte, 2000))
	res := e.reqRaw("POST", "/v1/metrics", []byte(body), "Transfer-Encoding", "chunked")
	res.requireError(t, http.StatusRequestEntityTooLarge, "too_large")
	all, _ := collect[metric](e, "/v1/metrics")
	require.Empty(t, all)
}

func TestMetricQuery(t *testing.T) {
	e := newEnv(t)
	var items []map[string]any
	for _, agent := range []string{"a1", "a2"} {
		for i := range 30 {
			env := "prod"
			if i%3 == 0 {
				env = "staging"
			}
			items = append(items, map[string]any{
				"agent_id": agent, "name": "latency", "value": float64(i),
				"timestamp": t0.Add(time.Duration(i) * time.Minute),
				"labels":    map[string]string{"env": env, "zone": fmt.Sprintf("z%d", i%2)},
			})
		}
		items = append(items, map[string]any{"agent_id": agent, "name": "cpu", "value": 1, "timestamp": t0})
	}
	rs := results[metric](t, e.req("POST", "/v1/metrics/batch-put", map[string]any{"items": items}), len(items))
	require.Equal(t, make([]string, len(items)), codes(rs))

	got, pages := collect[metric](e, "/v1/metrics", "agent_id", "a1", "name", "latency", "limit", "7")
	require.Len(t, got, 30)
	require.GreaterOrEqual(t, pages, 5)
	for i, m := range got {
		require.Equal(t, float64(i), m.Value, "ordered by timestamp")
	}

	all, _ := collect[metric](e, "/v1/metrics")
	require.Len(t, all, 62)

	// [from, to)
	got, _ = collect[metric](e, "/v1/metrics", "agent_id", "a2", "name", "latency",
		"from", t0.Add(10*time.Minute).Format(time.RFC3339Nano), "to", t0.Add(20*time.Minute).Format(time.RFC3339Nano), "limit", "3")
	require.Len(t, got, 10)
	require.Equal(t, 10.0, got[0].Value)

	count := func(pairs ...string) int {
		got, _ := collect[metric](e, "/v1/metrics", append([]string{"name", "latency", "limit", "4"}, pairs...)...)
		return len(got)
	}
	require.Equal(t, 20, count("label", "env=staging"))
	require.Equal(t, 40, count("label", "env!=staging"))
	require.Equal(t, 60, count("label", "env=~prod|staging"))
	require.Equal(t, 20, count("label", "env!~prod"))
	require.Equal(t, 10, count("label", "env=staging", "label", "zone=z0"))
	require.Equal(t, 60, count("label", "missing="), "an absent label matches as empty")
	require.Equal(t, 0, count("label", "zone=~z"), "regexps are anchored")

	for _, pairs := range [][]string{
		{"label", "env"},
		{"label", "=prod"},
		{"label", "env=~("},
		{"label", "env!~[z-a]"},
		{"from", "yesterday"},
		{"to", "2025-13-01T00:00:00Z"},
		{"from", t0.Format(time.RFC3339), "to", t0.Add(-time.Hour).Format(time.RFC3339)},
		{"cursor", "***"},
		{"limit", "5000"},
		{"severity", "critical"},
		{"agent_id", "a", "agent_id", "b"},
	} {
		msg := e.req("GET", query("/v1/metrics", pairs...), nil).requireError(t, http.StatusBadRequest, "invalid")
		require.Contains(t, msg, pairs[len(pairs)-2], "the message names the parameter")
	}
}

func TestMetricBulk(t *testing.T) {
	e := newEnv(t)
	key := func(agent, name string, ts time.Time) map[string]any {
		return map[string]any{"agent_id": agent, "name": name, "timestamp": ts.Format(time.RFC3339Nano)}
	}
	put := e.req("POST", "/v1/metrics/batch-put", map[string]any{
		"ttl": "persist",
		"items": []map[string]any{
			{"agent_id": "a", "name": "x", "value": 1, "timestamp": t0},
			{"agent_id": "a", "name": "", "value": 2, "timestamp": t0},
			{"agent_id": "b", "name": "y", "value": "NaN", "timestamp": t0, "labels": map[string]string{"k": "v"}},
		},
	})
	rs := results[metric](t, put, 3)
	require.Equal(t, []string{"", "invalid", ""}, codes(rs))
	require.Nil(t, rs[0].Value.ExpiresAt)
	require.Equal(t, "NaN", rs[2].Value.Value)

	get := e.req("POST", "/v1/metrics/batch-get", map[string]any{"keys": []any{
		key("b", "y", t0), key("a", "x", t0.Add(time.Nanosecond)), key("a", "x", t0),
	}})
	rs = results[metric](t, get, 3)
	require.Equal(t, []string{"", "not_found", ""}, codes(rs))
	require.Equal(t, map[string]string{"k": "v"}, rs[0].Value.Labels)
	require.Equal(t, 1.0, rs[2].Value.Value)

	del := e.req("POST", "/v1/metrics/batch-delete", map[string]any{"keys": []any{key("a", "x", t0), key("a", "x", t0)}})
	dr := results[map[string]string](t, del, 2)
	require.Equal(t, []string{"", "not_found"}, codes(dr))
	require.Equal(t, map[string]string{"agent_id": "a", "name": "x", "timestamp": t0.Format(time.RFC3339Nano)}, *dr[0].Value)

	results[metric](t, e.req("POST", "/v1/metrics/batch-get", map[string]any{"keys": []any{}}), 0)
	for name, c := range map[string]struct {
		path string
		body any
		want string
	}{
		"bad key time":  {"batch-get", map[string]any{"keys": []any{key("a", "x", t0), map[string]any{"agent_id": "a", "name": "x", "timestamp": "now"}}}, "keys[1].timestamp"},
		"key no name":   {"batch-delete", map[string]any{"keys": []any{map[string]any{"agent_id": "a", "timestamp": t0}}}, "keys[0].name is required"},
		"no keys":       {"batch-delete", map[string]any{}, "keys is required"},
		"item bad time": {"batch-put", map[string]any{"items": []any{map[string]any{"agent_id": "a", "name": "x", "value": 1, "timestamp": 5}}}, `"items.timestamp": want a string`},
		"item no value": {"batch-put", map[string]any{"items": []any{map[string]any{"agent_id": "a", "name": "x", "timestamp": t0}}}, "items[0].value is required"},
		"bad ttl":       {"batch-put", map[string]any{"ttl": "-5m", "items": []any{}}, "ttl"},
		"too many":      {"batch-get", map[string]any{"keys": make([]any, 1001)}, "at most 1000"},
	} {
		t.Run(name, func(t *testing.T) {
			msg := e.in(t).req("POST", "/v1/metrics/"+c.path, c.body).requireError(t, http.StatusBadRequest, "invalid")
			require.Contains(t, msg, c.want)
		})
	}
	res := e.req("GET", metricPath("b", "y", t0), nil)
	var m metric
	res.decode(t, &m)
	require.True(t, math.IsNaN(nan(m.Value)))
}

// nan reads a metric value that may be a string.
func nan(v any) float64 {
	if s, ok := v.(string); ok && s == "NaN" {
		return math.NaN()
	}
	f, _ := v.(float64)
	return f
}
