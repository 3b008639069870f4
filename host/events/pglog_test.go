package events_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/internal/pgbridge"
	"github.com/storage-host/storage-host/host/pgtest"
)

// pgBus returns a Postgres bus on schema as one host would open it: its
// statements through a bridge of its own, logged in as the backend's
// role, and LISTENing as that role. Both close when the test ends.
func pgBus(t *testing.T, url, schema string, opts events.Options) *events.Bus {
	t.Helper()
	ctx := context.Background()
	br, err := pgbridge.Open(ctx, pgbridge.Config{AdminURL: url, Schema: schema})
	require.NoError(t, err)
	b, err := events.NewPostgres(ctx, bridgeSQL(br), schema, br.ConnConfig(), opts, nil)
	if err != nil {
		br.Close()
		require.NoError(t, err)
	}
	t.Cleanup(func() { _ = b.Close(ctx); br.Close() })
	return b
}

// roleSQL runs statements on schema as the backend's role, through a
// bridge of its own (returned too) that closes when the test ends.
func roleSQL(t *testing.T, url, schema string) (events.SQL, *pgbridge.Bridge) {
	t.Helper()
	br, err := pgbridge.Open(context.Background(), pgbridge.Config{AdminURL: url, Schema: schema})
	require.NoError(t, err)
	t.Cleanup(br.Close)
	return bridgeSQL(br), br
}

func bridgeSQL(br *pgbridge.Bridge) events.SQL {
	return func(ctx context.Context, req *abi.PGRequest) ([]abi.PGResult, error) {
		var e abi.Encoder
		br.Do(ctx, req, &e)
		body, err := abi.ParseResponse(e.Bytes())
		if err != nil {
			return nil, err
		}
		d := abi.NewDecoder(body)
		rs := abi.DecodePGResults(d)
		return rs, d.Finish()
	}
}

// Hosts appending at once, each in order: a subscriber on a third host
// gets every event once, each host's in its order. Appends do not wait
// for each other: a transaction that drew a lower sequence number may
// commit after another, and the sequencer gives positions in commit order
// (TestPostgresTransactionStillRunningHoldsBackOnlyItsOwnEvents).
func TestPostgresHostsAppendingAtOnceLoseNothing(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	sub := pgBus(t, url, schema, events.Options{Buffer: 4 * 500})
	s, err := sub.Subscribe(context.Background(), events.Filter{}, "")
	require.NoError(t, err)
	defer s.Close()
	const hosts, each = 4, 500
	var wg sync.WaitGroup
	for h := range hosts {
		pub := pgBus(t, url, schema, events.Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := uint64(1); v <= each; v++ {
				pub.Publish(ev(abi.KindAgentState.Name(), events.OpPut, fmt.Sprint(h), fmt.Sprint(h), v))
			}
		}()
	}
	seen := map[string]uint64{}
	for range hosts * each {
		e := next(t, s)
		require.Equal(t, seen[e.Key]+1, e.Version, "host %s", e.Key)
		seen[e.Key] = e.Version
	}
	wg.Wait()
	quiet(t, s)
}

// An event inserted by a transaction still running, which drew its
// sequence number before events that committed since (a write_events
// plugin's write, say), is neither skipped nor in anyone's way: the
// events after it arrive at once, and it arrives once its transaction
// commits, after them; rolled back, it never does.
func TestPostgresTransactionStillRunningHoldsBackOnlyItsOwnEvents(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	b := pgBus(t, url, schema, events.Options{})
	s, err := b.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer s.Close()
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	table := pgx.Identifier{schema, events.PostgresTable}.Sanitize()
	insert := "INSERT INTO " + table + " (kind, op, agent, key, version, at) VALUES ('agent_states', 'put', 'a', $1, 1, 1) RETURNING seq"

	for _, commit := range []bool{true, false} {
		key := fmt.Sprint("slow-", commit)
		tx, err := admin.Begin(ctx)
		require.NoError(t, err)
		var slowSeq int64
		require.NoError(t, tx.QueryRow(ctx, insert, key).Scan(&slowSeq))

		b.Publish(ev(abi.KindAgentState.Name(), events.OpPut, "a", "fast", 1))
		require.Equal(t, "fast", next(t, s).Key, "the later event is not held back")

		if commit {
			require.NoError(t, tx.Commit(ctx))
			b.Written()
			assert.Equal(t, key, next(t, s).Key, "the event of the transaction that began first is not skipped")
			var fastSeq int64
			require.NoError(t, admin.QueryRow(ctx, "SELECT max(seq) FROM "+table+" WHERE key = 'fast'").Scan(&fastSeq))
			assert.Less(t, slowSeq, fastSeq, "it drew the lower sequence number")
		} else {
			require.NoError(t, tx.Rollback(ctx))
			b.Written()
		}
		quiet(t, s)
	}
}

