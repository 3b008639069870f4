package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/storage-host/storage-host/host"
)

// A response's JSON can be several times the size of the records it
// carries: a string of control characters is escaped at six bytes a
// byte (\u0001), and a backend chooses what its records hold. Eight
// answers of 12 MiB alerts built at once took the daemon to 1.9 GB. So
// the responses built at once share a room of maxResponseRoom bytes, each
// weighing an upper bound of its JSON's length (jsonBound) from the moment
// it is encoded until it is written: a response waits for room, in the
// order they came, and one larger than the room waits for it to be empty.
// Small responses, nearly all of them, take no room and never wait.
const (
	maxResponseRoom = 64 << 20
	smallResponse   = 64 << 10
)

// A response waiting for room holds what it answers (a record read, a
// page) meanwhile, and the clients holding the room's responses may read
// them slowly (for up to a minute each): the responses waiting weigh at
// most maxWaiting together, and one past it is answered 503 at once
// (errNoRoom, with Retry-After) rather than held. Clients that never read
// large responses then hold about maxResponseRoom + maxWaiting, not a
// record each.
const (
	maxWaiting     = 4 * maxResponseRoom
	noRoomRetrySec = 1
)

var errNoRoom = errors.New("too many large responses wait for clients to take theirs; retry later")

// room is where large responses are built and written, size bytes of
// them at once, with at most maxWaiting bytes of them waiting.
type room struct {
	sem        *semaphore.Weighted
	size       int64
	maxWaiting int64
	waiting    atomic.Int64
}

func newRoom(size, maxWaiting int64) *room {
	return &room{sem: semaphore.NewWeighted(size), size: size, maxWaiting: maxWaiting}
}

var responseRoom = newRoom(maxResponseRoom, maxWaiting)

// take waits until a response of at most bound bytes fits in the room,
// or ctx ends, and returns the weight it took (0 for a small response)
// for give; errNoRoom when the responses waiting already weigh
// maxWaiting.
func (r *room) take(ctx context.Context, bound int) (int64, error) {
	if bound <= smallResponse {
		return 0, nil
	}
	n := min(int64(bound), r.size)
	if r.sem.TryAcquire(n) {
		return n, nil
	}
	if r.waiting.Add(n) > r.maxWaiting {
		r.waiting.Add(-n)
		return 0, errNoRoom
	}
	defer r.waiting.Add(-n)
	return n, r.sem.Acquire(ctx, n)
}

func (r *room) give(n int64) {
	if n > 0 {
		r.sem.Release(n)
	}
}

// takeRoom takes room for a response in the daemon's room (room.take).
func takeRoom(ctx context.Context, bound int) (int64, error) { return responseRoom.take(ctx, bound) }

func giveRoom(n int64) { responseRoom.give(n) }

// answerNoRoom answers a response that found no room and could not wait
// for it: 503, small, so that it takes no room itself.
func answerNoRoom(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(noRoomRetrySec))
	writeError(w, http.StatusServiceUnavailable, codeUnavailable, errNoRoom.Error())
}

// bounded is a response value that knows a bound on its JSON's length.
type bounded interface{ jsonBound() int }

// jsonBound bounds the length of v's JSON: what v says of itself, and
// smallResponse for a value that cannot say (a fixed shape, whose size a
// backend does not choose).
func jsonBound(v any) int {
	if b, ok := v.(bounded); ok {
		return b.jsonBound()
	}
	return smallResponse
}

// Bounds of the JSON of a string of n bytes (quotes included: each byte
// escaped at most as \u00XX), of a JSON document of n bytes once
// compacted (U+2028 and U+2029, three bytes each, become six), and of a
// record's fixed members (names, punctuation, times, versions, numbers).
func stringBound(n int) int   { return 6*n + 2 }
func documentBound(n int) int { return 2*n + 2 }

const membersBound = 256

