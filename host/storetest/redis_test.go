package storetest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
	"github.com/storage-host/storage-host/host/storetest"
)

// openRedis opens the redis plugin on the Redis at addrs (one: a single
// node; several: a cluster's seeds), in a key namespace of its own that is
// deleted when t ends.
func openRedis(t *testing.T, addrs []string, options map[string]string) *host.Store {
	t.Helper()
	return openRedisAt(t, addrs, redistest.Prefix(t, addrs...), options, host.Limits{})
}

// openRedisAt opens the redis plugin on the namespace prefix.
func openRedisAt(t *testing.T, addrs []string, prefix string, options map[string]string, limits host.Limits) *host.Store {
	t.Helper()
	st, err := host.Open(t.Context(), host.Config{
		Plugin:  "builtin:redis", // embedded; TestBuiltinsMatchSource keeps it current
		Options: options,
		Limits:  limits,
		Redis: &redisbridge.Config{
			Addrs:     addrs,
			KeyPrefix: prefix,
			Scripts:   true,
		},
	}, host.WithCompilationCache(cacheDir))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

func TestRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	addrs := []string{redistest.Addr(t)}
	storetest.Run(t, func(t *testing.T) *host.Store { return openRedis(t, addrs, nil) })
}

func TestRedisDefaultTTLs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	addrs := []string{redistest.Addr(t)}
	storetest.RunDefaultTTLs(t, func(t *testing.T, options map[string]string) *host.Store {
		return openRedis(t, addrs, options)
	})
}

func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster; skipped with -short")
	}
	addrs := redistest.Cluster(t)
	storetest.Run(t, func(t *testing.T) *host.Store { return openRedis(t, addrs, nil) })
}

func TestRedisClusterDefaultTTLs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster; skipped with -short")
	}
	addrs := redistest.Cluster(t)
	storetest.RunDefaultTTLs(t, func(t *testing.T, options map[string]string) *host.Store {
		return openRedis(t, addrs, options)
	})
}

// TestRedisBatchIsOneCall checks that the plugin pipelines a batch: with
// two host calls allowed per request (the clock, then Redis), a batch of
// a hundred items of any kind still succeeds, so it crossed into the host
// for Redis once. Single operations take the same two.
func TestRedisBatchIsOneCall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	addrs := []string{redistest.Addr(t)}
	st := openRedisAt(t, addrs, redistest.Prefix(t, addrs...), nil, host.Limits{MaxHostCalls: 2})
	ctx := t.Context()
	const n = 100
	states := make([]host.AgentState, n)
	ids := make([]string, n)
	metrics := make([]host.Metric, n)
	keys := make([]host.MetricKey, n)
	alerts := make([]host.Alert, n)
	alertIDs := make([]string, n)
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ids[i] = fmt.Sprintf("agent-%d", i)
		states[i] = host.AgentState{AgentID: ids[i], State: []byte("x")}
		metrics[i] = host.Metric{AgentID: ids[i%7], Name: "n", Value: float64(i), Timestamp: ts.Add(time.Duration(i))}
		keys[i] = metrics[i].Key()
		alertIDs[i] = fmt.Sprintf("alert-%d", i)
		alerts[i] = host.Alert{ID: alertIDs[i], AgentID: ids[i%3], Severity: abi.SeverityInfo, Status: abi.AlertFiring}
	}
	requireAll := func(what string, errs []error, err error) {
		t.Helper()
		require.NoError(t, err, what)
		for i, e := range errs {
			require.NoError(t, e, "%s: item %d", what, i)
		}
	}
	put, err := st.PutAgentStates(ctx, states, host.WithTTL(time.Hour))
	requireAll("PutAgentStates", errsOfResults(put), err)
	cas := make([]host.AgentState, n)
	for i := range cas {
		cas[i] = host.AgentState{AgentID: ids[i], State: []byte("y"), Version: put[i].Value.Version}
	}
	got, err := st.PutAgentStatesIf(ctx, cas)
	requireAll("PutAgentStatesIf", errsOfResults(got), err)
	got, err = st.GetAgentStates(ctx, ids)
	requireAll("GetAgentStates", errsOfResults(got), err)
	pm, err := st.PutMetrics(ctx, metrics)
	requireAll("PutMetrics", errsOfResults(pm), err)
	pm, err = st.GetMetrics(ctx, keys)
	requireAll("GetMetrics", errsOfResults(pm), err)
	pa, err := st.PutAlerts(ctx, alerts, host.WithKeepTTL())
	requireAll("PutAlerts", errsOfResults(pa), err)
	pa, err = st.GetAlerts(ctx, alertIDs)
	requireAll("GetAlerts", errsOfResults(pa), err)
	errs, err := st.DeleteMetrics(ctx, keys)
	requireAll("DeleteMetrics", errs, err)
	errs, err = st.DeleteAlerts(ctx, alertIDs)
	requireAll("DeleteAlerts", errs, err)
	errs, err = st.DeleteAgentStates(ctx, ids)
	requireAll("DeleteAgentStates", errs, err)

	_, err = st.PutAgentState(ctx, states[0], host.IfAbsent())
	require.NoError(t, err, "a single operation")
	_, err = st.SetAlertStatus(ctx, alertIDs[0], abi.AlertResolved)
	require.ErrorIs(t, err, host.ErrNotFound, "a single operation")
}

