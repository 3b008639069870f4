package storetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// within runs f with a context that ends after d.
func within(t *testing.T, d time.Duration, f func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	f(ctx)
}

// outcomeStore opens the redis plugin (fallback=fail) on a private
// redis-server with the bridge's ReadTimeout, and warms a connection (a
// single write, a read and a batch, each one command on a single node).
func outcomeStore(t *testing.T, readTimeout time.Duration, options ...map[string]string) (*redistest.Server, *host.Store, func(agent string) (string, bool)) {
	t.Helper()
	srv := redistest.NewServer(t)
	addrs := []string{srv.Addr()}
	prefix := redistest.Prefix(t, addrs...)
	var opts map[string]string
	if len(options) > 0 {
		opts = options[0]
	}
	st, err := host.Open(t.Context(), host.Config{
		Plugin:  "builtin:redis",
		Options: opts,
		Redis:   &redisbridge.Config{Addrs: addrs, KeyPrefix: prefix, Scripts: true, ReadTimeout: readTimeout},
	}, host.WithCompilationCache(cacheDir))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	ctx := t.Context()
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a0", State: []byte(`0`)})
	require.NoError(t, err)
	_, err = st.GetAgentState(ctx, "a0")
	require.NoError(t, err)
	_, err = st.PutAgentStates(ctx, []host.AgentState{{AgentID: "a0", State: []byte(`0`)}, {AgentID: "b0", State: []byte(`0`)}})
	require.NoError(t, err)
	rc := directClient(t, srv.Addr())
	return srv, st, func(agent string) (string, bool) { return storedState(t, rc, prefix, agent) }
}

// pause pauses srv (SIGSTOP) until the test, or resume, ends it.
func pause(t *testing.T, srv *redistest.Server) {
	srv.Pause()
	t.Cleanup(srv.Resume)
}

// A write the redis plugin sent to a Redis that then did not answer in
// time (fallback=fail) fails with ErrOutcomeUnknown, not ErrUnavailable:
// Redis applies it once it wakes. A read in the same plight is
// ErrUnavailable, and so is a write to a Redis that is down.
func TestRedisWriteOutcomeUnknown(t *testing.T) {
	skipShort(t)
	t.Run("the reply timed out", func(t *testing.T) {
		// The bridge's ReadTimeout passes: the plugin answers UNKNOWN.
		srv, st, stored := outcomeStore(t, 500*time.Millisecond)
		pause(t, srv)
		within(t, 5*time.Second, func(ctx context.Context) {
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`"one"`)})
			require.ErrorIs(t, err, host.ErrOutcomeUnknown)
			require.NotErrorIs(t, err, host.ErrUnavailable)
			require.NotErrorIs(t, err, host.ErrClosed)
		})
		// The timed-out connection is gone; a batch on a single node is
		// one script call, as the put was: warm another one.
		srv.Resume()
		_, err := st.GetAgentState(t.Context(), "a0")
		require.NoError(t, err)
		pause(t, srv)
		within(t, 5*time.Second, func(ctx context.Context) {
			rs, err := st.PutAgentStates(ctx, []host.AgentState{{AgentID: "b1", State: []byte(`1`)}, {AgentID: "b2", State: []byte(`2`)}})
			require.NoError(t, err, "the batch was answered; its items were not")
			for _, r := range rs {
				require.ErrorIs(t, r.Err, host.ErrOutcomeUnknown)
			}

			_, err = st.GetAgentState(ctx, "a0")
			require.ErrorIs(t, err, host.ErrUnavailable, "a read")
			rs, err = st.GetAgentStates(ctx, []string{"a0", "b0"})
			require.NoError(t, err)
			for _, r := range rs {
				require.ErrorIs(t, r.Err, host.ErrUnavailable, "a bulk read")
			}
		})
		srv.Resume()
		redistest.WaitFor(t, 5*time.Second, 10*time.Millisecond, func() bool {
			a1, ok1 := stored("a1")
			b1, ok2 := stored("b1")
			b2, ok3 := stored("b2")
			return ok1 && ok2 && ok3 && a1 == `"one"` && b1 == `1` && b2 == `2`
		}, "the writes whose outcome was unknown were applied")
	})
	t.Run("the caller's deadline passed", func(t *testing.T) {
		// The caller is released at its deadline while the plugin waits
		// for Redis: the host answers UNKNOWN for it, for a single write
		// and for a whole batch of writes.
		for name, write := range map[string]func(ctx context.Context, st *host.Store) error{
			"single": func(ctx context.Context, st *host.Store) error {
				_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a2", State: []byte(`"two"`)})
				return err
			},
			"batch": func(ctx context.Context, st *host.Store) error {
				// Released at the deadline (the whole call fails), or
				// answered just before it (the item fails): either is
				// UNKNOWN.
				rs, err := st.PutAgentStates(ctx, []host.AgentState{{AgentID: "a2", State: []byte(`"two"`)}})
				if err == nil {
					err = rs[0].Err
				}
				return err
			},
		} {
			t.Run(name, func(t *testing.T) {
				srv, st, stored := outcomeStore(t, 5*time.Second)
				pause(t, srv)
				within(t, time.Second, func(ctx context.Context) {
					err := write(ctx, st)
					require.ErrorIs(t, err, host.ErrOutcomeUnknown)
					require.NotErrorIs(t, err, host.ErrUnavailable)
				})
				srv.Resume()
				redistest.WaitFor(t, 5*time.Second, 10*time.Millisecond, func() bool {
					doc, ok := stored("a2")
					return ok && doc == `"two"`
				}, "the write whose outcome was unknown was applied")
			})
		}
	})
	t.Run("fallback=buffer", func(t *testing.T) {
		// A write whose reply was lost is not acknowledged from the
		// buffer, conditional or not: its commands may still reach Redis
		// after the replay and after later writes of its record, which
		// it would then overwrite. It stays UNKNOWN, and Redis applies it
		// when it wakes.
		srv, st, stored := outcomeStore(t, 500*time.Millisecond, map[string]string{"fallback": "buffer"})
		pause(t, srv)
		within(t, 5*time.Second, func(ctx context.Context) {
			// On the warm connection: sent.
			rs, err := st.PutAgentStatesIf(ctx, []host.AgentState{{AgentID: "d2", State: []byte(`2`)}, {AgentID: "d3", State: []byte(`3`)}})
			require.NoError(t, err)
			for _, r := range rs {
				require.ErrorIs(t, r.Err, host.ErrOutcomeUnknown, "a conditional write is not buffered")
			}
		})
		srv.Resume()
		_, err := st.GetAgentState(t.Context(), "a0") // warm a connection again
		require.NoError(t, err)
		pause(t, srv)
		within(t, 5*time.Second, func(ctx context.Context) {
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "d1", State: []byte(`"sent"`)})
			require.ErrorIs(t, err, host.ErrOutcomeUnknown, "an unconditional write whose reply was lost is not buffered either")
			require.NotErrorIs(t, err, host.ErrStale)
		})
		srv.Resume()
		redistest.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() bool {
			d1, ok := stored("d1")
			return ok && d1 == `"sent"`
		}, "the write whose outcome was unknown was applied when Redis woke")
	})
	t.Run("redis down", func(t *testing.T) {
		srv, st, _ := outcomeStore(t, 0)
		srv.Stop()
		within(t, 5*time.Second, func(ctx context.Context) {
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "c1", State: []byte(`1`)})
			require.ErrorIs(t, err, host.ErrUnavailable)
			require.NotErrorIs(t, err, host.ErrOutcomeUnknown)
			rs, err := st.PutAgentStates(ctx, []host.AgentState{{AgentID: "c2", State: []byte(`2`)}})
			require.NoError(t, err)
			require.ErrorIs(t, rs[0].Err, host.ErrUnavailable)
		})
		srv.Start() // for the cleanup of the test's keys
	})
}

