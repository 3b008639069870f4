// Package redistest gives tests a real Redis: a single node, a private
// server they may kill and restart, or a three-master Redis Cluster, each
// with a key namespace of its own. No test in this repository mocks Redis.
//
// Which Redis a test gets (Addr):
//
//  1. STORAGE_HOST_TEST_REDIS (host:port), when set; a test fails if it
//     cannot be reached.
//  2. 127.0.0.1:6379, when it answers PING.
//  3. A redis-server of the test binary's own on a free loopback port
//     (--save "" --appendonly no), started once and shared by the binary's
//     tests, when the redis-server binary is on PATH.
//
// When none works the test is skipped, or, when the CI environment
// variable is set, fails: CI must never pass by skipping.
//
// Servers this package starts die with the test binary (Linux parent-death
// signal); a package that wants them stopped and their directories removed
// explicitly, and its goroutines checked for leaks, calls Main from its
// TestMain.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// EnvAddr names the environment variable that points tests at a Redis.
const EnvAddr = "STORAGE_HOST_TEST_REDIS"

// DefaultAddr is the Redis tried when EnvAddr is unset.
const DefaultAddr = "127.0.0.1:6379"

// startTimeout bounds how long a started server or cluster may take to
// answer.
const startTimeout = 15 * time.Second

// unavailable skips t, or fails it when running in CI.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("redistest: %s (CI is set: a test needing Redis must not skip)", msg)
	}
	t.Skipf("redistest: %s", msg)
}