func errsOfResults[T any](rs []host.Result[T]) []error {
	errs := make([]error, len(rs))
	for i := range rs {
		errs[i] = rs[i].Err
	}
	return errs
}

// TestRedisIndexesDoNotLeak checks that the entries the global and
// per-agent indexes keep for expired or deleted records go away: a query
// that meets one trims it, a delete removes it, and writes sweep those
// whose expiry has passed. The plugin waits a grace period (a minute)
// before it trims an entry a write touched, so the test ages the entries
// in Redis rather than waiting.
func TestRedisIndexesDoNotLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	addrs := []string{redistest.Addr(t)}
	prefix := redistest.Prefix(t, addrs...)
	st := openRedisAt(t, addrs, prefix, nil, host.Limits{})
	rc := redis.NewClient(&redis.Options{Addr: addrs[0], Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = rc.Close() })
	ctx := t.Context()
	indexed := func(ix, id string) bool {
		t.Helper()
		_, err := rc.ZScore(ctx, prefix+ix, id).Result()
		if err == redis.Nil {
			return false
		}
		require.NoError(t, err)
		return true
	}
	age := func(ix, id string) {
		t.Helper()
		require.NoError(t, rc.HSet(ctx, prefix+ix+":t", id, "0").Err())
	}

	t.Run("QueryTrimsExpired", func(t *testing.T) {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "q/expired", State: []byte("x")}, host.WithTTL(time.Millisecond))
		require.NoError(t, err)
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "q/live", State: []byte("x")})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, err := st.GetAgentState(ctx, "q/expired")
			return err != nil
		}, 5*time.Second, 5*time.Millisecond)
		require.True(t, indexed("{idx}:s", "q/expired"), "the entry outlives its record until met")

		page, err := st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "q/"})
		require.NoError(t, err)
		require.Len(t, page.Items, 1, "an expired record is never listed")
		require.True(t, indexed("{idx}:s", "q/expired"), "an entry a write touched within the grace period is kept")

		age("{idx}:s", "q/expired")
		page, err = st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "q/"})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		require.False(t, indexed("{idx}:s", "q/expired"), "the query trims the entry of an expired record")
		require.False(t, indexed("{idx}:s:x", "q/expired"))
		require.Zero(t, rc.HExists(ctx, prefix+"{idx}:s:t", "q/expired").Val())
		require.True(t, indexed("{idx}:s", "q/live"))
	})

	t.Run("DeleteUnindexes", func(t *testing.T) {
		_, err := st.PutAlert(ctx, host.Alert{ID: "d/alert", AgentID: "a", Severity: abi.SeverityInfo, Status: abi.AlertFiring})
		require.NoError(t, err)
		age("{idx}:a", "d/alert")
		require.NoError(t, st.DeleteAlert(ctx, "d/alert"))
		require.False(t, indexed("{idx}:a", "d/alert"), "a delete removes the entry no write touched lately")
	})

	t.Run("WritesSweepExpired", func(t *testing.T) {
		_, err := st.PutAlert(ctx, host.Alert{ID: "s/alert", AgentID: "a", Severity: abi.SeverityInfo, Status: abi.AlertFiring},
			host.WithTTL(time.Millisecond))
		require.NoError(t, err)
		// As if it had expired long ago (beyond the clock slack).
		require.NoError(t, rc.ZAdd(ctx, prefix+"{idx}:a:x", redis.Z{Score: 1, Member: "s/alert"}).Err())
		_, err = st.PutAlert(ctx, host.Alert{ID: "s/other", AgentID: "a", Severity: abi.SeverityInfo, Status: abi.AlertFiring})
		require.NoError(t, err)
		require.False(t, indexed("{idx}:a", "s/alert"), "a write sweeps the entries whose expiry has passed")
		require.True(t, indexed("{idx}:a", "s/other"))
	})

	t.Run("AgentIndexes", func(t *testing.T) {
		ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		_, err := st.PutMetric(ctx, host.Metric{AgentID: "m", Name: "n", Value: 1, Timestamp: ts}, host.WithTTL(time.Millisecond))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, err := st.GetMetric(ctx, host.MetricKey{AgentID: "m", Name: "n", Timestamp: ts})
			return err != nil
		}, 5*time.Second, 5*time.Millisecond)
		_, err = st.PutMetric(ctx, host.Metric{AgentID: "m", Name: "n", Value: 2, Timestamp: ts.Add(1)})
		require.NoError(t, err)
		require.EqualValues(t, 1, rc.ZCard(ctx, prefix+"mi:{m}").Val(), "a write sweeps the agent's expired samples")
		require.Zero(t, rc.Exists(ctx, prefix+"mx:{m}").Val(), "the expiry index empties")

		// An agent whose samples all expire leaves no index behind.
		_, err = st.PutMetric(ctx, host.Metric{AgentID: "m2", Name: "n", Value: 1, Timestamp: ts}, host.WithTTL(time.Millisecond))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			return rc.Exists(ctx, prefix+"mi:{m2}", prefix+"mx:{m2}").Val() == 0
		}, 5*time.Second, 5*time.Millisecond, "the agent's indexes expire with its last sample")
		age("{idx}:m", "m2")
		page, err := st.QueryMetrics(ctx, host.MetricQuery{Name: "n"})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		require.False(t, indexed("{idx}:m", "m2"), "a cross-agent query trims an agent without metrics")
	})
}

