package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redistest"
)

// cacheDir is the wazero compilation cache every store of this package
// shares, so the plugin is compiled once per test binary.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "httpapi-wazero-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpapi: compilation cache:", err)
		os.Exit(1)
	}
	cacheDir = dir
	code := redistest.Run(m) // stops the Redis servers, checks for goroutine leaks
	os.RemoveAll(dir)
	os.Exit(code)
}

// openStore opens a backend for one test and closes it after.
func openStore(tb testing.TB, cfg host.Config, opts ...host.Option) *host.Store {
	tb.Helper()
	st, err := host.Open(context.Background(), cfg, append([]host.Option{host.WithCompilationCache(cacheDir)}, opts...)...)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// testBackends serves each kind from a fixed store, the way the daemon's
// manager does without the swapping.
type testBackends struct {
	stores map[abi.RecordKind]*host.Store

	mu       sync.Mutex
	notReady error // Ready's answer when set
	failDo   error // Do's answer, without calling fn, when set
}

func newBackends(st *host.Store) *testBackends {
	return &testBackends{stores: map[abi.RecordKind]*host.Store{
		abi.KindMetric: st, abi.KindAlert: st, abi.KindAgentState: st,
	}}
}

func (b *testBackends) Do(_ context.Context, kind abi.RecordKind, fn func(st *host.Store) error) error {
	b.mu.Lock()
	fail := b.failDo
	b.mu.Unlock()
	if fail != nil {
		return fail
	}
	st, ok := b.stores[kind]
	if !ok {
		return fmt.Errorf("test backends: no store for kind %q", kind)
	}
	return fn(st)
}

func (b *testBackends) Ready(ctx context.Context) error {
	b.mu.Lock()
	notReady := b.notReady
	b.mu.Unlock()
	if notReady != nil {
		return notReady
	}
	var errs []error
	for kind, st := range b.stores {
		if err := st.Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("backend %s (%s): %w", st.Name(), kind, err))
		}
	}
	return errors.Join(errs...)
}

func (b *testBackends) set(notReady, failDo error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.notReady, b.failDo = notReady, failDo
}

// syncBuffer collects log output written from handler goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a Handler over a memory backend behind a real HTTP server.
type env struct {
	t     *testing.T
	h     *httpapi.Handler
	srv   *httptest.Server
	be    *testBackends
	reg   *prometheus.Registry
	logs  *syncBuffer
	token string // sent as the bearer token unless a request sets Authorization
	// client, when set, opens event streams instead of srv's own.
	client *http.Client
}

func newEnv(t *testing.T, configure ...func(*httpapi.Options)) *env {
	t.Helper()
	return newEnvWith(t, openStore(t, host.Config{Plugin: "builtin:memory"}), configure...)
}

// clock is a host clock the test moves by hand.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// newEnvClock is newEnv with a memory backend on clock.
func newEnvClock(t *testing.T, c *clock) *env {
	t.Helper()
	return newEnvWith(t, openStore(t, host.Config{Plugin: "builtin:memory"}, host.WithClock(c.now)))
}

func newEnvWith(t *testing.T, st *host.Store, configure ...func(*httpapi.Options)) *env {
	t.Helper()
	e := &env{t: t, be: newBackends(st), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	o := httpapi.Options{
		Backends: e.be,
		Registry: e.reg,
		Logger:   hclog.New(&hclog.LoggerOptions{Output: e.logs, Level: hclog.Info}),
	}
	for _, f := range configure {
		f(&o)
	}
	h, err := httpapi.New(o)
	require.NoError(t, err)
	e.h = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// in returns e for the subtest t.
func (e *env) in(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// response is a whole HTTP response.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r *response) String() string {
	return fmt.Sprintf("%d %s", r.code, r.body)
}

// decode unmarshals the body into v.
func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r.body)
}

