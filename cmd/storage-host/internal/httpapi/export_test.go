package httpapi

import "time"

// RouteInfo is a route of the table, for the tests of the OpenAPI
// document.
type RouteInfo struct {
	Method, Path  string
	Query         []string
	Public        bool
	Kind          string
	Write         bool
	NeedsRegistry bool
}

// RouteTable returns the route table.
func RouteTable() []RouteInfo {
	out := make([]RouteInfo, len(routes))
	for i, rt := range routes {
		out[i] = RouteInfo{Method: rt.method, Path: rt.path, Public: rt.access.public, Kind: rt.access.kind.Name(),
			Write: rt.access.write, NeedsRegistry: rt.needsRegistry}
		for _, q := range rt.query {
			out[i].Query = append(out[i].Query, q.name)
		}
	}
	return out
}

// OpenAPIDocument is the embedded document.
var OpenAPIDocument = openAPIDocument

// ErrorCodes are the codes of the API's errors.
var ErrorCodes = []string{codeInvalid, codeUnauthorized, codeForbidden, codeNotFound, codeMethodNotAllowed,
	codeConflict, codePreconditionFailed, codeTooLarge, codeLimit, codeInternal, codeUnsupported,
	codeUnavailable, codeNotReady, codeEventsLost, codeOutcomeUnknown}

// EndCodes are the codes of an event stream's end event.
var EndCodes = []string{endSlowSubscriber, endBackendChanged, endUnavailable, endShuttingDown, endTooMany, endEventsLost, endInternal}

// SetKeepalive sets the interval of h's event-stream keepalives; call it
// before h serves.
func SetKeepalive(h *Handler, d time.Duration) { h.keepalive = d }

// ConnsBusy returns the connections of l serving a request.
func ConnsBusy(l *ConnLimit) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.conns {
		if e.busy {
			n++
		}
	}
	return n
}

// SetResponseTimeout sets how long h's responses may take to be written
// from their first byte; call it before h serves.
func SetResponseTimeout(h *Handler, d time.Duration) { h.responseTimeout = d }

// SetStreamTimeout sets how long h's event streams wait for their client
// to take what they send; call it before h serves.
func SetStreamTimeout(h *Handler, d time.Duration) { h.streamTimeout = d }

// SetBodyReadTimeout sets how long a request body may take to arrive,
// until the test ends.
func SetBodyReadTimeout(t interface{ Cleanup(func()) }, d time.Duration) {
	was := bodyReadTimeout
	bodyReadTimeout = d
	t.Cleanup(func() { bodyReadTimeout = was })
}

// HoldDecoding takes every turn to decode a request body of h until the
// returned function gives one back.
func HoldDecoding(h *Handler) (release func()) {
	for range cap(h.decoding) {
		h.decoding <- struct{}{}
	}
	return func() { <-h.decoding }
}

// MaxResponseRoom is the bytes of responses built at once.
const MaxResponseRoom = maxResponseRoom
