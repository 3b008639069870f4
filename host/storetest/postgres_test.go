package storetest_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/pgtest"
	"github.com/storage-host/storage-host/host/storetest"
)

// openPostgres opens the postgres plugin on the PostgreSQL pgtest finds,
// in a schema of its own that is dropped when t ends.
func openPostgres(t *testing.T, options map[string]string) *host.Store {
	t.Helper()
	st, _ := openPostgresWith(t, host.Config{Options: options})
	return st
}

// openPostgresWith opens the postgres plugin with cfg, in a schema of its
// own, which it returns.
func openPostgresWith(t *testing.T, cfg host.Config, opts ...host.Option) (*host.Store, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs against a real PostgreSQL; skipped with -short")
	}
	schema := pgtest.Schema(t, "storagehost_")
	cfg.Plugin = "builtin:postgres" // embedded; TestBuiltinsMatchSource keeps it current
	cfg.Postgres = &host.PostgresConfig{URL: pgtest.URL(t), Schema: schema}
	st, err := host.Open(t.Context(), cfg, append([]host.Option{host.WithCompilationCache(cacheDir)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st, schema
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *host.Store { return openPostgres(t, nil) })
}

func TestPostgresDefaultTTLs(t *testing.T) {
	storetest.RunDefaultTTLs(t, func(t *testing.T, options map[string]string) *host.Store {
		return openPostgres(t, options)
	})
}

func TestPostgresEvents(t *testing.T) {
	storetest.RunEvents(t, func(t *testing.T) *host.Store { return openPostgres(t, nil) })
}

// TestPostgresBatchIsOneCall checks that a batch is one request of the
// postgres capability: with two host calls allowed per request (the
// clock, then PostgreSQL), batches of a hundred items of every kind
// succeed.
func TestPostgresBatchIsOneCall(t *testing.T) {
	st, _ := openPostgresWith(t, host.Config{Limits: host.Limits{MaxHostCalls: 2}})
	ctx := t.Context()
	const n = 100
	states := make([]host.AgentState, n)
	ids := make([]string, n)
	metrics := make([]host.Metric, n)
	keys := make([]host.MetricKey, n)
	alerts := make([]host.Alert, n)
	alertIDs := make([]string, n)
	restores := make([]host.Restore, n)
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ids[i] = fmt.Sprintf("agent-%d", i)
		states[i] = host.AgentState{AgentID: ids[i], State: []byte("x")}
		metrics[i] = host.Metric{AgentID: ids[i%7], Name: "n", Value: float64(i), Timestamp: ts.Add(time.Duration(i)), Labels: map[string]string{"i": fmt.Sprint(i)}}
		keys[i] = metrics[i].Key()
		alertIDs[i] = fmt.Sprintf("alert-%d", i)
		alerts[i] = host.Alert{ID: alertIDs[i], AgentID: ids[i%3], Severity: abi.SeverityInfo, Status: abi.AlertFiring}
		restores[i] = host.Restore{Kind: abi.KindAgentState, Mode: abi.RestoreOverwrite,
			State: host.AgentState{AgentID: fmt.Sprintf("restored-%d", i), State: []byte("r"), Version: 7, UpdatedAt: ts}}
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
	read, err := st.GetAgentStates(ctx, ids)
	requireAll("GetAgentStates", errsOfResults(read), err)
	require.Equal(t, "y", string(read[n-1].Value.State))
	pm, err := st.PutMetrics(ctx, metrics)
	requireAll("PutMetrics", errsOfResults(pm), err)
	gm, err := st.GetMetrics(ctx, keys)
	requireAll("GetMetrics", errsOfResults(gm), err)
	require.Equal(t, metrics[n-1].Labels, gm[n-1].Value.Labels)
	pa, err := st.PutAlerts(ctx, alerts)
	requireAll("PutAlerts", errsOfResults(pa), err)
	ga, err := st.GetAlerts(ctx, alertIDs)
	requireAll("GetAlerts", errsOfResults(ga), err)
	rs, err := st.Restore(ctx, restores)
	requireAll("Restore", errsOfResults(rs), err)
	errs, err := st.DeleteMetrics(ctx, keys)
	requireAll("DeleteMetrics", errs, err)
	errs, err = st.DeleteAlerts(ctx, alertIDs)
	requireAll("DeleteAlerts", errs, err)
	errs, err = st.DeleteAgentStates(ctx, ids)
	requireAll("DeleteAgentStates", errs, err)
}

// TestPostgresSweepsExpiredRows checks that expiry goes by the host's
// clock, not PostgreSQL's: once the host's clock passes a record's
// expiry the record is gone for every read, and the tick's sweep then
// deletes its rows.
func TestPostgresSweepsExpiredRows(t *testing.T) {
	var ahead atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	st, schema := openPostgresWith(t, host.Config{}, host.WithClock(clock))
	ctx := t.Context()
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	m := host.Metric{AgentID: "a", Name: "n", Value: 1, Timestamp: ts}
	_, err := st.PutMetric(ctx, m, host.WithTTL(time.Minute))
	require.NoError(t, err)
	_, err = st.PutAlert(ctx, host.Alert{ID: "x", AgentID: "a", Severity: abi.SeverityInfo, Status: abi.AlertFiring}, host.WithTTL(time.Minute))
	require.NoError(t, err)
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("s")}, host.WithTTL(time.Minute))
	require.NoError(t, err)
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "kept", State: []byte("s")})
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows := func() int {
		var n int
		q := "SELECT (SELECT count(*) FROM " + pgx.Identifier{schema, "metrics"}.Sanitize() + ") + (SELECT count(*) FROM " +
			pgx.Identifier{schema, "alerts"}.Sanitize() + ") + (SELECT count(*) FROM " + pgx.Identifier{schema, "agent_states"}.Sanitize() + ")"
		require.NoError(t, conn.QueryRow(ctx, q).Scan(&n))
		return n
	}
	require.Equal(t, 4, rows())

	ahead.Store(int64(2 * time.Minute))
	_, err = st.GetMetric(ctx, m.Key())
	require.ErrorIs(t, err, host.ErrNotFound)
	_, err = st.GetAlert(ctx, "x")
	require.ErrorIs(t, err, host.ErrNotFound)
	_, err = st.GetAgentState(ctx, "a")
	require.ErrorIs(t, err, host.ErrNotFound)
	require.Eventually(t, func() bool { return rows() == 1 }, 10*time.Second, 20*time.Millisecond, "the sweep deletes the expired rows")
	_, err = st.GetAgentState(ctx, "kept")
	require.NoError(t, err)
}

