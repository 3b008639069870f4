package host_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/pgtest"
)

// postgresPlugin is the plugin the PostgreSQL tests of the host run:
// builtin:postgres once it is built in, else sdk/example/pgstates (agent
// states only) built by the test.
func postgresPlugin(t *testing.T) host.Config {
	t.Helper()
	if _, err := host.BuiltinWASM("postgres"); err == nil {
		return host.Config{Plugin: "builtin:postgres"}
	}
	return host.Config{WASM: pgStatesPlugin(t)}
}

// recv returns the subscription's next event, failing t if none comes
// within 30 seconds (a CI machine runs other packages' tests beside this
// one).
func recv(t *testing.T, sub *events.Subscription) events.Event {
	t.Helper()
	select {
	case e, ok := <-sub.Events():
		require.True(t, ok, "subscription ended: %v", sub.Err())
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
		return events.Event{}
	}
}

// openPGShared opens the postgres plugin on schema: two calls with one
// schema are two hosts sharing a backend.
func openPGShared(t *testing.T, url, schema string, cache int) *host.Store {
	t.Helper()
	cfg := postgresPlugin(t)
	cfg.Name = "pg"
	cfg.Postgres = &host.PostgresConfig{URL: url, Schema: schema}
	cfg.Cache = host.CacheOptions{Entries: cache}
	st, err := host.Open(t.Context(), cfg, host.WithCompilationCache(pgCache))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// Two hosts on one PostgreSQL schema see each other's writes as events,
// in order, and a cached read on one never returns what a write through
// the other replaced once that write's event has arrived.
func TestPostgresEventsAcrossHosts(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "storagehost_")
	cached := openPGShared(t, url, schema, 1000)
	writer := openPGShared(t, url, schema, 0)
	sub, err := cached.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()
	back, err := writer.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer back.Close()

	for i := range 20 {
		s, err := writer.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
		e := recv(t, sub) // the next event is this write's: nothing else writes
		require.Equal(t, events.Event{ID: e.ID, Kind: abi.KindAgentState.Name(), Op: events.OpPut, AgentID: "a1", Key: "a1", Version: s.Version, Time: e.Time}, e)
		for range 2 {
			got, err := cached.GetAgentState(ctx, "a1")
			require.NoError(t, err)
			require.Equal(t, s.Version, got.Version, "round %d: stale read after the event arrived", i)
		}
	}
	assert.GreaterOrEqual(t, cached.Stats().Cache.Hits, uint64(10))

	// The other way round: a write through the cached host reaches the writer.
	s, err := cached.PutAgentState(ctx, host.AgentState{AgentID: "b", State: []byte("x")})
	require.NoError(t, err)
	waitEvent(t, back, "b", s.Version)
	require.NoError(t, writer.DeleteAgentState(ctx, "b"))
	waitEvent(t, sub, "b", 0)
	_, err = cached.GetAgentState(ctx, "b")
	assert.ErrorIs(t, err, host.ErrNotFound)
}

// A subscriber resumes after a restart of its host from the position it
// had reached, and gets the events written meanwhile by another host; a
// position the table no longer holds is events.ErrLost.
func TestPostgresEventsResumeAfterRestart(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "storagehost_")
	writer := openPGShared(t, url, schema, 0)
	first := openPGShared(t, url, schema, 0)
	sub, err := first.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	s, err := writer.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("first")})
	require.NoError(t, err)
	seen := recv(t, sub)
	require.Equal(t, s.Version, seen.Version)
	require.NoError(t, first.Close(ctx))

	var versions []uint64
	for i := range 3 {
		s, err := writer.PutAgentState(ctx, host.AgentState{AgentID: "a", State: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
		versions = append(versions, s.Version)
	}
	again := openPGShared(t, url, schema, 0)
	r, err := again.Subscribe(ctx, events.Filter{}, seen.ID)
	require.NoError(t, err)
	defer r.Close()
	for _, v := range versions {
		require.Equal(t, v, recv(t, r).Version)
	}

	_, err = again.Subscribe(ctx, events.Filter{}, "1-1") // another table's position
	assert.ErrorIs(t, err, events.ErrLost)
}

// The connection that LISTENs for event notifications holds the backend's
// role, not the admin's: it stays open as long as the backend does.
func TestPostgresEventListenerIsTheBackendsRole(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "storagehost_")
	openPGShared(t, url, schema, 0)
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var users []string
	require.Eventually(t, func() bool {
		rows, err := conn.Query(t.Context(), "SELECT usename FROM pg_stat_activity WHERE application_name = $1", "storage-host events "+schema)
		require.NoError(t, err)
		users, err = pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return len(users) > 0
	}, 10*time.Second, 20*time.Millisecond, "no listener connection")
	require.Equal(t, []string{host.PostgresRole(schema)}, users)
}