func labelsBound(l map[string]string) int {
	n := 2
	for k, v := range l {
		n += stringBound(len(k)) + stringBound(len(v)) + 2
	}
	return n
}

func (s agentStateJSON) jsonBound() int {
	n := membersBound + stringBound(len(s.AgentID)) + documentBound(len(s.State))
	if s.StateBase64 != nil {
		n += len(*s.StateBase64) + 2
	}
	return n
}

// agentStateBound bounds the JSON writeAgentState writes for s.
func agentStateBound(s host.AgentState) int {
	return membersBound + stringBound(len(s.AgentID)) + max(documentBound(len(s.State)), base64.StdEncoding.EncodedLen(len(s.State))+2)
}

func (m metricJSON) jsonBound() int {
	return membersBound + stringBound(len(m.AgentID)) + stringBound(len(m.Name)) + labelsBound(m.Labels)
}

func (a alertJSON) jsonBound() int {
	return membersBound + stringBound(len(a.ID)) + stringBound(len(a.AgentID)) + stringBound(len(a.Message)) + labelsBound(a.Labels)
}

func (k metricKeyJSON) jsonBound() int {
	return membersBound + stringBound(len(k.AgentID)) + stringBound(len(k.Name))
}

func (a agentIDJSON) jsonBound() int { return membersBound + stringBound(len(a.AgentID)) }
func (a alertIDJSON) jsonBound() int { return membersBound + stringBound(len(a.ID)) }

func (e errorBody) jsonBound() int {
	return membersBound + stringBound(len(e.Code)) + stringBound(len(e.Message))
}

func (e errorResponse) jsonBound() int { return e.Error.jsonBound() }

func (p pageJSON[J]) jsonBound() int {
	n := membersBound + len(p.NextCursor)
	for i := range p.Items {
		n += jsonBound(any(p.Items[i])) + 1
	}
	return n
}

func (rs resultsJSON) jsonBound() int {
	n := membersBound
	for i := range rs.Results {
		r := &rs.Results[i]
		n += membersBound
		if r.Value != nil {
			n += jsonBound(r.Value)
		}
		if r.Error != nil {
			n += r.Error.jsonBound()
		}
	}
	return n
}

// writeJSON encodes v and writes it with status, after taking room for it
// (ctx ends the wait). Nothing is written until v is encoded whole, so
// that an encoding failure can still be answered with a 500.
func writeJSON(ctx context.Context, w http.ResponseWriter, status int, v any) {
	room, err := takeRoom(ctx, jsonBound(v))
	if errors.Is(err, errNoRoom) {
		answerNoRoom(w)
		return
	}
	if err != nil {
		return // the client left while the response waited
	}
	defer giveRoom(room)
	if room > 0 {
		// Straight to the connection: encoding/json builds the whole text
		// before its one Write, and only then is the status sent.
		lw := &lazyHeader{w: w, status: status}
		enc := json.NewEncoder(lw)
		enc.SetEscapeHTML(false)
		if enc.Encode(v) == nil || lw.sent {
			return // written, or the client is gone
		}
		status = http.StatusInternalServerError
		v = errorResponse{Error: errorBody{Code: codeInternal, Message: internalMessage}}
	}
	e := getEncoder()
	defer putEncoder(e)
	if err := e.enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		e.buf.Reset()
		_ = e.enc.Encode(errorResponse{Error: errorBody{Code: codeInternal, Message: internalMessage}})
	}
	writeBody(w, status, e.buf.Bytes())
}

// lazyHeader sends the JSON headers and status with the first bytes of
// the body.
type lazyHeader struct {
	w      http.ResponseWriter
	status int
	sent   bool
}

func (l *lazyHeader) Write(p []byte) (int, error) {
	if !l.sent {
		l.sent = true
		hdr := l.w.Header()
		hdr["Content-Type"] = jsonContentType
		hdr["X-Content-Type-Options"] = noSniff
		l.w.WriteHeader(l.status)
	}
	return l.w.Write(p)
}