// TestPostgresLabelValuesAreBytes checks label values that PostgreSQL
// text cannot hold (not UTF-8, or with a NUL): they are stored and
// returned unchanged, and the matchers on them, which the plugin runs,
// select them as they select text values, which SQL narrows.
func TestPostgresLabelValuesAreBytes(t *testing.T) {
	st, _ := openPostgresWith(t, host.Config{})
	ctx := t.Context()
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	values := []string{"prod", "\xff\xfe", "a\x00b", ""}
	for i, v := range values {
		_, err := st.PutMetric(ctx, host.Metric{AgentID: "a", Name: "n", Value: float64(i), Timestamp: ts.Add(time.Duration(i)), Labels: map[string]string{"env": v, "k": "v"}})
		require.NoError(t, err)
		_, err = st.PutAlert(ctx, host.Alert{ID: fmt.Sprint("alert-", i), AgentID: "a", Severity: abi.SeverityInfo, Status: abi.AlertFiring, Message: v, Labels: map[string]string{"env": v}})
		require.NoError(t, err)
	}
	for i, v := range values {
		page, err := st.QueryMetrics(ctx, host.MetricQuery{Labels: []abi.Matcher{{Label: "env", Op: abi.MatchEqual, Value: v}, {Label: "k", Op: abi.MatchEqual, Value: "v"}}})
		require.NoError(t, err)
		require.Len(t, page.Items, 1, "env = %q", v)
		require.Equal(t, float64(i), page.Items[0].Value)
		require.Equal(t, v, page.Items[0].Labels["env"])
		alerts, err := st.QueryAlerts(ctx, host.AlertQuery{Labels: []abi.Matcher{{Label: "env", Op: abi.MatchEqual, Value: v}}})
		require.NoError(t, err)
		require.Len(t, alerts.Items, 1, "env = %q", v)
		require.Equal(t, v, alerts.Items[0].Message)
	}
	page, err := st.QueryMetrics(ctx, host.MetricQuery{Labels: []abi.Matcher{{Label: "env", Op: abi.MatchRegexp, Value: `a\x00.|pro.`}}})
	require.NoError(t, err)
	require.Len(t, page.Items, 2)
}

