// The daemon's end-to-end tests: each starts the real storage-host binary
// as a user would, talks HTTP to it, edits its configuration file and
// sends it signals. The helpers are in this file; the tests of each area
// in e2e_*_test.go.
package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// binary is the storage-host command, built once for the package, and
// without -race: a race-enabled daemon runs wazero's compiler
// instrumented and takes 20 to 45 seconds to start. Under the race
// detector it is not built, and the tests that would run it skip
// (dataEnv).
var binary string

// cacheDir is the XDG_CACHE_HOME of every process the tests start: it
// holds the plugins' compilation cache, shared so that only the first
// daemon of the package compiles the built-in plugins.
var cacheDir string

// Timeouts of the waits on the daemon. Generous: they bound a failure,
// they are not what a passing test waits for.
const (
	startTimeout = 60 * time.Second // the first start compiles the plugins
	waitTimeout  = 30 * time.Second // a log line, a reload
	exitTimeout  = 45 * time.Second // above serve.go's 30s shutdown bound
)

// TestMain builds the binary once. It does not hand over to
// redistest.Main, which exits without returning: the binary's directory
// is removed here, and a redis-server redistest starts dies with the test
// binary anyway.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "storage-host-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "storage-host")
	cacheDir = filepath.Join(dir, "cache")
	dataHome = filepath.Join(dir, "data-home")
	// Under the race detector the tests that would run it skip (dataEnv).
	if !raceEnabled {
		if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
			os.Stderr.Write(out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// environ is the environment of a storage-host process: the test's
// (without STORAGE_HOST_DATA_DIR), the shared compilation cache, a data
// home of the package's own, so that no process writes to the user's, then
// extra ("KEY=value", later ones win).
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STORAGE_HOST_DATA_DIR=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "XDG_CACHE_HOME="+cacheDir, "XDG_DATA_HOME="+dataHome), extra...)
}

// dataHome is the XDG_DATA_HOME of every process the tests start. None
// should use it: each gets a data directory of its own (dataEnv).
var dataHome string

// dataEnv is the environment naming a new data directory of t's own: every
// process the tests start gets one, unless the test names another.
//
// Under the race detector it skips t: the processes are built without it
// (binary), so such a test would check only its own side, the HTTP
// client, for the minutes the plain run takes. The package's tests of
// its code in process (the watcher, progress, plugin test output) run.
func dataEnv(t *testing.T) string {
	if raceEnabled {
		t.Skip("end to end: the storage-host it runs is built without -race; run without -race")
	}
	return "STORAGE_HOST_DATA_DIR=" + t.TempDir()
}

// runCommand runs storage-host with args to completion and returns what it
// printed and its exit code.
func runCommand(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = environ(append([]string{dataEnv(t)}, env...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "storage-host %s did not finish; stderr:\n%s", strings.Join(args, " "), errOut.String())
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), errOut.String(), 0
}

// daemon is a running `storage-host serve`.
type daemon struct {
	t   *testing.T
	cmd *exec.Cmd
	// url is where it serves, http://host:port; a wildcard listen
	// address is reached on loopback.
	url string
	// serving is the line it printed when it started listening.
	serving string
	out     *lines // stdout
	log     *lines // stderr: the log

	exited  chan struct{} // closed once the process has exited
	exitErr error         // cmd.Wait's result, set before exited is closed
}

// configFile writes fmt.Sprintf(format, args...) as a configuration file
// in a directory of t's and returns its path.
func configFile(t *testing.T, format string, args ...any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "storage-host.hcl")
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, format, args...), 0o600))
	return path
}

// startDaemon runs `storage-host serve args...` (and -listen 127.0.0.1:0
// unless args set -listen) with env added to the environment, and returns
// once it prints where it listens. The process is killed when the test
// ends, and its output shown if the test failed.
func startDaemon(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	args = append([]string{"serve"}, args...)
	if !containsFlag(args, "listen") {
		args = append(args, "-listen", "127.0.0.1:0")
	}
	return launch(t, env, args...)
}

// launch runs storage-host with args, which must make it serve, and
// returns once it prints where it listens.
func launch(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	d := spawn(t, env, args...)
	m := d.waitLines(d.out, servingLine, 1, startTimeout)[0]
	d.serving = m
	addr := servingLine.FindStringSubmatch(m)[1]
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err, "listen address %q", addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	d.url = "http://" + net.JoinHostPort(host, port)
	return d
}

// spawn runs storage-host with args and returns at once. The process is
// killed when the test ends, and its output shown if the test failed.
func spawn(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, out: newLines(), log: newLines(), exited: make(chan struct{})}
	d.cmd = exec.Command(binary, args...)
	d.cmd.Env = environ(append([]string{dataEnv(t)}, env...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.log
	require.NoError(t, d.cmd.Start())
	go func() {
		d.exitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("storage-host %s\nstdout:\n%s\nlog:\n%s", strings.Join(args, " "), d.out, d.log)
		}
	})
	return d
}

// servingLine is what serve prints on stdout once it listens: what it
// serves, its data directory and its address.
var servingLine = regexp.MustCompile(`^storage-host: serving .+ \(data: .+\) on http://(\S+)$`)

func containsFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// waitLog waits until the log holds at least n lines matching re and
// returns the matching lines. It fails the test when the daemon exits or
// waitTimeout passes first.
func (d *daemon) waitLog(re *regexp.Regexp, n int) []string {
	d.t.Helper()
	return d.waitLines(d.log, re, n, waitTimeout)
}