// A table an older host created, without positions: the column and its
// indexes are added when a host opens it, its rows keep their sequence
// numbers as positions (a position an older host handed out resumes
// where it was), and events flow after them.
func TestPostgresTableOfAnOlderHost(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	run, br := roleSQL(t, url, schema)
	old := []abi.PGStatement{
		{SQL: `CREATE TABLE ` + events.PostgresTable + ` (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			kind text NOT NULL, op text NOT NULL, agent text NOT NULL, key text NOT NULL,
			version bigint NOT NULL, at bigint NOT NULL, data bytea)`},
		{SQL: `INSERT INTO ` + events.PostgresTable + ` (kind, op, agent, key, version, at) VALUES ('alerts', 'put', 'a', 'old1', 1, 1), ('alerts', 'put', 'a', 'old2', 2, 2)`},
	}
	rs, err := run(ctx, &abi.PGRequest{Mode: abi.PGTransaction, Statements: old})
	require.NoError(t, err)
	for _, r := range rs {
		require.NoError(t, r.Err())
	}

	b, err := events.NewPostgres(ctx, run, schema, br.ConnConfig(), events.Options{}, nil)
	require.NoError(t, err)
	defer b.Close(ctx)
	s, err := b.Subscribe(ctx, events.Filter{}, events.Beginning)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, "old1", next(t, s).Key)
	assert.Equal(t, "old2", next(t, s).Key)
	b.Publish(ev(abi.KindAlert.Name(), events.OpPut, "a", "new", 3))
	assert.Equal(t, "new", next(t, s).Key)

	rs, err = run(ctx, &abi.PGRequest{Mode: abi.PGBatch, Statements: []abi.PGStatement{{SQL: "SELECT '" + events.PostgresTable + "'::regclass::oid::bigint"}}})
	require.NoError(t, err)
	held := fmt.Sprint(rs[0].Values[0].Int, "-1") // old1's, as an older host handed it out
	r, err := b.Subscribe(ctx, events.Filter{}, held)
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, "old2", next(t, r).Key)
	assert.Equal(t, "new", next(t, r).Key)

	// Opening it again changes nothing.
	again, err := events.NewPostgres(ctx, run, schema, nil, events.Options{}, nil)
	require.NoError(t, err)
	require.NoError(t, again.Close(ctx))
}

