package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
)

// fillList returns prefix, then item repeated (comma-separated) to about
// size bytes, then suffix.
func fillList(prefix, item, suffix string, size int) []byte {
	var b bytes.Buffer
	b.WriteString(prefix)
	for b.Len() < size-len(item)-len(suffix)-1 {
		b.WriteString(item)
		b.WriteByte(',')
	}
	b.WriteString(item)
	b.WriteString(suffix)
	return b.Bytes()
}

// TestBulkOverItemBoundRefusedBeforeDecoding: a bulk body with more than
// 1000 items is refused 400 naming the bound before its items are built,
// so that it costs about its own size in memory, not a hundred times it.
func TestBulkOverItemBoundRefusedBeforeDecoding(t *testing.T) {
	e := newEnv(t)
	size := httpapi.DefaultMaxBodyBytes - 64
	for _, c := range []struct {
		path string
		body []byte
	}{
		{"/v1/metrics/batch-put", fillList(`{"items":[`, `{}`, `]}`, size)},
		{"/v1/metrics/batch-get", fillList(`{"keys":[`, `{}`, `]}`, size)},
		{"/v1/metrics/batch-delete", fillList(`{"keys": [ `, `{"agent_id":"a"}`, ` ] }`, size)},
		{"/v1/alerts/batch-put", fillList(`{"ttl":"1h","items":[`, `{"labels":{"a,b":"[,]"}}`, `]}`, size)},
		{"/v1/alerts/batch-delete", fillList(`{"ids":[`, `""`, `]}`, size)},
		{"/v1/agent-states/batch-get", fillList(`{"agent_ids":[`, `""`, `]}`, size)},
		{"/v1/agent-states/batch-put", fillList(`{"items":[`, `{"state":[1,[2]]}`, `]}`, size)},
		{"/v1/agent-states/batch-delete", fillList(`{"agent_ids":[`, `"\"]"`, `]}`, size)},
	} {
		req := httptest.NewRequest("POST", c.path, bytes.NewReader(c.body))
		rec := httptest.NewRecorder()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e.h.ServeHTTP(rec, req)
		runtime.ReadMemStats(&after)
		res := &response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
		msg := res.requireError(t, http.StatusBadRequest, "invalid")
		require.Contains(t, msg, "at most 1000 per request", c.path)
		alloc := after.TotalAlloc - before.TotalAlloc
		// Reading the body takes a few times its size, and the process's
		// other goroutines allocate meanwhile; decoding 4 MiB of items took
		// about 100 times it.
		require.Less(t, alloc, 10*uint64(len(c.body)), "%s: a body of %d bytes refused for its item count allocated %d bytes", c.path, len(c.body), alloc)
	}

	// 1000 items are accepted, and the bound counts elements, not commas
	// inside them.
	var ids []string
	for i := range 1000 {
		ids = append(ids, fmt.Sprintf("a,%d", i))
	}
	res := e.req("POST", "/v1/agent-states/batch-get", map[string]any{"agent_ids": ids})
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	res = e.req("POST", "/v1/agent-states/batch-get", map[string]any{"agent_ids": append(ids, "x")})
	require.Contains(t, res.requireError(t, http.StatusBadRequest, "invalid"), `"agent_ids" has more than 1000 items`)
}

// TestLabelBoundsRefusedOverHTTP: a metric or alert over the label bounds
// is answered 400 naming the bound, and nothing is stored.
func TestLabelBoundsRefusedOverHTTP(t *testing.T) {
	e := newEnv(t)
	labels := func(n, size int) map[string]string {
		l := map[string]string{}
		for i := range n {
			l[fmt.Sprintf("l%d", i)] = strings.Repeat("v", size)
		}
		return l
	}
	ts := t0.Format("2006-01-02T15:04:05Z07:00")
	for _, c := range []struct {
		labels map[string]string
		bound  string
	}{
		{labels(host.MaxLabels+1, 1), "at most 64 per record"},
		{labels(50_000, 1), "at most 64 per record"},
		{labels(2, host.MaxLabelBytes/2), "at most 1048576 per record"},
	} {
		m := map[string]any{"agent_id": "a", "name": "cpu", "value": 1, "timestamp": ts, "labels": c.labels}
		res := e.req("POST", "/v1/metrics", m)
		require.Contains(t, res.requireError(t, http.StatusBadRequest, "invalid"), c.bound)
		res = e.req("POST", "/v1/metrics/batch-put", map[string]any{"items": []any{m}})
		require.Contains(t, res.requireError(t, http.StatusBadRequest, "invalid"), c.bound)
		res = e.req("GET", "/v1/agents/a/metrics/cpu/"+ts, nil)
		res.requireError(t, http.StatusNotFound, "not_found")

		a := map[string]any{"agent_id": "a", "severity": "info", "status": "firing", "labels": c.labels}
		res = e.req("PUT", "/v1/alerts/x", a)
		require.Contains(t, res.requireError(t, http.StatusBadRequest, "invalid"), c.bound)
		res = e.req("GET", "/v1/alerts/x", nil)
		res.requireError(t, http.StatusNotFound, "not_found")
	}
	res := e.req("POST", "/v1/metrics", map[string]any{"agent_id": "a", "name": "cpu", "value": 1, "timestamp": ts, "labels": labels(host.MaxLabels, 200)})
	require.Equal(t, http.StatusOK, res.code, "%s", res)
}