// A write through the postgres plugin (write_events) has its event in the
// log when it is acknowledged, not only once an appender has caught up:
// the statement that wrote it inserted it, so a host that died right
// after answering would lose neither. One that did not write (a stale
// version) has no event, and a write with events off inserts none.
func TestPostgresWriteCommitsItsEvent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	count := func(schema, key string) int {
		var n int
		require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, events.PostgresTable}.Sanitize()+" WHERE key = $1", key).Scan(&n))
		return n
	}

	schema := pgtest.Schema(t, "storagehost_")
	st := openPGShared(t, url, schema, 0)
	require.True(t, st.Metadata().Features.Has(abi.FeatureWriteEvents))
	for i := range 20 {
		key := fmt.Sprint("a", i)
		s, err := st.PutAgentState(ctx, host.AgentState{AgentID: key, State: []byte("x")})
		require.NoError(t, err)
		require.Equal(t, 1, count(schema, key), "the event of the acknowledged write of %s", key)
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: key, State: []byte("y")}, host.IfVersion(s.Version+100))
		require.ErrorIs(t, err, host.ErrConflict)
		require.Equal(t, 1, count(schema, key), "a write that did not happen has no event")
	}

	// An alert's delete names only the alert; its event carries the agent
	// all the same (the delete returned it).
	_, err = st.PutAlert(ctx, host.Alert{ID: "al", AgentID: "agent-7", Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: "m"})
	require.NoError(t, err)
	require.NoError(t, st.DeleteAlert(ctx, "al"))
	var op, agent string
	require.NoError(t, admin.QueryRow(ctx, "SELECT op, agent FROM "+pgx.Identifier{schema, events.PostgresTable}.Sanitize()+" WHERE key = 'al' ORDER BY seq DESC LIMIT 1").Scan(&op, &agent))
	assert.Equal(t, [2]string{events.OpDelete, "agent-7"}, [2]string{op, agent})

	// Events off: the writes work, and insert nothing.
	quiet := pgtest.Schema(t, "storagehost_")
	cfg := postgresPlugin(t)
	cfg.Postgres = &host.PostgresConfig{URL: url, Schema: quiet}
	cfg.DisableEvents = true
	off, err := host.Open(ctx, cfg, host.WithCompilationCache(pgCache))
	require.NoError(t, err)
	defer off.Close(ctx)
	_, err = off.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("x")})
	require.NoError(t, err)
	require.NoError(t, off.DeleteAgentState(ctx, "a"))
	assert.Zero(t, count(quiet, "a"))
}

// The event table dropped by hand under a write_events backend: its
// writes fail (they insert into it) until the host has created it again,
// which it does by itself, with no event or subscriber to prompt it.
func TestPostgresWritesComeBackAfterTheEventTableWasDropped(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "storagehost_")
	st := openPGShared(t, url, schema, 0)
	_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("x")})
	require.NoError(t, err)
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "DROP TABLE "+pgx.Identifier{schema, events.PostgresTable}.Sanitize())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("y")})
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)
}

