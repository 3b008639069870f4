// Package httpapi is the versioned HTTP/JSON API of the storage-host
// daemon: agent states, metrics and alerts under /v1, with bulk routes,
// cursor pagination, optimistic concurrency through ETags, bearer-token
// scopes, health and readiness probes and Prometheus metrics.
//
// openapi.yaml in this directory is the API's contract; the Handler serves
// it at /openapi.yaml, and the tests hold the handlers to it. Every route
// is declared once, in the table in routes.go.
//
// The Handler never talks to a plugin itself: it asks Backends for the
// store of a record kind and runs one store call inside Backends.Do.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// DefaultMaxBodyBytes is Options.MaxBodyBytes when it is zero.
const DefaultMaxBodyBytes = 4 << 20

// readyTimeout bounds one readiness check: a store that has not answered
// a ping by then is not ready, and the probe gets its 503 well within the
// usual probe timeouts (a frozen PostgreSQL held it 5.0–5.6 s at 5 s).
const readyTimeout = 2 * time.Second

// responseWriteTimeout is the default of Handler.responseTimeout: a
// response must be taken by its client within it from its first byte,
// or its connection is closed. Without it, a client that never reads a
// large page held the handler's goroutine, its connection and the
// encoded page for good. Event streams set their own deadlines.
const responseWriteTimeout = time.Minute

// Backends gives the Handler the store serving each record kind. The
// daemon's backend manager implements it.
type Backends interface {
	// Do calls fn with the store serving kind and returns fn's error. When the store is swapped
	// and closed under fn, Do may call fn again on the new store, so fn
	// must only compute its result, never write a response.
	Do(ctx context.Context, kind abi.RecordKind, fn func(st *host.Store) error) error
	// Ready returns nil when every routed backend answers, else an error
	// naming the backends that do not.
	Ready(ctx context.Context) error
}

// Token is a bearer token the API accepts and what it may do.
type Token struct {
	// Name names the token in logs and in 403 messages; never the secret.
	Name string
	// Secret is what a client sends as "Authorization: Bearer <secret>".
	// It must not be empty.
	Secret string
	// Scopes are what the token may do; a token with none is refused
	// everywhere but /metrics.
	Scopes []Scope
}

// Scope allows reading or writing one record kind, or every kind. A
// Scope naming no valid kind, the zero Scope among them, is refused.
type Scope struct {
	// Kind is the record kind allowed, unless AllKinds.
	Kind abi.RecordKind
	// AllKinds allows every record kind ("*" in a configuration file);
	// Kind must then be zero.
	AllKinds bool
	// Write allows the routes that change records (PUT, POST, DELETE,
	// except batch-get); false allows the reads (GET and batch-get).
	// Neither implies the other.
	Write bool
}

// Options configure a Handler.
type Options struct {
	// Backends serves the records. Required.
	Backends Backends
	// Logger receives internal errors (500s), refused token reloads and,
	// at debug level, failed readiness checks.
	// Default: a null logger.
	Logger hclog.Logger
	// Tokens are the bearer tokens accepted. When there are any, every
	// /v1 route and /metrics needs one; /healthz, /readyz and
	// /openapi.yaml stay open.
	// Default: none, and no authentication.
	Tokens []Token
	// MaxBodyBytes bounds a request body; a bigger one is answered 413.
	// Default: DefaultMaxBodyBytes (4 MiB).
	MaxBodyBytes int64
	// Registry, when set, receives the HTTP metrics
	// (storage_host_http_requests_total,
	// storage_host_http_request_duration_seconds,
	// storage_host_operation_duration_seconds,
	// storage_host_http_event_streams) and is served at /metrics.
	// Default: none, and no /metrics route.
	Registry *prometheus.Registry
	// MaxEventStreams bounds the event streams (GET /v1/events) open at
	// once. Each holds a connection, a file descriptor and buffers for as
	// long as its client keeps it. When they are all open, a client whose
	// address holds at least two fewer than the address holding the most
	// takes the place of that address's newest stream, which ends with
	// too_many_streams; any other is answered 503 with Retry-After.
	// Default: DefaultMaxEventStreams, lowered to a quarter of the
	// process's limit on open files when that is smaller.
	MaxEventStreams int
}

