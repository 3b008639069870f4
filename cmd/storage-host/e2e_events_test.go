package main_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// sseEvent is one event of a stream: its id and data lines, and its
// type ("" for a change, "end" for the last).
type sseEvent struct {
	id, event, data string
}

// sseStream is an open GET /v1/events, read by its own goroutine.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	start  string        // the id of the opening frame: where the stream starts after
	events chan sseEvent // closed when the stream ends
}

// openEvents opens the event stream of the daemon at url with the
// parameters query ("" for none) and Last-Event-ID lastID ("" for none),
// and returns once the stream has opened (its retry line is read).
func openEvents(t *testing.T, url, query, lastID string) *sseStream {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/v1/events"+query, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &sseStream{t: t, resp: resp, events: make(chan sseEvent, 1024)}
	opened := make(chan [2]string, 1) // retry, id
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		retry := ""
		for sc.Scan() {
			line := sc.Text()
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			if line == "" && retry != "" {
				opened <- [2]string{retry, ev.id}
				retry, ev = "", sseEvent{}
				continue
			}
			switch name {
			case "retry":
				retry = value
			case "id":
				ev.id = value
			case "event":
				ev.event = value
			case "data":
				ev.data = value
			}
			if line == "" && ev.data != "" {
				s.events <- ev
				ev = sseEvent{}
			}
		}
	}()
	select {
	case frame := <-opened:
		require.Equal(t, "1000", frame[0])
		s.start = frame[1]
	case <-time.After(waitTimeout):
		t.Fatal("the event stream did not open")
	}
	return s
}

// next returns the next event; ok is false when the stream ended first.
func (s *sseStream) next() (ev sseEvent, ok bool) {
	s.t.Helper()
	select {
	case ev, ok = <-s.events:
		return ev, ok
	case <-time.After(waitTimeout):
		s.t.Fatalf("no event within %s", waitTimeout)
		return sseEvent{}, false
	}
}

// change is the data of a change event.
type change struct {
	ID, Kind, Op, Key, Version, Time string
	AgentID                          string `json:"agent_id"`
}

// change returns the next event, which must be a change.
func (s *sseStream) change() change {
	s.t.Helper()
	ev, ok := s.next()
	require.True(s.t, ok, "the stream ended")
	require.Empty(s.t, ev.event, "want a change, got %q: %s", ev.event, ev.data)
	var c change
	require.NoError(s.t, json.Unmarshal([]byte(ev.data), &c), ev.data)
	require.Equal(s.t, ev.id, c.ID)
	return c
}

// endOf returns the code and message of ev, which must be a stream's end
// event.
func endOf(t *testing.T, ev sseEvent) (code, message string) {
	t.Helper()
	require.Equal(t, "end", ev.event, ev.data)
	var end struct{ Code, Message string }
	require.NoError(t, json.Unmarshal([]byte(ev.data), &end), ev.data)
	return end.Code, end.Message
}

// putState writes an agent state through the daemon at url and returns
// the version it answered.
// stateVersion reads agent id's state through the daemon at url and
// returns its version.
func stateVersion(t *testing.T, url, id string) string {
	t.Helper()
	code, _, body := do(t, "GET", url+"/v1/agents/"+id+"/state", "")
	require.Equal(t, http.StatusOK, code, "%v", body)
	return body["version"].(string)
}

func putState(t *testing.T, url, id string) string {
	t.Helper()
	code, _, body := do(t, "PUT", url+"/v1/agents/"+id+"/state", `{"n":1}`)
	require.Equal(t, http.StatusOK, code, "%v", body)
	return body["version"].(string)
}

