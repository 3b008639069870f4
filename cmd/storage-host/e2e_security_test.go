package main_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// defaultListen is where serve listens with no -listen and no file.
const defaultListen = "127.0.0.1:8474"

// TestDefaultListenIsLoopback: serve with no flag and no configuration
// listens on loopback only: it says 127.0.0.1:8474, and the machine's other
// addresses refuse a connection to that port. It is skipped when the port
// is taken.
func TestDefaultListenIsLoopback(t *testing.T) {
	t.Parallel()
	probe, err := net.Listen("tcp", defaultListen)
	if err != nil {
		t.Skipf("%s is taken: %v", defaultListen, err)
	}
	require.NoError(t, probe.Close())

	d := launch(t, nil, "serve")
	assert.Regexp(t, `on http://127\.0\.0\.1:8474$`, d.serving)
	require.Equal(t, http.StatusNoContent, call(t, "GET", d.url+"/healthz", "").code)

	// A wildcard listener would accept on every address of the machine.
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	tried := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		tried++
		addr := net.JoinHostPort(ipn.IP.String(), "8474")
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			c.Close()
		}
		assert.Error(t, err, "the daemon accepts connections on %s", addr)
	}
	t.Logf("%d non-loopback addresses checked", tried)
}

// TestDaemonBoundsRequests: the real daemon answers a body past its 4 MiB
// default with 413 too_large, and closes a connection whose request
// headers do not arrive within its 10 s ReadHeaderTimeout.
func TestDaemonBoundsRequests(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, nil)
	host := strings.TrimPrefix(d.url, "http://")

	// Headers that never end: the request line and one header, no blank
	// line. The server must drop the connection by itself.
	conn, err := net.Dial("tcp", host)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: "+host+"\r\n")
	require.NoError(t, err)
	sent := time.Now()
	closed := make(chan error, 1)
	go func() {
		// 10 s, and a generous margin: a hang guard, not a measurement.
		_ = conn.SetReadDeadline(time.Now().Add(40 * time.Second))
		_, err := io.ReadAll(conn)
		closed <- err
	}()

	url := d.url + "/v1/agents/big/state"
	state := func(n int) string { return `{"v":"` + strings.Repeat("a", n) + `"}` }
	r := call(t, "PUT", url, state(4<<20), "Content-Type", "application/json")
	if assert.Equal(t, http.StatusRequestEntityTooLarge, r.code, "a body past the cap: %.200s", r.body) {
		assert.Equal(t, "too_large", r.errorCode(t))
	}
	r = call(t, "PUT", url, state(1<<20), "Content-Type", "application/json")
	assert.Equal(t, http.StatusOK, r.code, "a body within the cap: %.200s", r.body)

	err = <-closed
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the daemon kept a connection with unfinished headers open for %s", time.Since(sent).Round(time.Second))
	t.Logf("connection with unfinished headers closed after %s (err %v)", time.Since(sent).Round(100*time.Millisecond), err)
}

// TestDaemonEventStreamsBound: the configuration's max_event_streams
// bounds the daemon's event streams, and a reload changes the bound.
func TestDaemonEventStreamsBound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	file := func(n int) []byte {
		return fmt.Appendf(nil, "max_event_streams = %d\nbackend \"memory\" {\n  plugin = \"builtin:memory\"\n}\n", n)
	}
	require.NoError(t, os.WriteFile(cfg, file(1), 0o600))
	d := startDaemon(t, nil, "-config", cfg, "-watch=false")
	host := strings.TrimPrefix(d.url, "http://")
	open := func() string {
		c, err := net.Dial("tcp", host)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		_, err = io.WriteString(c, "GET /v1/events HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		status, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		return strings.TrimSpace(status)
	}
	require.Equal(t, "HTTP/1.1 200 OK", open())
	r := call(t, "GET", d.url+"/v1/events", "")
	require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
	assert.Contains(t, string(r.body), "too many event streams are open (1)")

	replaceFile(t, cfg, file(2))
	d.signal(syscall.SIGHUP)
	d.waitLog(reloaded, 1)
	require.Equal(t, "HTTP/1.1 200 OK", open())
	r = call(t, "GET", d.url+"/v1/events", "")
	assert.Contains(t, string(r.body), "too many event streams are open (2)")
}

// TestDaemonBoundsConnections: a client opening hundreds of connections
// that send nothing does not make the daemon hold more than its
// max_connections (it held every one, up to its limit on open files,
// before), and another client is served meanwhile.
func TestDaemonBoundsConnections(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	require.NoError(t, os.WriteFile(cfg, []byte("max_connections = 32\nbackend \"memory\" {\n  plugin = \"builtin:memory\"\n}\n"), 0o600))
	d := startDaemon(t, nil, "-config", cfg, "-watch=false")
	host := strings.TrimPrefix(d.url, "http://")
	fds := func() int {
		entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid))
		if err != nil {
			t.Skipf("cannot count the daemon's file descriptors: %v", err)
		}
		return len(entries)
	}
	before := fds()
	for range 300 {
		c, err := net.Dial("tcp", host)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
	}
	// The daemon accepts them all, closing the oldest as it goes.
	r := call(t, "GET", d.url+"/healthz", "")
	require.Equal(t, http.StatusNoContent, r.code)
	held := fds() - before
	t.Logf("300 silent connections: the daemon holds %d more file descriptors", held)
	assert.LessOrEqual(t, held, 32+4, "file descriptors past max_connections")
	d.waitLog(regexp.MustCompile(`connections at their bound`), 1)
}