// DefaultMaxEventStreams is the default of Options.MaxEventStreams.
const DefaultMaxEventStreams = 1024

// Handler serves the API. It is an http.Handler, safe for concurrent use.
type Handler struct {
	backends Backends
	log      hclog.Logger
	maxBody  int64
	tokens   atomic.Pointer[[]token]
	metrics  *metrics // nil without a Registry
	// mux serves the routes and, at "/", what none of them matches;
	// routesOnly has the routes alone, to learn what the mux's own answer
	// to an unmatched request would be.
	mux        *http.ServeMux
	routesOnly *http.ServeMux
	promhttp   http.Handler

	decoding chan struct{} // a token per body being decoded (decodeBody)

	responseTimeout time.Duration // for a client to take a response, from its first byte
	keepalive       time.Duration // between the comments of an idle event stream
	streamTimeout   time.Duration // for a stream's client to take what it is sent
	streams         *streamSlots
	streamsEnded    chan struct{} // closed by EndStreams
	endStreams      sync.Once
}

// New returns a Handler serving o.Backends. It fails for a missing
// Backends, an invalid token or metrics that cannot be registered.
func New(o Options) (*Handler, error) {
	if o.Backends == nil {
		return nil, errors.New("httpapi: Options.Backends is nil")
	}
	if o.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("httpapi: Options.MaxBodyBytes is negative (%d)", o.MaxBodyBytes)
	}
	if o.MaxEventStreams < 0 {
		return nil, fmt.Errorf("httpapi: Options.MaxEventStreams is negative (%d)", o.MaxEventStreams)
	}
	h := &Handler{
		backends:   o.Backends,
		log:        o.Logger,
		maxBody:    o.MaxBodyBytes,
		mux:        http.NewServeMux(),
		routesOnly: http.NewServeMux(),
		decoding:   make(chan struct{}, maxDecoding),

		responseTimeout: responseWriteTimeout,
		keepalive:       keepaliveInterval,
		streamTimeout:   streamWriteTimeout,
		streams:         newStreamSlots(maxEventStreams(o.MaxEventStreams)),
		streamsEnded:    make(chan struct{}),
	}
	if h.log == nil {
		h.log = hclog.NewNullLogger()
	}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	ts, err := compileTokens(o.Tokens)
	if err != nil {
		return nil, err
	}
	h.tokens.Store(&ts)
	if o.Registry != nil {
		if h.metrics, err = newMetrics(o.Registry); err != nil {
			return nil, err
		}
		h.promhttp = promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{})
	}
	for i := range routes {
		rt := &routes[i]
		if rt.needsRegistry && o.Registry == nil {
			continue
		}
		p := rt.pattern()
		h.mux.Handle(p, h.serveRoute(i, rt))
		h.routesOnly.Handle(p, http.NotFoundHandler())
	}
	h.mux.HandleFunc("/", h.unmatched)
	return h, nil
}

// SetTokens atomically replaces the accepted tokens, for a configuration
// reload; requests already authorised finish. An empty ts turns
// authentication off, as in Options. Tokens New would refuse are not
// applied: the previous ones stay and the error is logged.
func (h *Handler) SetTokens(ts []Token) {
	compiled, err := compileTokens(ts)
	if err != nil {
		h.log.Error("tokens not replaced; the previous ones stay", "error", err)
		return
	}
	h.tokens.Store(&compiled)
}

// SetMaxEventStreams changes Options.MaxEventStreams, for a configuration
// reload; 0 is the default. Streams open past a lowered bound go on until
// they end or are displaced. A negative n is not applied: the bound stays
// and the error is logged.
func (h *Handler) SetMaxEventStreams(n int) {
	if n < 0 {
		h.log.Error("event stream bound not changed; the previous one stays", "max_event_streams", n)
		return
	}
	h.streams.setMax(maxEventStreams(n))
}

