package main_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// TestBackendSlowToOpenHoldsOnlyItsRoutes: a backend whose first attempt
// to open takes long (its Redis accepts connections and never answers,
// with a read timeout of a minute) keeps neither the daemon from
// listening nor its other backend from serving: alerts are written while
// the agent states' backend opens, readiness names that one, and
// "serving" is said only once every first attempt has ended.
func TestBackendSlowToOpenHoldsOnlyItsRoutes(t *testing.T) {
	t.Parallel()
	hole := redistest.Unanswering(t)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := free.Addr().String()
	require.NoError(t, free.Close())

	cfg := configFile(t, `backend "mem" {
  plugin = "builtin:memory"
}
backend "stuck" {
  plugin = "builtin:redis"
  redis {
    addrs        = [%q]
    key_prefix   = "stuck:"
    scripts      = true
    read_timeout = "60s"
  }
}
routes {
  metrics      = "mem"
  alerts       = "mem"
  agent_states = "stuck"
}
`, hole)
	d := spawn(t, nil, "serve", "-config", cfg, "-watch=false", "-listen", addr)
	url := "http://" + addr

	// The alert is written as soon as the memory backend opened.
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		r, err := send(client, http.MethodPut, url+"/v1/alerts/x1", `{"agent_id":"a1","severity":"info","status":"firing"}`)
		if err == nil && r.code == http.StatusOK {
			break
		}
		require.True(t, time.Now().Before(deadline), "the alert was not written in %s: %v %v", startTimeout, r.code, err)
		time.Sleep(50 * time.Millisecond)
	}
	r := call(t, http.MethodGet, url+"/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, r.code)
	assert.Contains(t, string(r.body), "backend stuck: backend not open: its first attempt to open has not ended")
	assert.Empty(t, d.out.String(), "serving is said once every first attempt ended")
	// A state's read waits for its backend's first attempt, within the
	// request's deadline.
	_, err = send(&http.Client{Timeout: 500 * time.Millisecond}, http.MethodGet, url+"/v1/agents/a1/state", "")
	assert.ErrorContains(t, err, "Client.Timeout")
	got := call(t, http.MethodGet, url+"/v1/alerts/x1", "")
	assert.Equal(t, http.StatusOK, got.code, "%s", got.body)
	assert.Empty(t, d.out.String())
}
