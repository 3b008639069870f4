package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// The document check reads an event stream with this decoder: it parses
// the frames and holds each data line to the Event or StreamEnd schema,
// and each id line to its event's id.
func init() {
	openapi3filter.RegisterBodyDecoder("text/event-stream", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		raw, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		doc, err := loadDocument()
		if err != nil {
			return nil, err
		}
		frames, rest := parseFrames(raw)
		if len(rest) > 0 {
			return nil, fmt.Errorf("the stream ends inside a frame: %q", rest)
		}
		if len(frames) == 0 || frames[0].retry != "1000" {
			return nil, fmt.Errorf("the stream does not open with retry: 1000")
		}
		for i, f := range frames {
			if f.data == "" {
				continue
			}
			schema := "Event"
			switch f.event {
			case "":
			case "end":
				schema = "StreamEnd"
				if i != len(frames)-1 {
					return nil, fmt.Errorf("frame %d: an end event is not the last", i)
				}
			case "lost":
				schema = "StreamLost"
				if f.id == "" {
					return nil, fmt.Errorf("frame %d: a lost event without an id", i)
				}
			default:
				return nil, fmt.Errorf("frame %d: undocumented event type %q", i, f.event)
			}
			var v any
			if err := json.Unmarshal([]byte(f.data), &v); err != nil {
				return nil, fmt.Errorf("frame %d: data is not JSON: %w", i, err)
			}
			if err := doc.Components.Schemas[schema].Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
				return nil, fmt.Errorf("frame %d: data does not fit %s: %w", i, schema, err)
			}
			if m, _ := v.(map[string]any); schema == "Event" && m["id"] != f.id {
				return nil, fmt.Errorf("frame %d: id line %q, data id %v", i, f.id, m["id"])
			}
		}
		return string(raw), nil
	})
}

// frame is one frame of an event stream: the fields of its lines.
type frame struct {
	id, event, data, retry string
	comment                string
}

// parseFrames splits an event stream into its frames and what follows
// the last complete one.
func parseFrames(raw []byte) (frames []frame, rest []byte) {
	for {
		end := bytes.Index(raw, []byte("\n\n"))
		if end < 0 {
			return frames, raw
		}
		frames = append(frames, parseFrame(string(raw[:end])))
		raw = raw[end+2:]
	}
}

func parseFrame(s string) frame {
	var f frame
	for _, line := range strings.Split(s, "\n") {
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "":
			f.comment = value
		case "id":
			f.id = value
		case "event":
			f.event = value
		case "data":
			f.data = value
		case "retry":
			f.retry = value
		}
	}
	return f
}