// TestRedisForeignCursor checks that a cursor is bound to its query.
func TestRedisForeignCursor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	st := openRedis(t, []string{redistest.Addr(t)}, nil)
	ctx := t.Context()
	for i := range 3 {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("c/%d", i), State: []byte("x")})
		require.NoError(t, err)
	}
	page, err := st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "c/", Limit: 1})
	require.NoError(t, err)
	require.NotEmpty(t, page.Next)
	_, err = st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "c/1", Limit: 1, Cursor: page.Next})
	require.ErrorIs(t, err, host.ErrInvalid, "a cursor of another query")
	_, err = st.QueryAlerts(ctx, host.AlertQuery{Cursor: page.Next})
	require.ErrorIs(t, err, host.ErrInvalid, "a cursor of another kind")
	_, err = st.QueryMetrics(ctx, host.MetricQuery{Cursor: []byte("garbage")})
	require.ErrorIs(t, err, host.ErrInvalid, "a made-up cursor")
	next, err := st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "c/", Limit: 5, Cursor: page.Next})
	require.NoError(t, err, "the same query with another limit")
	require.Len(t, next.Items, 2)
}

// TestRedisUnavailable checks that a Redis that went away is UNAVAILABLE,
// for single operations and for every item of a batch.
func TestRedisUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	srv := redistest.NewServer(t)
	addrs := []string{srv.Addr()}
	st := openRedisAt(t, addrs, "sht:unavailable:", nil, host.Limits{})
	ctx := t.Context()
	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("x")})
	require.NoError(t, err)
	srv.Stop()
	_, err = st.GetAgentState(ctx, "a")
	require.ErrorIs(t, err, host.ErrUnavailable)
	_, err = st.QueryAgentStates(ctx, host.AgentStateQuery{})
	require.ErrorIs(t, err, host.ErrUnavailable)
	rs, err := st.GetAgentStates(ctx, []string{"a", "b"})
	require.NoError(t, err)
	for i := range rs {
		require.ErrorIs(t, rs[i].Err, host.ErrUnavailable, "item %d", i)
	}
}

// TestRedisConditionalDeleteKeepsIndex checks that a delete whose
// condition fails leaves the state listed, however long ago it was
// written.
func TestRedisConditionalDeleteKeepsIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	addrs := []string{redistest.Addr(t)}
	prefix := redistest.Prefix(t, addrs...)
	st := openRedisAt(t, addrs, prefix, nil, host.Limits{})
	rc := redis.NewClient(&redis.Options{Addr: addrs[0], Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = rc.Close() })
	ctx := t.Context()
	put, err := st.PutAgentState(ctx, host.AgentState{AgentID: "k/agent", State: []byte("x")})
	require.NoError(t, err)
	require.NoError(t, rc.HSet(ctx, prefix+"{idx}:s:t", "k/agent", "0").Err(), "as if written long ago")
	require.ErrorIs(t, st.DeleteAgentState(ctx, "k/agent", host.IfVersion(put.Version+1)), host.ErrConflict)
	page, err := st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: "k/"})
	require.NoError(t, err)
	require.Len(t, page.Items, 1, "a delete that did not happen unlisted the state")
}

