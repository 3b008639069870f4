package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
)

// limitedServer serves e's handler behind a ConnLimit of max.
func limitedServer(t *testing.T, e *env, max int) (*httptest.Server, *httpapi.ConnLimit) {
	l := httpapi.NewConnLimit(max, nil)
	srv := httptest.NewUnstartedServer(e.h)
	srv.Listener = l.Listener(srv.Listener)
	srv.Config.ConnState = l.ConnState
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, l
}

// dialFrom connects to srv from local address ip.
func dialFrom(t *testing.T, srv *httptest.Server, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends a GET of /healthz on c and reads the answer's status line,
// leaving c open (kept alive, idle).
func get(t *testing.T, c net.Conn) string {
	t.Helper()
	_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	res.Body.Close()
	return res.Status
}

// isClosed reports whether the server closed c, waiting up to 30s.
func isClosed(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return !(err != nil && errorsAs(err, &ne) && ne.Timeout()) && err != nil
}

// closedNow reports whether the server has closed c, waiting at most
// 50 ms.
func closedNow(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errorsAs(err, &ne) && ne.Timeout())
}

func errorsAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

// TestConnLimit: past its bound, a new connection takes the place of an
// idle one, or of one that has sent nothing, of the address holding the
// most; when every connection is serving a request it is refused; the
// connections open never pass the bound.
func TestConnLimit(t *testing.T) {
	e := newEnv(t)
	srv, l := limitedServer(t, e, 4)

	// 127.0.0.2's idle connection is the oldest, but 127.0.0.1 holds more.
	other := dialFrom(t, srv, "127.0.0.2")
	require.Equal(t, "204 No Content", get(t, other))
	var hog []net.Conn
	for range 3 {
		c := dialFrom(t, srv, "127.0.0.1")
		require.Equal(t, "204 No Content", get(t, c))
		hog = append(hog, c)
	}
	require.Equal(t, 4, l.Open())
	// The server marks a connection idle just after its answer is sent.
	require.Eventually(t, func() bool { return httpapi.ConnsBusy(l) == 0 }, 10*time.Second, 10*time.Millisecond)
	newcomer := dialFrom(t, srv, "127.0.0.3")
	require.Equal(t, "204 No Content", get(t, newcomer))
	// One of the hog's idle connections made way (the longest idle: which
	// one that is depends on when each serving goroutine marked its own
	// idle, not on the order of the answers).
	closed := 0
	require.Eventually(t, func() bool {
		closed = 0
		for _, c := range hog {
			if closedNow(c) {
				closed++
			}
		}
		return closed >= 1
	}, 30*time.Second, 50*time.Millisecond, "none of the hog's idle connections was closed")
	require.Equal(t, 1, closed, "one connection makes way for one")
	require.Equal(t, "204 No Content", get(t, other), "the other address's connection was closed")
	require.Equal(t, 4, l.Open())

	// Connections that send nothing make way too, the oldest first.
	var silent []net.Conn
	for range 10 {
		silent = append(silent, dialFrom(t, srv, "127.0.0.1"))
	}
	require.Eventually(t, func() bool { return l.Open() <= 4 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "204 No Content", get(t, dialFrom(t, srv, "127.0.0.4")))
	assert.True(t, isClosed(silent[0]))
	assert.LessOrEqual(t, l.Open(), 4)

	// Every connection busy with a request (a body that has not come
	// yet): a new one is refused, and served once one is free. The bodies
	// are finished by the test, not left to time out, so that a slow
	// machine cannot free the first before the last is busy.
	const body = `{"status":"ok"}`
	// Every answered connection marked idle first (the server marks one
	// just after its answer is sent): else one still marked busy counts
	// for a PUT below not yet marked, which the next newcomer may close.
	require.Eventually(t, func() bool { return httpapi.ConnsBusy(l) == 0 }, 10*time.Second, 10*time.Millisecond)
	var busy []net.Conn
	for i := range 4 {
		c := dialFrom(t, srv, "127.0.0.1")
		_, err := fmt.Fprintf(c, "PUT /v1/agents/a/state HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", len(body))
		require.NoError(t, err)
		busy = append(busy, c)
		require.Eventually(t, func() bool { return httpapi.ConnsBusy(l) == i+1 }, 10*time.Second, 10*time.Millisecond)
	}
	require.Equal(t, 4, l.Open())
	refused := dialFrom(t, srv, "127.0.0.5")
	require.True(t, isClosed(refused), "a connection past the bound, every other busy, is open")
	assert.LessOrEqual(t, l.Open(), 4)
	// The bodies arrive; each connection answers its request and serves
	// the next.
	for _, c := range busy {
		_, err := io.WriteString(c, body[1:])
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		r := bufio.NewReader(c)
		res, err := http.ReadResponse(r, nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		assert.Less(t, res.StatusCode, 500, res.Status)
		_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
		require.NoError(t, err)
		res, err = http.ReadResponse(r, nil)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, "204 No Content", res.Status)
	}
	require.Eventually(t, func() bool { return httpapi.ConnsBusy(l) == 0 }, 20*time.Second, 10*time.Millisecond)

	l.SetMax(0) // the default, lowered to half the limit on open files
	assert.Positive(t, l.Max())
	assert.LessOrEqual(t, l.Max(), httpapi.DefaultMaxConnections)
}

// TestUnreadBodyDoesNotHoldTheAnswer: a request whose declared body
// never comes, on a route that answers without reading it (a GET, a
// refusal before the body is read), is answered at once on a connection
// that then closes: the server does not wait for the body first, and a
// client withholding bodies cannot keep connections busy.
func TestUnreadBodyDoesNotHoldTheAnswer(t *testing.T) {
	e := newEnv(t)
	srv, _ := limitedServer(t, e, 8)
	for _, req := range []string{
		"GET /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n",
		"PUT /v1/agents/a1/state?bogus=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n",
		"DELETE /v1/agents/a1/state HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n",
		"PUT /v1/agents/a1/state HTTP/1.1\r\nHost: test\r\nContent-Length: 100000000\r\n\r\n{",
	} {
		c := dialFrom(t, srv, "127.0.0.1")
		_, err := io.WriteString(c, req)
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err, "no answer within 5 s to %q", req)
		res.Body.Close()
		assert.True(t, res.Close, "%q: answered %s without Connection: close", req, res.Status)
		assert.True(t, isClosed(c), "%q: the connection stays open", req)
	}
	// A body read to its end keeps the connection.
	c := dialFrom(t, srv, "127.0.0.1")
	_, err := io.WriteString(c, "PUT /v1/agents/a1/state HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.False(t, res.Close)
	assert.Equal(t, "204 No Content", get(t, c))
}
