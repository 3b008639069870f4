package redistest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func client(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestAddrAnswers(t *testing.T) {
	addr := Addr(t)
	require.NoError(t, client(t, addr).Ping(context.Background()).Err())
	assert.Equal(t, addr, Addr(t), "one Redis per test binary")
}

func TestPrefixIsUniqueAndCleanedUp(t *testing.T) {
	ctx := context.Background()
	c := client(t, Addr(t))
	outside := Prefix(t) + "outside"
	require.NoError(t, c.Set(ctx, outside, "stays", 0).Err())

	var prefix string
	t.Run("user", func(t *testing.T) {
		prefix = Prefix(t)
		assert.NotEqual(t, prefix, Prefix(t), "each call is a new namespace")
		assert.Regexp(t, `^sht:[0-9a-f]{16}:$`, prefix)
		for i := range 2500 { // more than one SCAN page
			require.NoError(t, c.Set(ctx, fmt.Sprintf("%sk%d", prefix, i), "v", 0).Err())
		}
		require.NoError(t, c.HSet(ctx, prefix+"{tag}h", "f", "v").Err())
		require.NoError(t, c.Do(ctx, "acl", "setuser", "storage-host:"+prefix).Err())
	})
	keys, _, err := c.Scan(ctx, 0, prefix+"*", 10000).Result()
	require.NoError(t, err)
	assert.Empty(t, keys, "the subtest's cleanup deletes its keys")
	users, err := c.Do(ctx, "acl", "users").StringSlice()
	require.NoError(t, err)
	assert.NotContains(t, users, "storage-host:"+prefix, "and the users named after the prefix")
	assert.Equal(t, "stays", c.Get(ctx, outside).Val(), "keys of other prefixes survive")
}

func TestGlobEscape(t *testing.T) {
	assert.Equal(t, `sht:a\*b\?\[c\]\\:`, globEscape(`sht:a*b?[c]\:`))
	assert.Equal(t, "sht:0123:", globEscape("sht:0123:"))
}

func TestFindAddrFromEnvFailsWhenUnreachable(t *testing.T) {
	_, err := findAddr("127.0.0.1:1", DefaultAddr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), EnvAddr)
}

func TestFindAddrPrefersEnv(t *testing.T) {
	addr := Addr(t)
	got, err := findAddr(addr, "127.0.0.1:1")
	require.NoError(t, err)
	assert.Equal(t, addr, got)
}

func TestFindAddrStartsAServerWhenNoneAnswers(t *testing.T) {
	shared.mu.Lock()
	before := len(shared.procs)
	shared.mu.Unlock()
	got, err := findAddr("", "127.0.0.1:1")
	if err != nil && !strings.Contains(err.Error(), "not on PATH") {
		t.Fatal(err)
	}
	if err != nil {
		unavailable(t, "%v", err)
	}
	require.NoError(t, ping(got, time.Second))
	shared.mu.Lock()
	p := shared.procs[len(shared.procs)-1]
	shared.procs = shared.procs[:before]
	shared.mu.Unlock()
	assert.Equal(t, got, p.addr())
	p.kill()
	assert.Error(t, ping(got, 200*time.Millisecond))
}

