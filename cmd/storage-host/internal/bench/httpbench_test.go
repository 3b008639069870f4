package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// BenchmarkHTTP measures the daemon's HTTP API end to end: GET and PUT of
// /v1/agents/{agent_id}/state, a JSON document of about 200 bytes, over
// benchAgents agents seeded first, from concurrent keep-alive clients over
// loopback TCP (httptest.NewServer). Three servers run side by side in one run:
//
//   - "memory": the daemon's handler (httpapi over a manager, with a
//     Prometheus registry as `storage-host serve` has) on builtin:memory;
//   - "redis": the same on builtin:redis, default pool;
//   - "plain": the plainest net/http + go-redis server one would write:
//     GET key, JSON decoded and encoded again; PUT as SET key json EX ttl,
//     a version from the clock, no script, no index (newPlainHTTP);
//   - "direct": a minimal net/http server (http.ServeMux, same paths,
//     same JSON response with version and ETag, same status codes) whose
//     handlers send with go-redis the commands the redis plugin sends
//     (directRedis: EVALSHA of the plugin's library.lua): what one would
//     write without the plugin host.
//
// The sub-benchmarks are named server=<variant>, so that benchstat -col
// /server compares the servers of one run.
//
// Each caller is a goroutine with one request in flight; every client's
// transport keeps an idle connection per caller. Every response is
// checked: status 200, body read to the end, ETag set, and the body
// holding the agent's ID, its state and a version.
//
// Metrics are measureCallers's (ops/s, p50-µs, p99-µs, CPU per op); the
// client, the server and the plugin all run in this process, so
// host-cpu-µs/op covers all three. At the end it prints a summary whose
// ratio column is each variant's ops/s over direct's.
//
//	go test ./cmd/storage-host/internal/bench -run '^$' -bench HTTP -benchtime 3s
func BenchmarkHTTP(b *testing.B) {
	if testing.Short() {
		b.Skip("needs Redis and runs for minutes; skipped with -short")
	}
	addr := redistest.Addr(b)
	ctx := context.Background()

	memory := newDaemonServer(b, host.Config{Name: "memory", Plugin: "builtin:memory"})
	daemonRedis := newDaemonServer(b, host.Config{
		Name:   "redis",
		Plugin: "builtin:redis",
		Redis:  &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(b, addr), Scripts: true},
	})
	dr := newDirectRedis(b, []string{addr})
	direct := newHTTPServer(b, "direct", newDirectHTTP(dr))
	plain := newHTTPServer(b, "plain", newPlainHTTP(redistest.Prefix(b, addr), dr.c))
	variants := []*httpServer{memory, daemonRedis, direct, plain}

	seed := func(s *httpServer) {
		for i := range benchAgents {
			if err := s.put(ctx, i); err != nil {
				b.Fatalf("%s: seeding: %v", s.name, err)
			}
		}
	}
	seed(memory)
	seed(daemonRedis)
	// The plugin has loaded its script by now; the direct side runs it by
	// the same SHA-1.
	if ok, err := dr.c.ScriptExists(ctx, dr.sha).Result(); err != nil || !ok[0] {
		b.Fatalf("the plugin's script is not loaded under the direct side's SHA-1 %s (%v)", dr.sha, err)
	}
	seed(direct)
	seed(plain)
	checkSameShape(b, daemonRedis, direct)
	checkSameShape(b, daemonRedis, plain)

	// Open a connection per caller before measuring.
	for _, s := range variants {
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Go(func() {
				if err := s.get(ctx, i); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}

	ops := []struct {
		name string
		op   func(s *httpServer, ctx context.Context, i int) error
	}{
		{"Get", (*httpServer).get},
		{"Put", (*httpServer).put},
	}
	callerCounts := []int{1, 16, 64}
	sum := make(map[string]latencyResult)
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			for _, callers := range callerCounts {
				b.Run("callers="+strconv.Itoa(callers), func(b *testing.B) {
					for _, s := range variants {
						b.Run("server="+s.name, func(b *testing.B) {
							sum[o.name+"/"+strconv.Itoa(callers)+"/"+s.name] = measureCallers(b, dr.c, callers, func(ctx context.Context, i int) error { return o.op(s, ctx, i) })
						})
					}
				})
			}
		})
	}

	// The summary: ratio = variant ops/s / direct ops/s.
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-4s %7s %-7s %10s %9s %9s %7s %9s %9s", "op", "callers", "variant", "ops/s", "p50-µs", "p99-µs", "ratio", "host-cpu", "redis-cpu")
	for _, o := range ops {
		for _, callers := range callerCounts {
			key := o.name + "/" + strconv.Itoa(callers) + "/"
			d, ok := sum[key+"direct"]
			if !ok {
				continue
			}
			for _, s := range variants {
				r, ok := sum[key+s.name]
				if !ok {
					continue
				}
				fmt.Fprintf(&t, "\n%-4s %7d %-7s %10.0f %9.1f %9.1f %7.2f %9.1f %9.1f", o.name, callers, s.name, r.opsPerSec, r.p50, r.p99, r.opsPerSec/d.opsPerSec, r.hostCPU, r.redisCPU)
			}
		}
	}
	// Printed, not logged: the testing package cuts a benchmark's log to
	// ten lines.
	if !b.Failed() {
		fmt.Println(t.String())
	}
}