// A transaction that inserted an event and stays open across trims: the
// events after it come and are trimmed as usual, and its own still
// arrives once it commits.
func TestPostgresTrimKeepsWhatReadersCannotReadYet(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	b := pgBus(t, url, schema, events.Options{Retention: 10})
	s, err := b.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer s.Close()
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	table := pgx.Identifier{schema, events.PostgresTable}.Sanitize()
	tx, err := admin.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO "+table+" (kind, op, agent, key, version, at) VALUES ('custom', 'thing', 'a', 'held', 0, 1)")
	require.NoError(t, err)
	for i := range 50 {
		b.Publish(ev("custom", "thing", "a", fmt.Sprint("after-", i), 0))
		assert.Equal(t, fmt.Sprint("after-", i), next(t, s).Key)
	}
	other, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer other.Close(ctx)
	require.Eventually(t, func() bool { // trimmed to the retention
		var n int
		require.NoError(t, other.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
		return n == 10
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, tx.Commit(ctx))
	b.Written()
	assert.Equal(t, "held", next(t, s).Key)
}

// A host that restarts resumes after the last event it saw, from the
// events the table kept while it was down, then live.
func TestPostgresResumeAfterRestart(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	other := pgBus(t, url, schema, events.Options{})

	first := pgBus(t, url, schema, events.Options{})
	s, err := first.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	other.Publish(ev(abi.KindAlert.Name(), events.OpPut, "a", "x", 1))
	seen := next(t, s)
	require.NoError(t, first.Close(ctx))

	for v := uint64(2); v <= 5; v++ {
		other.Publish(ev(abi.KindAlert.Name(), events.OpPut, "a", "x", v))
	}
	again := pgBus(t, url, schema, events.Options{})
	r, err := again.Subscribe(ctx, events.Filter{}, seen.ID)
	require.NoError(t, err)
	defer r.Close()
	for v := uint64(2); v <= 5; v++ {
		e := next(t, r)
		require.Equal(t, v, e.Version)
		assert.Equal(t, "x", e.Key)
		assert.Equal(t, events.OpPut, e.Op)
		assert.Equal(t, "a", e.AgentID)
		assert.False(t, e.Time.IsZero())
	}
	other.Publish(ev(abi.KindAlert.Name(), events.OpPut, "a", "x", 6))
	assert.Equal(t, uint64(6), next(t, r).Version)
}

// The event table dropped (by hand, or the schema restored from a dump):
// a position in the old table is ErrLost, before and after the table is
// created again by the next append, never served as if nothing had
// happened in between; the live subscription ends, and a new one gets the
// new table's events.
func TestPostgresResumeAfterTheTableWasDropped(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	b := pgBus(t, url, schema, events.Options{})
	s, err := b.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m", 0))
	seen := next(t, s)

	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "DROP TABLE "+pgx.Identifier{schema, events.PostgresTable}.Sanitize())
	require.NoError(t, err)
	_, err = b.Subscribe(ctx, events.Filter{}, seen.ID)
	assert.Error(t, err, "the table is gone")

	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m2", 0))
	assert.ErrorIs(t, ended(t, s), events.ErrUnavailable, "the live subscription ends: its table was lost")
	_, err = b.Subscribe(ctx, events.Filter{}, seen.ID)
	assert.ErrorIs(t, err, events.ErrLost, "a new table does not hold what followed an old position")
	s, err = b.Subscribe(ctx, events.Filter{}, events.Beginning)
	require.NoError(t, err)
	defer s.Close()
	e := next(t, s)
	assert.Equal(t, "m2", e.Key)
	assert.NotEqual(t, seen.ID, e.ID)
}

// A table its backend's role altered so that it cannot be put right (a
// column dropped, a trigger raising on the repair's UPDATE) is made anew:
// it kept its backend, and the daemon, from opening again.
func TestPostgresTableAlteredPastRepairIsMadeAnew(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	run, _ := roleSQL(t, url, schema)
	require.NoError(t, events.EnsurePostgresTable(ctx, run, schema))
	rs, err := run(ctx, &abi.PGRequest{Mode: abi.PGTransaction, Statements: []abi.PGStatement{
		{SQL: "CREATE FUNCTION storagehost_no() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'no'; END$$"},
		{SQL: "ALTER TABLE " + events.PostgresTable + " DROP COLUMN pos CASCADE"},
		{SQL: "CREATE TRIGGER storagehost_no BEFORE UPDATE ON " + events.PostgresTable + " FOR EACH STATEMENT EXECUTE FUNCTION storagehost_no()"},
	}})
	require.NoError(t, err)
	for _, r := range rs {
		require.NoError(t, r.Err())
	}

	// Not while an object outside the schema, an operator's, depends on
	// it: CASCADE would drop that too.
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	ops := pgx.Identifier{schema + "_ops"}.Sanitize()
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+ops+"; CREATE VIEW "+ops+".v AS SELECT seq FROM "+pgx.Identifier{schema, events.PostgresTable}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+ops+" CASCADE") })
	err = events.EnsurePostgresTable(ctx, run, schema)
	require.NotErrorIs(t, err, events.ErrTableRebuilt)
	require.ErrorContains(t, err, "not made anew: rule \"_RETURN\" on "+schema+"_ops.v depends on it")
	_, err = admin.Exec(ctx, "DROP SCHEMA "+ops+" CASCADE")
	require.NoError(t, err)

	err = events.EnsurePostgresTable(ctx, run, schema)
	require.ErrorIs(t, err, events.ErrTableRebuilt)
	require.ErrorContains(t, err, "P0001")
	b := pgBus(t, url, schema, events.Options{}) // opens, the table is right
	s, err := b.Subscribe(ctx, events.Filter{}, events.Beginning)
	require.NoError(t, err)
	defer s.Close()
	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m", 0))
	assert.Equal(t, "m", next(t, s).Key)
}