func (d *daemon) waitLines(l *lines, re *regexp.Regexp, n int, timeout time.Duration) []string {
	d.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		got, grew := l.matching(re)
		if len(got) >= n {
			return got
		}
		select {
		case <-grew:
		case <-d.exited:
			if got, _ := l.matching(re); len(got) >= n {
				return got
			}
			d.t.Fatalf("storage-host exited (%v) before printing %d line(s) matching %q", d.exitErr, n, re)
		case <-deadline.C:
			d.t.Fatalf("after %s, %d line(s) match %q, want %d", timeout, len(got), re, n)
		}
	}
}

// waitWatching waits until the daemon's file watcher watches at least
// dirs directories, read from its inotify descriptors in /proc (Linux; a
// no-op elsewhere).
//
// serve.go prints where it listens, and starts serving, before it creates
// the watcher and before it handles SIGHUP, which until then kills it: an
// edit made as soon as the daemon answers can be missed for good. The
// tests that edit files or send SIGHUP wait here first (the watcher is
// created after SIGHUP is handled); they would otherwise fail now and then
// on a loaded machine.
func (d *daemon) waitWatching(dirs int) {
	d.t.Helper()
	proc := fmt.Sprintf("/proc/%d", d.cmd.Process.Pid)
	if _, err := os.Stat("/proc/self/fdinfo"); err != nil {
		return
	}
	watches := func() int {
		fds, _ := os.ReadDir(filepath.Join(proc, "fd"))
		n := 0
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join(proc, "fd", fd.Name())); l != "anon_inode:inotify" {
				continue
			}
			info, _ := os.ReadFile(filepath.Join(proc, "fdinfo", fd.Name()))
			n += strings.Count(string(info), "inotify wd:")
		}
		return n
	}
	redistest.WaitFor(d.t, waitTimeout, 2*time.Millisecond, func() bool { return watches() >= dirs },
		"storage-host does not watch %d director(ies)", dirs)
}

// logCount returns how many log lines match re now.
func (d *daemon) logCount(re *regexp.Regexp) int {
	got, _ := d.log.matching(re)
	return len(got)
}

func (d *daemon) signal(sig os.Signal) {
	d.t.Helper()
	require.NoError(d.t, d.cmd.Process.Signal(sig))
}

// wait waits for the process to exit and returns its exit code.
func (d *daemon) wait() int {
	d.t.Helper()
	select {
	case <-d.exited:
	case <-time.After(exitTimeout):
		d.t.Fatalf("storage-host did not exit within %s", exitTimeout)
	}
	var exit *exec.ExitError
	if errors.As(d.exitErr, &exit) {
		return exit.ExitCode()
	}
	require.NoError(d.t, d.exitErr)
	return 0
}

// stop sends SIGTERM and requires a clean exit: status 0, "stopped" last.
func (d *daemon) stop() {
	d.t.Helper()
	d.signal(syscall.SIGTERM)
	require.Equal(d.t, 0, d.wait(), "exit status after SIGTERM")
	require.Contains(d.t, d.log.last(), "stopped", "the last log line")
}

// lines collects what a process writes, line by line.
type lines struct {
	mu      sync.Mutex
	partial []byte
	all     []string
	grew    chan struct{} // closed, and replaced, when a line is added
}

func newLines() *lines { return &lines{grew: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.all = append(l.all, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.grew)
		l.grew = make(chan struct{})
	}
	return len(p), nil
}

// matching returns the lines matching re, and a channel closed when the
// next line arrives.
func (l *lines) matching(re *regexp.Regexp) ([]string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.all {
		if re.MatchString(s) {
			out = append(out, s)
		}
	}
	return out, l.grew
}

func (l *lines) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.all) == 0 {
		return ""
	}
	return l.all[len(l.all)-1]
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n") + string(l.partial)
}

// reply is an HTTP response, read to the end.
type reply struct {
	code   int
	header http.Header
	body   []byte
}

// object decodes the body as a JSON object.
func (r reply) object(t *testing.T) map[string]any {
	t.Helper()
	var out map[string]any
	require.NoError(t, json.Unmarshal(r.body, &out), "body %q", r.body)
	return out
}

// errorCode is the code of a JSON error response.
func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	e, ok := r.object(t)["error"].(map[string]any)
	require.True(t, ok, "not an error response: %s", r.body)
	code, _ := e["code"].(string)
	return code
}

// call sends one request with http.DefaultClient; header holds name,
// value pairs.
func call(t *testing.T, method, url, body string, header ...string) reply {
	t.Helper()
	r, err := send(http.DefaultClient, method, url, body, header...)
	require.NoError(t, err, "%s %s", method, url)
	return r
}

// send is call for goroutines other than the test's: it returns the error.
func send(c *http.Client, method, url, body string, header ...string) (reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: b}, nil
}

// do sends one request and decodes a JSON response body, if any.
func do(t *testing.T, method, url, body string, header ...string) (int, http.Header, map[string]any) {
	t.Helper()
	r := call(t, method, url, body, header...)
	var out map[string]any
	if len(r.body) > 0 {
		out = r.object(t)
	}
	return r.code, r.header, out
}

// metric returns the value of one series of the daemon's /metrics, named
// as exposed (`storage_host_reloads_total{result="ok"}`), or 0 when it
// is absent. header is sent with the scrape (a token).
func (d *daemon) metric(series string, header ...string) float64 {
	d.t.Helper()
	r := call(d.t, "GET", d.url+"/metrics", "", header...)
	require.Equal(d.t, http.StatusOK, r.code, "GET /metrics: %s", r.body)
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(d.t, err, "metrics line %q", line)
			return f
		}
	}
	return 0
}

// replaceFile writes content to path as editors and deploy tools do: into
// a new file beside it, renamed over it.
func replaceFile(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".tmp~"
	require.NoError(t, os.WriteFile(tmp, content, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// repoFile is the path of a file of the repository, from its root.
func repoFile(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}