// TestMatcherBoundsRefusedOverHTTP: a query with more than 128 label
// matchers, or matchers over their byte bound, is answered 400 naming
// the bound; 128 are served.
func TestMatcherBoundsRefusedOverHTTP(t *testing.T) {
	e := newEnv(t)
	params := func(n int, value string) []string {
		var pairs []string
		for range n {
			pairs = append(pairs, "label", "l=~"+value)
		}
		return pairs
	}
	for _, route := range []string{"/v1/metrics", "/v1/alerts"} {
		res := e.req("GET", query(route, params(host.MaxMatchers+1, "(a|b)*c")...), nil)
		require.Contains(t, res.requireError(t, http.StatusBadRequest, "invalid"), "at most 128 label matchers per query")
		res = e.req("GET", query(route, params(4000, "(a|b)*c")...), nil)
		require.Contains(t, res.requireError(t, http.StatusBadRequest, "invalid"), "at most 128 label matchers per query")
		res = e.req("GET", query(route, params(host.MaxMatchers, strings.Repeat("d", 300))...), nil)
		require.Contains(t, res.requireError(t, http.StatusBadRequest, "invalid"), "at most 32768 per query")
		res = e.req("GET", query(route, params(host.MaxMatchers, "(a|b)*c")...), nil)
		require.Equal(t, http.StatusOK, res.code, "%s", res)
	}
}

// TestEchoedInputIsCut: an error message quotes at most a short prefix of
// what the client sent.
func TestEchoedInputIsCut(t *testing.T) {
	e := newEnv(t)
	name := strings.Repeat("a", 1<<20)
	res := e.reqRaw("GET", "/healthz?"+name, nil)
	msg := res.requireError(t, http.StatusBadRequest, "invalid")
	require.Less(t, len(res.body), 1024, "%.200s", res.body)
	require.Contains(t, msg, fmt.Sprintf("(%d bytes)", len(name)))
	res = e.req("GET", query("/v1/metrics", "cursor", name), nil)
	require.Less(t, len(res.body), 1024, "%.200s", res.body)
	res.requireError(t, http.StatusBadRequest, "invalid")
}

// TestBodiesDecodedAtOnceAreBounded: a request whose body is read waits
// for a turn to decode it while others hold every turn, and is served
// once one is given back.
func TestBodiesDecodedAtOnceAreBounded(t *testing.T) {
	e := newEnv(t)
	release := httpapi.HoldDecoding(e.h)
	done := make(chan *response, 1)
	go func() {
		req := httptest.NewRequest("POST", "/v1/agent-states/batch-get", strings.NewReader(`{"agent_ids":["a"]}`))
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		done <- &response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	}()
	require.Never(t, func() bool { return len(done) > 0 }, 300*time.Millisecond, 10*time.Millisecond, "decoded while every turn was held")
	release()
	var res *response
	require.Eventually(t, func() bool {
		select {
		case res = <-done:
			return true
		default:
			return false
		}
	}, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
}

// labelsBody returns a metric or alert body (batch: a batch-put whose
// second item has the labels) with about size bytes of labels, n of them.
func labelsBody(prefix string, batch bool, size int) (body []byte, n int) {
	var b bytes.Buffer
	if batch {
		b.WriteString(`{"items":[` + prefix + `"labels":{"x":"y"}},` + prefix + `"Labels":{`)
	} else {
		b.WriteString(prefix + `"labels":{`)
	}
	for b.Len() < size-64 {
		if n > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%x":""`, n)
		n++
	}
	b.WriteString(`}}`)
	if batch {
		b.WriteString(`]}`)
	}
	return b.Bytes(), n
}

// TestLabelCountRefusedBeforeDecoding: a metric or alert with more labels
// than host.MaxLabels is refused, with the store's message, before its
// labels are decoded: a 4 MiB body of labels costs about its size, not
// the 18 times it cost decoded into a map (72 MB).
func TestLabelCountRefusedBeforeDecoding(t *testing.T) {
	e := newEnv(t)
	size := httpapi.DefaultMaxBodyBytes - 64
	ts := t0.Format(time.RFC3339)
	metric := `{"agent_id":"a","name":"cpu","value":1,"timestamp":"` + ts + `",`
	alert := `{"id":"x","agent_id":"a","severity":"info","status":"firing",`
	for _, c := range []struct {
		method, path string
		prefix       string
		batch        bool
	}{
		{"POST", "/v1/metrics", metric, false},
		{"POST", "/v1/metrics/batch-put", metric, true},
		{"PUT", "/v1/alerts/x", alert, false},
		{"POST", "/v1/alerts/batch-put", alert, true},
	} {
		body, n := labelsBody(c.prefix, c.batch, size)
		want := fmt.Sprintf("%d labels; at most 64 per record", n)
		if c.batch {
			want = "item 1: " + want
		}
		req := httptest.NewRequest(c.method, c.path, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e.h.ServeHTTP(rec, req)
		runtime.ReadMemStats(&after)
		res := &response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
		require.Equal(t, want, res.requireError(t, http.StatusBadRequest, "invalid"), c.path)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d labels in %d bytes refused, %d bytes allocated", c.path, n, len(body), alloc)
		require.Less(t, alloc, 8*uint64(len(body)), "%s: a body of %d bytes refused for its labels allocated %d bytes", c.path, len(body), alloc)
	}
	res := e.req("GET", "/v1/alerts/x", nil)
	res.requireError(t, http.StatusNotFound, "not_found")
}
