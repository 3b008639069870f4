package manager_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/pgtest"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

func receive(t *testing.T, s *manager.Subscription) events.Event {
	t.Helper()
	e := receiveAny(t, s)
	require.Nil(t, e.Lost, "a loss reported")
	return e.Event
}

// receiveAny receives an event or a report of lost ones.
func receiveAny(t *testing.T, s *manager.Subscription) httpapi.Event {
	t.Helper()
	select {
	case e, ok := <-s.Events():
		require.True(t, ok, "ended: %v", s.Err())
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return httpapi.Event{}
	}
}

func TestSubscribeMergesBackendsAndResumes(t *testing.T) {
	ctx := context.Background()
	f := file("a", map[string]string{"a": "1", "b": "1"})
	f.Routes.Metrics = "b"
	m, err := manager.New(ctx, f, manager.Options{})
	require.NoError(t, err)
	defer m.Close(ctx)

	sub, err := m.Subscribe(ctx, events.Filter{}, "", httpapi.LossEnds)
	require.NoError(t, err)
	start := sub.Start()
	assert.Regexp(t, `^a=\d+-\d+;b=\d+-\d+$`, start)
	put(t, m, "s1")
	require.NoError(t, m.Do(ctx, abi.KindMetric, func(st *host.Store) error {
		_, err := st.PutMetric(ctx, host.Metric{AgentID: "s1", Name: "cpu", Value: 1, Timestamp: time.Unix(100, 0)})
		return err
	}))
	first, last := receive(t, sub), receive(t, sub)
	assert.ElementsMatch(t, []string{abi.KindAgentState.Name(), abi.KindMetric.Name()}, []string{first.Kind, last.Kind})
	// The later event's position covers both backends.
	assert.Regexp(t, `^a=\d+-\d+;b=\d+-\d+$`, last.ID)
	sub.Close()

	// From the start position: both events again.
	fromStart, err := m.Subscribe(ctx, events.Filter{}, start, httpapi.LossEnds)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{first.Kind, last.Kind}, []string{receive(t, fromStart).Kind, receive(t, fromStart).Kind})
	fromStart.Close()

	// Only metrics: only backend b.
	onlyMetrics, err := m.Subscribe(ctx, events.Filter{Kinds: []string{abi.KindMetric.Name()}}, "", httpapi.LossEnds)
	require.NoError(t, err)
	defer onlyMetrics.Close()

	// Missed while away, then resumed from a position: exactly what came
	// after it.
	put(t, m, "s2")
	put(t, m, "s3")
	again, err := m.Subscribe(ctx, events.Filter{}, last.ID, httpapi.LossEnds)
	require.NoError(t, err)
	defer again.Close()
	assert.Equal(t, "s2", receive(t, again).Key)
	assert.Equal(t, "s3", receive(t, again).Key)

	_, err = m.Subscribe(ctx, events.Filter{}, "garbage", httpapi.LossEnds)
	assert.ErrorIs(t, err, manager.ErrBadPosition)
	_, err = m.Subscribe(ctx, events.Filter{}, "a=nonsense", httpapi.LossEnds)
	assert.ErrorIs(t, err, events.ErrBadID)

	// A reload that retires a backend ends the subscriptions on it.
	_, err = m.Reload(ctx, file("c", map[string]string{"c": "1"}))
	require.NoError(t, err)
	for range again.Events() {
	}
	assert.ErrorIs(t, again.Err(), events.ErrClosed)
	for range onlyMetrics.Events() {
	}
	assert.ErrorIs(t, onlyMetrics.Err(), events.ErrClosed)
}

