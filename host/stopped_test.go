package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// A call whose caller's context ended answers that context's error,
// whatever the backend made of being stopped (here a Redis that stopped
// answering, which alone would be ErrUnavailable), and a write that may
// have been applied says so too.
func TestACallItsContextEndedAnswersThatContextsError(t *testing.T) {
	srv := redistest.NewServer(t)
	ctx := context.Background()
	s, err := host.Open(ctx, host.Config{Name: "stopped", Plugin: "builtin:redis",
		Redis: &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: "stopped:", Scripts: true}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(ctx) })
	_, err = s.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{}`)})
	require.NoError(t, err)

	srv.Pause()
	t.Cleanup(srv.Resume)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = s.GetAgentState(short, "a1")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, host.ErrUnavailable, "the caller's deadline, not the store's failure")

	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = s.PutAgentState(short, host.AgentState{AgentID: "a1", State: []byte(`{"n":2}`)})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	if !errors.Is(err, host.ErrOutcomeUnknown) {
		require.NotErrorIs(t, err, host.ErrUnavailable)
	}

	// A batch's items as its call.
	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	res, err := s.GetAgentStates(short, []string{"a1", "a2"})
	if err == nil {
		for _, r := range res {
			require.ErrorIs(t, r.Err, context.DeadlineExceeded)
		}
	} else {
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	srv.Resume()
}

// Close does not wait for the bridges' release past its context: with a
// Redis that stopped answering, removing the scripts user and closing the
// connections wait seconds of their own on top of the events' last
// appends (which take the context and a second's grace).
func TestCloseDoesNotWaitForTheReleasePastItsContext(t *testing.T) {
	srv := redistest.NewServer(t)
	ctx := context.Background()
	s, err := host.Open(ctx, host.Config{Name: "closing", Plugin: "builtin:redis",
		Redis: &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: "closing:", Scripts: true}})
	require.NoError(t, err)
	_, err = s.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{}`)})
	require.NoError(t, err)
	srv.Pause()
	t.Cleanup(srv.Resume)
	inFlight := make(chan error, 1)
	go func() {
		_, err := s.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{"n":2}`)})
		inFlight <- err
	}()
	require.Never(t, func() bool { return len(inFlight) > 0 }, 100*time.Millisecond, 10*time.Millisecond, "the put waits for Redis")
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Close(short)
	took := time.Since(start)
	t.Logf("Close returned after %v", took.Round(time.Millisecond))
	require.ErrorIs(t, err, context.DeadlineExceeded, "a call was in flight")
	require.Less(t, took, 3*time.Second, "Close waited %v past its context", took)
	srv.Resume()
	select {
	case err := <-inFlight:
		if err != nil { // else Redis applied it once resumed, and said so
			require.ErrorIs(t, err, host.ErrOutcomeUnknown, "the put was sent: its outcome is not known")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call in flight never returned")
	}
}

// Open refuses a configuration it cannot use with ErrInvalid, never a
// panic, an error no sentinel matches, or a default silently put in place
// of a negative value; a context already ended opens nothing.
func TestOpenRefusesAConfigurationItCannotUse(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	redis := func(r redisbridge.Config) *redisbridge.Config {
		if r.Addrs == nil && r.URL == "" {
			r.Addrs = []string{"127.0.0.1:1"}
		}
		if r.KeyPrefix == "" {
			r.KeyPrefix = "refused:"
		}
		return &r
	}
	for name, cfg := range map[string]host.Config{
		"no such module":      {Plugin: filepath.Join(t.TempDir(), "missing.wasm")},
		"no such built-in":    {Plugin: "builtin:nothing"},
		"instances":           {Instances: -1},
		"call timeout":        {Limits: host.Limits{CallTimeout: -time.Second}},
		"log rate":            {Limits: host.Limits{LogLinesPerSecond: -1}},
		"cache entries":       {Cache: host.CacheOptions{Entries: -1}},
		"cache age":           {Cache: host.CacheOptions{Entries: 10, MaxAge: -time.Second}},
		"data dir is a file":  {Plugin: "builtin:local", DataDir: filepath.Join(file, "kv")},
		"redis pool":          {Plugin: "builtin:redis", Redis: redis(redisbridge.Config{PoolSize: -1})},
		"redis db":            {Plugin: "builtin:redis", Redis: redis(redisbridge.Config{DB: -1})},
		"redis dial timeout":  {Plugin: "builtin:redis", Redis: redis(redisbridge.Config{DialTimeout: -1})},
		"redis retries":       {Plugin: "builtin:redis", Redis: redis(redisbridge.Config{MaxRetries: -5})},
		"redis url and addrs": {Plugin: "builtin:redis", Redis: redis(redisbridge.Config{URL: "redis://127.0.0.1:1", Addrs: []string{"127.0.0.1:1"}})},
		"redis url":           {Plugin: "builtin:redis", Redis: redis(redisbridge.Config{URL: "http://127.0.0.1:1"})},
		"redis prefix":        {Plugin: "builtin:redis", Redis: &redisbridge.Config{Addrs: []string{"127.0.0.1:1"}, KeyPrefix: "a{b}"}},
		"postgres conns":      {Plugin: "builtin:postgres", Postgres: &host.PostgresConfig{URL: "postgres://127.0.0.1:1/x", Schema: "s", MaxConns: -1}},
		"postgres schema":     {Plugin: "builtin:postgres", Postgres: &host.PostgresConfig{URL: "postgres://127.0.0.1:1/x", Schema: "Not A Schema"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Name = "refused"
			s, err := host.Open(ctx, cfg)
			if s != nil {
				_ = s.Close(ctx)
			}
			require.ErrorIs(t, err, host.ErrInvalid)
			require.Contains(t, err.Error(), "refused", "the error names the backend")
		})
	}

	ended, cancel := context.WithCancel(ctx)
	cancel()
	for range 3 { // and an ended Open leaves nothing behind that refuses the next
		_, err := host.Open(ended, host.Config{})
		require.ErrorIs(t, err, context.Canceled)
	}
	s, err := host.Open(ctx, host.Config{})
	require.NoError(t, err)
	require.NoError(t, s.Close(ctx))
}