// Events carry a plugin's data, NUL bytes included, and the table stays
// within its retention.
func TestPostgresDataAndRetention(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	b := pgBus(t, url, schema, events.Options{Retention: 10})
	s, err := b.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer s.Close()
	for i := range 50 {
		e := ev("custom", "thing", "a", fmt.Sprint(i), 0)
		e.Data = []byte{0, byte(i), 0xff}
		b.Publish(e)
		require.Equal(t, e.Data, next(t, s).Data) // within the retention
	}
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	// Trimmed after appends, at most once a second: down to the
	// retention once the last trim has run.
	count := func() int {
		var n int
		require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, events.PostgresTable}.Sanitize()).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return count() <= 10 }, 30*time.Second, 50*time.Millisecond)
	assert.Positive(t, count())
}

// An append PostgreSQL refuses for good (the table altered under the
// host: a column renamed) is dropped, counted and surfaced by Err, as a
// Redis refusal is, not retried for ever; once the table is right again,
// the events after it are appended.
func TestPostgresRefusedAppendsAreDroppedNotRetried(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	b := pgBus(t, url, schema, events.Options{})
	s, err := b.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer s.Close()
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	table := pgx.Identifier{schema, events.PostgresTable}.Sanitize()

	_, err = admin.Exec(ctx, "ALTER TABLE "+table+" RENAME COLUMN kind TO k")
	require.NoError(t, err)
	t.Cleanup(func() { // the table put right even when the test fails: Close appends what is queued
		if c, err := pgx.Connect(ctx, url); err == nil {
			_, _ = c.Exec(ctx, "ALTER TABLE "+table+" RENAME COLUMN k TO kind")
			_ = c.Close(ctx)
		}
	})
	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "lost", 0))
	require.Eventually(t, func() bool { return b.Err() != nil }, 10*time.Second, 10*time.Millisecond)
	assert.ErrorIs(t, b.Err(), events.ErrRefused)
	assert.Equal(t, uint64(1), b.Stats().Refused)
	assert.Contains(t, b.Stats().AppendError, "42703") // undefined_column

	_, err = admin.Exec(ctx, "ALTER TABLE "+table+" RENAME COLUMN k TO kind")
	require.NoError(t, err)
	// Subscriptions reading meanwhile may have ended (ErrUnavailable: the
	// table could not be read either); a new one gets what follows.
	s, err = b.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer s.Close()
	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "kept", 0))
	assert.Equal(t, "kept", next(t, s).Key)
	assert.NoError(t, b.Err())
}

// A trigger on the event table that skips every insert (the backend's
// role may create one) does not crash the host: the append is retried,
// and succeeds once the trigger is gone.
func TestPostgresInsertSkippedByATrigger(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	b := pgBus(t, url, schema, events.Options{})
	s, err := b.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer s.Close()
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	skip := pgx.Identifier{schema, "skip"}.Sanitize()
	table := pgx.Identifier{schema, events.PostgresTable}.Sanitize()
	for _, q := range []string{
		"CREATE FUNCTION " + skip + "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
		"CREATE TRIGGER skip BEFORE INSERT ON " + table + " FOR EACH ROW EXECUTE FUNCTION " + skip + "()",
	} {
		_, err := admin.Exec(ctx, q)
		require.NoError(t, err)
	}
	b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "late", 0))
	quiet(t, s)
	_, err = admin.Exec(ctx, "DROP TRIGGER skip ON "+table)
	require.NoError(t, err)
	assert.Equal(t, "late", next(t, s).Key)
}