// TestRedisFrozenAnswersAtTheCallTimeout: with a read timeout longer than
// the call timeout, a call waiting on a Redis that stopped answering ends
// at its call timeout, not at the read timeout: a write sent is
// ErrOutcomeUnknown, a read ErrUnavailable (also when the plugin itself is
// stopped at the timeout after its request was given up: ErrLimit would
// blame the plugin's time).
func TestRedisFrozenAnswersAtTheCallTimeout(t *testing.T) {
	skipShort(t)
	const timeout = time.Second
	srv := redistest.NewServer(t)
	addrs := []string{srv.Addr()}
	st, err := host.Open(t.Context(), host.Config{
		Plugin: "builtin:redis",
		Redis:  &redisbridge.Config{Addrs: addrs, KeyPrefix: redistest.Prefix(t, addrs...), Scripts: true, ReadTimeout: time.Minute},
		Limits: host.Limits{CallTimeout: timeout},
	}, host.WithCompilationCache(cacheDir))
	require.NoError(t, err)
	t.Cleanup(func() { srv.Resume(); _ = st.Close(context.Background()) })
	ctx := context.Background()
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "warm", State: []byte(`1`)})
	require.NoError(t, err)
	_, err = st.GetAgentState(ctx, "warm")
	require.NoError(t, err)

	pause(t, srv)
	start := time.Now()
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "frozen", State: []byte(`2`)})
	require.ErrorIs(t, err, host.ErrOutcomeUnknown)
	require.Less(t, time.Since(start), timeout+10*time.Second, "the write waited for the read timeout")
	start = time.Now()
	_, err = st.GetAgentState(ctx, "warm")
	require.ErrorIs(t, err, host.ErrUnavailable, "not ErrLimit: the store is what is missing")
	require.NotErrorIs(t, err, host.ErrOutcomeUnknown, "a read has no outcome to be unsure of")
	require.Less(t, time.Since(start), timeout+10*time.Second, "the read waited for the read timeout")

	// Closed while Redis is still frozen: the event log's append is given
	// up at the call timeout and a second (it waited for the read timeout,
	// a minute), then the bridge's round of SCRIPT KILL for the write's
	// overrun script call (it held Close for its 10 s bound) and the ACL
	// user's cleanup, at once, after 2 s: about 4 s here.
	start = time.Now()
	require.NoError(t, st.Close(context.Background()))
	t.Logf("Close took %v", time.Since(start).Round(time.Millisecond))
	require.Less(t, time.Since(start), 9*time.Second, "Close waited for the frozen Redis")
}