// maxEventStreams is Options.MaxEventStreams n with its default.
func maxEventStreams(n int) int {
	if n > 0 {
		return n
	}
	n = DefaultMaxEventStreams
	if lim := fdLimit() / 4; lim > 0 && lim < uint64(n) {
		n = int(lim)
	}
	return n
}

// ServeHTTP serves one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// The server clears the deadline once it has finished a response.
	dl, _ := w.(writeDeadliner)
	sw := statusWriters.Get().(*statusWriter)
	*sw = statusWriter{ResponseWriter: w, route: -1, deadline: dl, timeout: h.responseTimeout}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("handler panic", "method", r.Method, "route", r.Pattern, "panic", p)
			if !sw.wrote {
				writeError(sw, http.StatusInternalServerError, codeInternal, "internal error")
			}
		}
		h.metrics.observeRequest(sw.route, r.Method, sw.status(), time.Since(start))
		*sw = statusWriter{}
		statusWriters.Put(sw)
	}()
	if r.ContentLength != 0 {
		// A request with a body the handler does not read to its end
		// (refused before it was read, or cut off by a bound) is
		// answered on a connection that closes after the answer: the
		// server would otherwise wait for the rest of the body before
		// answering, and for as long as the client withholds it.
		sw.body = requestBody{ReadCloser: r.Body, left: r.ContentLength}
		sw.req, r.Body = r, &sw.body
		defer sw.dropUnreadBody() // before the deferred reset above
	}
	// The mux's own answers (a text 404 or 405, a redirect to a cleaned
	// path) are replaced by JSON errors; the API does not redirect. A
	// path the mux would redirect is not clean (the mux cleans the escaped
	// path), so it is answered here; any other request the routes do not
	// match reaches unmatched, at "/".
	if !canonical(r.URL.EscapedPath()) {
		notFound(sw, r)
		return
	}
	h.mux.ServeHTTP(sw, r) // sets r.Pattern
}

// unmatched answers a request no route matches: 405 with Allow when the
// path exists for other methods, else 404, in JSON like every error. It
// runs only the mux's own answer, into a probe, to learn which.
func (h *Handler) unmatched(w http.ResponseWriter, r *http.Request) {
	probe := &headerProbe{header: http.Header{}}
	mh, _ := h.routesOnly.Handler(r)
	mh.ServeHTTP(probe, r)
	if probe.code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, fmt.Sprintf("method %s is not allowed here", r.Method))
		return
	}
	notFound(w, r)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, codeNotFound, "no route for "+r.Method+" "+r.URL.Path)
}

// canonical reports whether p is a clean path, one the mux would not
// redirect: no empty, "." or ".." segments. Such a path is not found,
// whatever its clean form would match.
func canonical(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	// Every empty, "." or ".." segment but a final empty one starts with
	// "//" or "/.": a path with neither is clean, as path.Clean would say.
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return true
	}
	c := path.Clean(p)
	if c != "/" && strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c == p
}

// serveRoute wraps a route's handler: authorisation, then the query
// parameters it accepts, then the handler; any error becomes the JSON
// error response.
func (h *Handler) serveRoute(index int, rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sw, ok := w.(*statusWriter); ok {
			sw.route = index
		}
		if err := h.authorize(r, rt.access); err != nil {
			h.fail(w, r, err)
			return
		}
		q, err := checkQuery(r, rt.query)
		if err == nil && rt.access.write && !rt.conditional {
			err = refuseConditions(r)
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if err := rt.serve(h, w, r, q); err != nil {
			h.fail(w, r, err)
		}
	})
}

