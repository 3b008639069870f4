package pgbridge

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/pgtest"
)

// roleSessions counts the server processes of role, as the admin sees
// them.
func roleSessions(t *testing.T, adm *pgx.Conn, role string) int {
	t.Helper()
	var n int
	require.NoError(t, adm.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n))
	return n
}

// A migration that switches off the bounds the host set in the server
// (statement_timeout, lock_timeout: session settings its own SQL may
// change, several statements running at once through the simple
// protocol) is bounded all the same, by the host: with a context that
// never ends (the daemon's, at load), Migrate answers near the statement
// timeout plus LockWait, naming the migration and the timeout, and no
// server process of the role is left, in a statement, waiting for a
// lock, or in the commit (a deferred trigger).
func TestMigrationSwitchingOffItsTimeoutIsEnded(t *testing.T) {
	const timeout = time.Second
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, RolePrefix)
	adm := admin(t)
	table := pgx.Identifier{schema, "held"}.Sanitize()
	cases := []struct {
		name string
		ms   abi.Migrations
		// hold, if set, runs on an admin's connection of its own, in a
		// transaction open while the migrations run.
		hold string
		// names is what the error names.
		names string
	}{
		{name: "set local", ms: abi.Migrations{
			{Version: 1, SQL: "SET LOCAL statement_timeout = 0; SELECT pg_sleep(3600)"},
		}, names: "migration 1 of schema"},
		{name: "set", ms: abi.Migrations{
			{Version: 1, SQL: "SET statement_timeout = 0; SELECT pg_sleep(3600)"},
		}, names: "migration 1 of schema"},
		{name: "commit", ms: abi.Migrations{
			{Version: 1, SQL: `SET statement_timeout = 0;
				CREATE TABLE t (x int);
				CREATE FUNCTION sleep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3600); RETURN NULL; END $$;
				CREATE CONSTRAINT TRIGGER sleep AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sleep();
				INSERT INTO t VALUES (1)`},
		}, names: "migrations of schema"},
		{name: "lock", ms: abi.Migrations{
			{Version: 1, SQL: "CREATE TABLE held (x int)"},
			{Version: 2, SQL: "SET lock_timeout = 0; SET statement_timeout = 0; SELECT * FROM held"},
		}, hold: "LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE", names: "migration 2 of schema"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Open(context.Background(), Config{AdminURL: url, Schema: schema, StatementTimeout: timeout})
			require.NoError(t, err)
			if c.hold != "" {
				_, err := b.Migrate(context.Background(), c.ms[:1])
				require.NoError(t, err)
				tx, err := admin(t).Begin(context.Background())
				require.NoError(t, err)
				_, err = tx.Exec(context.Background(), c.hold)
				require.NoError(t, err)
				defer tx.Rollback(context.Background())
			}
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				_, err := b.Migrate(context.Background(), c.ms)
				done <- err
			}()
			select {
			case err = <-done:
			case <-time.After(timeout + LockWait + 10*time.Second):
				t.Errorf("Migrate still runs %v after it started", time.Since(start).Round(time.Millisecond))
				// Unblock it, so that the test ends.
				_, _ = adm.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", b.Role())
				err = <-done
			}
			took := time.Since(start)
			b.Close()
			require.Error(t, err, "the migration cannot have finished")
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Contains(t, err.Error(), c.names+" "+schema)
			require.Contains(t, err.Error(), (timeout + LockWait).String())
			require.Less(t, took, timeout+LockWait+3*time.Second, "Migrate is answered near its timeout")
			t.Logf("%v: %v", took.Round(time.Millisecond), err)
			require.Eventually(t, func() bool { return roleSessions(t, adm, b.Role()) == 0 }, 10*time.Second, 20*time.Millisecond,
				"a server process of the role is left")
		})
	}
}

// A migration whose statements return rows (a SELECT of a large table)
// runs as any other: the host reads its rows one at a time and throws
// them away, rather than holding them all (pgconn's ReadAll held 300 MB
// here, and rows of many NULLs six times their size on the wire).
func TestMigrationRowsAreNotHeld(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, RolePrefix)
	b, err := Open(context.Background(), Config{AdminURL: url, Schema: schema, StatementTimeout: time.Minute})
	require.NoError(t, err)
	defer b.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	version, err := b.Migrate(context.Background(), abi.Migrations{
		{Version: 1, SQL: "CREATE TABLE made (x int); SELECT repeat('x', 1000) FROM generate_series(1, 300000)"},
	})
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	require.Equal(t, uint64(1), version)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("300 MB of rows: %d MB allocated", allocated>>20)
	require.Less(t, allocated, uint64(100<<20), "the migration's rows were held")
}