// TestEventsAcrossDaemons: two daemons share one Redis backend. A change
// made through one reaches the event streams of the other, which resume
// from Last-Event-ID with exactly what they missed, on either daemon; a
// daemon shutting down ends its open streams at once, telling them so.
func TestEventsAcrossDaemons(t *testing.T) {
	t.Parallel()
	redisAddr := redistest.Addr(t)
	prefix := redistest.Prefix(t, redisAddr)
	cfg := sharedRedisConfig(t, redisAddr, prefix)
	a := startDaemon(t, nil, "-config", cfg, "-watch=false")
	b := startDaemon(t, nil, "-config", cfg, "-watch=false")

	// Written through A, seen on B, with the version A answered.
	onB := openEvents(t, b.url, "?kind=agent_states", "")
	version := putState(t, a.url, "e2e-1")
	got := onB.change()
	require.Equal(t, change{ID: got.ID, Kind: "agent_states", Op: "put", Key: "e2e-1", AgentID: "e2e-1", Version: version, Time: got.Time}, got)
	require.Regexp(t, `^shared=\d+-\d+$`, got.ID)
	require.NoError(t, onB.resp.Body.Close())

	// Missed while away: a reconnection with Last-Event-ID gets exactly
	// those, on B and on A alike (the position is the shared log's).
	putState(t, a.url, "e2e-2")
	putState(t, b.url, "e2e-3")
	again := openEvents(t, b.url, "?kind=agent_states", got.ID)
	onA := openEvents(t, a.url, "?kind=agent_states", got.ID)
	putState(t, a.url, "e2e-4")
	for name, s := range map[string]*sseStream{"B": again, "A": onA} {
		var keys []string
		for range 3 {
			keys = append(keys, s.change().Key)
		}
		// Each daemon appends its events in the order of its writes; the
		// two daemons' appends interleave as they reach Redis.
		require.ElementsMatch(t, []string{"e2e-2", "e2e-3", "e2e-4"}, keys, "resumed on %s", name)
		require.Less(t, slices.Index(keys, "e2e-2"), slices.Index(keys, "e2e-4"), "resumed on %s: A's writes in A's order", name)
	}
	// The first stream on B was closed by its client; B counts it gone once
	// its handler sees the connection end, which may come after the
	// resumed streams' events.
	require.Eventually(t, func() bool { return b.metric("storage_host_http_event_streams") == 1.0 },
		10*time.Second, 10*time.Millisecond, "B counts its one open stream")

	// B shuts down with a stream open: the stream ends with shutting_down
	// and B exits promptly, far within its 30s shutdown bound.
	start := time.Now()
	b.signal(syscall.SIGTERM)
	ev, ok := again.next()
	require.True(t, ok, "the stream closed without an end event")
	require.Equal(t, "end", ev.event)
	require.JSONEq(t, `{"code": "shutting_down", "message": "the daemon is shutting down; reconnect with Last-Event-ID"}`, ev.data)
	_, ok = again.next()
	require.False(t, ok, "the stream goes on after its end event")
	require.Equal(t, 0, b.wait())
	require.Less(t, time.Since(start), 15*time.Second, "shutdown waited for the stream (30 s)")
	require.Contains(t, b.log.last(), "stopped")

	// A still serves its stream.
	putState(t, a.url, "e2e-5")
	require.Equal(t, "e2e-5", onA.change().Key)
}

// sharedRedisConfig writes a configuration whose one backend, "shared",
// keeps everything in the Redis at addr under prefix; blocks are more of
// the backend's blocks ("cache { ... }").
func sharedRedisConfig(t *testing.T, addr, prefix string, blocks ...string) string {
	t.Helper()
	cfg := configFile(t, `backend "shared" {
  plugin = "builtin:redis"
  redis {
    addrs      = [%q]
    key_prefix = %q
    scripts    = true
  }
  %s
}
routes {
  metrics      = "shared"
  alerts       = "shared"
  agent_states = "shared"
}
`, addr, prefix, strings.Join(blocks, "\n  "))
	return cfg
}

// TestEventsEndWhenRedisGoesAway: a stream whose backend's Redis stops
// answering ends with unavailable. This Redis keeps nothing on disk, so
// it comes back without the event stream: a reconnection with
// Last-Event-ID is told the events are lost (410 events_lost), never
// served as if nothing had happened, and one without a position follows
// the new writes.
func TestEventsEndWhenRedisGoesAway(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	d := startDaemon(t, nil, "-config", sharedRedisConfig(t, srv.Addr(), "events:"), "-watch=false")
	s := openEvents(t, d.url, "", "")
	putState(t, d.url, "before")
	last := s.change()

	srv.Stop()
	ev, ok := s.next()
	require.True(t, ok, "the stream closed without an end event")
	code, msg := endOf(t, ev)
	require.Equal(t, "unavailable", code, msg)

	srv.Start()
	require.Equal(t, http.StatusGone, resumeOnceBack(t, d.url, last.ID))

	again := openEvents(t, d.url, "", "")
	putState(t, d.url, "after")
	for ends := 0; ; {
		// A stream opened before the daemon's first read of the log since
		// Redis came back follows a stream Redis lost: that read ends it
		// (unavailable), and it is opened again.
		ev, ok := again.next()
		require.True(t, ok, "the stream closed without an end event")
		if ev.event == "end" {
			ends++
			require.Less(t, ends, 2, "ended twice: %s", ev.data)
			require.Contains(t, ev.data, `"unavailable"`)
			require.Contains(t, ev.data, "lost events")
			again = openEvents(t, d.url, "", "")
			putState(t, d.url, "after")
			continue
		}
		// The write of "before" may be appended again: an append whose
		// reply Redis's crash cut off is retried (at least once). The
		// repeat has an ID of its own, and every other field the same,
		// which is what a consumer de-duplicates on.
		var c change
		require.NoError(t, json.Unmarshal([]byte(ev.data), &c), ev.data)
		if c.Key == "after" {
			break
		}
		require.Equal(t, change{ID: c.ID, Kind: last.Kind, Op: last.Op, Key: "before", AgentID: last.AgentID, Version: last.Version, Time: last.Time}, c)
	}
}