// eventData is the JSON of an event.
type eventData struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Op      string    `json:"op"`
	AgentID string    `json:"agent_id"`
	Key     string    `json:"key"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Data    []byte    `json:"data"`
}

// sse is an open event stream, read frame by frame by its own goroutine.
type sse struct {
	t      *testing.T
	req    *http.Request
	res    *http.Response
	frames chan frame // closed when the stream ends
	start  string     // the id of the opening frame

	mu  sync.Mutex
	raw []byte // the complete frames read so far
}

// open starts an event stream at path (with query) and requires 200.
// header holds name, value pairs, as for req. The stream is closed, and
// what it carried checked against the document, when the test ends.
func (e *env) open(path string, header ...string) *sse {
	t := e.t
	t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	require.NoError(t, err)
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := e.srv.Client()
	if e.client != nil {
		client = e.client
	}
	res, err := client.Do(req)
	require.NoError(t, err)
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
	}
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	s := &sse{t: t, req: req, res: res, frames: make(chan frame, 100_000)}
	go s.read()
	select {
	case f := <-s.frames:
		require.Equal(t, "1000", f.retry, "the stream opens with retry: 1000")
		require.NotEmpty(t, f.id, "and the position it starts after")
		require.Empty(t, f.data, "which is no event")
		s.start = f.id
	case <-time.After(5 * time.Second):
		t.Fatal("the stream does not open within 5s")
	}
	t.Cleanup(func() {
		s.close()
		s.mu.Lock()
		raw := s.raw
		s.mu.Unlock()
		checkExchange(t, req, nil, &response{code: res.StatusCode, header: res.Header, body: raw})
	})
	return s
}

func (s *sse) read() {
	defer close(s.frames)
	rd := bufio.NewReader(s.res.Body)
	var cur []byte
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			return
		}
		cur = append(cur, line...)
		if len(line) == 1 { // the blank line ending a frame
			s.mu.Lock()
			s.raw = append(s.raw, cur...)
			s.mu.Unlock()
			s.frames <- parseFrame(strings.TrimSuffix(string(cur), "\n\n"))
			cur = nil
		}
	}
}

func (s *sse) close() { s.res.Body.Close() }

// next returns the next frame that is not a comment or the opening retry,
// failing after timeout; ok is false when the stream ended first.
func (s *sse) next(timeout time.Duration) (f frame, ok bool) {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f, ok = <-s.frames:
			if ok && (f.comment != "" || f.retry != "") {
				continue
			}
			return f, ok
		case <-deadline:
			s.t.Fatalf("no event within %s", timeout)
			return frame{}, false
		}
	}
}

// event returns the next event, requiring one.
func (s *sse) event() eventData {
	s.t.Helper()
	f, ok := s.next(5 * time.Second)
	require.True(s.t, ok, "the stream ended")
	require.Empty(s.t, f.event, "an event, not %q: %s", f.event, f.data)
	var ev eventData
	require.NoError(s.t, json.Unmarshal([]byte(f.data), &ev), f.data)
	require.Equal(s.t, f.id, ev.ID)
	return ev
}

// end requires the end event next, then the end of the stream, and
// returns its code.
func (s *sse) end(timeout time.Duration) string {
	s.t.Helper()
	f, ok := s.next(timeout)
	require.True(s.t, ok, "the stream ended without an end event")
	require.Equal(s.t, "end", f.event, "want the end event, got %+v", f)
	var body struct{ Code, Message string }
	require.NoError(s.t, json.Unmarshal([]byte(f.data), &body))
	require.NotEmpty(s.t, body.Message)
	_, ok = s.next(5 * time.Second)
	require.False(s.t, ok, "the stream goes on after its end event")
	return body.Code
}

// quiet requires no event within d.
func (s *sse) quiet(d time.Duration) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-s.frames:
			if ok && (f.comment != "" || f.retry != "") {
				continue
			}
			s.t.Fatalf("unexpected frame %+v (ok %v)", f, ok)
		case <-deadline:
			return
		}
	}
}

// keys are the keys of events.
func keys(evs ...eventData) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Key
	}
	return out
}

// eventsEnv is an env whose Backends are a manager over memory backends,
// which deliver events.
type eventsEnv struct {
	*env
	m *manager.Manager
}

// memoryFile is a configuration of memory backends, the first serving
// every kind; each backend's events have a buffer of buffer events and a
// log of retention (0: the defaults).
func memoryFile(buffer, retention int, names ...string) *config.File {
	f := &config.File{Routes: config.Routes{Metrics: names[0], Alerts: names[0], AgentStates: names[0]}}
	for _, name := range names {
		f.Backends = append(f.Backends, config.Backend{
			Name:   name,
			Digest: name,
			Config: host.Config{Name: name, Plugin: "builtin:memory", Events: events.Options{Buffer: buffer, Retention: retention}},
		})
	}
	return f
}

func newEventsEnv(t *testing.T, f *config.File, configure ...func(*httpapi.Options)) *eventsEnv {
	t.Helper()
	m, err := manager.New(context.Background(), f, manager.Options{Host: []host.Option{host.WithCompilationCache(cacheDir)}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	e := &env{t: t, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	o := httpapi.Options{
		Backends: managerEvents{m},
		Registry: e.reg,
		Logger:   hclog.New(&hclog.LoggerOptions{Output: e.logs, Level: hclog.Info}),
	}
	for _, c := range configure {
		c(&o)
	}
	h, err := httpapi.New(o)
	require.NoError(t, err)
	e.h = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return &eventsEnv{env: e, m: m}
}

func (e *eventsEnv) in(t *testing.T) *eventsEnv { return &eventsEnv{env: e.env.in(t), m: e.m} }

func TestEventsCarryEveryChange(t *testing.T) {
	e := newEventsEnv(t, memoryFile(0, 0, "memory"))
	all := e.open("/v1/events")

	st := e.putState("a1", `{"step":1}`)
	res := e.req("POST", "/v1/metrics", `{"agent_id":"a1","name":"cpu","value":0.5,"timestamp":"2026-11-26T10:00:00Z"}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	res = e.req("PUT", "/v1/alerts/x1", `{"agent_id":"a2","severity":"critical","message":"disk full"}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	res = e.req("POST", "/v1/alerts/x1/status", `{"status":"acknowledged"}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	require.Equal(t, http.StatusNoContent, e.req("DELETE", "/v1/agents/a1/state", nil).code)

	ev := all.event()
	assert.Equal(t, eventData{ID: ev.ID, Kind: "agent_states", Op: "put", AgentID: "a1", Key: "a1", Version: st.Version, Time: ev.Time}, ev)
	assert.Regexp(t, `^memory=\d+-\d+$`, ev.ID)
	assert.WithinDuration(t, time.Now(), ev.Time, time.Minute)
	ev = all.event()
	assert.Equal(t, []string{"metrics", "put", "a1", "cpu@2026-11-26T10:00:00Z", ""}, []string{ev.Kind, ev.Op, ev.AgentID, ev.Key, ev.Version})
	ev = all.event()
	assert.Equal(t, []string{"alerts", "put", "a2", "x1"}, []string{ev.Kind, ev.Op, ev.AgentID, ev.Key})
	assert.NotEmpty(t, ev.Version, "an alert's version is its updated_at")
	ev = all.event()
	assert.Equal(t, []string{"alerts", "status", "x1"}, []string{ev.Kind, ev.Op, ev.Key})
	ev = all.event()
	assert.Equal(t, []string{"agent_states", "delete", "a1", ""}, []string{ev.Kind, ev.Op, ev.Key, ev.Version})
}

