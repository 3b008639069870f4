package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
)

// streamsOpen returns the gauge of the event streams open.
func (e *env) streamsOpen() float64 {
	ms := series(e.t, e.reg, "storage_host_http_event_streams", nil)
	require.Len(e.t, ms, 1)
	return ms[0].GetGauge().GetValue()
}

// stalled opens an event stream at path from local address from ("" for
// any) over a connection with a small receive buffer, and never reads
// it. It returns the connection once the stream is counted open.
func (e *env) stalled(from, path string) net.Conn {
	t := e.t
	t.Helper()
	before := e.streamsOpen()
	d := net.Dialer{}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.(*net.TCPConn).SetReadBuffer(4096))
	_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path)
	require.NoError(t, err)
	waitFor(t, func() bool { return e.streamsOpen() > before }, "the stalled stream is not counted open")
	return c
}

// clientFrom returns an HTTP client of e's server whose connections come
// from the local address ip.
func (e *env) clientFrom(ip string) *http.Client {
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr}
}

// closedByServer reads c until the server closes it, for up to 30s, and
// reports whether it did.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestEventsStreamOfAClientThatStopsReadingEnds: a stream whose client
// takes nothing while events are written ends once what it was sent has
// waited the stream timeout, rather than when its buffer of events fills
// and then a write has waited 30 s; its place, goroutine and connection
// are given back. A stream of a client that reads goes on.
func TestEventsStreamOfAClientThatStopsReadingEnds(t *testing.T) {
	// A buffer of events large enough that the stream is ended by its
	// writes waiting, not by the buffer filling.
	e := newEventsEnv(t, memoryFile(1<<20, 1<<20, "memory"))
	httpapi.SetStreamTimeout(e.h, 2*time.Second)
	var shrink atomic.Bool
	e.restart(func(l net.Listener) net.Listener { return smallBuffers{l, &shrink} })

	reading := e.open("/v1/events?kind=agent_states")
	// The stalled stream's connection, and only it, has small buffers.
	shrink.Store(true)
	c := e.stalled("", "/v1/events?kind=agent_states")
	shrink.Store(false)
	require.Equal(t, 2.0, e.streamsOpen())

	// Writes until the stalled stream is over: its client's buffer and the
	// server's fill, then its writes wait. Each batch waits until the
	// reading client has taken the last one's events, so that on a loaded
	// machine it is never the one left behind by the stream timeout.
	items := make([]any, 500)
	start := time.Now()
	n := 0
	take := func(want int) {
		for n < want {
			select {
			case f, open := <-reading.frames:
				require.True(t, open, "the reading client's stream ended")
				if f.data != "" {
					n++
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the reading client took %d events of %d", n, want)
			}
		}
	}
	for batch := 0; e.streamsOpen() > 1; batch++ {
		require.Less(t, time.Since(start), 20*time.Second, "the stalled stream is still open")
		for i := range items {
			items[i] = map[string]any{"agent_id": fmt.Sprintf("agent-%d-%d", batch, i), "state": map[string]any{"pad": strings.Repeat("x", 200)}}
		}
		res := e.reqRaw("POST", "/v1/agent-states/batch-put", map[string]any{"items": items})
		require.Equal(t, http.StatusOK, res.code, "%s", res)
		take(batch * len(items)) // the batch before this one's
	}
	t.Logf("the stalled stream ended %s after the writes began", time.Since(start).Round(time.Millisecond))
	require.True(t, closedByServer(c), "the server keeps the stalled stream's connection open")

	// The client that reads has every event and goes on.
	for ok := true; ok; {
		select {
		case f, open := <-reading.frames:
			require.True(t, open, "the reading client's stream ended")
			if f.data != "" {
				n++
			}
		case <-time.After(100 * time.Millisecond):
			ok = false
		}
	}
	e.putState("after", `{}`)
	for reading.event().Key != "after" {
	}
	require.Equal(t, 1.0, e.streamsOpen())
	t.Logf("%d events reached the reading client", n)
}

// TestEventsStreamsSharedAmongClients: when every place is taken, a
// client whose address holds fewer streams takes the newest stream of
// the address holding the most, which ends with too_many_streams; a
// client that would not make the share more even is refused 503. A lone
// client may take every place.
func TestEventsStreamsSharedAmongClients(t *testing.T) {
	e := newEventsEnv(t, memoryFile(0, 0, "memory"), func(o *httpapi.Options) { o.MaxEventStreams = 4 })
	// A stalled client from 127.0.0.1 takes every place, then one more is
	// refused it.
	for range 3 {
		e.stalled("", "/v1/events")
	}
	newest := e.open("/v1/events")
	require.Equal(t, 4.0, e.streamsOpen())
	e.reqRaw("GET", "/v1/events", nil).requireError(t, http.StatusServiceUnavailable, "unavailable")

	// Another client gets a stream, in the place of the first client's
	// newest, which is told why it ends.
	other := e.clientFrom("127.0.0.2")
	// HEAD says it would, and displaces nothing.
	require.Equal(t, http.StatusOK, e.sendWith(other, "HEAD", "/v1/events").code)
	newest.quiet(100 * time.Millisecond)
	require.Equal(t, 4.0, e.streamsOpen())
	s := e.openWith(other, "/v1/events")
	assert.Equal(t, "too_many_streams", newest.end(5*time.Second))
	e.putState("a", `{}`)
	assert.Equal(t, "a", s.event().Key)
	waitFor(t, func() bool { return e.streamsOpen() == 4 }, "the displaced stream is still open")

	// 3 and 1: the first client may not take one back, and the other may
	// take one more (2 and 2), then no more.
	e.reqRaw("GET", "/v1/events", nil).requireError(t, http.StatusServiceUnavailable, "unavailable")
	e.openWith(other, "/v1/events")
	res := e.sendWith(other, "GET", "/v1/events")
	res.requireError(t, http.StatusServiceUnavailable, "unavailable")
	assert.Equal(t, "5", res.header.Get("Retry-After"))
	assert.Equal(t, http.StatusServiceUnavailable, e.sendWith(other, "HEAD", "/v1/events").code)
	waitFor(t, func() bool { return e.streamsOpen() == 4 }, "the displaced stream is still open")

	// A raised bound applies at once.
	e.h.SetMaxEventStreams(6)
	e.openWith(other, "/v1/events")
	e.open("/v1/events")
	waitFor(t, func() bool { return e.streamsOpen() == 6 }, "6 streams open")
	e.h.SetMaxEventStreams(-1) // refused, logged
	assert.Contains(t, e.logs.String(), "event stream bound not changed")
	e.reqRaw("GET", "/v1/events", nil).requireError(t, http.StatusServiceUnavailable, "unavailable")
}

// TestEventsDisplacedStalledStreamEnds: a stream displaced while its
// client reads nothing and its writes wait ends within a second or so,
// not after the stream timeout.
func TestEventsDisplacedStalledStreamEnds(t *testing.T) {
	e := newEventsEnv(t, memoryFile(1<<20, 1<<20, "memory"), func(o *httpapi.Options) { o.MaxEventStreams = 2 })
	httpapi.SetStreamTimeout(e.h, time.Hour)
	var shrink atomic.Bool
	shrink.Store(true)
	e.restart(func(l net.Listener) net.Listener { return smallBuffers{l, &shrink} })
	e.stalled("", "/v1/events?kind=metrics")
	a := e.stalled("", "/v1/events?kind=agent_states") // the newest: displaced
	// Fill a's connection until its writes wait: its client's buffer
	// and the server's hold a few hundred KiB at most.
	items := make([]any, 500)
	for i := range items {
		items[i] = map[string]any{"agent_id": fmt.Sprintf("agent-%d", i), "state": map[string]any{"pad": strings.Repeat("x", 200)}}
	}
	for range 10 {
		require.Equal(t, http.StatusOK, e.reqRaw("POST", "/v1/agent-states/batch-put", map[string]any{"items": items}).code)
	}
	s := e.openWith(e.clientFrom("127.0.0.2"), "/v1/events?kind=metrics")
	// Its handler ends without the client reading anything.
	waitFor(t, func() bool { return e.streamsOpen() == 2 }, "the displaced stream is still open")
	require.True(t, closedByServer(a), "the displaced stream's connection is still open")
	s.close()
}

// openWith is open, through client c.
func (e *env) openWith(c *http.Client, path string) *sse {
	e.t.Helper()
	was := e.client
	e.client = c
	defer func() { e.client = was }()
	return e.open(path)
}

// sendWith sends a request without a body through client c.
func (e *env) sendWith(c *http.Client, method, path string) *response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, nil)
	require.NoError(e.t, err)
	res, err := c.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return &response{code: res.StatusCode, header: res.Header, body: body}
}

