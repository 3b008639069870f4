package storetest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
	"github.com/storage-host/storage-host/host/storetest"
)

// The redis plugin's fallback policy (plugins/redis/fallback.go), against
// a private redis-server that the tests kill (SIGKILL) and restart.

// openFallback opens the redis plugin on addrs in the namespace prefix
// with options on top of fallback=buffer, served by instances instances.
func openFallback(t *testing.T, addrs []string, prefix string, instances int, options map[string]string) *host.Store {
	t.Helper()
	opts := map[string]string{"fallback": "buffer"}
	for k, v := range options {
		opts[k] = v
	}
	st, err := host.Open(t.Context(), host.Config{
		Plugin:    "builtin:redis",
		Options:   opts,
		Instances: instances,
		Redis:     &redisbridge.Config{Addrs: addrs, KeyPrefix: prefix, Scripts: true},
	}, host.WithCompilationCache(cacheDir))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// persistentServer starts a private redis-server whose acknowledged
// writes survive a kill.
func persistentServer(t *testing.T) *redistest.Server {
	return redistest.NewServer(t, "--appendonly", "yes", "--appendfsync", "always")
}

func directClient(t *testing.T, addr string) *redis.Client {
	rc := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// storedState reads an agent state's document straight from Redis
// (plugins/redis keeps it in the hash s:{agent}, field d; the test's IDs
// need no escaping); ok is false when there is none.
func storedState(t *testing.T, rc *redis.Client, prefix, agent string) (doc string, ok bool) {
	t.Helper()
	v, err := rc.HGet(t.Context(), prefix+"s:{"+agent+"}", "d").Result()
	if errors.Is(err, redis.Nil) {
		return "", false
	}
	require.NoError(t, err)
	return v, true
}

// waitReplayed polls (bounded) until reading every agent's state is no
// longer answered from the buffer: not STALE, and not UNAVAILABLE.
func waitReplayed(t *testing.T, st *host.Store, agents ...string) {
	t.Helper()
	waitDrained(t, st, agents, nil)
}

// waitDrained polls (bounded) until no read of the agents' states and of
// the metrics is answered from the buffer (STALE) or fails; a state may
// be NOT_FOUND. Each poll's reads also drive the replay.
func waitDrained(t *testing.T, st *host.Store, agents []string, metrics []host.MetricKey) {
	t.Helper()
	check := func() error {
		for i := 0; i < len(agents); i += 1000 {
			ids := agents[i:min(i+1000, len(agents))]
			rs, err := st.GetAgentStates(t.Context(), ids)
			if err != nil {
				return err
			}
			for j := range rs {
				if e := rs[j].Err; e != nil && !errors.Is(e, host.ErrNotFound) {
					return fmt.Errorf("agent %s: %w", ids[j], e)
				}
			}
		}
		for i := 0; i < len(metrics); i += 1000 {
			keys := metrics[i:min(i+1000, len(metrics))]
			rs, err := st.GetMetrics(t.Context(), keys)
			if err != nil {
				return err
			}
			for j := range rs {
				if e := rs[j].Err; e != nil {
					return fmt.Errorf("metric %v: %w", keys[j], e)
				}
			}
		}
		return nil
	}
	var last error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if last = check(); last == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("buffered writes were not replayed within 30s: %v", last)
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a redis-server; skipped with -short")
	}
}

// TestRedisBufferConformance checks that fallback=buffer changes nothing
// while Redis is up.
func TestRedisBufferConformance(t *testing.T) {
	skipShort(t)
	addrs := []string{redistest.Addr(t)}
	storetest.Run(t, func(t *testing.T) *host.Store {
		return openRedis(t, addrs, map[string]string{"fallback": "buffer"})
	})
}

func TestRedisFallbackOptions(t *testing.T) {
	skipShort(t)
	addrs := []string{redistest.Addr(t)}
	prefix := redistest.Prefix(t, addrs...)
	for _, o := range []map[string]string{
		{"fallback": "retry"},
		{"fallback": ""},
		{"fallback": "buffer", "fallback_buffer_entries": "ten"},
		{"fallback": "buffer", "fallback_buffer_entries": "0"},
		{"fallback": "buffer", "fallback_buffer_entries": "-1"},
	} {
		_, err := host.Open(t.Context(), host.Config{
			Plugin: "builtin:redis", Options: o,
			Redis: &redisbridge.Config{Addrs: addrs, KeyPrefix: prefix, Scripts: true},
		}, host.WithCompilationCache(cacheDir))
		require.ErrorIs(t, err, host.ErrInvalid, "options %v", o)
	}
}

// TestRedisOutageKeepsAcknowledgedWrites is the outage test of issue 3:
// a write load runs while Redis is killed and restarted, and every write
// the store acknowledged is in Redis afterwards with its last value.
func TestRedisOutageKeepsAcknowledgedWrites(t *testing.T) {
	skipShort(t)
	srv := persistentServer(t)
	addrs := []string{srv.Addr()}
	prefix := redistest.Prefix(t, addrs...)
	st := openFallback(t, addrs, prefix, 4, map[string]string{"fallback_buffer_entries": "1000000"})
	ctx := t.Context()

	const (
		workers     = 4
		agentsEach  = 8 // agent states each worker overwrites in turn
		outageAcked = 200
	)
	const (
		before = iota
		outage
		after
	)
	var phase atomic.Int32
	var acked [3]atomic.Int64 // acknowledged writes per phase
	base := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

	// What each worker had acknowledged. A worker is the only writer of
	// its agents, so its last acknowledged value is the one to find.
	type workerLog struct {
		states  map[string]string // agent → last acknowledged document
		metrics []host.Metric     // every acknowledged metric (unique keys)
		// The writes whose outcome is unknown (in flight as Redis was
		// killed: never buffered, as their copy may have reached Redis):
		// agent → the documents written since its last acknowledged one,
		// and how many metrics.
		unknown        map[string][]string
		unknownMetrics int
		staleChecks    int // reads during the outage that checked a buffered value
		failures       []string
	}
	logs := make([]*workerLog, workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		l := &workerLog{states: map[string]string{}, unknown: map[string][]string{}}
		logs[w] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(format string, args ...any) {
				if len(l.failures) < 20 {
					l.failures = append(l.failures, fmt.Sprintf(format, args...))
				}
			}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				p := phase.Load() // before the write starts: a write started in the outage is buffered
				if n%2 == 0 {
					agent := fmt.Sprintf("w%d-a%d", w, (n/2)%agentsEach)
					doc := fmt.Sprintf(`{"w":%d,"n":%d}`, w, n)
					_, err := st.PutAgentState(ctx, host.AgentState{AgentID: agent, State: []byte(doc)})
					if errors.Is(err, host.ErrOutcomeUnknown) && p != after {
						l.unknown[agent] = append(l.unknown[agent], doc)
						continue
					}
					if err != nil {
						fail("phase %d: put %s: %v", p, agent, err)
						continue
					}
					l.states[agent] = doc
					delete(l.unknown, agent)
					acked[phase.Load()].Add(1)
					if p == outage && n%10 == 0 {
						got, err := st.GetAgentState(ctx, agent)
						if !errors.Is(err, host.ErrStale) || string(got.State) != doc {
							fail("outage: get %s = %q, %v; want %q, ErrStale", agent, got.State, err, doc)
						}
						l.staleChecks++
					}
					continue
				}
				m := host.Metric{AgentID: fmt.Sprintf("w%d", w), Name: "load", Value: float64(n), Timestamp: base.Add(time.Duration(n))}
				_, err := st.PutMetric(ctx, m)
				if errors.Is(err, host.ErrOutcomeUnknown) && p != after {
					l.unknownMetrics++
					continue
				}
				if err != nil {
					fail("phase %d: put metric %d: %v", p, n, err)
					continue
				}
				l.metrics = append(l.metrics, m)
				acked[phase.Load()].Add(1)
				if p == outage && n%10 == 1 {
					got, err := st.GetMetric(ctx, m.Key())
					if !errors.Is(err, host.ErrStale) || got.Value != m.Value {
						fail("outage: get metric %d = %v, %v; want %v, ErrStale", n, got.Value, err, m.Value)
					}
					l.staleChecks++
				}
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	waitAcked := func(p int, n int64) {
		t.Helper()
		redistest.WaitFor(t, 20*time.Second, time.Millisecond, func() bool { return acked[p].Load() >= n },
			"%d writes acknowledged in phase %d (want %d)", acked[p].Load(), p, n)
	}
	waitAcked(before, 500)

	// Kill Redis under load; writes keep being acknowledged for a second.
	srv.Stop()
	phase.Store(outage)
	killed := time.Now()
	waitAcked(outage, outageAcked)
	half := time.NewTimer(time.Until(killed.Add(500 * time.Millisecond)))
	<-half.C
	atHalf := acked[outage].Load()
	redistest.WaitFor(t, 20*time.Second, time.Millisecond, func() bool {
		return time.Since(killed) >= 1100*time.Millisecond && acked[outage].Load() > atHalf
	}, "writes stopped being acknowledged during the outage: %d at 0.5s, %d now", atHalf, acked[outage].Load())

	// From the buffer: a read of a buffered record is STALE with the last
	// value, alone or in a batch; one the buffer does not hold, and a
	// query, are UNAVAILABLE.
	probe, err := st.PutAgentState(ctx, host.AgentState{AgentID: "probe", State: []byte("during")})
	require.NoError(t, err, "a write during the outage")
	got, err := st.GetAgentState(ctx, "probe")
	require.ErrorIs(t, err, host.ErrStale)
	require.Equal(t, "during", string(got.State))
	require.Equal(t, probe.Version, got.Version, "the provisional version")
	rs, err := st.GetAgentStates(ctx, []string{"probe", "never-written"})
	require.NoError(t, err)
	require.ErrorIs(t, rs[0].Err, host.ErrStale)
	require.Equal(t, "during", string(rs[0].Value.State))
	require.ErrorIs(t, rs[1].Err, host.ErrUnavailable)
	_, err = st.GetAgentState(ctx, "never-written")
	require.ErrorIs(t, err, host.ErrUnavailable)
	_, err = st.QueryAgentStates(ctx, host.AgentStateQuery{})
	require.ErrorIs(t, err, host.ErrUnavailable, "queries read Redis only")

	// Redis returns; the load goes on while the buffer drains.
	srv.Start()
	phase.Store(after)
	waitAcked(after, 500)
	stopLoad()

	var states []string
	var metrics []host.MetricKey
	stale := 0
	for w, l := range logs {
		require.Empty(t, l.failures, "worker %d", w)
		stale += l.staleChecks
		for agent := range l.states {
			states = append(states, agent)
		}
		for i := range l.metrics {
			metrics = append(metrics, l.metrics[i].Key())
		}
	}
	require.NotZero(t, stale, "no read checked a buffered value")
	t.Logf("acknowledged %d writes before the kill, %d during the outage (%s), %d after; %d reads checked buffered values",
		acked[before].Load(), acked[outage].Load(), time.Since(killed).Round(time.Millisecond), acked[after].Load(), stale)

	drainStart := time.Now()
	waitDrained(t, st, append(states, "probe"), metrics)
	t.Logf("the buffer drained %s after the load stopped", time.Since(drainStart).Round(time.Millisecond))

	// Every acknowledged write is in Redis with its last value: agent
	// states read straight from Redis, metrics through the store (no
	// longer from the buffer) and counted in their agents' indexes.
	rc := directClient(t, srv.Addr())
	for _, l := range logs {
		for agent, doc := range l.states {
			v, ok := storedState(t, rc, prefix, agent)
			require.True(t, ok, "agent %s is not in Redis", agent)
			require.Contains(t, append([]string{doc}, l.unknown[agent]...), v,
				"agent %s: the last acknowledged document, or one written after it whose outcome was unknown", agent)
		}
	}
	v, ok := storedState(t, rc, prefix, "probe")
	require.True(t, ok)
	require.Equal(t, "during", v)
	for i := 0; i < len(metrics); i += 1000 {
		keys := metrics[i:min(i+1000, len(metrics))]
		rs, err := st.GetMetrics(ctx, keys)
		require.NoError(t, err)
		for j := range rs {
			require.NoError(t, rs[j].Err, "metric %v", keys[j])
			require.Equal(t, float64(keys[j].Timestamp.Sub(base)), rs[j].Value.Value)
		}
	}
	for w, l := range logs {
		n, err := rc.ZCard(ctx, fmt.Sprintf("%smi:{w%d}", prefix, w)).Result()
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, int64(len(l.metrics)), "metrics of worker %d in Redis", w)
		require.LessOrEqual(t, n, int64(len(l.metrics)+l.unknownMetrics), "metrics of worker %d in Redis: the acknowledged ones, and those whose outcome was unknown", w)
	}
	replayed, err := st.GetAgentState(ctx, "probe")
	require.NoError(t, err)
	require.Greater(t, replayed.Version, probe.Version, "the replayed version is above the provisional one")
}

// TestRedisFallbackFail checks the default policy: a dead Redis is
// UNAVAILABLE, quickly.
func TestRedisFallbackFail(t *testing.T) {
	skipShort(t)
	srv := redistest.NewServer(t)
	addrs := []string{srv.Addr()}
	st := openRedisAt(t, addrs, redistest.Prefix(t, addrs...), map[string]string{"fallback": "fail"}, host.Limits{})
	ctx := t.Context()
	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("x")})
	require.NoError(t, err)
	srv.Stop()
	for name, op := range map[string]func() error{
		"put": func() error {
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("y")})
			return err
		},
		"get": func() error { _, err := st.GetAgentState(ctx, "a"); return err },
		"put metric": func() error {
			_, err := st.PutMetric(ctx, host.Metric{AgentID: "a", Name: "n", Timestamp: time.Unix(1, 0)})
			return err
		},
		"delete": func() error { return st.DeleteAlert(ctx, "x") },
	} {
		start := time.Now()
		err := op()
		require.ErrorIs(t, err, host.ErrUnavailable, name)
		require.Less(t, time.Since(start), 1500*time.Millisecond, "%s took too long to fail", name)
	}
	srv.Start() // the prefix's keys are deleted at cleanup
}

