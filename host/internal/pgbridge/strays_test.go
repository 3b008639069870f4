package pgbridge

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/pgtest"
)

// passwordBackend opens a bridge on PasswordURL's server, where the role's
// password is what lets the host log in as it, and returns the bridge
// and a function counting the role's sessions whose statement has mark
// in it, as the admin sees them.
func passwordBackend(t *testing.T, cfg Config, mark string) (*Bridge, func() int) {
	t.Helper()
	url := pgtest.PasswordURL(t)
	schema, role := privateSchema()
	adm, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = adm.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
		adm.Close(context.Background())
		pgtest.Drop(t, url, schema, role)
	})
	cfg.AdminURL, cfg.Schema = url, schema
	return open(t, cfg), sessionsRunningOn(t, adm, role, mark)
}

// A role may change its own password, and the host then could not log in
// as it to end the sessions it gave up on: a statement that catches its
// cancel ran on, unkillable, holding the database's vacuum horizon and
// burning transaction IDs (an outside check: four such sessions survived
// the host closing and opening again). A login refused for the password
// has the admin set it back, and the session is ended.
func TestRoleChangingItsPasswordIsStillEnded(t *testing.T) {
	b, running := passwordBackend(t, Config{MaxConns: 2}, "storagehost_password")
	b.cancelWait = 100 * time.Millisecond
	ctx := context.Background()
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("ALTER ROLE CURRENT_USER PASSWORD 'the plugin''s own'"))
	require.NoError(t, err)
	mustOK(t, rs)

	loop := unstoppable("storagehost_password", "")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = do(t, cctx, b, abi.PGBatch, stmt(loop))
	cancel()
	require.Error(t, err, "the call cannot have finished")
	require.Eventually(t, func() bool { return running() == 0 }, 10*time.Second, 20*time.Millisecond,
		"the statement still runs in the server after its call ended")

	// A transaction prepared by a session that then ends itself, after
	// the password changed again: rolled back all the same.
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("ALTER ROLE CURRENT_USER PASSWORD 'again'"))
	require.NoError(t, err)
	mustOK(t, rs)
	_, err = do(t, ctx, b, abi.PGBatch, stmt("CREATE TABLE IF NOT EXISTS kept (v int)"))
	require.NoError(t, err)
	_, err = do(t, ctx, b, abi.PGBatch, stmt("BEGIN"), stmt("LOCK TABLE kept IN ACCESS EXCLUSIVE MODE"),
		stmt("PREPARE TRANSACTION 'password-then-gone'"), stmt("SELECT pg_terminate_backend(pg_backend_pid())"))
	require.Error(t, err)
	url := pgtest.PasswordURL(t)
	require.Eventually(t, func() bool { return preparedBy(t, url, b.Role()) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the prepared transaction outlived the session that changed the password")

	// The pool still serves, on new connections too.
	b.pool.Reset()
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	mustOK(t, rs)
}

// A session of the role in one statement for longer than RunawayAfter is
// ended by the bridge's sweep, whoever started it and however its
// termination was missed: here one an earlier host left running (started
// as the role beside the bridge, not by it). An idle session of the role
// is left alone.
func TestRunawaySessionsAreSwept(t *testing.T) {
	b, running := passwordBackend(t, Config{RunawayAfter: 2 * time.Second}, "storagehost_runaway")
	ctx := context.Background()
	url := pgtest.PasswordURL(t)
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	cfg.User, cfg.Password = b.Role(), rolePassword(url, b.Role())
	idle, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer idle.Close(ctx)
	stray, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer stray.Close(ctx)

	start := time.Now()
	ended := make(chan error, 1)
	go func() {
		_, err := stray.Exec(ctx, unstoppable("storagehost_runaway", ""))
		ended <- err
	}()
	require.Eventually(t, func() bool { return running() == 1 }, 10*time.Second, 20*time.Millisecond)
	select {
	case err := <-ended:
		require.Error(t, err, "a loop does not end by itself")
	case <-time.After(15 * time.Second):
		t.Fatal("the runaway session was not ended")
	}
	require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "ended before it ran RunawayAfter")
	// Its client hears of the end before the server process is gone.
	require.Eventually(t, func() bool { return running() == 0 }, 10*time.Second, 20*time.Millisecond)
	var one int
	require.NoError(t, idle.QueryRow(ctx, "SELECT 1").Scan(&one), "an idle session of the role was ended")
}