func TestCacheMetrics(t *testing.T) {
	ctx := context.Background()
	f := file("a", map[string]string{"a": "1"})
	f.Backends[0].Config.Cache = host.CacheOptions{Entries: 10}
	reg := prometheus.NewRegistry()
	m, err := manager.New(ctx, f, manager.Options{Registry: reg})
	require.NoError(t, err)
	defer m.Close(ctx)
	// Wait for the put's own event: had it arrived during the first read,
	// it would have refused that read's fill (correctly, and by chance).
	sub, err := m.Subscribe(ctx, events.Filter{}, "", httpapi.LossEnds)
	require.NoError(t, err)
	defer sub.Close()
	put(t, m, "x")
	receive(t, sub)
	for range 3 {
		_, err := get(m, "x")
		require.NoError(t, err)
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP storage_host_cache_hits_total Agent-state and alert reads served by the read cache.
# TYPE storage_host_cache_hits_total counter
storage_host_cache_hits_total{backend="a"} 2
# HELP storage_host_cache_misses_total Agent-state and alert reads the read cache sent to the backend.
# TYPE storage_host_cache_misses_total counter
storage_host_cache_misses_total{backend="a"} 1
# HELP storage_host_cache_entries Records in the read cache.
# TYPE storage_host_cache_entries gauge
storage_host_cache_entries{backend="a"} 1
`), "storage_host_cache_hits_total", "storage_host_cache_misses_total", "storage_host_cache_entries"))
}

// TestKVReadMetrics: the gets a plugin declared kv reads are counted for
// the backend, whatever else it advertises.
func TestKVReadMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1"}), manager.Options{Registry: reg})
	require.NoError(t, err)
	defer m.Close(ctx)
	put(t, m, "x")
	for range 3 {
		_, err := get(m, "x")
		require.NoError(t, err)
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP storage_host_kv_reads_total Gets answered from the backend's kv store without entering its plugin, as the plugin declared (ABI 1.8 kv reads).
# TYPE storage_host_kv_reads_total counter
storage_host_kv_reads_total{backend="a"} 3
# HELP storage_host_kv_read_faults_total Declared kv reads whose entry did not hold the record; the plugin served them.
# TYPE storage_host_kv_read_faults_total counter
storage_host_kv_read_faults_total{backend="a"} 0
`), "storage_host_kv_reads_total", "storage_host_kv_read_faults_total"))
}

// TestSubscribePassesOnlyRoutedKinds: a backend's events of a record kind
// not routed to it never reach a merged subscription. A PostgreSQL
// plugin's role may write any row into its own event table; here a row
// saying an alert was deleted, written into the table of the backend that
// serves agent states, while another backend serves alerts.
func TestSubscribePassesOnlyRoutedKinds(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "storagehost_")
	f := file("mem", map[string]string{"mem": "1"})
	f.Backends = append(f.Backends, config.Backend{Name: "pg", Digest: "1", Config: host.Config{
		Name: "pg", Plugin: "builtin:postgres", Instances: 2, Postgres: &host.PostgresConfig{URL: url, Schema: schema},
	}})
	f.Routes.AgentStates = "pg"
	m, err := manager.New(ctx, f, manager.Options{})
	require.NoError(t, err)
	defer m.Close(ctx)

	sub, err := m.Subscribe(ctx, events.Filter{}, "", httpapi.LossEnds)
	require.NoError(t, err)
	defer sub.Close()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, events.PostgresTable}.Sanitize()+
		` (kind, op, agent, key, version, at) VALUES ('alerts', 'delete', 'a1', 'forged', 0, 0)`)
	require.NoError(t, err)

	// The forged row is sequenced before the put's event, in the same log:
	// had it passed, it would arrive first.
	put(t, m, "s1")
	got := receive(t, sub)
	assert.Equal(t, abi.KindAgentState.Name(), got.Kind)
	assert.Equal(t, "s1", got.Key)
	// Alerts still arrive from the backend they are routed to.
	require.NoError(t, m.Do(ctx, abi.KindAlert, func(st *host.Store) error {
		_, err := st.PutAlert(ctx, host.Alert{ID: "al1", AgentID: "a1", Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: "m"})
		return err
	}))
	got = receive(t, sub)
	assert.Equal(t, abi.KindAlert.Name(), got.Kind)
	assert.Equal(t, "al1", got.Key)
	// And from the start: the forged row is passed over again (two
	// backends' events interleave in any order).
	again, err := m.Subscribe(ctx, events.Filter{Kinds: []string{abi.KindAlert.Name(), abi.KindAgentState.Name()}}, sub.Start(), httpapi.LossEnds)
	require.NoError(t, err)
	defer again.Close()
	assert.ElementsMatch(t, []string{"s1", "al1"}, []string{receive(t, again).Key, receive(t, again).Key})
}