// The trim each append runs is planned as a scan of the key's index, not
// of the table: at a full retention a sequential scan cost an append
// milliseconds, every append (RATIONALE.md, "Why does an append trim the
// PostgreSQL event table from where it trimmed last?").
func TestPostgresTrimScansTheIndex(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	br, err := pgbridge.Open(ctx, pgbridge.Config{AdminURL: url, Schema: schema})
	require.NoError(t, err)
	defer br.Close()
	var mu sync.Mutex
	var trims []abi.PGStatement
	run := func(ctx context.Context, req *abi.PGRequest) ([]abi.PGResult, error) {
		for _, s := range req.Statements {
			if strings.Contains(s.SQL, "DELETE FROM") {
				mu.Lock()
				trims = append(trims, s)
				mu.Unlock()
			}
		}
		return bridgeSQL(br)(ctx, req)
	}
	const retention = 1000
	b, err := events.NewPostgres(ctx, run, schema, br.ConnConfig(), events.Options{Retention: retention}, nil)
	require.NoError(t, err)
	defer b.Close(ctx)
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	table := pgx.Identifier{schema, events.PostgresTable}.Sanitize()
	_, err = admin.Exec(ctx, "INSERT INTO "+table+" (kind, op, agent, key, version, at) SELECT 'metric', 'put', 'a', 'k', 0, 0 FROM generate_series(1, 50000)")
	require.NoError(t, err)
	// As the table of a busy backend: no fresh statistics (which a
	// sequential scan then relies on).
	_, err = admin.Exec(ctx, "ALTER TABLE "+table+" SET (autovacuum_enabled = false)")
	require.NoError(t, err)

	s, err := b.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer s.Close()
	for i := range 3 {
		b.Publish(ev("custom", "thing", "a", fmt.Sprint(i), 0))
		next(t, s)
	}
	// The first append trims at once, the next ones a second after it.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		var n int
		require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
		return len(trims) >= 2 && n == retention
	}, 30*time.Second, 50*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	// The first trim of a host starts from the beginning of the table;
	// the later ones from where it ended.
	trims = trims[1:]
	_, err = admin.Exec(ctx, "SET search_path = "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	for _, trim := range trims {
		args := make([]any, len(trim.Params))
		for i, p := range trim.Params {
			args[i] = p.Int
		}
		var lines []string
		rows, err := admin.Query(ctx, "EXPLAIN (FORMAT TEXT) "+trim.SQL, args...)
		require.NoError(t, err)
		for rows.Next() {
			var l string
			require.NoError(t, rows.Scan(&l))
			lines = append(lines, l)
		}
		require.NoError(t, rows.Err())
		assert.NotContains(t, fmt.Sprint(lines), "Seq Scan", "%s with %v", trim.SQL, args)
	}
}

// A host vacuums the event table after its sequencer numbered rows: each
// number leaves a dead row version and a dead entry in the index the
// sequencer reads, which autovacuum would leave for a minute or more.
func TestPostgresSequencedRowsAreVacuumed(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	b := pgBus(t, url, schema, events.Options{})
	s, err := b.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer s.Close()
	for i := range 20 {
		b.Publish(ev("custom", "thing", "a", fmt.Sprint("k-", i), 0))
		assert.Equal(t, fmt.Sprint("k-", i), next(t, s).Key)
	}
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	require.Eventually(t, func() bool {
		var n int64
		require.NoError(t, admin.QueryRow(ctx, "SELECT coalesce((SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2), 0)",
			schema, events.PostgresTable).Scan(&n))
		return n > 0
	}, 30*time.Second, 100*time.Millisecond, "no VACUUM of the event table")
}