// When PostgreSQL loses a backend's data without any statement failing
// (tables truncated, the schema created again, an older state restored
// in place), a host with a read cache stops serving the records it lost:
// its event log's reader notices, and the cache is flushed, as when the
// log cannot be read (TestCacheFlushedWhenRedisLosesItsData for Redis).
// Subscriptions end (unavailable) when the event table lost events, and
// go on when only the record tables lost rows.
func TestCacheFlushedWhenPostgresLosesItsData(t *testing.T) {
	for _, tc := range []struct {
		name string
		// lose runs as the admin, in one transaction; old is the schema
		// holding the tables as they were after the first write (or ""
		// for none), and the state a read must come back to.
		lose func(t *testing.T, tx pgx.Tx, schema, old string)
		want string // the state read once the loss is noticed; "" for none
		ends bool   // the event table lost events: subscriptions end
	}{
		{"every table truncated", func(t *testing.T, tx pgx.Tx, schema, _ string) {
			txExec(t, tx, "TRUNCATE "+strings.Join(qualified(schema, tables(t, tx, schema)), ", "))
		}, "", true},
		{"record tables truncated", func(t *testing.T, tx pgx.Tx, schema, _ string) {
			var records []string
			for _, table := range tables(t, tx, schema) {
				if !strings.HasPrefix(table, "storagehost_") {
					records = append(records, table)
				}
			}
			txExec(t, tx, "TRUNCATE "+strings.Join(qualified(schema, records), ", "))
		}, "", false},
		{"older state restored in place", func(t *testing.T, tx pgx.Tx, schema, old string) {
			for _, table := range tables(t, tx, schema) {
				txExec(t, tx, "DELETE FROM "+pgx.Identifier{schema, table}.Sanitize())
				txExec(t, tx, "INSERT INTO "+pgx.Identifier{schema, table}.Sanitize()+" OVERRIDING SYSTEM VALUE SELECT * FROM "+pgx.Identifier{old, table}.Sanitize())
			}
			rows, err := tx.Query(t.Context(), "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = $1 AND last_value IS NOT NULL", old)
			require.NoError(t, err)
			type seq struct {
				Name string
				Last int64
			}
			seqs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[seq])
			require.NoError(t, err)
			for _, s := range seqs {
				txExec(t, tx, "SELECT setval($1, $2)", pgx.Identifier{schema, s.Name}.Sanitize(), s.Last)
			}
		}, "first", true},
		{"schema created again", func(t *testing.T, tx pgx.Tx, schema, _ string) {
			// As a restore of an empty backend's dump in one transaction:
			// the same tables, the host's own rows, no records.
			gone := schema + "_gone"
			role := pgx.Identifier{host.PostgresRole(schema)}.Sanitize()
			txExec(t, tx, "ALTER SCHEMA "+pgx.Identifier{schema}.Sanitize()+" RENAME TO "+pgx.Identifier{gone}.Sanitize())
			txExec(t, tx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()+" AUTHORIZATION "+role)
			txExec(t, tx, "SET LOCAL ROLE "+role)
			rows, err := tx.Query(t.Context(), `SELECT relname FROM pg_class c WHERE relkind = 'S' AND relnamespace = $1::regnamespace
				AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))`, gone)
			require.NoError(t, err)
			seqs, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			for _, s := range seqs {
				txExec(t, tx, "CREATE SEQUENCE "+pgx.Identifier{schema, s}.Sanitize())
			}
			for _, table := range tables(t, tx, gone) {
				txExec(t, tx, "CREATE TABLE "+pgx.Identifier{schema, table}.Sanitize()+" (LIKE "+pgx.Identifier{gone, table}.Sanitize()+" INCLUDING ALL)")
				if strings.HasPrefix(table, "storagehost_") && table != events.PostgresTable {
					txExec(t, tx, "INSERT INTO "+pgx.Identifier{schema, table}.Sanitize()+" SELECT * FROM "+pgx.Identifier{gone, table}.Sanitize())
				}
			}
			txExec(t, tx, "RESET ROLE")
			txExec(t, tx, "DROP SCHEMA "+pgx.Identifier{gone}.Sanitize()+" CASCADE")
		}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			url := pgtest.URL(t)
			schema := pgtest.Schema(t, "storagehost_")
			cached := openPGShared(t, url, schema, 1000)
			writer := openPGShared(t, url, schema, 0)
			sub, err := cached.Subscribe(ctx, events.Filter{}, "")
			require.NoError(t, err)
			defer sub.Close()
			admin, err := pgx.Connect(ctx, url)
			require.NoError(t, err)
			defer admin.Close(ctx)

			s, err := writer.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("first")})
			require.NoError(t, err)
			waitEvent(t, sub, "a", s.Version)
			// The tables as they are now, in a schema of the test's.
			old := schema + "_old"
			t.Cleanup(func() {
				_, _ = admin.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{old}.Sanitize()+" CASCADE")
			})
			_, err = admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{old}.Sanitize())
			require.NoError(t, err)
			for _, table := range tables(t, admin, schema) {
				_, err := admin.Exec(ctx, "CREATE TABLE "+pgx.Identifier{old, table}.Sanitize()+" AS SELECT * FROM "+pgx.Identifier{schema, table}.Sanitize())
				require.NoError(t, err)
			}
			for _, q := range []string{"SELECT sequencename FROM pg_sequences WHERE schemaname = $1"} {
				rows, err := admin.Query(ctx, q, schema)
				require.NoError(t, err)
				seqs, err := pgx.CollectRows(rows, pgx.RowTo[string])
				require.NoError(t, err)
				for _, name := range seqs {
					_, err := admin.Exec(ctx, "CREATE SEQUENCE "+pgx.Identifier{old, name}.Sanitize())
					require.NoError(t, err)
					_, err = admin.Exec(ctx, "SELECT setval($1, (SELECT last_value FROM "+pgx.Identifier{schema, name}.Sanitize()+"))", pgx.Identifier{old, name}.Sanitize())
					require.NoError(t, err)
				}
			}

			s, err = writer.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("second")})
			require.NoError(t, err)
			waitEvent(t, sub, "a", s.Version)
			for range 2 {
				got, err := cached.GetAgentState(ctx, "a")
				require.NoError(t, err)
				require.Equal(t, "second", string(got.State))
			}
			require.Equal(t, 1, cached.Stats().Cache.Entries)
			flushes := cached.Stats().Cache.Flushes

			tx, err := admin.Begin(ctx)
			require.NoError(t, err)
			tc.lose(t, tx, schema, old)
			require.NoError(t, tx.Commit(ctx))

			var last string
			require.Eventually(t, func() bool {
				got, err := cached.GetAgentState(ctx, "a")
				switch {
				case tc.want == "" && errors.Is(err, host.ErrNotFound):
					return true
				case err != nil:
					last = err.Error()
				default:
					last = string(got.State)
				}
				return tc.want != "" && last == tc.want
			}, 30*time.Second, 20*time.Millisecond, "what PostgreSQL lost is still served")
			assert.Greater(t, cached.Stats().Cache.Flushes, flushes)
			assert.True(t, cached.Stats().Cache.Enabled)

			s, err = writer.PutAgentState(ctx, host.AgentState{AgentID: "a", State: []byte("third")})
			require.NoError(t, err)
			if !tc.ends {
				waitEvent(t, sub, "a", s.Version)
				return
			}
			for timeout := time.After(30 * time.Second); ; {
				select {
				case _, ok := <-sub.Events():
					if ok {
						continue
					}
				case <-timeout:
					t.Fatal("the subscription did not end")
				}
				break
			}
			assert.ErrorIs(t, sub.Err(), events.ErrUnavailable)
		})
	}
}

