package redisbridge

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redistest"
)

// privateServer is a private Redis, a bridge on it with a warm pooled
// connection, and a direct client to look at the raw keys.
func privateServer(t *testing.T, cfg Config, hooks ...redis.Hook) (s *redistest.Server, b *Bridge, direct *redis.Client) {
	t.Helper()
	s = redistest.NewServer(t)
	cfg.Addrs, cfg.KeyPrefix = []string{s.Addr()}, "sht:outcome:"
	b = openBridge(t, cfg)
	for _, h := range hooks {
		b.client.AddHook(h)
	}
	direct = redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = direct.Close() })
	// A pooled connection for commands, and one for pipelines, which
	// go-redis keeps in a pool of their own.
	require.Equal(t, status("OK"), one(t, b, "SET", "warm", "1"))
	_, err := pipeline(t, b, cmd("SET", "warm", "1"), cmd("GET", "warm"))
	require.NoError(t, err)
	return s, b, direct
}

// pausedServer is privateServer, paused (SIGSTOP) until resume, which the
// cleanup calls too: Redis reads nothing, like a hung server.
func pausedServer(t *testing.T, cfg Config) (b *Bridge, direct *redis.Client, resume func()) {
	t.Helper()
	s, b, direct := privateServer(t, cfg)
	s.Pause()
	t.Cleanup(s.Resume)
	return b, direct, s.Resume
}

func run(t *testing.T, b *Bridge, timeout time.Duration, mode abi.RedisMode, cmds ...[][]byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := callCtx(t, ctx, b, &abi.RedisRequest{Mode: mode, Commands: cmds})
	return err
}

// A write sent to a Redis that does not answer in time is UNKNOWN, not
// UNAVAILABLE: Redis runs it once it wakes, so "not applied" would be a
// lie.
func TestWriteTimedOutAfterSendIsUnknown(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		mode    abi.RedisMode
		cmds    [][][]byte
		applied func(direct *redis.Client) bool
	}{
		{"command", abi.RedisPipeline, [][][]byte{cmd("SET", "k", "v")},
			func(d *redis.Client) bool { return d.Get(ctx, "sht:outcome:k").Val() == "v" }},
		{"transaction", abi.RedisTransaction, [][][]byte{cmd("INCR", "n"), cmd("SET", "t", "x")},
			func(d *redis.Client) bool {
				return d.Get(ctx, "sht:outcome:n").Val() == "1" && d.Get(ctx, "sht:outcome:t").Val() == "x"
			}},
		{"write among reads", abi.RedisPipeline, [][][]byte{cmd("GET", "k"), cmd("RPUSH", "l", "a"), cmd("GET", "k")},
			func(d *redis.Client) bool { return d.LLen(ctx, "sht:outcome:l").Val() == 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, direct, resume := pausedServer(t, Config{})
			err := run(t, b, time.Second, tc.mode, tc.cmds...)
			require.ErrorIs(t, err, abi.StatusUnknown)
			require.NotErrorIs(t, err, abi.StatusUnavailable)
			assert.Contains(t, err.Error(), "may have run")
			resume()
			redistest.WaitFor(t, 5*time.Second, 10*time.Millisecond, func() bool { return tc.applied(direct) },
				"the write that timed out was applied once Redis woke")
		})
	}
	t.Run("writes paused", func(t *testing.T) {
		// CLIENT PAUSE WRITE on a private server: Redis reads the
		// commands, answers reads, and holds writes until the pause ends;
		// a held write whose connection the host closed at its timeout is
		// dropped. Either way the host cannot know: UNKNOWN.
		_, b, direct := privateServer(t, Config{})
		require.NoError(t, direct.Do(ctx, "client", "pause", "10000", "write").Err())
		t.Cleanup(func() { _ = direct.Do(context.Background(), "client", "unpause").Err() })
		err := run(t, b, time.Second, abi.RedisPipeline, cmd("GET", "k"), cmd("SET", "k", "v"))
		require.ErrorIs(t, err, abi.StatusUnknown)
		_, err = pipeline(t, b, cmd("GET", "k"))
		require.NoError(t, err, "reads are served during the pause")
	})
}