func TestEventsFilters(t *testing.T) {
	// Two backends: metrics are aux's, the rest main's.
	f := memoryFile(0, 0, "main", "aux")
	f.Routes.Metrics = "aux"
	e := newEventsEnv(t, f)
	streams := map[string]*sse{
		"all":            e.open("/v1/events"),
		"metrics":        e.open("/v1/events?kind=metrics"),
		"alerts,metrics": e.open("/v1/events?kind=alerts,%20metrics"),
		"repeated kind":  e.open("/v1/events?kind=alerts&kind=metrics"),
		"agent b":        e.open("/v1/events?agent_id=b"),
		"agents a,b":     e.open("/v1/events?agent_id=a,b"), // one ID, with a comma
		"agents a and b": e.open("/v1/events?agent_id=a&agent_id=b"),
		"deletes":        e.open("/v1/events?op=delete"),
		"puts of b":      e.open("/v1/events?op=put,status&agent_id=b"),
		"plugin's own":   e.open("/v1/events?kind=mine"),
		"states, b":      e.open("/v1/events?kind=agent_states&agent_id=b&op=put"),
	}

	e.putState("a", `{}`)
	e.putState("b", `{}`)
	e.putState("a,b", `{}`)
	res := e.req("POST", "/v1/metrics", `{"agent_id":"b","name":"cpu","value":1,"timestamp":"2026-01-01T00:00:00Z"}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	res = e.req("PUT", "/v1/alerts/x", `{"agent_id":"a","severity":"info"}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	require.Equal(t, http.StatusNoContent, e.req("DELETE", "/v1/agents/b/state", nil).code)

	want := map[string][]string{
		"all":            {"agent_states/put/a", "agent_states/put/b", "agent_states/put/a,b", "metrics/put/b", "alerts/put/a", "agent_states/delete/b"},
		"metrics":        {"metrics/put/b"},
		"alerts,metrics": {"metrics/put/b", "alerts/put/a"},
		"repeated kind":  {"metrics/put/b", "alerts/put/a"},
		"agent b":        {"agent_states/put/b", "metrics/put/b", "agent_states/delete/b"},
		"agents a,b":     {"agent_states/put/a,b"},
		"agents a and b": {"agent_states/put/a", "agent_states/put/b", "metrics/put/b", "alerts/put/a", "agent_states/delete/b"},
		"deletes":        {"agent_states/delete/b"},
		"puts of b":      {"agent_states/put/b", "metrics/put/b"},
		"plugin's own":   nil,
		"states, b":      {"agent_states/put/b"},
	}
	for name, s := range streams {
		var got, gotMain, wantMain []string
		for range want[name] {
			ev := s.event()
			got = append(got, ev.Kind+"/"+ev.Op+"/"+ev.AgentID)
		}
		s.quiet(50 * time.Millisecond)
		// The two backends' events interleave; each backend's keep their
		// order.
		assert.ElementsMatch(t, want[name], got, name)
		for _, w := range want[name] {
			if !strings.HasPrefix(w, "metrics/") {
				wantMain = append(wantMain, w)
			}
		}
		for _, g := range got {
			if !strings.HasPrefix(g, "metrics/") {
				gotMain = append(gotMain, g)
			}
		}
		assert.Equal(t, wantMain, gotMain, name)
	}
}

func TestEventsResume(t *testing.T) {
	e := newEventsEnv(t, memoryFile(0, 0, "memory"))
	s := e.open("/v1/events?kind=agent_states")
	e.putState("s1", `{}`)
	first := s.event()
	s.close()

	// Missed while away, then resumed: exactly what came after.
	e.putState("s2", `{}`)
	e.putState("s3", `{}`)
	byHeader := e.open("/v1/events?kind=agent_states", "Last-Event-ID", first.ID)
	byQuery := e.open(query("/v1/events", "kind", "agent_states", "last_event_id", first.ID))
	// The header wins over the parameter.
	both := e.open(query("/v1/events", "kind", "agent_states", "last_event_id", "memory=1-1"), "Last-Event-ID", first.ID)
	e.putState("s4", `{}`)
	for name, s := range map[string]*sse{"header": byHeader, "query": byQuery, "both": both} {
		assert.Equal(t, []string{"s2", "s3", "s4"}, keys(s.event(), s.event(), s.event()), name)
		s.quiet(20 * time.Millisecond)
	}

	// A position of the merged stream resumes it.
	s4 := e.open("/v1/events", "Last-Event-ID", first.ID)
	assert.Equal(t, "s2", s4.event().Key)

	// A client that received no event yet resumes from the opening
	// frame's id, not from the time it reconnects.
	idle := e.open("/v1/events?kind=agent_states")
	idle.close()
	e.putState("s5", `{}`)
	back := e.open("/v1/events?kind=agent_states", "Last-Event-ID", idle.start)
	assert.Equal(t, "s5", back.event().Key)
}

func TestEventsRefusals(t *testing.T) {
	e := newEventsEnv(t, memoryFile(0, 3, "memory"))
	for name, path := range map[string]string{
		"empty kind":             "/v1/events?kind=",
		"empty kind in a list":   "/v1/events?kind=metrics,,alerts",
		"trailing comma":         "/v1/events?kind=metrics,",
		"blank op":               "/v1/events?op=%20",
		"empty agent":            "/v1/events?agent_id=",
		"unknown parameter":      "/v1/events?agent=a",
		"two resume points":      "/v1/events?last_event_id=a&last_event_id=b",
		"malformed position":     "/v1/events?last_event_id=garbage",
		"malformed backend's ID": "/v1/events?last_event_id=memory%3Dnonsense",
	} {
		t.Run(name, func(t *testing.T) {
			e.in(t).req("GET", path, nil).requireError(t, http.StatusBadRequest, "invalid")
		})
	}
	res := e.req("GET", "/v1/events", nil, "Last-Event-ID", "memory=;")
	msg := res.requireError(t, http.StatusBadRequest, "invalid")
	assert.Contains(t, msg, "Last-Event-ID")

	// No longer retained: three events are kept, and the first of five is
	// gone; an ID of another process's log is as lost.
	s := e.open("/v1/events")
	for i := range 5 {
		e.putState(fmt.Sprint("s", i), `{}`)
	}
	// The position of the first of the five, in this log (the epoch of
	// any of its IDs): a stream falling behind skips what the log dropped,
	// so the first event it delivers may be a later one.
	seen := s.event().ID
	first := seen[:strings.LastIndexByte(seen, '-')] + "-1"
	for _, pos := range []string{first, "memory=1-1"} {
		res = e.req("GET", "/v1/events", nil, "Last-Event-ID", pos)
		msg = res.requireError(t, http.StatusGone, "events_lost")
		assert.Contains(t, msg, "reconnect without Last-Event-ID")
	}
	// The beginning of what is retained is always there.
	from := e.open("/v1/events", "Last-Event-ID", "memory=0-0")
	assert.Equal(t, []string{"s2", "s3", "s4"}, keys(from.event(), from.event(), from.event()))

	// Backends without events: 501.
	plain := newEnv(t)
	plain.req("GET", "/v1/events", nil).requireError(t, http.StatusNotImplemented, "unsupported")
}

func TestEventsAuth(t *testing.T) {
	tokens := append(append([]httpapi.Token(nil), testTokens...),
		httpapi.Token{Name: "three-readers", Secret: "three-readers-0123456789", Scopes: []httpapi.Scope{
			{Kind: abi.KindAgentState}, {Kind: abi.KindAlert}, {Kind: abi.KindMetric}}},
		httpapi.Token{Name: "writer", Secret: "all-writer-0123456789", Scopes: []httpapi.Scope{{AllKinds: true, Write: true}}},
	)
	e := newEventsEnv(t, memoryFile(0, 0, "memory"), withTokens(tokens))
	for name, c := range map[string]struct {
		secret, query string
		code          int
	}{
		"no token":                     {"", "", http.StatusUnauthorized},
		"wrong token":                  {"guess-0123456789", "", http.StatusUnauthorized},
		"every kind, * read":           {adminSecret, "", http.StatusOK},
		"every kind, three reads":      {"three-readers-0123456789", "", http.StatusOK},
		"every kind, one read":         {readerSecret, "", http.StatusForbidden},
		"its kind":                     {readerSecret, "?kind=agent_states", http.StatusOK},
		"its kind and another":         {readerSecret, "?kind=agent_states,alerts", http.StatusForbidden},
		"a plugin's kind, one read":    {readerSecret, "?kind=mine", http.StatusForbidden},
		"a plugin's kind, three reads": {"three-readers-0123456789", "?kind=mine", http.StatusOK},
		"write scopes only":            {"all-writer-0123456789", "?kind=agent_states", http.StatusForbidden},
		"no scopes":                    {bareSecret, "?kind=metrics", http.StatusForbidden},
		"metrics reader":               {metricsSecret, "?kind=metrics&op=put", http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			auth := []string{"Authorization", ""}
			if c.secret != "" {
				auth = bearer(c.secret)
			}
			if c.code == http.StatusOK {
				s := e.in(t).open("/v1/events"+c.query, auth...)
				s.close()
				return
			}
			res := e.in(t).req("GET", "/v1/events"+c.query, nil, auth...)
			code := map[int]string{http.StatusUnauthorized: "unauthorized", http.StatusForbidden: "forbidden"}[c.code]
			res.requireError(t, c.code, code)
			require.NotEmpty(t, res.header.Get("WWW-Authenticate"))
		})
	}
}