// A reload that only moves a kind from one backend to another (both kept)
// keeps the subscriptions, and the kind's events now come from the
// backend it was moved to.
func TestSubscribeFollowsARouteMovedByAReload(t *testing.T) {
	ctx := context.Background()
	f := file("a", map[string]string{"a": "1", "b": "1"})
	f.Routes.Metrics = "b"
	m, err := manager.New(ctx, f, manager.Options{})
	require.NoError(t, err)
	defer m.Close(ctx)
	sub, err := m.Subscribe(ctx, events.Filter{}, "", httpapi.LossEnds)
	require.NoError(t, err)
	defer sub.Close()

	moved := file("a", map[string]string{"a": "1", "b": "1"})
	change, err := m.Reload(ctx, moved)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"a", "b"}, change.Kept)
	require.NoError(t, m.Do(ctx, abi.KindMetric, func(st *host.Store) error {
		require.Equal(t, "a", st.Name())
		_, err := st.PutMetric(ctx, host.Metric{AgentID: "s1", Name: "cpu", Value: 1, Timestamp: time.Unix(100, 0)})
		return err
	}))
	got := receive(t, sub)
	assert.Equal(t, abi.KindMetric.Name(), got.Kind)
	assert.Equal(t, "s1", got.AgentID)
}

// A reload that routes a kind a subscription covers to a backend it does
// not follow ends the subscription (ErrRerouted, an events.ErrClosed):
// that backend's events would never reach it. Resuming from its last
// position is events.ErrLost, which names no place in that backend's
// log; so is a position of a backend this daemon does not have.
func TestSubscribeEndsWhenAReloadRoutesItsKindElsewhere(t *testing.T) {
	ctx := context.Background()
	m, err := manager.New(ctx, file("a", map[string]string{"a": "1", "b": "1"}), manager.Options{})
	require.NoError(t, err)
	defer m.Close(ctx)
	states := events.Filter{Kinds: []string{abi.KindAgentState.Name()}}
	sub, err := m.Subscribe(ctx, states, "", httpapi.LossEnds)
	require.NoError(t, err)
	defer sub.Close()
	metrics, err := m.Subscribe(ctx, events.Filter{Kinds: []string{abi.KindMetric.Name()}}, "", httpapi.LossEnds)
	require.NoError(t, err)
	defer metrics.Close()
	put(t, m, "s1")
	last := receive(t, sub)
	require.Equal(t, "s1", last.Key)
	assert.Regexp(t, `^a=\d+-\d+$`, last.ID)

	moved := file("a", map[string]string{"a": "1", "b": "1"})
	moved.Routes.AgentStates = "b"
	change, err := m.Reload(ctx, moved)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"a", "b"}, change.Kept)
	for range sub.Events() {
	}
	require.ErrorIs(t, sub.Err(), manager.ErrRerouted)
	require.ErrorIs(t, sub.Err(), events.ErrClosed)

	put(t, m, "s2") // through b
	_, err = m.Subscribe(ctx, states, last.ID, httpapi.LossEnds)
	require.ErrorIs(t, err, events.ErrLost)
	require.ErrorContains(t, err, "backend b")
	_, err = m.Subscribe(ctx, states, "x=1-0", httpapi.LossEnds)
	require.ErrorIs(t, err, events.ErrLost)

	// A subscription whose backends still serve its kinds goes on.
	require.NoError(t, m.Do(ctx, abi.KindMetric, func(st *host.Store) error {
		_, err := st.PutMetric(ctx, host.Metric{AgentID: "s1", Name: "cpu", Value: 1, Timestamp: time.Unix(100, 0)})
		return err
	}))
	assert.Equal(t, "s1", receive(t, metrics).AgentID)

	// From now, through b: the new subscription follows b.
	again, err := m.Subscribe(ctx, states, "", httpapi.LossEnds)
	require.NoError(t, err)
	defer again.Close()
	put(t, m, "s3")
	assert.Equal(t, "s3", receive(t, again).Key)
}