// A read in the same plight stays UNAVAILABLE: it has no outcome to be
// unsure of.
func TestReadTimedOutIsUnavailable(t *testing.T) {
	b, _, _ := pausedServer(t, Config{})
	err := run(t, b, 150*time.Millisecond, abi.RedisPipeline, cmd("GET", "k"), cmd("HMGET", "h", "f"))
	require.ErrorIs(t, err, abi.StatusUnavailable)
}

// A write that never left the host is UNAVAILABLE, and is not applied.
func TestWriteNotSentIsUnavailable(t *testing.T) {
	t.Run("pool timeout", func(t *testing.T) {
		b, direct, resume := pausedServer(t, Config{PoolSize: 1, PoolTimeout: 100 * time.Millisecond, ReadTimeout: 30 * time.Second})
		busy := make(chan error, 1)
		go func() { // holds the only connection while Redis sleeps
			_, err := pipeline(t, b, cmd("SET", "first", "1"))
			busy <- err
		}()
		redistest.WaitFor(t, 10*time.Second, time.Millisecond, func() bool {
			st := b.PoolStats()
			return st.IdleConns == 0 && st.TotalConns == 1
		}, "the first call takes the connection")
		err := run(t, b, time.Second, abi.RedisPipeline, cmd("SET", "second", "2"))
		require.ErrorIs(t, err, abi.StatusUnavailable)
		assert.Contains(t, err.Error(), "pool timeout")
		resume()
		require.NoError(t, <-busy)
		ctx := context.Background()
		assert.Equal(t, "1", direct.Get(ctx, "sht:outcome:first").Val())
		assert.EqualValues(t, 0, direct.Exists(ctx, "sht:outcome:second").Val(), "the write that was not sent was not applied")
	})
	t.Run("nothing listens", func(t *testing.T) {
		s := redistest.NewServer(t)
		b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "sht:outcome:"})
		s.Stop()
		err := run(t, b, time.Second, abi.RedisPipeline, cmd("SET", "k", "v"))
		require.ErrorIs(t, err, abi.StatusUnavailable)
		err = run(t, b, time.Second, abi.RedisTransaction, cmd("SET", "k", "v"), cmd("INCR", "n"))
		require.ErrorIs(t, err, abi.StatusUnavailable)
	})
	t.Run("hung before the connection was set up", func(t *testing.T) {
		// The connection's own exchange (HELLO) gets no answer, so the
		// command is never written.
		s := redistest.NewServer(t)
		b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "sht:outcome:"})
		s.Pause()
		t.Cleanup(s.Resume)
		err := run(t, b, 150*time.Millisecond, abi.RedisPipeline, cmd("SET", "k", "v"))
		require.ErrorIs(t, err, abi.StatusUnavailable)
		err = run(t, b, 150*time.Millisecond, abi.RedisTransaction, cmd("SET", "k", "v"), cmd("INCR", "n"))
		require.ErrorIs(t, err, abi.StatusUnavailable)
		s.Resume()
		direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
		defer direct.Close()
		require.NoError(t, direct.Ping(context.Background()).Err())
		assert.EqualValues(t, 0, direct.Exists(context.Background(), "sht:outcome:k", "sht:outcome:n").Val(), "not sent, not applied")
	})
	t.Run("deadline passed before sending", func(t *testing.T) {
		f := newFixture(t, nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
		defer cancel()
		<-ctx.Done()
		_, err := callCtx(t, ctx, f.b, &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("SET", "k", "v")}})
		require.ErrorIs(t, err, abi.StatusUnavailable)
		assert.EqualValues(t, 0, f.direct.Exists(context.Background(), f.prefix+"k").Val())
	})
}