// TestRedisFallbackBufferFull checks that a full buffer refuses writes
// (never a silent loss) and that what it took is replayed.
func TestRedisFallbackBufferFull(t *testing.T) {
	skipShort(t)
	srv := persistentServer(t)
	addrs := []string{srv.Addr()}
	prefix := redistest.Prefix(t, addrs...)
	st := openFallback(t, addrs, prefix, 4, map[string]string{"fallback_buffer_entries": "5"})
	ctx := t.Context()
	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "warm", State: []byte("up")})
	require.NoError(t, err)

	srv.Stop()
	agents := []string{"f0", "f1", "f2", "f3", "f4"}
	for _, a := range agents {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: a, State: []byte("v-" + a)})
		require.NoError(t, err, "write %s: the buffer has room", a)
	}
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "f5", State: []byte("v-f5")})
	require.ErrorIs(t, err, host.ErrUnavailable, "the 6th write meets a full buffer")
	require.ErrorIs(t, st.DeleteAgentState(ctx, "f0"), host.ErrUnavailable, "a full buffer takes no delete either")
	got, err := st.GetAgentState(ctx, "f4")
	require.ErrorIs(t, err, host.ErrStale)
	require.Equal(t, "v-f4", string(got.State))

	srv.Start()
	waitReplayed(t, st, agents...)
	rc := directClient(t, srv.Addr())
	for _, a := range agents {
		v, ok := storedState(t, rc, prefix, a)
		require.True(t, ok, "agent %s was not replayed", a)
		require.Equal(t, "v-"+a, v)
	}
	_, ok := storedState(t, rc, prefix, "f5")
	require.False(t, ok, "the refused write is not in Redis")
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "f5", State: []byte("later")})
	require.NoError(t, err, "the replayed writes left the buffer")
}

