package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// EventBackends are Backends that also deliver the backends' events, for
// GET /v1/events; the daemon's manager is. A Handler whose Backends do
// not answers that route 501.
type EventBackends interface {
	Backends
	// Subscribe subscribes to the events f passes, after the position
	// from ("" for the events from now on), doing what loss says when a
	// backend's events are lost. A from this API did not issue is an
	// error wrapping events.ErrBadID.
	Subscribe(ctx context.Context, f events.Filter, from string, loss Loss) (Subscription, error)
}

// Subscription is a subscription EventBackends.Subscribe made.
type Subscription interface {
	// Events delivers the events, and the reports of lost ones
	// (LossReported), and is closed when the subscription ends.
	Events() <-chan Event
	// Err returns why the subscription ended, once Events is closed.
	Err() error
	// Start is the position the subscription starts after: the first
	// ID a stream announces.
	Start() string
	// Close ends the subscription.
	Close()
}

// Loss says what a subscription of several backends does when the events
// of one of them are lost: its log was cut, trimmed past the subscriber, or
// lost with its Redis, or the position resumed from names no place in it.
type Loss int

const (
	// LossEnds ends the subscription with events.ErrLost, and fails a
	// resume whose position one backend no longer holds: the subscriber
	// reads every record again.
	LossEnds Loss = iota
	// LossReported reports the backend's loss as an Event with Lost set
	// and goes on: that backend's events from then on, the others' from
	// where they were. The subscriber reads that backend's records again,
	// and no other's. One backend whose log a plugin cuts again and again
	// then costs the subscribers of the others nothing.
	LossReported
)

// Event is an event of a subscription of several backends: a backend's
// event, or, when Lost is set, the report that a backend's events were
// lost (LossReported), whose ID is the position after it.
type Event struct {
	events.Event
	Lost *Lost
}

// Lost reports a backend's lost events.
type Lost struct {
	// Backend is the backend whose events were lost.
	Backend string
	// Kinds are the record kinds of the subscription that the backend
	// serves: their records may have changed unseen. A plugin's own kinds
	// it published are lost too.
	Kinds []string
	// Reason says what was lost, and why.
	Reason error
}

// Stream timing. keepaliveInterval is the default of Handler.keepalive.
const (
	// keepaliveInterval spaces the comments that keep an idle stream's
	// proxies and load balancers from closing it.
	keepaliveInterval = 15 * time.Second
	// streamWriteTimeout is the default of Handler.streamTimeout: what
	// a stream writes between two flushes (a burst of events, at most
	// flushEvery, or a keepalive), and that flush, must be taken by the
	// client within it, or the stream ends. A client that stops reading
	// holds its stream's goroutine, connection and buffers no longer.
	streamWriteTimeout = 10 * time.Second
	// displacedGrace bounds the writes of a stream whose place another
	// client took (its end event among them).
	displacedGrace = time.Second
	// retryMillis is the reconnection delay the stream asks clients for.
	retryMillis = 1000
	// streamsFullRetry is the Retry-After, in seconds, of a stream
	// refused because Options.MaxEventStreams are open.
	streamsFullRetry = 5
	// flushEvery bounds how many events already waiting are written
	// before a flush: a burst goes out in few packets, a trickle at once.
	flushEvery = 64
)

// The codes of a stream's end event, stable across versions; openapi.yaml
// lists them.
const (
	endSlowSubscriber = "slow_subscriber"  // the subscriber's buffer filled
	endEventsLost     = "events_lost"      // the log has a gap after the last event sent
	endBackendChanged = "backend_changed"  // a reload retired a backend, or routed a kind to another
	endUnavailable    = "unavailable"      // a backend's event log cannot be read
	endShuttingDown   = "shutting_down"    // the daemon is stopping
	endTooMany        = "too_many_streams" // another client's stream took its place
	endInternal       = "internal"         // anything else; the daemon logs it
)

// EndStreams ends every open event stream, each with an end event of
// code shutting_down, and refuses new ones (503). The daemon calls it as
// its server shuts down (http.Server.RegisterOnShutdown): a graceful
// shutdown waits for the requests in flight, and a stream never ends by
// itself. Safe to call more than once.
func (h *Handler) EndStreams() {
	h.endStreams.Do(func() { close(h.streamsEnded) })
}