// querier is what tables needs of a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// tables lists the tables of schema.
func tables(t *testing.T, q querier, schema string) []string {
	t.Helper()
	rows, err := q.Query(t.Context(), "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func qualified(schema string, tables []string) []string {
	out := make([]string, len(tables))
	for i, table := range tables {
		out[i] = pgx.Identifier{schema, table}.Sanitize()
	}
	return out
}

func txExec(t *testing.T, tx pgx.Tx, sql string, args ...any) {
	t.Helper()
	_, err := tx.Exec(t.Context(), sql, args...)
	require.NoError(t, err, sql)
}

// A plugin may delete its own backend's events (the table is in its
// schema) as fast as the reader reads them: every time is a loss, the
// cache is flushed and subscriptions end, but the host warns of it only
// now and then, not at every read.
func TestPostgresEventsDeletedOverAndOverWarnSeldom(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, "storagehost_")
	logs := &foreignLog{}
	cfg := postgresPlugin(t)
	cfg.Name = "pg"
	cfg.Postgres = &host.PostgresConfig{URL: url, Schema: schema}
	cfg.Cache = host.CacheOptions{Entries: 1000}
	start := time.Now()
	st, err := host.Open(ctx, cfg, host.WithCompilationCache(pgCache), host.WithLogger(logs.logger()))
	require.NoError(t, err)
	defer st.Close(ctx)
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)

	const losses = 8
	for i := range losses {
		sub, err := st.Subscribe(ctx, events.Filter{}, "")
		require.NoError(t, err)
		s, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a", State: fmt.Append(nil, i)})
		require.NoError(t, err)
		waitEvent(t, sub, "a", s.Version) // the reader is at it
		// As the plugin's role would.
		tx, err := admin.Begin(ctx)
		require.NoError(t, err)
		txExec(t, tx, "SET LOCAL ROLE "+pgx.Identifier{host.PostgresRole(schema)}.Sanitize())
		txExec(t, tx, "DELETE FROM "+pgx.Identifier{schema, events.PostgresTable}.Sanitize())
		require.NoError(t, tx.Commit(ctx))
		for timeout := time.After(30 * time.Second); ; {
			select {
			case _, ok := <-sub.Events():
				if ok {
					continue
				}
			case <-timeout:
				t.Fatalf("loss %d: the subscription did not end", i)
			}
			break
		}
		require.ErrorIs(t, sub.Err(), events.ErrUnavailable, "loss %d", i)
	}
	assert.GreaterOrEqual(t, st.Stats().Cache.Flushes, uint64(losses))
	// One warning from the bus and one from the cache every 10 s at most.
	most := 1 + int(time.Since(start)/(10*time.Second))
	out := logs.String()
	warnings := func(about string) (n int) {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "[WARN]") && strings.Contains(line, about) {
				n++
			}
		}
		return n
	}
	assert.Positive(t, warnings("PostgreSQL schema "+schema), "the warning names the schema")
	assert.LessOrEqual(t, warnings("pg: the event log lost events;"), most, out)
	assert.LessOrEqual(t, warnings("pg: read cache"), most, out)
}