// TestRedisFallbackConditional checks that writes the buffer cannot check
// are UNAVAILABLE during an outage.
func TestRedisFallbackConditional(t *testing.T) {
	skipShort(t)
	srv := persistentServer(t)
	addrs := []string{srv.Addr()}
	prefix := redistest.Prefix(t, addrs...)
	st := openFallback(t, addrs, prefix, 2, nil)
	ctx := t.Context()
	saved, err := st.PutAgentState(ctx, host.AgentState{AgentID: "c", State: []byte("v1")})
	require.NoError(t, err)
	_, err = st.PutAlert(ctx, host.Alert{ID: "al", AgentID: "c", Severity: abi.SeverityWarning, Status: abi.AlertFiring})
	require.NoError(t, err)

	srv.Stop()
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "c", State: []byte("v2")}, host.IfVersion(saved.Version))
	require.ErrorIs(t, err, host.ErrUnavailable, "IfVersion")
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "new", State: []byte("v")}, host.IfAbsent())
	require.ErrorIs(t, err, host.ErrUnavailable, "IfAbsent")
	require.ErrorIs(t, st.DeleteAgentState(ctx, "c", host.IfVersion(saved.Version)), host.ErrUnavailable, "a conditional delete")
	rs, err := st.PutAgentStatesIf(ctx, []host.AgentState{{AgentID: "c", State: []byte("v2"), Version: saved.Version}})
	require.NoError(t, err)
	require.ErrorIs(t, rs[0].Err, host.ErrUnavailable, "IfVersion in a batch")
	_, err = st.SetAlertStatus(ctx, "al", abi.AlertAcknowledged)
	require.ErrorIs(t, err, host.ErrUnavailable, "a status move needs the current status")
	_, err = st.PutAlert(ctx, host.Alert{ID: "al", AgentID: "c", Severity: abi.SeverityWarning, Status: abi.AlertAcknowledged})
	require.ErrorIs(t, err, host.ErrUnavailable, "an alert put whose move cannot be checked")
	_, err = st.PutAlert(ctx, host.Alert{ID: "al", AgentID: "c", Severity: abi.SeverityWarning, Status: abi.AlertResolved})
	require.NoError(t, err, "resolved is allowed from every status")
	_, err = st.PutAlert(ctx, host.Alert{ID: "al", AgentID: "c", Severity: abi.SeverityWarning, Status: abi.AlertAcknowledged})
	require.ErrorIs(t, err, host.ErrConflict, "checked against the buffered copy: resolved → acknowledged")

	// The unconditional write of the same record is buffered; once
	// replayed, the old version no longer matches.
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "c", State: []byte("v2")})
	require.NoError(t, err)
	srv.Start()
	waitReplayed(t, st, "c")
	// Reads leave the buffer once its writes are replayed; conditional
	// writes wait until the tick after that settles them (their events
	// published), UNAVAILABLE meanwhile.
	redistest.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() bool {
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "c", State: []byte("v3")}, host.IfVersion(saved.Version))
		return !errors.Is(err, host.ErrUnavailable)
	}, "the replayed record settles")
	require.ErrorIs(t, err, host.ErrConflict)
	a, err := st.GetAlert(ctx, "al")
	require.NoError(t, err)
	require.Equal(t, abi.AlertResolved, a.Status)
}