// streamEvents serves GET /v1/events: the backends' events as
// Server-Sent Events, from the resume point in Last-Event-ID (or the
// last_event_id parameter), until the client leaves or the subscription
// ends.
func (h *Handler) streamEvents(w http.ResponseWriter, r *http.Request, q url.Values) error {
	eb, ok := h.backends.(EventBackends)
	if !ok {
		return &apiError{status: http.StatusNotImplemented, code: codeUnsupported, msg: "this daemon's backends do not deliver events"}
	}
	f, err := parseEventFilter(q)
	if err != nil {
		return err
	}
	// A plugin's own kind may come from any backend, so it needs every
	// record kind's read scope, as no kind does.
	for _, kind := range coveredKinds(f.Kinds) {
		if err := h.authorize(r, access{kind: kind}); err != nil {
			return err
		}
	}
	from := r.Header.Get("Last-Event-ID")
	if from == "" {
		from = q.Get("last_event_id")
	}
	loss := LossEnds
	switch q.Get("on_loss") {
	case "", "end":
	case "continue":
		loss = LossReported
	default:
		return invalid(fmt.Sprintf("on_loss is end or continue, not %s", quoted(q.Get("on_loss"))))
	}
	if h.streamsAreEnded() {
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: "the daemon is shutting down"}
	}
	// HEAD answers as GET would, without taking a place: it displaces
	// no stream.
	client := clientKey(r.RemoteAddr)
	var slot *streamSlot
	if r.Method == http.MethodHead {
		if !h.streams.available(client) {
			return h.streamsFull(w)
		}
	} else if slot = h.streams.take(client); slot == nil {
		return h.streamsFull(w)
	}
	defer h.streams.release(slot)

	sub, err := subscribe(r.Context(), eb, f, from, loss)
	if err != nil {
		return subscribeError(err, from)
	}
	defer sub.Close()

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not hold the stream back
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil // the answer a stream would have, without the stream
	}
	h.metrics.streamOpened()
	defer h.metrics.streamClosed()

	s := &stream{w: w, rc: http.NewResponseController(w), timeout: h.streamTimeout}
	// Deferred calls run last first: the place is given back before the
	// deadline of the server's last writes is set, so that no displacing
	// client sets it after. The server clears it once they are done.
	defer s.finish()
	if !h.streams.attach(slot, s) {
		h.endStream(s, r, errDisplaced)
		return nil
	}
	defer h.streams.release(slot)
	// The opening frame carries no data, so EventSource dispatches no
	// event, but its id sets the client's Last-Event-ID: a client that
	// reconnects before its first event resumes from here, not from now.
	if !s.write(fmt.Appendf(nil, "retry: %d\nid: %s\n\n", retryMillis, sub.Start())) || !s.flush() {
		return nil
	}
	keepalive := time.NewTicker(h.keepalive)
	defer keepalive.Stop()
	pending := 0 // events written since the last flush
	for {
		if pending > 0 && (pending >= flushEvery || len(sub.Events()) == 0) {
			if !s.flush() {
				return nil
			}
			pending = 0
		}
		select {
		case ev, ok := <-sub.Events():
			// An event received once the subscription has ended is not
			// sent: its position may count an event of another backend
			// that was dropped when it ended.
			if !ok || sub.Err() != nil {
				h.endStream(s, r, sub.Err())
				return nil
			}
			frame := eventFrame(&ev.Event)
			if ev.Lost != nil {
				frame = lostFrame(&ev)
			}
			if !s.write(frame) {
				return nil
			}
			pending++
		case <-keepalive.C:
			if !s.write([]byte(": keepalive\n\n")) || !s.flush() {
				return nil
			}
			pending = 0
		case <-h.streamsEnded:
			h.endStream(s, r, nil)
			return nil
		case <-slot.displaced:
			h.endStream(s, r, errDisplaced)
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

// streamsFull is the error answering a stream for which there is no
// place.
func (h *Handler) streamsFull(w http.ResponseWriter) error {
	w.Header().Set("Retry-After", strconv.Itoa(streamsFullRetry))
	return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable,
		msg: fmt.Sprintf("too many event streams are open (%d), and this client's address holds about as many as any other; retry later", h.streams.limit())}
}

// subscribe subscribes through eb, again (twice at most) when a reload
// closed a backend between the routes being read and its subscription.
func subscribe(ctx context.Context, eb EventBackends, f events.Filter, from string, loss Loss) (Subscription, error) {
	for attempt := 0; ; attempt++ {
		sub, err := eb.Subscribe(ctx, f, from, loss)
		if err != nil && attempt < 2 && (errors.Is(err, events.ErrClosed) || errors.Is(err, host.ErrClosed)) {
			continue
		}
		return sub, err
	}
}

// subscribeError is the JSON error answering a failed subscription.
func subscribeError(err error, from string) error {
	switch {
	case errors.Is(err, events.ErrBadID):
		return invalid(fmt.Sprintf("Last-Event-ID (or last_event_id) %s is not an event ID this API issued", quoted(from)))
	case errors.Is(err, events.ErrLost):
		return &apiError{status: http.StatusGone, code: codeEventsLost,
			msg: fmt.Sprintf("events after %s are no longer retained: read the records again, then reconnect without Last-Event-ID", quoted(from))}
	case errors.Is(err, events.ErrUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: err.Error()}
	case errors.Is(err, events.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: err.Error()}
	}
	return err
}

// endStream sends the end event saying why the subscription ended (err,
// or the daemon shutting down), unless the client left.
func (h *Handler) endStream(s *stream, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	body := errorBody{Code: endShuttingDown, Message: "the daemon is shutting down; reconnect with Last-Event-ID"}
	switch {
	case h.streamsAreEnded():
	case errors.Is(err, errDisplaced):
		body = errorBody{Code: endTooMany, Message: fmt.Sprintf("%d event streams are open, the most of them from this client's address, and another client's stream took this one's place; reconnect with Last-Event-ID later", h.streams.limit())}
	case errors.Is(err, events.ErrLost):
		body = errorBody{Code: endEventsLost, Message: err.Error() + ": read the records again, then reconnect without Last-Event-ID"}
	case errors.Is(err, events.ErrSlowSubscriber):
		body = errorBody{Code: endSlowSubscriber, Message: err.Error() + "; reconnect with Last-Event-ID"}
	case errors.Is(err, events.ErrClosed), errors.Is(err, host.ErrClosed):
		body = errorBody{Code: endBackendChanged, Message: err.Error() + "; reconnect with Last-Event-ID"}
	case errors.Is(err, events.ErrUnavailable):
		body = errorBody{Code: endUnavailable, Message: err.Error() + "; reconnect with Last-Event-ID"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return // the request's context: the client left
	default:
		h.log.Error("event stream ended", "route", r.Pattern, "error", err)
		body = errorBody{Code: endInternal, Message: "internal error"}
	}
	data, _ := json.Marshal(body)
	frame := append(append([]byte("event: end\ndata: "), data...), "\n\n"...)
	if s.write(frame) {
		s.flush()
	}
}

func (h *Handler) streamsAreEnded() bool {
	select {
	case <-h.streamsEnded:
		return true
	default:
		return false
	}
}

// errDisplaced ends a stream whose place another client's stream took.
var errDisplaced = errors.New("displaced by another client's stream")

// eventJSON is an event as the stream's data carries it: events.Event's
// fields, with the API's conventions for versions (decimal strings) and
// times (UTC).
type eventJSON struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Op      string `json:"op"`
	AgentID string `json:"agent_id,omitempty"`
	Key     string `json:"key"`
	Version string `json:"version,omitempty"`
	Time    string `json:"time"`
	Data    []byte `json:"data,omitempty"`
}

// eventFrame is one event of the stream: its ID, then its JSON.
func eventFrame(ev *events.Event) []byte {
	out := eventJSON{ID: ev.ID, Kind: ev.Kind, Op: ev.Op, AgentID: ev.AgentID, Key: ev.Key, Time: formatTime(ev.Time), Data: ev.Data}
	if ev.Version != 0 {
		out.Version = formatVersion(ev.Version)
	}
	return frame(ev.ID, "", out)
}

// frame is a frame of the stream: its id, its event name unless it is
// "", and v's JSON on one line (encoding/json escapes every line break
// inside strings).
func frame(id, event string, v any) []byte {
	var buf bytes.Buffer
	buf.WriteString("id: ")
	buf.WriteString(id)
	if event != "" {
		buf.WriteString("\nevent: ")
		buf.WriteString(event)
	}
	buf.WriteString("\ndata: ")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // cannot fail: strings and bytes only; ends with "\n"
	buf.WriteByte('\n')
	return buf.Bytes()
}

// lostJSON is the data of a lost event: a backend's events lost, the
// stream going on (on_loss=continue).
type lostJSON struct {
	Code    string   `json:"code"`
	Backend string   `json:"backend"`
	Kinds   []string `json:"kinds"`
	Message string   `json:"message"`
}

// lostFrame reports ev.Lost: "event: lost", the position after it, and
// which backend and kinds to read again.
func lostFrame(ev *Event) []byte {
	l := ev.Lost
	out := lostJSON{Code: endEventsLost, Backend: l.Backend, Kinds: l.Kinds,
		Message: l.Reason.Error() + ": read the records of its kinds again; the stream goes on with its events from here, and the other backends' as before"}
	if out.Kinds == nil {
		out.Kinds = []string{}
	}
	return frame(ev.ID, "lost", out)
}

// parseEventFilter reads the kind, agent_id and op parameters. kind and op
// are comma-separated lists and may repeat; agent_id repeats, one ID
// each, since an agent ID may hold a comma. Values are not checked
// against the host's own kinds and ops: plugins publish their own.
func parseEventFilter(q url.Values) (events.Filter, error) {
	var f events.Filter
	var err error
	if f.Kinds, err = nonEmptyList("kind", q["kind"], true, maxFilterNames, abi.MaxEventNameLength); err != nil {
		return f, err
	}
	if f.AgentIDs, err = nonEmptyList("agent_id", q["agent_id"], false, maxFilterAgents, abi.MaxIDLength); err != nil {
		return f, err
	}
	if f.Ops, err = nonEmptyList("op", q["op"], true, maxFilterNames, abi.MaxEventNameLength); err != nil {
		return f, err
	}
	return f, nil
}

// A stream's filter is kept, with the sets its backends match events
// against, for as long as the stream is open: without bounds, one kind
// parameter under the header bound named 152 000 kinds, 13 MB held by one
// stream, 13 GB by the 1024 a daemon allows. With them a filter holds at
// most about 300 KB.
const (
	maxFilterNames  = 64  // kinds, and ops: three of each are the host's
	maxFilterAgents = 512 // agent IDs
)

// nonEmptyList reads a list parameter, refusing an empty value (or, with
// split, an empty element of a comma-separated value), a value longer
// than size bytes, and more than most values; each value is kept once.
// A query may give thousands: they are told apart by a set, not by
// scanning the list for each.
func nonEmptyList(name string, vs []string, split bool, most, size int) ([]string, error) {
	var out []string
	seen := map[string]struct{}{}
	for _, v := range vs {
		items := []string{v}
		if split {
			items = strings.Split(v, ",")
		}
		for _, s := range items {
			if split {
				s = strings.TrimSpace(s)
			}
			if strings.TrimSpace(s) == "" {
				return nil, invalid(fmt.Sprintf("%s %s: empty value", name, quoted(v)))
			}
			if len(s) > size {
				return nil, invalid(fmt.Sprintf("%s %s: longer than %d bytes", name, quoted(s), size))
			}
			if _, dup := seen[s]; !dup {
				if len(out) == most {
					return nil, invalid(fmt.Sprintf("%s: more than %d values", name, most))
				}
				seen[s] = struct{}{}
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// recordKinds are the kinds a scope names, in the order 403s report them.
var recordKinds = []abi.RecordKind{abi.KindAgentState, abi.KindAlert, abi.KindMetric}

// coveredKinds returns the record kinds a subscription to kinds may
// deliver, whose read scope it needs: all of them when kinds is empty or
// names a plugin's own kind.
func coveredKinds(kinds []string) []abi.RecordKind {
	if len(kinds) == 0 {
		return recordKinds
	}
	var out []abi.RecordKind
	for _, name := range kinds {
		k, ok := abi.ParseRecordKind(name)
		if !ok {
			return recordKinds
		}
		out = append(out, k)
	}
	return out
}