// benchDoc is the agent state the HTTP benchmark writes: a JSON document
// of 201 bytes.
var benchDoc = []byte(`{"step":42,"goal":"benchmark the daemon","plan":["observe","decide","act"],` +
	`"memory":{"last_tool":"search","tokens_used":1234,"cursor":"c-000001"},"flags":{"dry_run":false,"verbose":true},"score":0.875}`)

// httpServer is one server under test and a keep-alive client for it.
type httpServer struct {
	name   string
	url    string
	client *http.Client
}

// newDaemonServer serves cfg as the daemon does: one backend serving every
// record kind through a manager, the httpapi handler in front, metrics on.
func newDaemonServer(b *testing.B, cfg host.Config) *httpServer {
	b.Helper()
	ctx := context.Background()
	f := &config.File{
		Backends: []config.Backend{{Name: cfg.Name, Digest: "bench", Config: cfg}},
		Routes:   config.Routes{Metrics: cfg.Name, Alerts: cfg.Name, AgentStates: cfg.Name},
	}
	reg := prometheus.NewRegistry()
	m, err := manager.New(ctx, f, manager.Options{Registry: reg, Host: []host.Option{host.WithCompilationCache(benchCache)}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close(context.Background()) })
	h, err := httpapi.New(httpapi.Options{Backends: m, Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	return newHTTPServer(b, cfg.Name, h)
}

// newHTTPServer serves h on a loopback port, with a client that keeps an
// idle connection for each of up to 128 callers.
func newHTTPServer(b *testing.B, name string, h http.Handler) *httpServer {
	b.Helper()
	srv := httptest.NewServer(h)
	tr := &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: 128, IdleConnTimeout: time.Minute}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return &httpServer{name: name, url: srv.URL, client: &http.Client{Transport: tr}}
}

func (s *httpServer) stateURL(id string) string { return s.url + "/v1/agents/" + id + "/state" }

func (s *httpServer) get(ctx context.Context, i int) error {
	id := benchAgent(i)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.stateURL(id), nil)
	if err != nil {
		return err
	}
	return s.do(req, id)
}

func (s *httpServer) put(ctx context.Context, i int) error {
	id := benchAgent(i)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.stateURL(id), bytes.NewReader(benchDoc))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return s.do(req, id)
}

// bodies are response buffers, so that reading a body allocates the same
// (nothing) for every variant.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// do sends req and checks the agent state answered: 200, the whole body
// read, an ETag, and the agent's ID, state and version in the body.
func (s *httpServer) do(req *http.Request, id string) error {
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf := bodies.Get().(*bytes.Buffer)
	defer bodies.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return fmt.Errorf("%s %s: reading the body: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, buf)
	}
	body := buf.Bytes()
	if resp.Header.Get("ETag") == "" ||
		!bytes.Contains(body, []byte(`"agent_id":"`+id+`"`)) ||
		!bytes.Contains(body, []byte(`"state":{"step":`)) ||
		!bytes.Contains(body, []byte(`"version":"`)) {
		return fmt.Errorf("%s %s: not an agent state (ETag %q): %s", req.Method, req.URL.Path, resp.Header.Get("ETag"), body)
	}
	return nil
}

// checkSameShape fails b unless the daemon and the direct server answer a
// GET and a PUT alike: same status, Content-Type, an ETag that is the
// quoted version, and JSON objects with the same members and state.
func checkSameShape(b *testing.B, daemon, direct *httpServer) {
	b.Helper()
	type answer struct {
		status      int
		contentType string
		members     []string
		state       string
	}
	fetch := func(s *httpServer, method string) answer {
		var body io.Reader
		if method == http.MethodPut {
			body = bytes.NewReader(benchDoc)
		}
		req, err := http.NewRequest(method, s.stateURL(benchAgent(0)), body)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			b.Fatalf("%s %s: %v", s.name, method, err)
		}
		var version string
		if err := json.Unmarshal(doc["version"], &version); err != nil || resp.Header.Get("ETag") != `"`+version+`"` {
			b.Fatalf("%s %s: ETag %q, version %s (%v)", s.name, method, resp.Header.Get("ETag"), doc["version"], err)
		}
		var state bytes.Buffer
		if err := json.Compact(&state, doc["state"]); err != nil {
			b.Fatalf("%s %s: state %s: %v", s.name, method, doc["state"], err)
		}
		return answer{resp.StatusCode, resp.Header.Get("Content-Type"), slices.Sorted(maps.Keys(doc)), state.String()}
	}
	for _, method := range []string{http.MethodGet, http.MethodPut} {
		a, d := fetch(daemon, method), fetch(direct, method)
		if a.status != d.status || a.contentType != d.contentType || !slices.Equal(a.members, d.members) || a.state != d.state {
			b.Fatalf("%s: the daemon answers %+v, the direct server %+v", method, a, d)
		}
	}
}

