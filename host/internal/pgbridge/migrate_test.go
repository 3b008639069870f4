package pgbridge

import (
	"context"
	"strings"
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

// A migration whose statements return rows (a SELECT of a large table, or
// of rows of many NULLs, 4 bytes each on the wire and none in a value) is
// refused once they pass maxMigrationRows: the host reads them one at a
// time and throws them away, rather than holding them all, and asks the
// server to cancel. What it created is rolled back, and its version not
// recorded. Rows under the bound pass.
func TestMigrationRowsAreBounded(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, RolePrefix)
	b, err := Open(context.Background(), Config{AdminURL: url, Schema: schema, StatementTimeout: time.Minute})
	require.NoError(t, err)
	defer b.Close()
	nulls := "SELECT " + strings.Repeat("NULL, ", 99) + "NULL FROM generate_series(1, 100000000)"
	for name, sql := range map[string]string{
		"nulls": "CREATE TABLE made (x int); " + nulls,
		"text":  "CREATE TABLE made (x int); SELECT repeat('x', 1000) FROM generate_series(1, 100000000)",
	} {
		start := time.Now()
		version, err := b.Migrate(context.Background(), abi.Migrations{{Version: 1, SQL: sql}})
		took := time.Since(start)
		require.ErrorContains(t, err, "migration 1 of schema "+schema+": its statements returned more than", name)
		require.Zero(t, version, name)
		require.Less(t, took, 30*time.Second, "%s: refused as it passed the bound, not at the statement timeout", name)
		t.Logf("%s: %v: %v", name, took.Round(time.Millisecond), err)
	}
	var made bool
	require.NoError(t, admin(t).QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", schema+".made").Scan(&made))
	require.False(t, made, "what a refused migration created was rolled back")

	version, err := b.Migrate(context.Background(), abi.Migrations{{Version: 1, SQL: "CREATE TABLE made (x int); SELECT g FROM generate_series(1, 1000) g"}})
	require.NoError(t, err, "rows under the bound")
	require.Equal(t, uint64(1), version)
}