func TestEventsEndWhenAReloadRetiresTheBackend(t *testing.T) {
	e := newEventsEnv(t, memoryFile(0, 0, "a"))
	s := e.open("/v1/events")
	e.putState("x", `{}`)
	last := s.event()

	_, err := e.m.Reload(context.Background(), memoryFile(0, 0, "b"))
	require.NoError(t, err)
	assert.Equal(t, "backend_changed", s.end(10*time.Second))

	// The old position names no place in the new backend's log: what it
	// logged since the reload is not known, so resuming is 410, and the
	// client reads the records again and reconnects without a position.
	e.putState("y", `{}`)
	e.req("GET", "/v1/events", nil, "Last-Event-ID", last.ID).requireError(t, http.StatusGone, "events_lost")
	again := e.open("/v1/events")
	e.putState("y", `{}`)
	ev := again.event()
	assert.Equal(t, "y", ev.Key)
	assert.Regexp(t, `^b=`, ev.ID)
}

// smallBuffers is a listener whose connections accepted while shrink is
// set have small socket buffers, so that a client that stops reading soon
// stops the server's writes.
type smallBuffers struct {
	net.Listener
	shrink *atomic.Bool
}

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && l.shrink.Load() {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// restart serves e.h from a new test server, on wrap's listener when
// wrap is set; settings of e.h changed before it reach the handler
// goroutines.
func (e *env) restart(wrap func(net.Listener) net.Listener) {
	e.srv.Close()
	e.srv = httptest.NewUnstartedServer(e.h)
	if wrap != nil {
		e.srv.Listener = wrap(e.srv.Listener)
	}
	e.srv.Start()
	e.t.Cleanup(e.srv.Close)
}

// TestEventsSlowSubscriber: a client that stops reading while thousands
// of events are written does not slow the writes; its stream ends with
// slow_subscriber, and it resumes from the last event it received. With a
// small buffer, a burst of writes fills it before the stream is even
// written to; with the default one (1024), the stream stops when the
// stalled client's socket is full.
func TestEventsSlowSubscriber(t *testing.T) {
	for name, buffer := range map[string]int{"buffer 16": 16, "default buffer": 0} {
		t.Run(name, func(t *testing.T) { testSlowSubscriber(t, buffer) })
	}
}

func testSlowSubscriber(t *testing.T, buffer int) {
	e := newEventsEnv(t, memoryFile(buffer, 0, "memory"))
	// The stalled client's stream is ended by its buffer of events
	// filling, not by its writes waiting: however long the writes take.
	httpapi.SetStreamTimeout(e.h, time.Hour)
	// The stalled stream's connection, and only it, has small buffers at
	// both ends.
	var shrink atomic.Bool
	var small *net.TCPConn
	e.restart(func(l net.Listener) net.Listener { return smallBuffers{l, &shrink} })
	tr := e.srv.Client().Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok && shrink.Load() {
			_ = tc.SetReadBuffer(4096)
			small = tc
		}
		return c, err
	}
	streamsOpen := func() float64 {
		ms := series(t, e.reg, "storage_host_http_event_streams", nil)
		require.Len(t, ms, 1)
		return ms[0].GetGauge().GetValue()
	}

	shrink.Store(true)
	stalled := e.open("/v1/events?kind=agent_states")
	shrink.Store(false)
	e.putState("first", `{}`)
	last := stalled.event()
	require.Equal(t, 1.0, streamsOpen())
	// From now on the client reads nothing: its reader goroutine stops at
	// the next frame, and the socket fills.
	stalled.mu.Lock()

	const batches, perBatch = 5, 1000
	start := time.Now()
	for b := range batches {
		items := make([]any, perBatch)
		for i := range items {
			items[i] = map[string]any{"agent_id": fmt.Sprintf("agent-%d-%04d", b, i), "state": map[string]any{"pad": strings.Repeat("x", 64)}}
		}
		before := time.Now()
		res := e.reqRaw("POST", "/v1/agent-states/batch-put", map[string]any{"items": items})
		require.Equal(t, http.StatusOK, res.code)
		require.Less(t, time.Since(before), 15*time.Second, "a batch of writes waited")
	}
	t.Logf("%d writes in %s with a stalled subscriber", batches*perBatch, time.Since(start))

	// Reading again, quickly.
	require.NoError(t, small.SetReadBuffer(1<<20))
	stalled.mu.Unlock()
	n := 0 // events received after first
	for {
		f, ok := stalled.next(10 * time.Second)
		require.True(t, ok, "the stream ended without an end event")
		if f.event == "end" {
			var body struct{ Code string }
			require.NoError(t, json.Unmarshal([]byte(f.data), &body))
			assert.Equal(t, "slow_subscriber", body.Code)
			break
		}
		require.NoError(t, json.Unmarshal([]byte(f.data), &last))
		n++
	}
	require.Less(t, n, batches*perBatch, "it was disconnected before the end")
	_, ok := stalled.next(5 * time.Second)
	require.False(t, ok, "the stream closes after its end event")
	t.Logf("%d events received before the end, in %s", n, time.Since(start))
	waitFor(t, func() bool { return streamsOpen() == 0 }, "the ended stream is still counted open")

	// It resumes after the last event it received, at the one it missed.
	resumed := e.open("/v1/events?kind=agent_states", "Last-Event-ID", last.ID)
	assert.Equal(t, fmt.Sprintf("agent-%d-%04d", n/perBatch, n%perBatch), resumed.event().Key)
}

