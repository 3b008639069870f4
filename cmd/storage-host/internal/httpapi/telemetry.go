package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// durationBuckets span a fast in-memory call (~100 µs) to a request that
// waits out a plugin's call timeout.
var durationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics are the Handler's Prometheus collectors. A nil *metrics records
// nothing.
//
// The series of the routes and operations are looked up once and kept
// (routes, operations), so that a request does not hash its labels; they
// are still created on first use, so /metrics lists the same series.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	operation *prometheus.HistogramVec
	streams   prometheus.Gauge

	routes     []routeSeries              // by route index
	operations map[string]*operationCache // by operation; read-only after newMetrics
}

// routeSeries caches the series of one route: its duration and its
// request counts for the route's own method, by status (codeSlot).
type routeSeries struct {
	method   string
	label    string
	duration atomic.Pointer[prometheus.Observer]
	requests [len(cachedCodes)]atomic.Pointer[prometheus.Counter]
}

// cachedCodes are the statuses whose request counters a route caches:
// the ones the API answers. Others are looked up per request.
var cachedCodes = [...]int{200, 204, 304, 400, 401, 403, 404, 405, 409, 410, 412, 413, 429, 500, 501, 503, 504}

// codeSlot is the index of code in cachedCodes, or -1.
func codeSlot(code int) int {
	for i, c := range cachedCodes {
		if c == code {
			return i
		}
	}
	return -1
}

// operationCache keeps the duration series of one operation on the
// backend it last ran on (a backend's name changes only on a reload).
type operationCache struct {
	last atomic.Pointer[operationSeries]
}

type operationSeries struct {
	backend  string
	observer prometheus.Observer
}

// operationNames are the operations whose series are cached: every
// operation the handlers run.
var operationNames = []string{
	"get_agent_state", "put_agent_state", "delete_agent_state", "query_agent_states",
	"get_agent_states", "put_agent_states", "delete_agent_states",
	"put_metric", "get_metric", "delete_metric", "query_metrics", "get_metrics", "put_metrics", "delete_metrics",
	"put_alert", "get_alert", "delete_alert", "set_alert_status", "query_alerts", "get_alerts", "put_alerts", "delete_alerts",
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storage_host_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "storage_host_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern.",
			Buckets: durationBuckets,
		}, []string{"route"}),
		operation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "storage_host_operation_duration_seconds",
			Help:    "Time of one store call made for an HTTP request, by operation and backend.",
			Buckets: durationBuckets,
		}, []string{"operation", "backend"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "storage_host_http_event_streams",
			Help: "Event streams (GET /v1/events) open now.",
		}),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.operation, err = register(reg, m.operation); err != nil {
		return nil, err
	}
	if m.streams, err = register(reg, m.streams); err != nil {
		return nil, err
	}
	m.routes = make([]routeSeries, len(routes))
	for i := range routes {
		m.routes[i].method, m.routes[i].label = routes[i].method, routes[i].pattern()
	}
	m.operations = make(map[string]*operationCache, len(operationNames))
	for _, op := range operationNames {
		m.operations[op] = &operationCache{}
	}
	return m, nil
}

// register registers c, or returns the identical collector already
// registered (a second Handler on one registry shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		var zero C
		return zero, err
	}
	return c, nil
}

// knownMethods bounds the method label: any other method is "other".
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true,
}

// observeRequest counts a request of route (an index in routes, -1 for
// none matched) and records its duration.
func (m *metrics) observeRequest(route int, method string, code int, took time.Duration) {
	if m == nil {
		return
	}
	if route < 0 {
		m.observeUnmatched(method, code, took)
		return
	}
	rs := &m.routes[route]
	if slot := codeSlot(code); slot >= 0 && method == rs.method {
		c := rs.requests[slot].Load()
		if c == nil {
			counter := m.requests.WithLabelValues(rs.label, method, strconv.Itoa(code))
			c = &counter
			rs.requests[slot].Store(c)
		}
		(*c).Inc()
	} else {
		m.requests.WithLabelValues(rs.label, methodLabel(method), strconv.Itoa(code)).Inc()
	}
	d := rs.duration.Load()
	if d == nil {
		observer := m.duration.WithLabelValues(rs.label)
		d = &observer
		rs.duration.Store(d)
	}
	(*d).Observe(took.Seconds())
}

// unmatchedRoute is the route label of a request no route matched.
const unmatchedRoute = "unmatched"

func (m *metrics) observeUnmatched(method string, code int, took time.Duration) {
	m.requests.WithLabelValues(unmatchedRoute, methodLabel(method), strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(unmatchedRoute).Observe(took.Seconds())
}

// methodLabel bounds the method label: any method but the standard ones
// is "other".
func methodLabel(method string) string {
	if !knownMethods[method] {
		return "other"
	}
	return method
}

func (m *metrics) observeOperation(op, backend string, took time.Duration) {
	if m == nil {
		return
	}
	c := m.operations[op]
	if c == nil {
		m.operation.WithLabelValues(op, backend).Observe(took.Seconds())
		return
	}
	s := c.last.Load()
	if s == nil || s.backend != backend {
		s = &operationSeries{backend: backend, observer: m.operation.WithLabelValues(op, backend)}
		c.last.Store(s)
	}
	s.observer.Observe(took.Seconds())
}

func (m *metrics) streamOpened() {
	if m != nil {
		m.streams.Inc()
	}
}

func (m *metrics) streamClosed() {
	if m != nil {
		m.streams.Dec()
	}
}
