package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
)

// agentState is the JSON form of an agent state.
type agentState struct {
	AgentID     string     `json:"agent_id"`
	State       any        `json:"state"`
	StateBase64 *string    `json:"state_base64"`
	Version     string     `json:"version"`
	UpdatedAt   time.Time  `json:"updated_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// field returns a member of an object state.
func (s agentState) field(name string) any {
	m, _ := s.State.(map[string]any)
	return m[name]
}

func (e *env) putState(id, doc string, header ...string) agentState {
	e.t.Helper()
	res := e.req("PUT", "/v1/agents/"+id+"/state", doc, header...)
	require.Equal(e.t, http.StatusOK, res.code, "%s", res)
	var s agentState
	res.decode(e.t, &s)
	require.Equal(e.t, strconv.Quote(s.Version), res.header.Get("ETag"))
	return s
}

func TestAgentStateRoundTrip(t *testing.T) {
	e := newEnv(t)
	res := e.req("GET", "/v1/agents/a1/state", nil)
	res.requireError(t, http.StatusNotFound, "not_found")

	doc := `{"step": 3, "plan": ["a", "b"], "nested": {"ok": true}}`
	s := e.putState("a1", doc)
	require.Equal(t, "a1", s.AgentID)
	require.Equal(t, map[string]any{"step": 3.0, "plan": []any{"a", "b"}, "nested": map[string]any{"ok": true}}, s.State)
	require.NotEmpty(t, s.Version)
	require.WithinDuration(t, time.Now(), s.UpdatedAt, time.Minute)
	require.Nil(t, s.ExpiresAt, "the memory backend has no default TTL")

	res = e.req("GET", "/v1/agents/a1/state", nil)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	require.Equal(t, strconv.Quote(s.Version), res.header.Get("ETag"))
	require.Empty(t, res.header.Get("Storage-Stale"))
	var got agentState
	res.decode(t, &got)
	require.Equal(t, s, got)
	require.Contains(t, string(res.body), `"updated_at":"`+s.UpdatedAt.UTC().Format(time.RFC3339Nano)+`"`, "times are UTC with nanoseconds")

	// Any JSON document is a state, scalars and null included.
	for _, doc := range []string{`"text"`, `42`, `null`, `[1,2]`, ` {"a":1} `} {
		res := e.req("PUT", "/v1/agents/scalar/state", doc)
		require.Equal(t, http.StatusOK, res.code, "%s: %s", doc, res)
	}

	res = e.req("DELETE", "/v1/agents/a1/state", nil)
	require.Equal(t, http.StatusNoContent, res.code, "%s", res)
	require.Empty(t, res.body)
	e.req("GET", "/v1/agents/a1/state", nil).requireError(t, http.StatusNotFound, "not_found")
	e.req("DELETE", "/v1/agents/a1/state", nil).requireError(t, http.StatusNotFound, "not_found")
}

func TestAgentStatePathEscapes(t *testing.T) {
	e := newEnv(t)
	id := "team/agent 7?#%"
	res := e.reqRaw("PUT", "/v1/agents/team%2Fagent%207%3F%23%25/state", `{"x":1}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	var s agentState
	res.decode(t, &s)
	require.Equal(t, id, s.AgentID)
	items, _ := collect[agentState](e, "/v1/agent-states", "prefix", "team/")
	require.Len(t, items, 1)
	require.Equal(t, id, items[0].AgentID)
}