// waitFor waits up to 30s for cond: what it waits for comes at once on a
// quiet machine, and took over 5s under the race detector on a loaded one.
func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 30*time.Second, 5*time.Millisecond, msg)
}

func TestEventsKeepalive(t *testing.T) {
	e := newEventsEnv(t, memoryFile(0, 0, "memory"))
	httpapi.SetKeepalive(e.h, 20*time.Millisecond)
	e.restart(nil)
	s := e.open("/v1/events")
	for seen := 0; seen < 2; {
		select {
		case f, ok := <-s.frames:
			require.True(t, ok)
			if f.comment == "keepalive" {
				seen++
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no keepalive")
		}
	}
}

func TestEventsEndOnShutdown(t *testing.T) {
	e := newEventsEnv(t, memoryFile(0, 0, "memory"))
	s1, s2 := e.open("/v1/events"), e.open("/v1/events?kind=metrics")
	e.h.EndStreams()
	assert.Equal(t, "shutting_down", s1.end(5*time.Second))
	assert.Equal(t, "shutting_down", s2.end(5*time.Second))
	e.h.EndStreams()
	e.req("GET", "/v1/events", nil).requireError(t, http.StatusServiceUnavailable, "unavailable")
	// Other routes are not concerned.
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/a/state", `{}`).code)
}

func TestEventsStreamsGauge(t *testing.T) {
	e := newEventsEnv(t, memoryFile(0, 0, "memory"))
	gauge := func() float64 {
		ms := series(t, e.reg, "storage_host_http_event_streams", nil)
		require.Len(t, ms, 1)
		return ms[0].GetGauge().GetValue()
	}
	require.Equal(t, 0.0, gauge())
	a, b := e.open("/v1/events"), e.open("/v1/events")
	require.Equal(t, 2.0, gauge())
	a.close()
	waitFor(t, func() bool { return gauge() == 1 }, "a closed stream is still counted")
	b.close()
	waitFor(t, func() bool { return gauge() == 0 }, "a closed stream is still counted")
	// HEAD answers as GET would, without streaming.
	res := e.reqRaw("HEAD", "/v1/events?kind=metrics", nil)
	require.Equal(t, http.StatusOK, res.code)
	require.Equal(t, "text/event-stream", res.header.Get("Content-Type"))
	require.Equal(t, http.StatusGone, e.reqRaw("HEAD", "/v1/events", nil, "Last-Event-ID", "memory=1-1").code)
	require.Equal(t, 0.0, gauge())
	// A refused stream is never counted.
	e.req("GET", "/v1/events?kind=", nil).requireError(t, http.StatusBadRequest, "invalid")
	require.Equal(t, 0.0, gauge())
}

// managerEvents is a manager as httpapi.EventBackends, as the daemon
// passes it.
type managerEvents struct{ *manager.Manager }

func (m managerEvents) Subscribe(ctx context.Context, f events.Filter, from string, loss httpapi.Loss) (httpapi.Subscription, error) {
	sub, err := m.Manager.Subscribe(ctx, f, from, loss)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// The event streams open at once are bounded: one more is answered 503
// with Retry-After, and a slot freed by a stream's end is taken again.
func TestEventsStreamsBounded(t *testing.T) {
	e := newEventsEnv(t, memoryFile(0, 0, "memory"), func(o *httpapi.Options) { o.MaxEventStreams = 2 })
	a, b := e.open("/v1/events"), e.open("/v1/events?kind=metrics")
	res := e.reqRaw("GET", "/v1/events", nil)
	res.requireError(t, http.StatusServiceUnavailable, "unavailable")
	assert.Equal(t, "5", res.header.Get("Retry-After"))
	assert.Contains(t, res.String(), "too many event streams")
	// Other routes are not concerned.
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/a/state", `{}`).code)
	a.close()
	waitFor(t, func() bool {
		res := e.reqRaw("HEAD", "/v1/events", nil)
		return res.code == http.StatusOK
	}, "a closed stream's slot is not freed")
	c := e.open("/v1/events")
	c.close()
	b.close()

	_, err := httpapi.New(httpapi.Options{Backends: managerEvents{e.m}, MaxEventStreams: -1})
	assert.Error(t, err)
}

// With on_loss=continue, a backend whose events after the position are no
// longer retained is reported by an `event: lost` frame naming it and its
// kinds, and the stream goes on: the other backend's events since the
// position, then the lost one's new events. Without it the same resume
// answers 410 events_lost; an on_loss of neither end nor continue is 400.
func TestEventsLossReportedOneBackendAtATime(t *testing.T) {
	f := memoryFile(0, 3, "states", "others")
	f.Routes.Metrics, f.Routes.Alerts = "others", "others"
	e := newEventsEnv(t, f)
	s := e.open("/v1/events")
	e.putState("s1", `{}`)
	first := s.event()
	s.close()
	for i := range 5 {
		e.putState(fmt.Sprint("s", i+2), `{}`) // past the retention of 3
	}
	metric := `{"agent_id":"a1","name":"load","value":1,"timestamp":"2026-12-01T00:00:00Z"}`
	require.Equal(t, http.StatusOK, e.req("POST", "/v1/metrics", metric).code)

	e.reqRaw("GET", "/v1/events", nil, "Last-Event-ID", first.ID).requireError(t, http.StatusGone, "events_lost")
	e.req("GET", "/v1/events?on_loss=sometimes", nil).requireError(t, http.StatusBadRequest, "invalid")

	c := e.open("/v1/events?on_loss=continue", "Last-Event-ID", first.ID)
	lost, ok := c.next(5 * time.Second)
	require.True(t, ok)
	require.Equal(t, "lost", lost.event, "%+v", lost)
	require.Equal(t, first.ID, c.start, "until the report, the stream's position is the one asked for")
	require.NotEqual(t, first.ID, lost.id, "the report's id is the position after it")
	var report struct {
		Code    string   `json:"code"`
		Backend string   `json:"backend"`
		Kinds   []string `json:"kinds"`
		Message string   `json:"message"`
	}
	require.NoError(t, json.Unmarshal([]byte(lost.data), &report))
	require.Equal(t, "events_lost", report.Code)
	require.Equal(t, "states", report.Backend)
	require.Equal(t, []string{"agent_states"}, report.Kinds)
	require.Contains(t, report.Message, "backend states: events: events after this position are no longer retained")
	got := c.event()
	require.Equal(t, "metrics", got.Kind, "the other backend's event since the position")
	e.putState("s9", `{}`)
	require.Equal(t, "s9", c.event().Key, "the lost backend's events after the report")
}
