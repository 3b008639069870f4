package events

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// TestStalledLogIsReported: a log that takes none of the appends tried
// for longer than the stall bound (a Redis refusing the log's login, its
// password changed under it) is reported by Err, which readiness reads,
// with how many events wait; the first append it takes clears it. Before,
// such a failure was retried in silence: /readyz stayed green while the
// queue grew and subscribers saw nothing.
func TestStalledLogIsReported(t *testing.T) {
	srv := redistest.NewServer(t)
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	var logged syncBuffer
	b := NewRedis(c, "__host__:events", Options{stall: 300 * time.Millisecond}, hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Info}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Close(ctx)
		_ = c.Close()
	})

	b.Publish(Event{Kind: "metrics", Op: OpPut, AgentID: "a", Key: "m", Time: time.Now()})
	require.Eventually(t, func() bool { return b.Stats().Published == 1 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, b.Err())

	require.NoError(t, admin.ConfigSet(ctx, "requirepass", "changed").Err())
	require.NoError(t, admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err())
	b.Publish(Event{Kind: "metrics", Op: OpPut, AgentID: "a", Key: "m2", Time: time.Now()})
	require.Eventually(t, func() bool { return b.Err() != nil }, 10*time.Second, 20*time.Millisecond)
	err := b.Err()
	require.ErrorIs(t, err, ErrStalled)
	require.NotErrorIs(t, err, ErrRefused, "nothing was dropped")
	require.ErrorContains(t, err, "1 events waiting")
	require.ErrorContains(t, err, "unauthenticated", "the log's own error")

	require.NoError(t, admin.ConfigSet(ctx, "requirepass", "").Err())
	require.Eventually(t, func() bool { return b.Stats().Published == 2 }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, b.Err(), "cleared by the append the log took")
	require.Contains(t, logged.String(), "cannot append events; retrying")
	require.Contains(t, logged.String(), "events appended again", "the end of the failures is logged too")
}

// syncBuffer is a bytes.Buffer safe for the appender's goroutine and the
// test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