// With LossReported, one backend's lost events (its Redis stream gone) are
// reported, and the subscription goes on: that backend's events after the
// report, the other's without a gap. A resume whose position that backend
// no longer holds reports the loss and delivers the other's events made
// meanwhile. With LossEnds the same loss ends the subscription and fails
// the resume.
func TestOneBackendsLossIsReportedAndTheStreamGoesOn(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	f := file("mem", map[string]string{"mem": "1"})
	f.Routes.AgentStates = "red"
	f.Backends = append(f.Backends, config.Backend{Name: "red", Digest: "1", Config: host.Config{Name: "red", Plugin: "builtin:redis", Instances: 2,
		Redis: &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: prefix, Scripts: true}}})
	m, err := manager.New(ctx, f, manager.Options{})
	require.NoError(t, err)
	defer m.Close(ctx)
	metric := func(agent string) {
		t.Helper()
		require.NoError(t, m.Do(ctx, abi.KindMetric, func(st *host.Store) error {
			_, err := st.PutMetric(ctx, host.Metric{AgentID: agent, Name: "cpu", Value: 1, Timestamp: time.Unix(100, 0)})
			return err
		}))
	}

	reported, err := m.Subscribe(ctx, events.Filter{}, "", httpapi.LossReported)
	require.NoError(t, err)
	defer reported.Close()
	ended, err := m.Subscribe(ctx, events.Filter{}, "", httpapi.LossEnds)
	require.NoError(t, err)
	defer ended.Close()
	put(t, m, "s1")
	metric("m1")
	var resume string
	for _, sub := range []*manager.Subscription{reported, ended} {
		first, second := receive(t, sub), receive(t, sub)
		assert.ElementsMatch(t, []string{"s1", "m1"}, []string{first.AgentID, second.AgentID})
		resume = second.ID
	}

	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	require.NoError(t, c.Del(ctx, redisbridge.HostKeyPrefix+"{"+prefix+"}:events").Err()) // as a Redis restarted empty
	put(t, m, "s2")
	lost := receiveAny(t, reported)
	require.NotNil(t, lost.Lost, "got %+v", lost.Event)
	assert.Equal(t, "red", lost.Lost.Backend)
	assert.Equal(t, []string{abi.KindAgentState.Name()}, lost.Lost.Kinds)
	require.ErrorIs(t, lost.Lost.Reason, events.ErrLost)
	assert.Regexp(t, `^mem=\d+-\d+;red=\d+-\d+$`, lost.ID)
	for range ended.Events() {
	}
	require.ErrorIs(t, ended.Err(), events.ErrUnavailable, "LossEnds: the subscription ends (resuming would be ErrLost)")
	require.ErrorContains(t, ended.Err(), "lost events")

	metric("m2")
	put(t, m, "s3")
	seen := map[string]bool{}
	for !seen["m2"] || !seen["s3"] {
		seen[receive(t, reported).AgentID] = true // s2 may come, or be in what was lost
	}

	_, err = m.Subscribe(ctx, events.Filter{}, resume, httpapi.LossEnds)
	require.ErrorIs(t, err, events.ErrLost)
	again, err := m.Subscribe(ctx, events.Filter{}, resume, httpapi.LossReported)
	require.NoError(t, err)
	defer again.Close()
	first := receiveAny(t, again)
	require.NotNil(t, first.Lost, "the loss is reported first: %+v", first.Event)
	assert.Equal(t, "red", first.Lost.Backend)
	assert.Equal(t, resume, again.Start(), "until the report is received, the position asked for")
	assert.NotEqual(t, resume, first.ID)
	assert.Equal(t, "m2", receive(t, again).AgentID, "mem's events since the position")

	// A subscriber gone before the report came resumes from the start
	// and is told again; one that received it resumes from its ID and is
	// not.
	told, err := m.Subscribe(ctx, events.Filter{}, again.Start(), httpapi.LossReported)
	require.NoError(t, err)
	defer told.Close()
	require.NotNil(t, receiveAny(t, told).Lost, "reported again")
	after, err := m.Subscribe(ctx, events.Filter{}, first.ID, httpapi.LossReported)
	require.NoError(t, err)
	defer after.Close()
	assert.Equal(t, "m2", receiveAny(t, after).AgentID, "no report: it was received")
}