// TestEventsResumeFromTheOpeningAfterRedisLostTheStream: a client that
// opened a stream on a backend whose Redis stream held nothing, and
// received nothing before Redis restarted empty, reconnects with the
// opening frame's id and is told 410, not served the events of the
// writes after the restart as if those before it had never been.
func TestEventsResumeFromTheOpeningAfterRedisLostTheStream(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	d := startDaemon(t, nil, "-config", sharedRedisConfig(t, srv.Addr(), "opening:"), "-watch=false")
	s := openEvents(t, d.url, "?kind=none", "")
	require.NotEmpty(t, s.start)
	putState(t, d.url, "before") // its event is lost with the stream

	srv.Stop()
	srv.Start()
	redistest.WaitFor(t, 20*time.Second, 50*time.Millisecond, func() bool {
		code, _, _ := do(t, "PUT", d.url+"/v1/agents/after/state", `{"n":1}`)
		return code == http.StatusOK
	}, "the daemon writes once Redis is back")
	require.Equal(t, http.StatusGone, resumeOnceBack(t, d.url, s.start), "resuming from %s", s.start)
}

// resumeOnceBack asks the daemon at url for the events after lastID until
// it answers other than 503 (Redis still coming back), and returns that
// answer's status.
func resumeOnceBack(t *testing.T, url, lastID string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/v1/events", nil)
	require.NoError(t, err)
	req.Header.Set("Last-Event-ID", lastID)
	var resp *http.Response
	redistest.WaitFor(t, 20*time.Second, 50*time.Millisecond, func() bool {
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode != http.StatusServiceUnavailable
	}, "the daemon answers a resumption once Redis is back")
	return resp.StatusCode
}

// TestEventsEndAtAGap: a gap in a Redis backend's stream (a host died, or
// dropped events, before it appended those of writes it acknowledged)
// ends a live stream, and a stream catching up across it ends with
// events_lost (after what came before it, or some of it: the client
// re-reads the records either way): a client is told, never served past
// it as if nothing were missing.
func TestEventsEndAtAGap(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	d := startDaemon(t, nil, "-config", sharedRedisConfig(t, srv.Addr(), "gaps:"), "-watch=false")
	live := openEvents(t, d.url, "", "")
	putState(t, d.url, "a")
	first := live.change()
	putState(t, d.url, "b")
	require.Equal(t, "b", live.change().Key)

	// A gap entry as a dying host's finder appends it, here without its
	// member in the set of gaps (as when more gaps than the set keeps
	// came after it): only reading up to it finds it.
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer direct.Close()
	require.NoError(t, direct.XAdd(t.Context(), &redis.XAddArgs{Stream: "__host__:{gaps:}:events", Values: []any{"g", "host x stopped without a clean close"}}).Err())
	ev, ok := live.next()
	require.True(t, ok, "the stream closed without an end event")
	code, msg := endOf(t, ev)
	require.Equal(t, "unavailable", code, msg)
	require.Contains(t, msg, "the event log has a gap")

	resumed := openEvents(t, d.url, "", first.ID)
	ev, ok = resumed.next()
	require.True(t, ok, "the stream closed without an end event")
	if ev.event != "end" {
		require.Contains(t, ev.data, `"key":"b"`, "only what came before the gap")
		ev, ok = resumed.next()
		require.True(t, ok, "the stream closed without an end event")
	}
	code, msg = endOf(t, ev)
	require.Equal(t, "events_lost", code, msg)
}