// TestRedisFallbackOrder checks that buffered writes are replayed in the
// order they were acknowledged, with the expiry computed then.
func TestRedisFallbackOrder(t *testing.T) {
	skipShort(t)
	srv := persistentServer(t)
	addrs := []string{srv.Addr()}
	prefix := redistest.Prefix(t, addrs...)
	st := openFallback(t, addrs, prefix, 4, nil)
	ctx := t.Context()
	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "gone", State: []byte("here")})
	require.NoError(t, err)

	srv.Stop()
	first, err := st.PutAgentState(ctx, host.AgentState{AgentID: "o", State: []byte("first")})
	require.NoError(t, err)
	second, err := st.PutAgentState(ctx, host.AgentState{AgentID: "o", State: []byte("second")}, host.WithTTL(time.Hour))
	require.NoError(t, err)
	require.Greater(t, second.Version, first.Version, "provisional versions change on every write")
	require.False(t, second.ExpiresAt.IsZero())
	got, err := st.GetAgentState(ctx, "o")
	require.ErrorIs(t, err, host.ErrStale)
	require.Equal(t, "second", string(got.State))
	require.NoError(t, st.DeleteAgentState(ctx, "gone"))
	_, err = st.GetAgentState(ctx, "gone")
	require.ErrorIs(t, err, host.ErrNotFound, "a buffered delete")
	require.ErrorIs(t, st.DeleteAgentState(ctx, "gone"), host.ErrNotFound, "the buffer knows it is gone")
	// Writes of a batch are buffered in item order too.
	res, err := st.PutAgentStates(ctx, []host.AgentState{{AgentID: "b", State: []byte("1")}, {AgentID: "b", State: []byte("2")}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	require.NoError(t, res[1].Err)

	srv.Start()
	waitReplayed(t, st, "o", "gone", "b")
	rc := directClient(t, srv.Addr())
	v, ok := storedState(t, rc, prefix, "o")
	require.True(t, ok)
	require.Equal(t, "second", v, "the later write wins")
	exp, err := rc.PExpireTime(ctx, prefix+"s:{o}").Result()
	require.NoError(t, err)
	require.Equal(t, second.ExpiresAt.UnixMilli(), exp.Milliseconds(), "the expiry computed at acknowledgement")
	_, ok = storedState(t, rc, prefix, "gone")
	require.False(t, ok, "the buffered delete was replayed")
	v, ok = storedState(t, rc, prefix, "b")
	require.True(t, ok)
	require.Equal(t, "2", v)
	got, err = st.GetAgentState(ctx, "o")
	require.NoError(t, err)
	require.Greater(t, got.Version, second.Version, "Redis gives a version above the provisional one")
	require.Equal(t, second.ExpiresAt, got.ExpiresAt)
}

// TestRedisFallbackRestore checks that a restore is never buffered: while
// Redis is down it is UNAVAILABLE and leaves nothing to replay, and once
// Redis is back it restores as ever.
func TestRedisFallbackRestore(t *testing.T) {
	skipShort(t)
	srv := persistentServer(t)
	addrs := []string{srv.Addr()}
	st := openFallback(t, addrs, redistest.Prefix(t, addrs...), 2, nil)
	ctx := t.Context()
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	items := []host.Restore{
		{Kind: host.KindMetric, Mode: host.RestoreOverwrite, Metric: host.Metric{AgentID: "r", Name: "n", Value: 1, Timestamp: ts}},
		{Kind: host.KindAlert, Mode: host.RestoreOverwrite, Alert: host.Alert{ID: "ra", AgentID: "r", Severity: abi.SeverityInfo,
			Status: abi.AlertFiring, CreatedAt: ts, UpdatedAt: ts}},
		{Kind: host.KindAgentState, Mode: host.RestoreOverwrite, State: host.AgentState{AgentID: "r", State: []byte("v"),
			Version: 77, UpdatedAt: ts}},
	}

	srv.Stop()
	rs, err := st.Restore(ctx, items)
	require.NoError(t, err)
	for i := range rs {
		require.ErrorIs(t, rs[i].Err, host.ErrUnavailable, "item %d while Redis is down", i)
	}
	// A buffered write, so that the store has a replay to do.
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "other", State: []byte("x")})
	require.NoError(t, err)

	srv.Start()
	waitReplayed(t, st, "other")
	_, err = st.GetAgentState(ctx, "r")
	require.ErrorIs(t, err, host.ErrNotFound, "a restore refused while Redis was down was replayed")
	_, err = st.GetAlert(ctx, "ra")
	require.ErrorIs(t, err, host.ErrNotFound)

	rs, err = st.Restore(ctx, items)
	require.NoError(t, err)
	for i := range rs {
		require.NoError(t, rs[i].Err, "item %d once Redis is back", i)
		require.True(t, rs[i].Value)
	}
	got, err := st.GetAgentState(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, uint64(77), got.Version)
}