func TestAgentStateConditions(t *testing.T) {
	e := newEnv(t)
	v1 := e.putState("a", `{"n":1}`, "If-None-Match", "*")
	msg := e.req("PUT", "/v1/agents/a/state", `{"n":2}`, "If-None-Match", "*").
		requireError(t, http.StatusPreconditionFailed, "precondition_failed")
	require.NotEmpty(t, msg)

	v2 := e.putState("a", `{"n":2}`, "If-Match", strconv.Quote(v1.Version))
	require.NotEqual(t, v1.Version, v2.Version, "every write changes the version")
	e.req("PUT", "/v1/agents/a/state", `{"n":3}`, "If-Match", strconv.Quote(v1.Version)).
		requireError(t, http.StatusPreconditionFailed, "precondition_failed")
	v3 := e.putState("a", `{"n":3}`, "If-Match", v2.Version) // a bare version is accepted too

	// Conditional GET.
	res := e.req("GET", "/v1/agents/a/state", nil, "If-None-Match", strconv.Quote(v3.Version))
	require.Equal(t, http.StatusNotModified, res.code, "%s", res)
	require.Empty(t, res.body)
	require.Equal(t, strconv.Quote(v3.Version), res.header.Get("ETag"))
	res = e.req("GET", "/v1/agents/a/state", nil, "If-None-Match", strconv.Quote(v1.Version))
	require.Equal(t, http.StatusOK, res.code, "%s", res)

	// A refused write changed nothing.
	var cur agentState
	e.req("GET", "/v1/agents/a/state", nil).decode(t, &cur)
	require.Equal(t, v3.Version, cur.Version)
	require.Equal(t, 3.0, cur.field("n"))

	e.req("DELETE", "/v1/agents/a/state", nil, "If-Match", strconv.Quote(v2.Version)).
		requireError(t, http.StatusPreconditionFailed, "precondition_failed")
	res = e.req("DELETE", "/v1/agents/a/state", nil, "If-Match", strconv.Quote(v3.Version))
	require.Equal(t, http.StatusNoContent, res.code, "%s", res)

	for _, h := range [][]string{
		{"If-Match", "*"},
		{"If-Match", `W/"3"`},
		{"If-Match", `"1", "2"`},
		{"If-Match", `"abc"`},
		{"If-None-Match", `"3"`},
		{"If-Match", `"1"`, "If-None-Match", "*"},
	} {
		msg := e.req("PUT", "/v1/agents/b/state", `{}`, h...).requireError(t, http.StatusBadRequest, "invalid")
		require.Contains(t, msg, "If-", "%v", h)
	}
	e.req("DELETE", "/v1/agents/b/state", nil, "If-None-Match", "*").requireError(t, http.StatusBadRequest, "invalid")
	e.req("GET", "/v1/agents/b/state", nil).requireError(t, http.StatusNotFound, "not_found")

	// Conditions belong to agent states: other writes refuse them rather
	// than ignore them.
	e.req("PUT", "/v1/alerts/x", map[string]any{"agent_id": "a", "severity": "info"}, "If-Match", `"1"`).
		requireError(t, http.StatusBadRequest, "invalid")
	e.req("GET", "/v1/alerts/x", nil).requireError(t, http.StatusNotFound, "not_found")
}