// recorder is a testing.TB that records Fatalf and Skipf and stops the
// goroutine as they do.
type recorder struct {
	testing.TB
	mu              sync.Mutex
	failed, skipped bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func runRecorded(t *testing.T, f func(tb testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestUnavailableFailsInCIAndSkipsElsewhere(t *testing.T) {
	t.Setenv("CI", "true")
	r := runRecorded(t, func(tb testing.TB) { unavailable(tb, "no redis here") })
	assert.True(t, r.failed, "CI set: fail")
	assert.False(t, r.skipped)
	assert.Contains(t, r.msg, "no redis here")

	t.Setenv("CI", "")
	r = runRecorded(t, func(tb testing.TB) { unavailable(tb, "no redis here") })
	assert.True(t, r.skipped, "CI unset: skip")
	assert.False(t, r.failed)
}

func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, time.Second, time.Millisecond, func() bool { n++; return n == 3 }, "never")
	assert.Equal(t, 3, n)

	r := runRecorded(t, func(tb testing.TB) {
		WaitFor(tb, 20*time.Millisecond, time.Millisecond, func() bool { return false }, "waited for %s", "godot")
	})
	assert.True(t, r.failed)
	assert.Contains(t, r.msg, "waited for godot")
}

func TestServerStopAndStart(t *testing.T) {
	ctx := context.Background()
	s := NewServer(t)
	addr := s.Addr()
	c := client(t, addr)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	s.Stop()
	assert.Error(t, ping(addr, 200*time.Millisecond), "a stopped server does not answer")

	s.Start()
	assert.Equal(t, addr, s.Addr(), "same port after a restart")
	require.NoError(t, ping(addr, time.Second))
	assert.ErrorIs(t, c.Get(ctx, "k").Err(), redis.Nil, "without persistence the data is gone")
}

func TestServerPauseAndResume(t *testing.T) {
	s := NewServer(t)
	s.Pause()
	assert.Error(t, ping(s.Addr(), 100*time.Millisecond), "a paused server answers nothing")
	s.Resume()
	assert.NoError(t, ping(s.Addr(), time.Second))
	s.Pause() // a paused server is still killed at cleanup
}

func TestServerWithPersistenceKeepsData(t *testing.T) {
	ctx := context.Background()
	s := NewServer(t, "--appendonly", "yes", "--appendfsync", "always")
	c := client(t, s.Addr())
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	s.Stop()
	s.Start()
	assert.Equal(t, "v", c.Get(ctx, "k").Val(), "an fsynced append-only file survives a crash")
}

func TestServerIsKilledAtCleanup(t *testing.T) {
	var addr string
	t.Run("owner", func(t *testing.T) { addr = NewServer(t).Addr() })
	assert.Error(t, ping(addr, 200*time.Millisecond), "the server dies with its test")
}

func TestCluster(t *testing.T) {
	start := time.Now()
	addrs := Cluster(t)
	t.Logf("shared cluster ready in %s (zero when an earlier test started it)", time.Since(start))
	require.Len(t, addrs, clusterNodes)
	assert.Equal(t, addrs, Cluster(t), "one shared cluster per binary")
	ctx := context.Background()
	for _, a := range addrs {
		info, err := client(t, a).ClusterInfo(ctx).Result()
		require.NoError(t, err)
		assert.Contains(t, info, "cluster_state:ok")
	}

	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = cc.Close() })
	var prefix string
	t.Run("user", func(t *testing.T) {
		prefix = Prefix(t, addrs...)
		for i := range 300 {
			require.NoError(t, cc.Set(ctx, fmt.Sprintf("%sk%d", prefix, i), "v", 0).Err())
		}
		// The keys spread over every master.
		var masters atomic.Int32
		require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			keys, _, err := n.Scan(ctx, 0, prefix+"*", 1000).Result()
			if len(keys) > 0 {
				masters.Add(1)
			}
			return err
		}))
		assert.EqualValues(t, clusterNodes, masters.Load())
	})
	require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		keys, _, err := n.Scan(ctx, 0, prefix+"*", 1000).Result()
		assert.Empty(t, keys, "cleanup deletes the keys on every master")
		return err
	}))
}

func TestNewClusterIsPrivate(t *testing.T) {
	start := time.Now()
	addrs := NewCluster(t)
	t.Logf("private cluster ready in %s", time.Since(start))
	require.Len(t, addrs, clusterNodes)
	for _, a := range addrs {
		assert.NotContains(t, Cluster(t), a)
	}
	nodes, err := client(t, addrs[0]).ClusterNodes(context.Background()).Result()
	require.NoError(t, err)
	assert.Equal(t, clusterNodes, strings.Count(nodes, "master"))
}

func TestNewSentinels(t *testing.T) {
	s := NewSentinels(t)
	require.Len(t, s.Addrs, 3)
	addr, err := s.MasterAddr(context.Background())
	require.NoError(t, err)
	require.Equal(t, s.Master.Addr(), addr)
	require.NoError(t, client(t, s.Master.Addr()).Set(context.Background(), "k", "v", 0).Err())
	WaitFor(t, 5*time.Second, 10*time.Millisecond, func() bool {
		return client(t, s.Replica.Addr()).Get(context.Background(), "k").Val() == "v"
	}, "the replica follows the master")
}
