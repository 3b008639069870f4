package storetest_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/pgtest"
)

// TestPostgresFrozenServerAnswersAtTheCallTimeout: a PostgreSQL that
// stops answering (stopped, or behind a network that drops everything)
// answers neither a statement nor the cancel request its statement
// timeout would need; the call still ends at its call timeout, for a
// caller without a deadline of its own: a write is ErrOutcomeUnknown if it
// was sent (ErrUnavailable, and not applied, if not), a read
// ErrUnavailable (not ErrLimit: the store is what is missing), and each
// comes back within seconds of the timeout, not when the server wakes.
// Once it does, the store serves.
func TestPostgresFrozenServerAnswersAtTheCallTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real PostgreSQL; skipped with -short")
	}
	u, err := url.Parse(pgtest.URL(t))
	require.NoError(t, err)
	proxy := newFaultProxy(t, u.Host)
	u.Host = proxy.Addr()
	const timeout = time.Second
	schema := pgtest.Schema(t, "storagehost_")
	st, err := host.Open(t.Context(), host.Config{
		Plugin:   "builtin:postgres",
		Postgres: &host.PostgresConfig{URL: u.String(), Schema: schema},
		Limits:   host.Limits{CallTimeout: timeout},
	}, host.WithCompilationCache(cacheDir))
	require.NoError(t, err)
	t.Cleanup(func() { proxy.Thaw(); _ = st.Close(context.Background()) })
	ctx := context.Background()
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "warm", State: []byte(`1`)})
	require.NoError(t, err)

	// bounded runs f, thawing the server if f is still waiting after
	// limit, so that what waits for the server fails the test instead of
	// hanging it.
	bounded := func(what string, limit time.Duration, f func() error) error {
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- f() }()
		select {
		case err := <-done:
			t.Logf("%s: %v after %v", what, err, time.Since(start).Round(time.Millisecond))
			return err
		case <-time.After(limit):
			proxy.Thaw()
			t.Fatalf("%s: still waiting after %v (call timeout %v): it waits for the server", what, limit, timeout)
			return nil
		}
	}

	proxy.Freeze()
	err = bounded("a write", timeout+10*time.Second, func() error {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "frozen", State: []byte(`2`)})
		return err
	})
	// Sent and unanswered, it may apply once the server wakes; a pool's
	// check of a connection idle for a while can wait for the server
	// first, and then the write was never sent.
	sent := errors.Is(err, host.ErrOutcomeUnknown)
	if !sent {
		require.ErrorIs(t, err, host.ErrUnavailable, "a write to a server that did not answer")
	}
	err = bounded("a read", timeout+10*time.Second, func() error {
		_, err := st.GetAgentState(ctx, "warm")
		return err
	})
	require.ErrorIs(t, err, host.ErrUnavailable, "a read of a server that did not answer")
	require.False(t, errors.Is(err, host.ErrOutcomeUnknown), "a read has no outcome to be unsure of: %v", err)
	// A readiness check (the daemon's /readyz gives it 2 s) is not ready
	// once its context ends, not when the server wakes.
	err = bounded("a readiness check", 5*time.Second, func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return st.Ready(ctx)
	})
	require.Error(t, err, "ready with the server frozen")

	proxy.Thaw()
	require.Eventually(t, func() bool {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "after", State: []byte(`3`)})
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the store serves once the server answers")
	got, err := st.GetAgentState(ctx, "warm")
	require.NoError(t, err)
	require.Equal(t, "1", string(got.State))
	if !sent {
		_, err = st.GetAgentState(ctx, "frozen")
		require.ErrorIs(t, err, host.ErrNotFound, "a write answered unavailable was applied")
	}

	// Closed while the server is frozen, with a write waiting on it: Close
	// returns once that write has ended at its call timeout, one flush
	// tick has found the server away, the event log's statements have been
	// given up, and the pool's connections have had two seconds to close
	// (about 5 s here; 9–13 s when ticks went on during the drain and the
	// flush tried three; it waited for the server before that).
	proxy.Freeze()
	inFlight := make(chan error, 1)
	go func() {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "closing", State: []byte(`4`)})
		inFlight <- err
	}()
	require.Eventually(t, func() bool { return st.Stats().InUse == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, bounded("Close", 10*time.Second, func() error { return st.Close(context.Background()) }))
	require.Error(t, <-inFlight)
}