// TestResponseToAClientThatStopsReadingEnds: a response its client does
// not take within the response timeout of its first byte ends, and the
// handler with it, instead of holding its goroutine, its connection and
// the encoded response for good; the connection is closed. A later
// request on a kept-alive connection gets its own deadline.
func TestResponseToAClientThatStopsReadingEnds(t *testing.T) {
	e := newEnv(t)
	httpapi.SetResponseTimeout(e.h, time.Second)
	var shrink atomic.Bool
	shrink.Store(true)
	e.restart(func(l net.Listener) net.Listener { return smallBuffers{l, &shrink} })
	big := `{"pad":"` + strings.Repeat("x", 512<<10) + `"}`
	for i := range 4 {
		e.putState(fmt.Sprintf("big-%d", i), big)
	}
	served := func() float64 {
		var n float64
		for _, m := range series(t, e.reg, "storage_host_http_requests_total", map[string]string{"route": "GET /v1/agent-states"}) {
			n += m.GetCounter().GetValue()
		}
		return n
	}

	c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.(*net.TCPConn).SetReadBuffer(4096))
	_, err = io.WriteString(c, "GET /v1/agent-states?limit=10 HTTP/1.1\r\nHost: test\r\n\r\n")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return served() == 1 }, 10*time.Second, 10*time.Millisecond,
		"the handler of a response its client does not read has not returned")
	require.True(t, closedByServer(c), "the server keeps the connection open")

	// A kept-alive connection whose last response is long done serves
	// again, a body sent after 100-continue included.
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
	defer client.CloseIdleConnections()
	put := func() {
		t.Helper()
		var continued, reused bool
		trace := &httptrace.ClientTrace{
			GotConn:        func(i httptrace.GotConnInfo) { reused = i.Reused },
			Got100Continue: func() { continued = true },
		}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			"PUT", e.srv.URL+"/v1/agents/a/state", strings.NewReader(`{"v":1}`))
		require.NoError(t, err)
		req.Header.Set("Expect", "100-continue")
		res, err := client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.True(t, continued, "no 100 Continue (reused connection: %v)", reused)
	}
	put()
	time.Sleep(1500 * time.Millisecond) // past the first response's deadline
	put()
}