// errorCode checks the error body and returns its code and message.
func (r *response) errorCode(t *testing.T) (code, message string) {
	t.Helper()
	require.Equal(t, "application/json", r.header.Get("Content-Type"), "error responses are JSON: %s", r)
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	r.decode(t, &body)
	require.NotEmpty(t, body.Error.Code, "error code: %s", r)
	require.NotEmpty(t, body.Error.Message, "error message: %s", r)
	return body.Error.Code, body.Error.Message
}

// requireError requires an error response with status and code, and
// returns its message.
func (r *response) requireError(t *testing.T, status int, code string) string {
	t.Helper()
	require.Equal(t, status, r.code, "%s", r)
	got, msg := r.errorCode(t)
	require.Equal(t, code, got, "%s", r)
	return msg
}

// req sends a request and checks request and response against the
// OpenAPI document. body is nil, a string or []byte sent as is, or a
// value sent as JSON. header holds name, value pairs; an Authorization
// pair replaces the env's token ("" sends none).
func (e *env) req(method, path string, body any, header ...string) *response {
	e.t.Helper()
	return e.send(true, method, path, body, header...)
}

// reqRaw is req without the document check, for requests the document
// cannot describe (a path-escaped slash in a path parameter).
func (e *env) reqRaw(method, path string, body any, header ...string) *response {
	e.t.Helper()
	return e.send(false, method, path, body, header...)
}

func (e *env) send(validate bool, method, path string, body any, header ...string) *response {
	t := e.t
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		raw, err = json.Marshal(b)
		require.NoError(t, err)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(raw))
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	require.Zero(t, len(header)%2, "header pairs")
	for i := 0; i < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	res, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	resBody, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	out := &response{code: res.StatusCode, header: res.Header, body: resBody}
	if validate {
		checkExchange(t, req, raw, out)
	}
	return out
}