// The host's own statements in the role's sessions (ending strays,
// rolling back prepared transactions, the session reset) run with the
// plugin's schema on the search_path, where the plugin may define
// functions and operators for argument types pg_catalog has no exact
// match for: an operator * (bigint, interval) that raised took over the
// statement that ends strays, and no session of the role could be ended
// (an outside check). Every name in them is pg_catalog's.
func TestPluginObjectsDoNotTakeOverTheHostsSQL(t *testing.T) {
	b := open(t, Config{MaxConns: 2})
	b.cancelWait = 100 * time.Millisecond
	ctx := context.Background()
	rs, err := do(t, ctx, b, abi.PGBatch,
		stmt(`CREATE FUNCTION hijack_mul(bigint, interval) RETURNS interval LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RAISE EXCEPTION 'hijacked'; END $f$`),
		stmt(`CREATE OPERATOR * (LEFTARG = bigint, RIGHTARG = interval, FUNCTION = hijack_mul)`),
		stmt(`CREATE FUNCTION hijack_ne(oid, integer) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RAISE EXCEPTION 'hijacked'; END $f$`),
		stmt(`CREATE OPERATOR <> (LEFTARG = oid, RIGHTARG = integer, FUNCTION = hijack_ne)`),
		stmt(`CREATE FUNCTION hijack_eq(name, text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RAISE EXCEPTION 'hijacked'; END $f$`),
		stmt(`CREATE OPERATOR = (LEFTARG = name, RIGHTARG = text, FUNCTION = hijack_eq)`),
		stmt(`CREATE FUNCTION pg_terminate_backend(integer) RETURNS boolean LANGUAGE sql AS $f$ SELECT false $f$`),
		stmt(`CREATE FUNCTION current_database(integer DEFAULT 0) RETURNS name LANGUAGE sql AS $f$ SELECT 'elsewhere'::name $f$`))
	require.NoError(t, err)
	mustOK(t, rs)

	running := sessionsRunning(t, b, "storagehost_hijack")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = do(t, cctx, b, abi.PGBatch, stmt(unstoppable("storagehost_hijack", "")))
	cancel()
	require.Error(t, err, "the call cannot have finished")
	require.Eventually(t, func() bool { return running() == 0 }, 10*time.Second, 20*time.Millisecond,
		"the statement still runs in the server after its call ended")
	require.NoError(t, b.terminate(0), "ending strays")

	// Quick calls and whole resets still work on the pool.
	b.resetAfter = 0
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	mustOK(t, rs)
	again := open(t, Config{Schema: b.Schema()})
	rs, err = do(t, ctx, again, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	mustOK(t, rs)
}

// A stray an earlier host left holding an update of the role's own
// catalog rows, not committed (ALTER ROLE CURRENT_USER SET, or PASSWORD,
// in a statement that ignores its cancel), made the next Open wait for
// good in provisioning, which rewrites those rows, before it could end
// any stray (an outside check). Open ends the sessions of the role its
// provisioning waits for.
func TestStrayHoldingTheRolesRowDoesNotHoldOpen(t *testing.T) {
	for name, first := range map[string]string{
		"setting":  "EXECUTE 'ALTER ROLE CURRENT_USER SET work_mem = ''4MB''';",
		"password": "EXECUTE 'ALTER ROLE CURRENT_USER PASSWORD NULL';",
	} {
		t.Run(name, func(t *testing.T) {
			url := pgtest.URL(t)
			schema := pgtest.Schema(t, RolePrefix)
			earlier := open(t, Config{AdminURL: url, Schema: schema})
			mark := "storagehost_rowlock_" + name
			running := sessionsRunning(t, earlier, mark)
			ctx := context.Background()
			stray, err := pgx.ConnectConfig(ctx, earlier.ConnConfig())
			require.NoError(t, err)
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				_, _ = stray.Exec(ctx, unstoppable(mark, first))
			}()
			t.Cleanup(func() {
				// Ended by Open, or here should the test have failed
				// first; the connection is closed once its Exec returned.
				_, _ = admin(t).Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%' || $2 || '%'", earlier.Role(), mark)
				<-ended
				stray.Close(context.Background())
			})
			// In its loop's sleep: past its first statement, so it holds
			// the role's row (the statement's text is shown from the
			// start of the block, before that statement ran).
			adm := admin(t)
			require.Eventually(t, func() bool {
				var n int
				require.NoError(t, adm.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%' || $2 || '%' AND wait_event = 'PgSleep'",
					earlier.Role(), mark).Scan(&n))
				return n == 1
			}, 10*time.Second, 20*time.Millisecond, "the stray is in its loop")
			earlier.Close()

			octx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			b, err := Open(octx, Config{AdminURL: url, Schema: schema})
			require.NoError(t, err, "Open did not get past provisioning")
			defer b.Close()
			require.Eventually(t, func() bool { return running() == 0 }, 10*time.Second, 20*time.Millisecond,
				"the stray an earlier host left still runs")
			rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT 1"))
			require.NoError(t, err)
			mustOK(t, rs)
		})
	}
}