// ping reports whether a Redis answers PING at addr within timeout. It
// speaks RESP on a bare connection, so polling a server that is starting
// logs nothing.
func ping(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

var shared struct {
	addrOnce sync.Once
	addr     string
	addrErr  error

	clusterOnce sync.Once
	cluster     *cluster
	clusterErr  error

	mu    sync.Mutex
	procs []*process // started by this package and not owned by one test
}

// Addr returns the address of the Redis this test binary uses (see the
// package comment), skipping or failing t when there is none.
func Addr(t testing.TB) string {
	t.Helper()
	shared.addrOnce.Do(func() { shared.addr, shared.addrErr = findAddr(os.Getenv(EnvAddr), DefaultAddr) })
	if shared.addrErr != nil {
		if os.Getenv(EnvAddr) != "" {
			t.Fatalf("redistest: %v", shared.addrErr)
		}
		unavailable(t, "%v", shared.addrErr)
	}
	return shared.addr
}

// findAddr picks env, else dflt, else a server of the binary's own.
func findAddr(env, dflt string) (string, error) {
	if a := env; a != "" {
		if err := ping(a, 2*time.Second); err != nil {
			return "", fmt.Errorf("%s=%s does not answer: %w", EnvAddr, a, err)
		}
		return a, nil
	}
	if ping(dflt, 300*time.Millisecond) == nil {
		return dflt, nil
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return "", fmt.Errorf("no Redis: %s unset, nothing answers at %s, and redis-server is not on PATH", EnvAddr, dflt)
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return "", err
	}
	p, err := startProcess(dir, 0, nil)
	if err != nil {
		return "", err
	}
	shared.mu.Lock()
	shared.procs = append(shared.procs, p)
	shared.mu.Unlock()
	return p.addr(), nil
}

// Main runs the tests of a package, then stops every server this package
// started for the whole binary, removes their directories, and, when the
// tests passed, fails the binary if a goroutine outlived them (goleak;
// opts name the known long-lived ones to ignore). Call it from TestMain:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
func Main(m *testing.M, opts ...goleak.Option) {
	os.Exit(Run(m, opts...))
}

// Run is Main returning the exit code instead of exiting, for a TestMain
// with more to clean up after the tests.
func Run(m *testing.M, opts ...goleak.Option) int {
	code := m.Run()
	stopShared()
	if code == 0 {
		// go-redis re-dials a pool whose dials failed in a goroutine of
		// its own, which sees the pool closed only after its next second
		// of sleep: not a leak of the code under test.
		opts = append(opts, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	return code
}

// stopShared stops the servers shared by the binary's tests and the
// goroutine that started them.
func stopShared() {
	shared.mu.Lock()
	procs := shared.procs
	shared.procs = nil
	shared.mu.Unlock()
	for _, p := range procs {
		p.kill()
		_ = os.RemoveAll(p.dir)
	}
	stopSpawner()
}

// Prefix returns a key prefix of the test's own, "sht:<random hex>:", and
// registers a Cleanup that deletes every key under it (SCAN MATCH and
// UNLINK) and every ACL user whose name ends with it (the scripts user of
// a bridge with that key prefix). The keys are looked for on addrs: none
// means Addr(t); one is a single node; several are the seed nodes of a
// cluster, where every master is scanned and every node loses the users.
func Prefix(t testing.TB, addrs ...string) string {
	t.Helper()
	if len(addrs) == 0 {
		addrs = []string{Addr(t)}
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	prefix := "sht:" + hex.EncodeToString(r[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeletePrefix(ctx, addrs, prefix); err != nil {
			t.Errorf("redistest: deleting keys under %q: %v", prefix, err)
		}
	})
	return prefix
}

// DeletePrefix deletes every key that starts with prefix, the host's keys
// of the backend with that prefix ("__host__:{<prefix>}:…", kept outside
// its namespace by host/redisbridge), and every ACL user whose name ends
// with prefix, on a single node (one address) or on a cluster (several).
func DeletePrefix(ctx context.Context, addrs []string, prefix string) error {
	hostKeys := "__host__:{" + prefix + "}:"
	if len(addrs) == 1 {
		c := redis.NewClient(&redis.Options{Addr: addrs[0], Protocol: 2, DisableIdentity: true})
		defer c.Close()
		return errors.Join(deleteMatching(ctx, c, prefix, false), deleteMatching(ctx, c, hostKeys, false), deleteUsers(ctx, c, prefix))
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	return errors.Join(
		c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return errors.Join(deleteMatching(ctx, node, prefix, true), deleteMatching(ctx, node, hostKeys, true))
		}),
		c.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
			return deleteUsers(ctx, node, prefix)
		}))
}

// deleteUsers deletes the ACL users of one node whose names end with
// prefix.
func deleteUsers(ctx context.Context, c *redis.Client, prefix string) error {
	users, err := c.Do(ctx, "acl", "users").StringSlice()
	if err != nil {
		return err
	}
	for _, u := range users {
		if strings.HasSuffix(u, prefix) {
			if err := c.Do(ctx, "acl", "deluser", u).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteMatching scans one node. On a cluster node keys of a batch may lie
// in different slots, so each gets an UNLINK of its own (pipelined).
func deleteMatching(ctx context.Context, c *redis.Client, prefix string, oneByOne bool) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, globEscape(prefix)+"*", 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if oneByOne {
				_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range keys {
						p.Unlink(ctx, k)
					}
					return nil
				})
			} else {
				err = c.Unlink(ctx, keys...).Err()
			}
			if err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// globEscape escapes the glob metacharacters of s for SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// WaitFor polls cond every interval until it returns true or timeout
// passes, and then fails t with msg. It is the way to wait on a condition
// in these tests, never a bare sleep.
func WaitFor(t testing.TB, timeout, interval time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	if err := poll(timeout, interval, func() error {
		if cond() {
			return nil
		}
		return errors.New("condition not met")
	}); err != nil {
		t.Fatalf("redistest: after %s: "+msg, append([]any{timeout}, args...)...)
	}
}

// poll calls f every interval until it returns nil or timeout passes, and
// returns its last error.
func poll(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// process is one redis-server this package started.
type process struct {
	dir   string
	port  int
	extra []string
	conf  string // a Sentinel's configuration file; set, the server runs as a Sentinel

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

func (p *process) addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// freePort returns a loopback TCP port nothing listens on now. Another
// process may take it before redis-server binds it; startProcess retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startProcess starts redis-server in dir on port (0: a free one, retried
// when another process takes it first) with extra arguments; extra may
// hold %PORT% style placeholders filled by the caller beforehand.
func startProcess(dir string, port int, extra func(port int) []string) (*process, error) {
	return startConf(dir, "", port, extra)
}

// startConf is startProcess with a Sentinel's configuration file, conf,
// unless conf is empty.
func startConf(dir, conf string, port int, extra func(port int) []string) (*process, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server is not on PATH: %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		p := &process{dir: dir, port: port, conf: conf}
		if p.port == 0 {
			var err error
			if p.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if extra != nil {
			p.extra = extra(p.port)
		}
		if lastErr = p.start(); lastErr == nil {
			return p, nil
		}
		if port != 0 {
			break
		}
	}
	return nil, lastErr
}

// start runs redis-server and waits until it answers PING.
func (p *process) start() error {
	var args []string
	if p.conf != "" {
		args = append(args, p.conf, "--sentinel") // the file comes first
	}
	args = append(args,
		"--port", fmt.Sprint(p.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", p.dir, "--logfile", "redis.log",
		"--daemonize", "no",
	)
	args = append(args, p.extra...)
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = p.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	err := poll(startTimeout, 10*time.Millisecond, func() error {
		select {
		case <-exited:
			return errExited
		default:
		}
		return ping(p.addr(), 200*time.Millisecond)
	})
	if err != nil {
		p.kill()
		return fmt.Errorf("redis-server on port %d did not start: %w; log: %s", p.port, err, p.logTail())
	}
	return nil
}

var errExited = errors.New("redis-server exited")

// The parent-death signal goes to a child when the thread that started it
// exits, not only the process. Children are started from one goroutine
// locked to its thread until Main has stopped every server, so no Go
// runtime thread recycling can kill a server in the middle of a test.
var (
	spawnMu sync.Mutex // held for a whole spawn: one start at a time
	spawns  chan spawnRequest
)

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnMu.Lock()
	defer spawnMu.Unlock()
	if spawns == nil {
		spawns = make(chan spawnRequest)
		go func(rs <-chan spawnRequest) {
			// Never unlocked: the thread ends with the goroutine, when
			// Main has stopped the servers and no child is left to kill.
			runtime.LockOSThread()
			for r := range rs {
				r.done <- r.cmd.Start()
			}
		}(spawns)
	}
	done := make(chan error, 1)
	spawns <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

// stopSpawner ends the spawning goroutine; a later spawn starts another.
func stopSpawner() {
	spawnMu.Lock()
	defer spawnMu.Unlock()
	if spawns != nil {
		close(spawns)
		spawns = nil
	}
}

// kill ends the server at once (SIGKILL) and waits for it to exit.
func (p *process) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// signal sends sig to the running server.
func (p *process) signal(sig os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// logTail returns the last lines of the server's log.
func (p *process) logTail() string {
	b, err := os.ReadFile(filepath.Join(p.dir, "redis.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}
