package host

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// A write that reached Redis while the backend's kv store cannot commit
// (its disk full; here the fallback buffer, which every call of the
// redis plugin in buffer mode reads) may have been applied in Redis: it
// is answered outcome unknown, never unavailable, which would tell the
// caller it was not; its event tells subscribers to read it again.
func TestWriteThatReachedRedisIsNotUnavailableWhenTheKVDiskFails(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	st, err := Open(ctx, Config{Plugin: "builtin:redis", Options: map[string]string{"fallback": "buffer"},
		Redis: &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: "kvfail:", Scripts: true}, DataDir: t.TempDir()},
		WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	defer st.Close(ctx)

	// A write buffered while Redis is away, whose commit fails: from then
	// on every commit fails until the disk has room.
	full := fillDisk(st)
	srv.Stop()
	_, err = st.PutAgentState(ctx, AgentState{AgentID: "buffered", State: []byte(`{}`)})
	require.Error(t, err, "its commit failed")
	srv.Start()
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	reached := false
	for i := 0; i < 200 && !reached; i++ {
		id := fmt.Sprintf("fresh-%d", i)
		_, err := st.PutAgentState(ctx, AgentState{AgentID: id, State: []byte(`{"n":1}`)})
		require.Error(t, err, "the kv store cannot commit")
		if n, _ := rdb.Exists(ctx, "kvfail:s:{"+id+"}").Result(); n == 1 {
			reached = true
			require.ErrorIs(t, err, ErrOutcomeUnknown, "%s is in Redis", id)
			require.NotErrorIs(t, err, ErrUnavailable, "%s is in Redis", id)
			// Its event tells subscribers to read it again.
			for seen := false; !seen; {
				select {
				case ev := <-sub.Events():
					if seen = ev.Key == id; seen {
						require.Equal(t, events.OpUnknown, ev.Op)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("no event for %s, answered outcome unknown", id)
				}
			}
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.True(t, reached, "no write reached Redis once it was back")
	full.Store(false)
}

// An operator is told when the kv store's commits fail (a disk full) and
// when they succeed again: its callers only see their writes refused.
func TestKVCommitFailuresAreLogged(t *testing.T) {
	ctx := context.Background()
	out := &logSink{}
	logger := hclog.New(&hclog.LoggerOptions{Output: out, Level: hclog.Info})
	logged := func(s string) bool {
		out.mu.Lock()
		defer out.mu.Unlock()
		return slices.ContainsFunc(out.lines, func(l string) bool { return strings.Contains(l, s) })
	}
	st, err := Open(ctx, Config{Plugin: "builtin:memory", DataDir: t.TempDir()}, WithLogger(logger), WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	defer st.Close(ctx)
	full := fillDisk(st)
	_, err = st.PutAgentState(ctx, AgentState{AgentID: "a1", State: []byte(`{}`)})
	require.Error(t, err, "its commit failed")
	require.Eventually(t, func() bool {
		return logged("kv store: commits to disk fail; its writes are refused until one succeeds") && logged("no space left on device")
	}, 5*time.Second, 10*time.Millisecond)
	full.Store(false)
	require.Eventually(t, func() bool {
		_, err := st.PutAgentState(ctx, AgentState{AgentID: "a2", State: []byte(`{}`)})
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return logged("kv store: commits to disk succeed again") }, 5*time.Second, 10*time.Millisecond)
}

// fillDisk has every commit of st's kv store fail as on a full disk
// (ENOSPC) until the flag it returns is cleared.
func fillDisk(st *Store) *atomic.Bool {
	full := new(atomic.Bool)
	full.Store(true)
	st.p.kv.FailCommits(func() error {
		if full.Load() {
			return syscall.ENOSPC
		}
		return nil
	})
	return full
}
