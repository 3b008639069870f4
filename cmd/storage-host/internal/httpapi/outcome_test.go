package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// A write whose outcome is unknown is 504 outcome_unknown, distinct from
// 503 unavailable (not applied): whether the plugin said so or Close cut
// the call short after it reached the plugin.
func TestOutcomeUnknownIs504(t *testing.T) {
	e := newEnv(t)
	for _, err := range []error{
		fmt.Errorf("backend redis: %w", abi.Errorf(abi.StatusUnknown, "redisbridge: outcome unknown, the request may have run: no reply in time")),
		fmt.Errorf("backend redis: call cut short by Close: %w: %w", host.ErrOutcomeUnknown, host.ErrClosed),
	} {
		e.be.set(nil, err)
		msg := e.req("PUT", "/v1/agents/a/state", map[string]any{"n": 1}).requireError(t, http.StatusGatewayTimeout, "outcome_unknown")
		require.NotEmpty(t, msg)
		e.req("DELETE", "/v1/alerts/x", nil).requireError(t, http.StatusGatewayTimeout, "outcome_unknown")
	}
	e.be.set(nil, fmt.Errorf("backend redis: %w", abi.Errorf(abi.StatusUnavailable, "redis unavailable")))
	e.req("PUT", "/v1/agents/a/state", map[string]any{"n": 1}).requireError(t, http.StatusServiceUnavailable, "unavailable")
}

// Through the redis plugin on a Redis that stops answering after it was
// sent a write: the single write is 504, each item of a bulk write is
// outcome_unknown, a read is 503; once Redis answers again the writes are
// there.
func TestOutcomeUnknownFromRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a private redis-server; skipped with -short")
	}
	srv := redistest.NewServer(t)
	addrs := []string{srv.Addr()}
	st := openStore(t, host.Config{
		Plugin: "builtin:redis",
		Redis: &redisbridge.Config{Addrs: addrs, KeyPrefix: redistest.Prefix(t, addrs...), Scripts: true,
			ReadTimeout: 200 * time.Millisecond},
	})
	e := newEnvWith(t, st)
	// Warm a connection (a single write, a read and a batch are one
	// command each on a single node).
	require.Equal(t, http.StatusOK, e.req("PUT", "/v1/agents/a0/state", map[string]any{"n": 0}).code)
	require.Equal(t, http.StatusOK, e.req("GET", "/v1/agents/a0/state", nil).code)
	results[agentState](t, e.req("POST", "/v1/agent-states/batch-put", map[string]any{
		"items": []map[string]any{{"agent_id": "a0", "state": 0}, {"agent_id": "b0", "state": 0}},
	}), 2)

	srv.Pause()
	t.Cleanup(srv.Resume)
	e.req("PUT", "/v1/agents/a1/state", map[string]any{"n": 1}).requireError(t, http.StatusGatewayTimeout, "outcome_unknown")
	// The timed-out connection is gone, and a new one cannot be made to
	// a paused Redis (the batch would be unavailable, not sent): warm
	// another before the batch, which on a single node is one script
	// call, as the put was.
	srv.Resume()
	require.Equal(t, http.StatusOK, e.req("GET", "/v1/agents/a0/state", nil).code)
	srv.Pause()
	rs := results[agentState](t, e.req("POST", "/v1/agent-states/batch-put", map[string]any{
		"items": []map[string]any{{"agent_id": "b1", "state": 1}, {"agent_id": "b2", "state": 2}},
	}), 2)
	require.Equal(t, []string{"outcome_unknown", "outcome_unknown"}, codes(rs))
	e.req("GET", "/v1/agents/a0/state", nil).requireError(t, http.StatusServiceUnavailable, "unavailable")
	srv.Resume()

	redistest.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() bool {
		ok := true
		for _, a := range []string{"a1", "b1", "b2"} {
			_, err := st.GetAgentState(context.Background(), a)
			ok = ok && err == nil
		}
		return ok
	}, "the writes whose outcome was unknown were applied")
}