// do runs fn on the store of kind and times it as operation op.
func (h *Handler) do(r *http.Request, kind abi.RecordKind, op string, fn func(st *host.Store) error) error {
	c := storeCalls.Get().(*storeCall)
	c.metrics, c.op, c.fn = h.metrics, op, fn
	err := h.backends.Do(r.Context(), kind, c.timed)
	c.metrics, c.op, c.fn = nil, "", nil
	storeCalls.Put(c)
	return err
}

// storeCall is one call of Handler.do: fn, timed as operation op. The
// calls are pooled, with their method value timed bound once, so that a
// request does not allocate the closure that times its store call.
type storeCall struct {
	metrics *metrics
	op      string
	fn      func(st *host.Store) error
	timed   func(st *host.Store) error // run
}

var storeCalls = sync.Pool{New: func() any {
	c := &storeCall{}
	c.timed = c.run
	return c
}}

func (c *storeCall) run(st *host.Store) error {
	start := time.Now()
	err := c.fn(st)
	c.metrics.observeOperation(c.op, st.Name(), time.Since(start))
	return err
}

// statusWriters pools the statusWriters of ServeHTTP: no handler keeps
// its ResponseWriter once it has returned.
var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// writeDeadliner is the server's ResponseWriter, whose connection's
// write deadline http.ResponseController sets.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// statusWriter records the status code written, for the request
// metrics, and sets the response's write deadline when it starts.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
	// route is the index in routes of the route serving the request, -1
	// for none.
	route int
	// deadline, when the writer has one, is given timeout from the
	// response's first byte: the server's writes after the handler
	// returns are bounded by it too, until the server clears it.
	deadline writeDeadliner
	timeout  time.Duration
	// body wraps the request's body, when it has one; req is the request
	// until its own body is given back (restoreBody).
	body requestBody
	req  *http.Request
}

// serverDiscards is the most of an unread body net/http reads, and
// waits for, before it answers (its maxPostHandlerReadBytes).
const serverDiscards = 256 << 10

// requestBody tells whether a request's body was read to its end: its
// declared length (left, -1 for a chunked body) or EOF.
type requestBody struct {
	io.ReadCloser
	left int64
	done bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	b.done = b.done || err == io.EOF || b.left == 0
	return n, err
}

// unread reports whether the request had a body not read to its end.
func (w *statusWriter) unread() bool { return w.body.ReadCloser != nil && !w.body.done }

// dropUnreadBody ends the reading of a body the handler left: with the
// read deadline in the past, the server's attempt to read the rest before
// it closes the connection fails at once. The server reads none of a
// larger rest than serverDiscards: it closes the connection after the
// answer, letting the client's writes reach it until then, so that the
// client reads the answer rather than a reset.
func (w *statusWriter) dropUnreadBody() {
	if w.unread() && w.body.left <= serverDiscards {
		_ = http.NewResponseController(w.ResponseWriter).SetReadDeadline(time.Now())
		_ = w.body.ReadCloser.Close()
	}
	w.restoreBody()
}

// restoreBody gives the request back the server's own body, which the
// server inspects when the response starts (to tell a large unread rest
// from one it reads and discards).
func (w *statusWriter) restoreBody() {
	if w.req != nil {
		w.req.Body, w.req = w.body.ReadCloser, nil
	}
}

// started records the status of a response starting now.
func (w *statusWriter) started(code int) {
	if w.unread() && w.body.left <= serverDiscards {
		w.Header().Set("Connection", "close")
	}
	w.restoreBody() // a handler reads the body before it answers
	w.code, w.wrote = code, true
	if w.deadline != nil {
		_ = w.deadline.SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.started(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.started(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.code
}

// headerProbe is a ResponseWriter that keeps only the status and headers:
// it learns what the mux would answer to an unmatched request.
type headerProbe struct {
	header http.Header
	code   int
}

func (p *headerProbe) Header() http.Header { return p.header }

func (p *headerProbe) Write(b []byte) (int, error) {
	if p.code == 0 {
		p.code = http.StatusOK
	}
	return len(b), nil
}

func (p *headerProbe) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}

var _ http.Handler = (*Handler)(nil)