// TestPostgresHostileStrings writes and finds records whose IDs, labels
// and matchers are written as SQL and JSON: they are data, every one a
// parameter, and the tables are still there.
func TestPostgresHostileStrings(t *testing.T) {
	st, _ := openPostgresWith(t, host.Config{})
	ctx := t.Context()
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	hostile := []string{`'; DROP TABLE metrics; --`, `a"b\c`, `{"x":1}`, `$1`, "x') OR ('1'='1"}
	for i, s := range hostile {
		labels := map[string]string{s: s}
		_, err := st.PutMetric(ctx, host.Metric{AgentID: s, Name: s, Value: float64(i), Timestamp: ts, Labels: labels})
		require.NoError(t, err)
		_, err = st.PutAlert(ctx, host.Alert{ID: s, AgentID: s, Severity: abi.SeverityInfo, Status: abi.AlertFiring, Message: s, Labels: labels})
		require.NoError(t, err)
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: s, State: []byte(s)})
		require.NoError(t, err)
	}
	for i, s := range hostile {
		m := []abi.Matcher{{Label: s, Op: abi.MatchEqual, Value: s}}
		metrics, err := st.QueryMetrics(ctx, host.MetricQuery{AgentID: s, Name: s, Labels: m})
		require.NoError(t, err)
		require.Len(t, metrics.Items, 1, s)
		require.Equal(t, float64(i), metrics.Items[0].Value)
		alerts, err := st.QueryAlerts(ctx, host.AlertQuery{AgentID: s, Labels: m})
		require.NoError(t, err)
		require.Len(t, alerts.Items, 1, s)
		states, err := st.QueryAgentStates(ctx, host.AgentStateQuery{AgentIDPrefix: s})
		require.NoError(t, err)
		require.NotEmpty(t, states.Items, s)
		require.Equal(t, s, states.Items[0].AgentID)
	}
	all, err := st.QueryMetrics(ctx, host.MetricQuery{})
	require.NoError(t, err)
	require.Len(t, all.Items, len(hostile))
}

// TestPostgresPagesShrinkToFitResponses checks that a page whose rows
// would not fit in a response is read again with fewer rows: with
// responses bounded to 64 KiB, a query of forty 10 KiB states comes back
// whole over short pages, instead of failing with LIMIT.
func TestPostgresPagesShrinkToFitResponses(t *testing.T) {
	st, _ := openPostgresWith(t, host.Config{Limits: host.Limits{MaxResponseBytes: 64 << 10}})
	ctx := t.Context()
	doc := make([]byte, 10<<10)
	const n = 40
	for i := range n {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("big-%02d", i), State: doc})
		require.NoError(t, err)
	}
	var got []string
	q := host.AgentStateQuery{AgentIDPrefix: "big-"}
	for pages := 0; ; pages++ {
		require.Less(t, pages, n, "every page makes progress")
		page, err := st.QueryAgentStates(ctx, q)
		require.NoError(t, err)
		for _, s := range page.Items {
			got = append(got, s.AgentID)
		}
		if len(page.Next) == 0 {
			break
		}
		q.Cursor = page.Next
	}
	require.Len(t, got, n)
	require.Equal(t, "big-00", got[0])
	require.Equal(t, fmt.Sprintf("big-%02d", n-1), got[n-1])
}