// query builds a path with a query string from name, value pairs.
func query(path string, pairs ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		q.Add(pairs[i], pairs[i+1])
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// page is a query response.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// collect follows next_cursor from the first page to the last and returns
// every item and the number of pages.
func collect[T any](e *env, path string, pairs ...string) (items []T, pages int) {
	e.t.Helper()
	cursor := ""
	for {
		p := pairs
		if cursor != "" {
			p = append(append([]string(nil), pairs...), "cursor", cursor)
		}
		res := e.req("GET", query(path, p...), nil)
		require.Equal(e.t, http.StatusOK, res.code, "%s", res)
		var pg page[T]
		res.decode(e.t, &pg)
		require.NotNil(e.t, pg.Items, "items is an array, never null: %s", res)
		items = append(items, pg.Items...)
		pages++
		require.Less(e.t, pages, 1000, "pagination does not end")
		if pg.NextCursor == "" {
			return items, pages
		}
		cursor = pg.NextCursor
	}
}

// bulkResult is one result of a bulk response.
type bulkResult[T any] struct {
	Value *T   `json:"value"`
	Stale bool `json:"stale"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// results decodes a bulk response, requiring 200 and n results each with
// exactly one of value and error.
func results[T any](t *testing.T, res *response, n int) []bulkResult[T] {
	t.Helper()
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	var body struct {
		Results []bulkResult[T] `json:"results"`
	}
	res.decode(t, &body)
	require.Len(t, body.Results, n, "%s", res)
	for i, r := range body.Results {
		require.True(t, (r.Value == nil) != (r.Error == nil), "result %d has exactly one of value and error: %s", i, res)
	}
	return body.Results
}

// codes lists the error code of each result, "" for a value.
func codes[T any](rs []bulkResult[T]) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		if r.Error != nil {
			out[i] = r.Error.Code
		}
	}
	return out
}

func TestNewRefusesBadOptions(t *testing.T) {
	st := openStore(t, host.Config{Plugin: "builtin:memory"})
	be := newBackends(st)
	for name, o := range map[string]httpapi.Options{
		"no backends":     {},
		"negative limit":  {Backends: be, MaxBodyBytes: -1},
		"empty secret":    {Backends: be, Tokens: []httpapi.Token{{Name: "a"}}},
		"unknown kind":    {Backends: be, Tokens: []httpapi.Token{{Name: "a", Secret: "s", Scopes: []httpapi.Scope{{Kind: 9}}}}},
		"zero scope":      {Backends: be, Tokens: []httpapi.Token{{Name: "a", Secret: "s", Scopes: []httpapi.Scope{{}}}}},
		"kind and all":    {Backends: be, Tokens: []httpapi.Token{{Name: "a", Secret: "s", Scopes: []httpapi.Scope{{Kind: abi.KindMetric, AllKinds: true}}}}},
		"duplicate token": {Backends: be, Tokens: []httpapi.Token{{Name: "a", Secret: "s"}, {Name: "b", Secret: "s"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := httpapi.New(o)
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "httpapi: "), "%v", err)
		})
	}
}

func TestHealthAndDocument(t *testing.T) {
	e := newEnv(t)
	res := e.req("GET", "/healthz", nil)
	require.Equal(t, http.StatusNoContent, res.code)

	res = e.req("GET", "/openapi.yaml", nil)
	require.Equal(t, http.StatusOK, res.code)
	require.Equal(t, "application/yaml", res.header.Get("Content-Type"))
	require.Equal(t, httpapi.OpenAPIDocument, res.body)
}

func TestReadyz(t *testing.T) {
	e := newEnv(t)
	res := e.req("GET", "/readyz", nil)
	require.Equal(t, http.StatusNoContent, res.code, "%s", res)

	e.be.set(errors.New("backend redis-main: dial tcp 127.0.0.1:6379: connection refused"), nil)
	res = e.req("GET", "/readyz", nil)
	msg := res.requireError(t, http.StatusServiceUnavailable, "not_ready")
	require.Contains(t, msg, "redis-main")

	// The store itself closed: Ready's ping fails and names the backend.
	e.be.set(nil, nil)
	require.NoError(t, e.be.stores[abi.KindMetric].Close(context.Background()))
	res = e.req("GET", "/readyz", nil)
	msg = res.requireError(t, http.StatusServiceUnavailable, "not_ready")
	require.Contains(t, msg, "backend memory")
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/", "/v1", "/v1/nothing", "/v2/agents/a/state", "/v1/agents/a/state/extra",
		"/v1/agents//state", "/healthz/", "/v1/metrics/"} {
		res := e.req("GET", path, nil)
		msg := res.requireError(t, http.StatusNotFound, "not_found")
		require.Contains(t, msg, "no route")
	}

	// A path the mux would redirect to its clean form is not found either.
	rec := newRecorder()
	e.h.ServeHTTP(rec, mustRequest(t, "GET", "/v1/../healthz", ""))
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Contains(t, rec.Body.String(), `"not_found"`)
	// An escaped slash is part of a wildcard, not a path to clean: the
	// route answers, not a redirect.
	rec = newRecorder()
	e.h.ServeHTTP(rec, mustRequest(t, "GET", "/v1/agents/a%2F..%2F..%2Fhealthz/state", ""))
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Contains(t, rec.Body.String(), `agent state \"a/../../healthz\"`)

	res := e.req("POST", "/v1/agents/a/state", `{}`)
	res.requireError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	require.Equal(t, "DELETE, GET, HEAD, PUT", res.header.Get("Allow"))

	res = e.req("PATCH", "/v1/alerts/x", `{}`)
	res.requireError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	require.Contains(t, res.header.Get("Allow"), "PUT")
}

// TestBackendErrors checks how failures that do not come from a plugin
// are answered: a closed store is unavailable, anything unknown is an
// internal error, logged, whose detail stays in the log.
func TestBackendErrors(t *testing.T) {
	e := newEnv(t)
	e.be.set(nil, fmt.Errorf("manager: %w", host.ErrClosed))
	res := e.req("GET", "/v1/agents/a/state", nil)
	res.requireError(t, http.StatusServiceUnavailable, "unavailable")

	e.be.set(nil, errors.New("secret detail of a failure"))
	res = e.req("GET", "/v1/agents/a/state", nil)
	msg := res.requireError(t, http.StatusInternalServerError, "internal")
	require.NotContains(t, msg, "secret detail")
	require.Contains(t, e.logs.String(), "secret detail of a failure")
	require.Contains(t, e.logs.String(), "GET /v1/agents/{agent_id}/state")
}

func TestUnsupportedByBackend(t *testing.T) {
	// agentstate.wasm serves agent states only: the other kinds are 501.
	st := openStore(t, host.Config{Plugin: "../../../../testdata/plugins/agentstate.wasm"})
	e := newEnvWith(t, st)
	res := e.req("GET", "/v1/metrics", nil)
	res.requireError(t, http.StatusNotImplemented, "unsupported")
	res = e.req("POST", "/v1/alerts/batch-get", map[string]any{"ids": []string{"a"}})
	res.requireError(t, http.StatusNotImplemented, "unsupported")
}

func withMaxBody(n int64) func(*httpapi.Options) {
	return func(o *httpapi.Options) { o.MaxBodyBytes = n }
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// mustRequest is a request to serve with ServeHTTP directly.
func mustRequest(t *testing.T, method, path, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, "http://storage-host"+path, strings.NewReader(body))
	require.NoError(t, err)
	return r
}

// swapBackends is a store swapped under its callers: every call first
// meets the old, closed store, then Do retries it on the new one, as the
// daemon's manager does during a reload.
type swapBackends struct{ old, new *host.Store }

func (b *swapBackends) Do(_ context.Context, _ abi.RecordKind, fn func(st *host.Store) error) error {
	if err := fn(b.old); !errors.Is(err, host.ErrClosed) {
		return err
	}
	return fn(b.new)
}

func (b *swapBackends) Ready(ctx context.Context) error { return b.new.Ping(ctx) }

// TestRetriedOnSwap checks that handlers compute inside Do and answer
// after it, so a call Do retries answers once, from the new store.
func TestRetriedOnSwap(t *testing.T) {
	old := openStore(t, host.Config{Name: "old", Plugin: "builtin:memory"})
	require.NoError(t, old.Close(context.Background()))
	st := openStore(t, host.Config{Name: "new", Plugin: "builtin:memory"})
	e := newEnvWith(t, st, func(o *httpapi.Options) { o.Backends = &swapBackends{old: old, new: st} })

	res := e.req("PUT", "/v1/agents/a/state", `{"n":1}`)
	require.Equal(t, http.StatusOK, res.code, "%s", res)
	res = e.req("POST", "/v1/alerts/batch-put", map[string]any{"items": []any{map[string]any{"id": "x", "agent_id": "a", "severity": "info"}}})
	require.Equal(t, []string{""}, codes(results[map[string]any](t, res, 1)))
	res = e.req("GET", "/v1/agents/a/state", nil)
	require.Equal(t, http.StatusOK, res.code, "%s", res)

	for _, backend := range []string{"old", "new"} {
		ms := series(t, e.reg, "storage_host_operation_duration_seconds", map[string]string{"operation": "put_agent_state", "backend": backend})
		require.Len(t, ms, 1, backend)
		require.Equal(t, uint64(1), ms[0].GetHistogram().GetSampleCount(), "each attempt is timed on its own store")
	}
}

// An empty ID filter is refused, not taken for no filter: a client that
// built its URL from an empty agent ID would get every agent's records.
// Left out, the parameter matches everything.
func TestEmptyIDFiltersAreRefused(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/v1/alerts?agent_id=", "/v1/metrics?agent_id=", "/v1/metrics?agent_id=a1&name="} {
		msg := e.req("GET", path, nil).requireError(t, http.StatusBadRequest, "invalid")
		require.Contains(t, msg, "empty value; leave the parameter out", path)
	}
	for _, path := range []string{"/v1/alerts", "/v1/metrics", "/v1/alerts?agent_id=a1", "/v1/metrics?agent_id=a1&name=cpu"} {
		require.Equal(t, http.StatusOK, e.req("GET", path, nil).code, path)
	}
}