// The reader of a PostgreSQL log notices when the table lost what it had
// read without any statement failing: truncated (its identity restarted
// or not, with the sequencer's table or not), its rows deleted, dropped
// and created again in one transaction, or an older state of it restored
// in place. Observers are told Down (a read cache flushes), live
// subscriptions end with ErrUnavailable, positions read before the loss
// are ErrLost (but for one a restored state still holds, and one another
// event took before the reader looked), and the events appended after
// are delivered to a new subscription.
func TestPostgresReaderNoticesTheLogWasLost(t *testing.T) {
	const (
		first = 1 << iota // the position of the event before the snapshot
		seen              // the position of the one after, read last
	)
	restore := []string{
		"DELETE FROM " + events.PostgresTable,
		"INSERT INTO " + events.PostgresTable + " OVERRIDING SYSTEM VALUE SELECT * FROM snap_events",
		"DELETE FROM " + events.PostgresTable + "_sequencer",
		"INSERT INTO " + events.PostgresTable + "_sequencer SELECT * FROM snap_sequencer",
		"SELECT setval(pg_get_serial_sequence('" + events.PostgresTable + "', 'seq'), (SELECT max(seq) FROM snap_events))",
	}
	for _, tc := range []struct {
		name string
		// lose runs in one transaction of the admin's, as the backend's
		// role, in its schema; snap_events and snap_sequencer hold copies
		// of the event table and the sequencer's taken after the first
		// event.
		lose []string
		// lost are the positions resuming at which is ErrLost.
		lost int
		// quiet: nothing is appended until the reader has noticed (an
		// event appended before would take the position read last).
		quiet bool
	}{
		{"truncated", []string{"TRUNCATE " + events.PostgresTable}, first | seen, false},
		{"truncated, identity restarted", []string{"TRUNCATE " + events.PostgresTable + " RESTART IDENTITY"}, first | seen, false},
		{"every table truncated", []string{"TRUNCATE " + events.PostgresTable + ", " + events.PostgresTable + "_sequencer RESTART IDENTITY"}, first | seen, false},
		{"rows deleted", []string{"DELETE FROM " + events.PostgresTable}, first | seen, false},
		{"created again", []string{
			"ALTER TABLE " + events.PostgresTable + " RENAME TO old_events",
			"CREATE TABLE " + events.PostgresTable + " (LIKE old_events INCLUDING ALL)",
			"DROP TABLE old_events",
		}, first | seen, false},
		{"older state restored", restore, seen, true},
		{"older state restored, another event at the position read", append(restore,
			"INSERT INTO "+events.PostgresTable+" (kind, op, agent, key, version, at, pos) VALUES ('custom', 'thing', 'a', 'other', 0, 1, 2)",
			"UPDATE "+events.PostgresTable+"_sequencer SET high = 2",
		), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pgtest.URL(t)
			schema := pgtest.Schema(t, pgbridge.RolePrefix)
			ctx := context.Background()
			b := pgBus(t, url, schema, events.Options{})
			var d downs
			require.NoError(t, b.Observe(ctx, &d))
			s, err := b.Subscribe(ctx, events.Filter{}, "")
			require.NoError(t, err)
			defer s.Close()
			admin, err := pgx.Connect(ctx, url)
			require.NoError(t, err)
			defer admin.Close(ctx)
			inSchema := func(stmts ...string) {
				t.Helper()
				tx, err := admin.Begin(ctx)
				require.NoError(t, err)
				defer tx.Rollback(ctx)
				for _, q := range append([]string{
					"SET LOCAL ROLE " + pgx.Identifier{pgbridge.RolePrefix + schema}.Sanitize(),
					"SET LOCAL search_path = " + pgx.Identifier{schema}.Sanitize(),
				}, stmts...) {
					_, err := tx.Exec(ctx, q)
					require.NoError(t, err, q)
				}
				require.NoError(t, tx.Commit(ctx))
			}

			b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m1", 0))
			ids := map[int]string{first: next(t, s).ID}
			inSchema("CREATE TABLE snap_events AS SELECT * FROM "+events.PostgresTable,
				"CREATE TABLE snap_sequencer AS SELECT * FROM "+events.PostgresTable+"_sequencer")
			b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m2", 0))
			e := next(t, s)
			require.Equal(t, "m2", e.Key)
			ids[seen] = e.ID

			inSchema(tc.lose...)
			if !tc.quiet {
				// Appended after the loss, before the reader looks.
				b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "after", 0))
			}
			require.Eventually(t, func() bool { return d.n.Load() > 0 }, 20*time.Second, 10*time.Millisecond, "the observer was not told")
			assert.ErrorIs(t, ended(t, s), events.ErrUnavailable)
			// Published once the new subscription is there: one published
			// before may be appended before it starts reading, and never
			// reach it (seen under a loaded CI run).
			fresh, err := b.Subscribe(ctx, events.Filter{}, "")
			require.NoError(t, err)
			defer fresh.Close()
			b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "later", 0))
			for e := next(t, fresh); e.Key != "later"; e = next(t, fresh) {
			}

			for _, at := range []int{first, seen} {
				r, err := b.Subscribe(ctx, events.Filter{}, ids[at])
				if tc.lost&at != 0 {
					assert.ErrorIs(t, err, events.ErrLost, "resuming after %s, read before the loss", ids[at])
					continue
				}
				if at == first {
					// The restored state holds it: what follows it now follows.
					require.NoError(t, err)
					for e := next(t, r); e.Key != "later"; e = next(t, r) {
						assert.NotEqual(t, "m2", e.Key)
					}
				}
				if err == nil {
					r.Close()
				}
			}
			assert.Equal(t, int32(1), d.n.Load(), "told once")
		})
	}
}