// directStateJSON is the agent state as the API answers it.
type directStateJSON struct {
	AgentID   string          `json:"agent_id"`
	State     json.RawMessage `json:"state"`
	Version   string          `json:"version"`
	UpdatedAt string          `json:"updated_at"`
	ExpiresAt string          `json:"expires_at,omitempty"`
}

// writeJSON answers v as the minimal servers do: encoding/json, HTML
// characters as they are.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// newDirectHTTP is the minimal server: GET and PUT of an agent state
// straight to Redis with d, JSON through encoding/json.
func newDirectHTTP(d *directRedis) http.Handler {
	fail := func(w http.ResponseWriter, status int, code, msg string) {
		type errorBody struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		writeJSON(w, status, struct {
			Error errorBody `json:"error"`
		}{errorBody{code, msg}})
	}
	respond := func(w http.ResponseWriter, s host.AgentState) {
		v := strconv.FormatUint(s.Version, 10)
		out := directStateJSON{AgentID: s.AgentID, State: s.State, Version: v, UpdatedAt: s.UpdatedAt.UTC().Format(time.RFC3339Nano)}
		if !s.ExpiresAt.IsZero() {
			out.ExpiresAt = s.ExpiresAt.UTC().Format(time.RFC3339Nano)
		}
		w.Header().Set("ETag", `"`+v+`"`)
		writeJSON(w, http.StatusOK, out)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/agents/{agent_id}/state", func(w http.ResponseWriter, r *http.Request) {
		s, err := d.readState(r.Context(), r.PathValue("agent_id"))
		switch {
		case errors.Is(err, host.ErrNotFound):
			fail(w, http.StatusNotFound, "not_found", err.Error())
		case err != nil:
			fail(w, http.StatusInternalServerError, "internal", "internal error")
		default:
			respond(w, s)
		}
	})
	mux.HandleFunc("PUT /v1/agents/{agent_id}/state", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpapi.DefaultMaxBodyBytes))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			fail(w, http.StatusRequestEntityTooLarge, "too_large", err.Error())
			return
		case err != nil:
			fail(w, http.StatusBadRequest, "invalid", err.Error())
			return
		}
		if !json.Valid(body) {
			fail(w, http.StatusBadRequest, "invalid", "request body is not a JSON document")
			return
		}
		s := host.AgentState{AgentID: r.PathValue("agent_id"), State: body, UpdatedAt: time.Now()}
		p := d.c.Pipeline()
		c := d.queuePutDoc(r.Context(), p, s.AgentID, s.UpdatedAt, body)
		var expiry int64
		err = execChecked(r.Context(), p)
		if err == nil {
			s.Version, expiry, err = sputReply(c)
		}
		if err != nil {
			fail(w, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		if expiry >= 0 {
			s.ExpiresAt = time.UnixMilli(expiry)
		}
		respond(w, s)
	})
	return mux
}

// newPlainHTTP is the plainest server: an agent state is the JSON answer
// itself, stored with SET key json EX ttl and read with GET key, through
// encoding/json both ways. Its version is the clock's, and it has no
// index, no conditions, and no expires_at in its answer (the daemon's
// answer has none without a TTL either): the floor of a Redis-backed JSON
// API.
func newPlainHTTP(prefix string, rc redis.UniversalClient) http.Handler {
	fail := func(w http.ResponseWriter, status int, code, msg string) {
		writeJSON(w, status, map[string]map[string]string{"error": {"code": code, "message": msg}})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/agents/{agent_id}/state", func(w http.ResponseWriter, r *http.Request) {
		val, err := rc.Get(r.Context(), prefix+"state:"+r.PathValue("agent_id")).Bytes()
		if errors.Is(err, redis.Nil) {
			fail(w, http.StatusNotFound, "not_found", "no such agent state")
			return
		}
		var doc directStateJSON
		if err == nil {
			err = json.Unmarshal(val, &doc)
		}
		if err != nil {
			fail(w, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		w.Header().Set("ETag", `"`+doc.Version+`"`)
		writeJSON(w, http.StatusOK, doc)
	})
	mux.HandleFunc("PUT /v1/agents/{agent_id}/state", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpapi.DefaultMaxBodyBytes))
		if err != nil || !json.Valid(body) {
			fail(w, http.StatusBadRequest, "invalid", "request body is not a JSON document")
			return
		}
		now := time.Now()
		doc := directStateJSON{
			AgentID:   r.PathValue("agent_id"),
			State:     body,
			Version:   strconv.FormatInt(now.UnixNano(), 10),
			UpdatedAt: now.UTC().Format(time.RFC3339Nano),
		}
		val, err := json.Marshal(doc)
		if err == nil {
			err = rc.Set(r.Context(), prefix+"state:"+doc.AgentID, val, plainTTL).Err()
		}
		if err != nil {
			fail(w, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		w.Header().Set("ETag", `"`+doc.Version+`"`)
		writeJSON(w, http.StatusOK, doc)
	})
	return mux
}