func TestRedisEvents(t *testing.T) {
	addrs := []string{redistest.Addr(t)}
	storetest.RunEvents(t, func(t *testing.T) *host.Store { return openRedis(t, addrs, nil) })
}

// Two hosts sharing one Redis namespace see each other's events, in the
// order of the writes, with the versions each write returned.
func TestRedisEventsAcrossHosts(t *testing.T) {
	addrs := []string{redistest.Addr(t)}
	prefix := redistest.Prefix(t, addrs...)
	writer := openRedisAt(t, addrs, prefix, nil, host.Limits{})
	reader := openRedisAt(t, addrs, prefix, nil, host.Limits{})
	sub, err := reader.Subscribe(t.Context(), events.Filter{Kinds: []string{abi.KindAgentState.Name()}}, "")
	require.NoError(t, err)
	defer sub.Close()
	var versions []uint64
	for i := range 20 {
		s, err := writer.PutAgentState(t.Context(), host.AgentState{AgentID: "a1", State: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
		versions = append(versions, s.Version)
	}
	for i, v := range versions {
		select {
		case e := <-sub.Events():
			require.Equal(t, v, e.Version, "event %d", i)
			require.Equal(t, "a1", e.Key)
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d did not arrive: %v", i, sub.Err())
		}
	}
}

// TestRedisGetReadsTheStoredExpiry: a single agent-state or alert get is
// one HMGET that reads the expiry the write stored beside the record
// (field e of a state, x of an alert), not a script asking Redis for the
// key's; a record without it (as written before it was kept) is read by
// script, with the key's own expiry. The test makes the stored expiry
// disagree with the key's to tell the two apart.
func TestRedisGetReadsTheStoredExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	addrs := []string{redistest.Addr(t)}
	prefix := redistest.Prefix(t, addrs...)
	st := openRedisAt(t, addrs, prefix, nil, host.Limits{})
	rc := redis.NewClient(&redis.Options{Addr: addrs[0], Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = rc.Close() })
	ctx := t.Context()

	put, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{"step":1}`)}, host.WithTTL(time.Hour))
	require.NoError(t, err)
	require.False(t, put.ExpiresAt.IsZero())
	key := prefix + "s:{a1}"
	e, err := rc.HGet(ctx, key, "e").Int64()
	require.NoError(t, err, "the put stores its expiry beside the record")
	require.Equal(t, put.ExpiresAt.UnixMilli(), e)

	require.NoError(t, rc.HSet(ctx, key, "e", "-1").Err())
	got, err := st.GetAgentState(ctx, "a1")
	require.NoError(t, err)
	require.True(t, got.ExpiresAt.IsZero(), "the get answers the stored expiry (-1: none), not the key's")
	require.Equal(t, put.Version, got.Version)
	require.Equal(t, `{"step":1}`, string(got.State))

	require.NoError(t, rc.HDel(ctx, key, "e").Err())
	got, err = st.GetAgentState(ctx, "a1")
	require.NoError(t, err)
	require.True(t, got.ExpiresAt.Equal(put.ExpiresAt), "a state without e is read with the key's expiry: %v", got.ExpiresAt)
	require.Equal(t, put.Version, got.Version)

	_, err = st.GetAgentState(ctx, "missing")
	require.ErrorIs(t, err, host.ErrNotFound)

	// An alert keeps its expiry beside it as x, and is read the same way.
	alert, err := st.PutAlert(ctx, host.Alert{ID: "al1", AgentID: "a1", Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: "disk"}, host.WithTTL(time.Hour))
	require.NoError(t, err)
	akey := prefix + "a:{al1}"
	x, err := rc.HGet(ctx, akey, "x").Int64()
	require.NoError(t, err, "the put stores its expiry beside the alert")
	require.Equal(t, alert.ExpiresAt.UnixMilli(), x)
	require.NoError(t, rc.HSet(ctx, akey, "x", "-1").Err())
	gotAlert, err := st.GetAlert(ctx, "al1")
	require.NoError(t, err)
	require.True(t, gotAlert.ExpiresAt.IsZero(), "the get answers the stored expiry, not the key's")
	require.Equal(t, "disk", gotAlert.Message)
	require.NoError(t, rc.HDel(ctx, akey, "x").Err())
	gotAlert, err = st.GetAlert(ctx, "al1")
	require.NoError(t, err)
	require.True(t, gotAlert.ExpiresAt.Equal(alert.ExpiresAt), "an alert without x is read with the key's expiry: %v", gotAlert.ExpiresAt)
	_, err = st.GetAlert(ctx, "missing")
	require.ErrorIs(t, err, host.ErrNotFound)
}