// Positions are not given again after the event table's rows were
// deleted, even with no reader to notice: a subscriber resuming at one
// read before is told ErrLost, not handed the events that took it. The
// sequencer's row, which keeps the highest position given and makes runs
// one at a time, is put back when it was deleted.
func TestPostgresPositionsAreNotGivenAgain(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	table := pgx.Identifier{schema, events.PostgresTable}.Sanitize()
	sequencer := pgx.Identifier{schema, events.PostgresTable + "_sequencer"}.Sanitize()
	count := func(q string) int {
		var n int
		require.NoError(t, admin.QueryRow(ctx, q).Scan(&n))
		return n
	}

	reader := pgBus(t, url, schema, events.Options{})
	s, err := reader.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	pub := pgBus(t, url, schema, events.Options{}) // never read: no reader of its own looks
	var ids []string
	for i := range 3 {
		pub.Publish(ev("custom", "thing", "a", fmt.Sprint("before-", i), 0))
		ids = append(ids, next(t, s).ID)
	}
	s.Close()
	require.NoError(t, reader.Close(ctx))

	_, err = admin.Exec(ctx, "DELETE FROM "+table)
	require.NoError(t, err)
	for i := range 3 {
		pub.Publish(ev("custom", "thing", "a", fmt.Sprint("after-", i), 0))
	}
	require.Eventually(t, func() bool {
		return count("SELECT count(*) FROM "+table+" WHERE pos IS NOT NULL") == 3
	}, 20*time.Second, 10*time.Millisecond)
	later := pgBus(t, url, schema, events.Options{})
	for _, id := range ids {
		_, err := later.Subscribe(ctx, events.Filter{}, id)
		assert.ErrorIs(t, err, events.ErrLost, "resuming after %s, whose event was deleted", id)
	}

	_, err = admin.Exec(ctx, "DELETE FROM "+sequencer)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return count("SELECT count(*) FROM "+sequencer) == 1 },
		20*time.Second, 10*time.Millisecond, "the sequencer's row is not back")
}

// A TRUNCATE of the event table during a sequencer run waits for it, or
// it for the TRUNCATE, never both (a deadlock, which PostgreSQL ends by
// failing one): the run takes the table before the sequencer's row, as the
// TRUNCATE and its trigger do. And the trigger starts the sequencer again
// from 0 all the same.
func TestPostgresTruncateDuringASequencerRun(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, pgbridge.RolePrefix)
	ctx := context.Background()
	b := pgBus(t, url, schema, events.Options{})
	for range 3 {
		b.Publish(ev(abi.KindMetric.Name(), events.OpPut, "a", "m", 0))
	}
	require.NoError(t, b.Flush(ctx))

	run, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer run.Close(ctx)
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	table := pgx.Identifier{schema, events.PostgresTable}.Sanitize()
	sequencer := pgx.Identifier{schema, events.PostgresTable + "_sequencer"}.Sanitize()
	_, err = admin.Exec(ctx, "UPDATE "+sequencer+" SET high = 3")
	require.NoError(t, err)

	tx, err := run.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, "SET LOCAL search_path = "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	_, err = tx.Exec(ctx, events.PGSequenceBegin)
	require.NoError(t, err)

	truncated := make(chan error, 1)
	go func() {
		_, err := admin.Exec(ctx, "TRUNCATE "+table)
		truncated <- err
	}()
	require.Eventually(t, func() bool { // the TRUNCATE waits for the run's lock
		var waiting bool
		err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'TRUNCATE %')").Scan(&waiting)
		return err == nil && waiting
	}, 20*time.Second, 10*time.Millisecond, "the TRUNCATE does not wait for the run")
	// The run goes on to the table, as a sequencer run does, and ends.
	_, err = tx.Exec(ctx, "UPDATE "+table+" SET pos = pos WHERE false")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	select {
	case err := <-truncated:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the TRUNCATE did not end")
	}
	var high int64
	require.NoError(t, admin.QueryRow(ctx, "SELECT high FROM "+sequencer).Scan(&high))
	require.Zero(t, high, "the sequencer starts again from 0")
}
