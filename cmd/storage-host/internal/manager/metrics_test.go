package manager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// TestMetrics checks every family the manager exports, with values that
// follow from what the test did.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	f := file("mem", map[string]string{"mem": "1"})
	f.Routes.Metrics = "red"
	f.Backends = append(f.Backends, config.Backend{Name: "red", Digest: "1", Config: host.Config{
		Name: "red", Plugin: "builtin:redis", Instances: 3,
		Redis: &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr), Scripts: true},
	}})
	reg := prometheus.NewRegistry()
	m, err := manager.New(ctx, f, manager.Options{Registry: reg})
	require.NoError(t, err)
	defer m.Close(ctx)

	for range 5 {
		put(t, m, "x")
	}
	require.NoError(t, m.Ready(ctx))
	_, err = m.Reload(ctx, f)
	require.NoError(t, err)

	count, err := testutil.GatherAndCount(reg, "storage_host_plugin_call_duration_seconds")
	require.NoError(t, err)
	require.GreaterOrEqual(t, count, 3, "series for put_agent_state on mem and ping on both backends")
	for _, name := range []string{"redis_up", "redis_instance_info", "redis_memory_used_bytes", "redis_commands_processed_total"} {
		count, err = testutil.GatherAndCount(reg, name)
		require.NoError(t, err)
		require.Equal(t, 1, count, "%s: one series, the Redis of backend red", name)
	}

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP storage_host_pool_instances_max Most plugin instances the backend may run.
# TYPE storage_host_pool_instances_max gauge
storage_host_pool_instances_max{backend="mem"} 2
storage_host_pool_instances_max{backend="red"} 3
# HELP storage_host_pool_instances_in_use Plugin instances serving a call.
# TYPE storage_host_pool_instances_in_use gauge
storage_host_pool_instances_in_use{backend="mem"} 0
storage_host_pool_instances_in_use{backend="red"} 0
# HELP storage_host_reloads_total Configuration reloads, by result (ok, failed).
# TYPE storage_host_reloads_total counter
storage_host_reloads_total{result="ok"} 1
# HELP storage_host_events_published_total Events appended to the backend's event log by this host.
# TYPE storage_host_events_published_total counter
storage_host_events_published_total{backend="mem"} 5
storage_host_events_published_total{backend="red"} 0
`), "storage_host_pool_instances_max", "storage_host_pool_instances_in_use", "storage_host_reloads_total", "storage_host_events_published_total"))

	// Put calls: five on mem, observed in the histogram's count.
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var puts uint64
	var redisConns bool
	for _, mf := range mfs {
		switch mf.GetName() {
		case "storage_host_plugin_call_duration_seconds":
			for _, mt := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range mt.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["backend"] == "mem" && labels["op"] == "put_agent_state" {
					puts = mt.GetHistogram().GetSampleCount()
				}
			}
		case "storage_host_redis_pool_connections":
			for _, mt := range mf.GetMetric() {
				if mt.GetLabel()[1].GetValue() == "total" && mt.GetGauge().GetValue() >= 1 {
					redisConns = true
				}
			}
		}
	}
	require.EqualValues(t, 5, puts)
	require.True(t, redisConns, "the redis backend's pool has a connection after its ping")
}

// TestReadyFollowsRedis stops a private Redis under a routed backend:
// Ready fails naming the backend, and recovers when Redis returns.
func TestReadyFollowsRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private redis-server")
	}
	ctx := context.Background()
	srv := redistest.NewServer(t)
	f := &config.File{Routes: config.Routes{Metrics: "red", Alerts: "red", AgentStates: "red"}}
	f.Backends = []config.Backend{{Name: "red", Digest: "1", Config: host.Config{
		Name: "red", Plugin: "builtin:redis",
		Redis: &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: "ready:", Scripts: true},
	}}}
	m, err := manager.New(ctx, f, manager.Options{})
	require.NoError(t, err)
	defer m.Close(ctx)
	require.NoError(t, m.Ready(ctx))
	srv.Stop()
	err = m.Ready(ctx)
	require.ErrorIs(t, err, host.ErrUnavailable)
	require.Contains(t, err.Error(), "backend red")
	srv.Start()
	redistest.WaitFor(t, 10*time.Second, 50*time.Millisecond, func() bool { return m.Ready(ctx) == nil }, "ready again after Redis restarted")
}

// TestEventsDroppedByAReplacedBackendAreCounted: the events a backend
// replaced by a reload could not append before it closed (its Redis
// refusing the login of the event log's connections: the password changed
// under it, and the new configuration has the new one) are counted in
// storage_host_events_dropped_total, which goes on from them, rather than
// leaving with the backend's store.
func TestEventsDroppedByAReplacedBackendAreCounted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private redis-server")
	}
	ctx := context.Background()
	srv := redistest.NewServer(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	backend := func(digest, password string) *config.File {
		f := &config.File{Routes: config.Routes{Metrics: "red", Alerts: "red", AgentStates: "red"}}
		f.Backends = []config.Backend{{Name: "red", Digest: digest, Config: host.Config{
			Name: "red", Plugin: "builtin:redis",
			Redis: &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: "dropped:", Scripts: true, Password: password},
		}}}
		return f
	}
	reg := prometheus.NewRegistry()
	m, err := manager.New(ctx, backend("1", ""), manager.Options{Registry: reg, DrainTimeout: time.Second})
	require.NoError(t, err)
	defer m.Close(ctx)
	put(t, m, "before")

	// The default user's password changes: the backend's writes go on
	// through its own ACL user, its event appends are refused.
	require.NoError(t, admin.ConfigSet(ctx, "requirepass", "after").Err())
	require.NoError(t, admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err())
	const writes = 5
	for i := range writes {
		put(t, m, fmt.Sprint("during-", i))
	}
	_, err = m.Reload(ctx, backend("2", "after"))
	require.NoError(t, err)

	dropped := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "storage_host_events_dropped_total" {
				for _, mt := range mf.GetMetric() {
					return mt.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	redistest.WaitFor(t, 15*time.Second, 50*time.Millisecond, func() bool { return dropped() >= writes },
		"the replaced backend's dropped events counted")
}