func TestAgentStateTTL(t *testing.T) {
	e := newEnv(t)
	before := time.Now()
	s := e.putState("a", `{}`, "If-None-Match", "*")
	require.Nil(t, s.ExpiresAt)

	res := e.req("PUT", "/v1/agents/a/state?ttl=1h", `{}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	res.decode(t, &s)
	require.NotNil(t, s.ExpiresAt)
	require.WithinDuration(t, before.Add(time.Hour), *s.ExpiresAt, time.Minute)
	expires := *s.ExpiresAt

	res = e.req("PUT", "/v1/agents/a/state?ttl=keep", `{"k":1}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	s = agentState{}
	res.decode(t, &s)
	require.NotNil(t, s.ExpiresAt)
	require.True(t, expires.Equal(*s.ExpiresAt), "keep keeps the expiry")

	res = e.req("PUT", "/v1/agents/a/state?ttl=persist", `{}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	s = agentState{}
	res.decode(t, &s)
	require.Nil(t, s.ExpiresAt)

	for _, ttl := range []string{"soon", "-1s", "0", "1ns", "1000000h", ""} {
		path := "/v1/agents/a/state?ttl=" + ttl
		if ttl == "" {
			path = "/v1/agents/a/state?ttl=1h&ttl=2h"
		}
		e.req("PUT", path, `{}`).requireError(t, http.StatusBadRequest, "invalid")
	}
	e.req("PUT", "/v1/agents/a/state?expiry=1h", `{}`).requireError(t, http.StatusBadRequest, "invalid")
	e.req("DELETE", "/v1/agents/a/state?ttl=1h", nil).requireError(t, http.StatusBadRequest, "invalid")
}

func TestAgentStateBadBodies(t *testing.T) {
	e := newEnv(t, withMaxBody(64))
	for name, body := range map[string]string{
		"empty":          "",
		"blank":          "  \n",
		"malformed":      `{"a":`,
		"not JSON":       `hello`,
		"two values":     `{} {}`,
		"trailing comma": `{"a":1,}`,
		"not UTF-8":      "{\"x\":\"\xff\xfe\"}", // json.Valid takes it; served back, it would not parse
	} {
		t.Run(name, func(t *testing.T) {
			e.in(t).req("PUT", "/v1/agents/bad/state", body).requireError(t, http.StatusBadRequest, "invalid")
		})
	}
	e.req("POST", "/v1/agent-states/batch-put", "{\"items\":[{\"agent_id\":\"bad\",\"state\":{\"x\":\"\xff\"}}]}").
		requireError(t, http.StatusBadRequest, "invalid")
	res := e.req("PUT", "/v1/agents/bad/state", fmt.Sprintf(`{"pad":%q}`, make([]byte, 100)))
	msg := res.requireError(t, http.StatusRequestEntityTooLarge, "too_large")
	require.Contains(t, msg, "64 bytes")
	e.req("GET", "/v1/agents/bad/state", nil).requireError(t, http.StatusNotFound, "not_found")
}

func TestAgentStateQuery(t *testing.T) {
	e := newEnv(t)
	var items []map[string]any
	for i := range 25 {
		items = append(items, map[string]any{"agent_id": fmt.Sprintf("fleet-%02d", i), "state": map[string]any{"i": i}})
	}
	items = append(items, map[string]any{"agent_id": "other", "state": map[string]any{}})
	results[agentState](t, e.req("POST", "/v1/agent-states/batch-put", map[string]any{"items": items}), len(items))

	got, pages := collect[agentState](e, "/v1/agent-states", "prefix", "fleet-", "limit", "10")
	require.GreaterOrEqual(t, pages, 3)
	require.Len(t, got, 25)
	for i, s := range got {
		require.Equal(t, fmt.Sprintf("fleet-%02d", i), s.AgentID, "in agent ID order")
		require.Equal(t, float64(i), s.field("i"))
	}
	all, _ := collect[agentState](e, "/v1/agent-states")
	require.Len(t, all, 26)

	for _, q := range []string{
		"limit=0", "limit=1001", "limit=ten", "limit=-1",
		"cursor=%21%21", "cursor=not+base64",
		"limit=1&limit=2",
		"agent_id=a",
		"%zz",
	} {
		e.req("GET", "/v1/agent-states?"+q, nil).requireError(t, http.StatusBadRequest, "invalid")
	}
}

func TestAgentStateBulk(t *testing.T) {
	e := newEnv(t)
	put := e.req("POST", "/v1/agent-states/batch-put", map[string]any{
		"items": []map[string]any{
			{"agent_id": "a", "state": map[string]any{"n": 1}},
			{"agent_id": "b", "state": []int{1, 2}},
			{"agent_id": "", "state": 1},
		},
		"ttl": "2h",
	})
	rs := results[agentState](t, put, 3)
	require.Equal(t, []string{"", "", "invalid"}, codes(rs))
	require.NotNil(t, rs[0].Value.ExpiresAt)
	require.WithinDuration(t, time.Now().Add(2*time.Hour), *rs[0].Value.ExpiresAt, time.Minute)
	va := rs[0].Value.Version

	get := e.req("POST", "/v1/agent-states/batch-get", map[string]any{"agent_ids": []string{"b", "missing", "a"}})
	rs = results[agentState](t, get, 3)
	require.Equal(t, []string{"", "not_found", ""}, codes(rs))
	require.Equal(t, "b", rs[0].Value.AgentID)
	require.Equal(t, "a", rs[2].Value.AgentID)
	require.Equal(t, va, rs[2].Value.Version)

	// Conditional: each item's version must match; "0" or none is create-only.
	cond := e.req("POST", "/v1/agent-states/batch-put", map[string]any{
		"conditional": true,
		"items": []map[string]any{
			{"agent_id": "a", "state": map[string]any{"n": 2}, "version": va},
			{"agent_id": "b", "state": 2, "version": "1"},
			{"agent_id": "c", "state": 3, "version": "0"},
			{"agent_id": "a", "state": 4},
			{"agent_id": "d", "state": 5},
		},
	})
	rs = results[agentState](t, cond, 5)
	require.Equal(t, []string{"", "conflict", "", "conflict", ""}, codes(rs))
	require.NotEqual(t, va, rs[0].Value.Version)

	e.req("POST", "/v1/agent-states/batch-put", map[string]any{
		"items": []map[string]any{{"agent_id": "a", "state": 1, "version": "3"}},
	}).requireError(t, http.StatusBadRequest, "invalid")

	del := e.req("POST", "/v1/agent-states/batch-delete", map[string]any{"agent_ids": []string{"a", "zz", "c"}})
	dr := results[map[string]string](t, del, 3)
	require.Equal(t, []string{"", "not_found", ""}, codes(dr))
	require.Equal(t, map[string]string{"agent_id": "a"}, *dr[0].Value)
	got := results[agentState](t, e.req("POST", "/v1/agent-states/batch-get", map[string]any{"agent_ids": []string{"a", "b", "c", "d"}}), 4)
	require.Equal(t, []string{"not_found", "", "not_found", ""}, codes(got))

	// Empty lists are fine; missing ones, too many items and bad items are not.
	results[agentState](t, e.req("POST", "/v1/agent-states/batch-get", map[string]any{"agent_ids": []string{}}), 0)
	for name, body := range map[string]any{
		"missing ids":   map[string]any{},
		"null ids":      map[string]any{"agent_ids": nil},
		"too many":      map[string]any{"agent_ids": make([]string, 1001)},
		"wrong type":    map[string]any{"agent_ids": "a"},
		"unknown field": map[string]any{"agent_ids": []string{"a"}, "ids": []string{"b"}},
	} {
		t.Run(name, func(t *testing.T) {
			e.in(t).req("POST", "/v1/agent-states/batch-get", body).requireError(t, http.StatusBadRequest, "invalid")
		})
	}
	for name, body := range map[string]any{
		"no state":    map[string]any{"items": []map[string]any{{"agent_id": "x"}}},
		"no agent":    map[string]any{"items": []map[string]any{{"state": 1}}},
		"bad version": map[string]any{"conditional": true, "items": []map[string]any{{"agent_id": "x", "state": 1, "version": "v1"}}},
		"num version": map[string]any{"conditional": true, "items": []map[string]any{{"agent_id": "x", "state": 1, "version": 1}}},
		"bad ttl":     map[string]any{"ttl": "forever", "items": []map[string]any{{"agent_id": "x", "state": 1}}},
		"server set":  map[string]any{"items": []map[string]any{{"agent_id": "x", "state": 1, "updated_at": "2025-01-01T00:00:00Z"}}},
	} {
		t.Run(name, func(t *testing.T) {
			e.in(t).req("POST", "/v1/agent-states/batch-put", body).requireError(t, http.StatusBadRequest, "invalid")
		})
	}
	e.req("GET", "/v1/agents/x/state", nil).requireError(t, http.StatusNotFound, "not_found")
}

// TestAgentStateNotJSON reads a state written through the Go API that is
// not JSON: it comes base64-encoded in state_base64.
func TestAgentStateNotJSON(t *testing.T) {
	st := openStore(t, host.Config{Plugin: "builtin:memory"})
	e := newEnvWith(t, st)
	_, err := st.PutAgentState(t.Context(), host.AgentState{AgentID: "bin", State: []byte{0xff, 0x00, 'x'}})
	require.NoError(t, err)
	res := e.req("GET", "/v1/agents/bin/state", nil)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	var s agentState
	res.decode(t, &s)
	require.Nil(t, s.State)
	require.NotNil(t, s.StateBase64)
	require.Equal(t, "/wB4", *s.StateBase64)
}

func TestAgentStateUnsupportedOptions(t *testing.T) {
	// agentstate.wasm advertises neither TTLs nor conditional writes.
	st := openStore(t, host.Config{Plugin: "../../../../testdata/plugins/agentstate.wasm"})
	e := newEnvWith(t, st)
	e.putState("a", `{}`)
	e.req("PUT", "/v1/agents/a/state?ttl=1h", `{}`).requireError(t, http.StatusNotImplemented, "unsupported")
	e.req("PUT", "/v1/agents/a/state", `{}`, "If-Match", `"1"`).requireError(t, http.StatusNotImplemented, "unsupported")
	e.req("GET", "/v1/agent-states", nil).requireError(t, http.StatusNotImplemented, "unsupported")
	e.req("POST", "/v1/agent-states/batch-get", map[string]any{"agent_ids": []string{"a"}}).
		requireError(t, http.StatusNotImplemented, "unsupported")
}

// A client that sends its headers and then part of the body holds the
// connection no longer than the body read timeout: 408.
func TestSlowBodyTimesOut(t *testing.T) {
	httpapi.SetBodyReadTimeout(t, 300*time.Millisecond)
	e := newEnv(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "PUT /v1/agents/slow/state HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusRequestTimeout, res.StatusCode)
	e.req("GET", "/v1/agents/slow/state", nil).requireError(t, http.StatusNotFound, "not_found")
}

// A state document is stored as sent: the checks of a request's own
// members (repeated names, names in another case) do not look into it,
// and label names keep their case.
func TestDocumentsAndLabelsKeepTheirNames(t *testing.T) {
	e := newEnv(t)
	put := e.req("POST", "/v1/agent-states/batch-put", `{"items":[{"agent_id":"a","state":{"Agent_ID":1,"x":{"X":2,"X":3}}}]}`)
	rs := results[agentState](t, put, 1)
	require.Equal(t, []string{""}, codes(rs))
	got := e.req("GET", "/v1/agents/a/state", nil)
	require.Equal(t, http.StatusOK, got.code, "%s", got)
	var doc map[string]json.RawMessage
	got.decode(t, &doc)
	require.Equal(t, `{"Agent_ID":1,"x":{"X":2,"X":3}}`, string(doc["state"]), "the document as sent")

	res := e.req("POST", "/v1/metrics", `{"agent_id":"a","name":"n","value":1,"timestamp":"2026-01-01T00:00:00Z","labels":{"Host":"a","host":"b"}}`)
	require.Less(t, res.code, 300, "%s", res)
	// An escaped surrogate pair is a character; an escaped backslash
	// before "ud800" is text.
	res = e.req("POST", "/v1/metrics", `{"agent_id":"a","name":"n","value":1,"timestamp":"2026-01-01T00:00:01Z","labels":{"smile":"\ud83d\ude00","path":"C:\\ud800"}}`)
	require.Less(t, res.code, 300, "%s", res)
	require.Contains(t, string(res.body), `"smile":"😀"`)
}