// TestPostgresBatchItemsFailAlone checks that a batch, sent as one
// transaction, still gives each item its own outcome: when a statement
// fails (here a CHECK constraint the test adds to the table), the items
// around it are written all the same.
func TestPostgresBatchItemsFailAlone(t *testing.T) {
	st, schema := openPostgresWith(t, host.Config{})
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "ALTER TABLE "+pgx.Identifier{schema, "agent_states"}.Sanitize()+" ADD CONSTRAINT no_bad CHECK (agent_id <> 'bad')")
	require.NoError(t, err)

	res, err := st.PutAgentStates(ctx, []host.AgentState{
		{AgentID: "ok-1", State: []byte("1")},
		{AgentID: "bad", State: []byte("2")},
		{AgentID: "ok-2", State: []byte("3")},
	})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	require.Error(t, res[1].Err)
	require.NoError(t, res[2].Err)
	for _, id := range []string{"ok-1", "ok-2"} {
		_, err := st.GetAgentState(ctx, id)
		require.NoError(t, err, id)
	}
	_, err = st.GetAgentState(ctx, "bad")
	require.ErrorIs(t, err, host.ErrNotFound)
}

// TestPostgresSharedAcrossStores opens two stores on one schema, as two
// hosts would, and a third after both closed: each sees what the others
// wrote, versions and expiries included, and a stale version is refused
// across them.
func TestPostgresSharedAcrossStores(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real PostgreSQL; skipped with -short")
	}
	ctx := t.Context()
	cfg := host.Config{Plugin: "builtin:postgres", Postgres: &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}}
	open := func() *host.Store {
		st, err := host.Open(ctx, cfg, host.WithCompilationCache(cacheDir))
		require.NoError(t, err)
		return st
	}
	one, two := open(), open()
	put, err := one.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("1")}, host.WithTTL(time.Hour))
	require.NoError(t, err)
	got, err := two.GetAgentState(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, put.Version, got.Version)
	require.True(t, put.ExpiresAt.Equal(got.ExpiresAt))
	next, err := two.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("2")}, host.IfVersion(got.Version))
	require.NoError(t, err)
	_, err = one.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("3")}, host.IfVersion(put.Version))
	require.ErrorIs(t, err, host.ErrConflict, "the version two replaced is stale for one")
	require.NoError(t, one.Close(ctx))
	require.NoError(t, two.Close(ctx))

	three := open()
	t.Cleanup(func() { _ = three.Close(context.Background()) })
	got, err = three.GetAgentState(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, "2", string(got.State))
	require.Equal(t, next.Version, got.Version)
}

// A version is never given twice for a state, even when the schema goes
// back under the backend: an older dump restored in place, or the
// sequence restarted. A client holding the version of a write made
// before would otherwise match a new state's with its if_version, and
// overwrite a write it never saw.
func TestPostgresVersionsOutliveARestoredSchema(t *testing.T) {
	st, schema := openPostgresWith(t, host.Config{})
	ctx := t.Context()
	first, err := st.PutAgentState(ctx, host.AgentState{AgentID: "k1", State: []byte("base")})
	require.NoError(t, err)
	seen, err := st.PutAgentState(ctx, host.AgentState{AgentID: "k1", State: []byte("seen by X")})
	require.NoError(t, err)

	// The schema as a dump taken after the first write would restore it:
	// the state at its first version, the sequence where it was then.
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "UPDATE "+pgx.Identifier{schema, "agent_states"}.Sanitize()+" SET state = 'base', version = $1 WHERE agent_id = 'k1'", first.Version)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "ALTER SEQUENCE "+pgx.Identifier{schema, "state_versions"}.Sanitize()+" RESTART WITH 2")
	require.NoError(t, err)

	by, err := st.PutAgentState(ctx, host.AgentState{AgentID: "k1", State: []byte("written by Y")})
	require.NoError(t, err)
	require.Greater(t, by.Version, seen.Version, "a version given before the restore was given again")
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "k1", State: []byte("X, stale")}, host.IfVersion(seen.Version))
	require.ErrorIs(t, err, host.ErrConflict)

	// Deleted and created again after the restore: the same.
	require.NoError(t, st.DeleteAgentState(ctx, "k1"))
	_, err = conn.Exec(ctx, "ALTER SEQUENCE "+pgx.Identifier{schema, "state_versions"}.Sanitize()+" RESTART WITH 2")
	require.NoError(t, err)
	again, err := st.PutAgentState(ctx, host.AgentState{AgentID: "k1", State: []byte("again")})
	require.NoError(t, err)
	require.Greater(t, again.Version, by.Version)
}
