package pgbridge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// listening returns the channels the bridge's connection listens on,
// through a call of its own: on a bridge of one connection, the
// connection every call before it ran on.
func listening(t *testing.T, b *Bridge) []string {
	t.Helper()
	rs, err := do(t, context.Background(), b, abi.PGBatch, stmt("SELECT pg_listening_channels()::text"))
	require.NoError(t, err)
	mustOK(t, rs)
	var chans []string
	for i := range rs[0].Rows() {
		chans = append(chans, string(rs[0].Row(i)[0].Bytes))
	}
	return chans
}

// A plugin's LISTEN ends with its call, however it is sent: nobody reads
// a pooled connection's notifications while it idles, so a listener left
// there would hold PostgreSQL's notification queue, which is the whole
// server's, until it filled and every NOTIFY of every database failed.
func TestListenEndsWithTheCall(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: `CREATE FUNCTION listen(ch text) RETURNS int
		LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('LISTEN %I', ch); RETURN 1; END $$`}})
	require.NoError(t, err)
	require.Empty(t, listening(t, b))

	for _, c := range []struct {
		name  string
		mode  abi.PGMode
		stmts []abi.PGStatement
	}{
		{"listen", abi.PGBatch, []abi.PGStatement{stmt("LISTEN plain")}},
		{"hidden in a DO block", abi.PGBatch, []abi.PGStatement{stmt("DO $$ BEGIN EXECUTE 'LIS' || 'TEN hidden'; END $$")}},
		{"in a transaction", abi.PGTransaction, []abi.PGStatement{stmt("LISTEN tx"), stmt("SELECT 1")}},
		{"before a failed statement", abi.PGBatch, []abi.PGStatement{stmt("LISTEN early"), stmt("SELECT 1/0")}},
		{"committed before a failed statement of a transaction", abi.PGTransaction, []abi.PGStatement{stmt("LISTEN committed"), stmt("COMMIT"), stmt("SELECT 1/0")}},
		{"committed by a DO block that then fails", abi.PGBatch, []abi.PGStatement{stmt("DO $$ BEGIN EXECUTE 'LISTEN doomed'; COMMIT; RAISE 'no'; END $$")}},
		{"through a function", abi.PGBatch, []abi.PGStatement{stmt("SELECT listen($1)", text("function"))}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Twice: the second time each statement is prepared already,
			// and a single one goes alone, not in a pipeline.
			for range 2 {
				_, err := do(t, ctx, b, c.mode, c.stmts...)
				require.NoError(t, err)
				require.Empty(t, listening(t, b))
			}
		})
	}

	t.Run("in a shared pipeline", func(t *testing.T) {
		before := b.pipes.Stats().Batches
		release, queued := occupy(t, b)
		var wg sync.WaitGroup
		for i, ch := range []string{"shared1", "shared2"} {
			wg.Go(func() {
				rs, err := call(ctx, b, abi.PGBatch, stmt("SELECT listen($1)", text(ch)))
				if err == nil {
					err = rs[0].Err()
				}
				if err != nil {
					t.Error(err)
				}
			})
			queued(i + 1)
		}
		release()
		wg.Wait()
		require.Equal(t, before+1, b.pipes.Stats().Batches, "the two reads shared a pipeline")
		require.Empty(t, listening(t, b))
	})
}

// What the LISTEN above would cost: notifications sent to a channel a
// pooled connection listens on, while it idles, stay in the server's
// queue, which no NOTIFY anywhere frees (it is cleaned up to the slowest
// listener). The queue is the server's, and other tests may be
// notifying; 48 MB queued is far past what a reading listener leaves
// behind, and past what the idle connection's socket buffers hold.
func TestIdleListenerHoldsNoNotifications(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	ch := b.Schema()
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT pg_notify($1, 'x')", text(ch)), stmt("LISTEN "+ch))
	require.NoError(t, err)
	mustOK(t, rs)

	adm := admin(t)
	// 6000 notifications of 8000 bytes (each its own: a transaction
	// sends equal ones once), then a few more on another channel, each
	// in a transaction of its own: a notifying transaction is what moves
	// the queue's tail up to the slowest listener.
	_, err = adm.Exec(ctx, "SELECT pg_notify($1, lpad(i::text, 7999, 'x')) FROM generate_series(1, 6000) i", ch)
	require.NoError(t, err)
	usage := func() float64 {
		for i := range 8 {
			_, err := adm.Exec(ctx, "SELECT pg_notify($1, lpad($2::int::text, 7999, 'y'))", ch+"_nudge", i)
			require.NoError(t, err)
		}
		var u float64
		require.NoError(t, adm.QueryRow(ctx, "SELECT pg_notification_queue_usage()").Scan(&u))
		return u
	}
	// 48 MB of the queue's 8 GB is 0.0056; 8 MB is 0.001.
	require.Eventually(t, func() bool { return usage() < 0.001 }, 30*time.Second, 100*time.Millisecond,
		"the queue holds %.4f of its size", usage())
}

// A plugin's migrations run in a session of the pool's too: what they
// leave there (a LISTEN, a setting) ends with them.
func TestMigrationsLeaveNothingInThePool(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE t (x int); LISTEN migrated; SET search_path = pg_catalog"}})
	require.NoError(t, err)
	require.Empty(t, listening(t, b))
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT count(*) FROM t"))
	require.NoError(t, err)
	mustOK(t, rs)
}

// What a call leaves in its session (settings, held cursors, temporary
// tables, advisory locks, its own statement_timeout) ends with the call,
// as a LISTEN does: a setting of 100 MB left at each call took one server
// process to 1.37 GB in an outside check, kept while the connection idled.
func TestSessionStateEndsWithTheCall(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	// Every call a slow one, as the hostile calls of an outside check
	// were: the reset follows each at once, whatever this machine's speed.
	b.resetAfter = 0
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		mode  abi.PGMode
		stmts []abi.PGStatement
	}{
		{"batch", abi.PGBatch, []abi.PGStatement{
			stmt("SELECT set_config('hostile.big', repeat('a', 1000000), false)"),
			stmt("SET statement_timeout = 0"),
			stmt("CREATE TEMP TABLE hog AS SELECT generate_series(1, 1000) AS n"),
			stmt("BEGIN"), stmt("DECLARE held CURSOR WITH HOLD FOR SELECT generate_series(1, 1000)"), stmt("COMMIT"),
			stmt("SELECT pg_advisory_lock(42)"),
		}},
		// No temporary table: the temporary schema holds only a function.
		{"temporary function", abi.PGBatch, []abi.PGStatement{
			stmt("CREATE FUNCTION pg_temp.kept() RETURNS int LANGUAGE sql AS 'SELECT 1'"),
		}},
		{"transaction ending in a failure", abi.PGTransaction, []abi.PGStatement{
			stmt("SELECT set_config('hostile.big', repeat('a', 1000000), false)"),
			stmt("COMMIT"), // what came before is committed; the rest fails
			stmt("SET statement_timeout = 0"),
			stmt("SELECT pg_advisory_lock(42)"),
			stmt("SELECT 1/0"),
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := do(t, ctx, b, c.mode, c.stmts...)
			require.NoError(t, err)
			rs, err := do(t, ctx, b, abi.PGBatch,
				stmt("SELECT coalesce(current_setting('hostile.big', true), '')"),
				stmt("SELECT current_setting('statement_timeout') <> '0'"),
				// Named: the protocol's unnamed portal shows there too.
				stmt("SELECT count(*) FROM pg_cursors WHERE name <> ''"),
				stmt("SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND pg_table_is_visible(oid)"),
				stmt("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"),
				stmt("SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema()"))
			require.NoError(t, err)
			mustOK(t, rs)
			require.Equal(t, text(""), rs[0].Row(0)[0], "the setting outlived its call")
			require.Equal(t, abi.PGValue{Kind: abi.PGBool, Bool: true}, rs[1].Row(0)[0], "the plugin's statement_timeout = 0 outlived its call")
			require.Equal(t, integer(0), rs[2].Row(0)[0], "a held cursor outlived its call")
			require.Equal(t, integer(0), rs[3].Row(0)[0], "a temporary table outlived its call")
			require.Equal(t, integer(0), rs[4].Row(0)[0], "a session advisory lock outlived its call")
			require.Equal(t, integer(0), rs[5].Row(0)[0], "a temporary function outlived its call")
		})
	}
}

// A session's temp_buffers is fixed at its login's before the plugin's
// first statement: PostgreSQL sizes a session's local buffers by it when
// a temporary table is first used and keeps them until the session ends
// (gigabytes in idle pooled sessions in an outside check, by a SET and
// by a SET LOCAL in a transaction rolled back). The plugin's SET fails,
// the role's own default is overridden at login, and temporary tables
// still work and end with their call.
func TestTempBuffersArePinned(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.resetAfter = 0
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		mode  abi.PGMode
		stmts []abi.PGStatement
	}{
		{"set", abi.PGBatch, []abi.PGStatement{stmt("SET temp_buffers = '3GB'")}},
		{"set local, rolled back", abi.PGTransaction, []abi.PGStatement{
			stmt("SET LOCAL temp_buffers = '3GB'"),
			stmt("CREATE TEMP TABLE hog AS SELECT generate_series(1, 100) AS n"),
			stmt("SELECT 1/0"),
		}},
		{"set_config in a block", abi.PGBatch, []abi.PGStatement{stmt("DO $$ BEGIN PERFORM set_config('temp_buffers', '3GB', true); END $$")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs, err := do(t, ctx, b, c.mode, c.stmts...)
			require.NoError(t, err)
			require.NotEmpty(t, rs)
			failed := false
			for _, r := range rs {
				if !r.OK {
					failed = true
				}
			}
			require.True(t, failed, "the plugin changed temp_buffers")
			rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT current_setting('temp_buffers')"))
			require.NoError(t, err)
			mustOK(t, rs)
			require.Equal(t, text("8MB"), rs[0].Row(0)[0])
		})
	}

	// The role's own default is overridden at login.
	_, err := do(t, ctx, b, abi.PGBatch, stmt("ALTER ROLE CURRENT_USER SET temp_buffers = '3GB'"))
	require.NoError(t, err)
	b.pool.Reset()
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT current_setting('temp_buffers')"),
		stmt("CREATE TEMP TABLE small (x int)"), stmt("INSERT INTO small SELECT generate_series(1, 1000)"), stmt("SELECT pg_backend_pid()"))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, text("8MB"), rs[0].Row(0)[0], "the role's temp_buffers")

	// Temporary tables work, end with their call, and keep their session.
	again, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT pg_backend_pid()"),
		stmt("SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND pg_table_is_visible(oid)"))
	require.NoError(t, err)
	mustOK(t, again)
	require.Equal(t, rs[3].Row(0)[0], again[0].Row(0)[0], "a session with temporary tables is reused")
	require.Equal(t, integer(0), again[1].Row(0)[0], "a temporary table outlived its call")
}

// A session is closed once its calls ran maxSessionWork together: what
// PostgreSQL caches in a session (negative catalog entries: 1.55 GB in
// one idle server process in an outside check), no reset frees.
func TestSessionEndsAfterItsWork(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.sessionWork = 200 * time.Millisecond
	ctx := context.Background()
	pid := func() abi.PGValue {
		rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT pg_backend_pid()"))
		require.NoError(t, err)
		mustOK(t, rs)
		return rs[0].Row(0)[0]
	}
	first := pid()
	require.Equal(t, first, pid(), "a quick call keeps its session")
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT pg_sleep(0.25)"))
	require.NoError(t, err)
	mustOK(t, rs)
	require.NotEqual(t, first, pid(), "the session outlived its work")
	require.Eventually(t, func() bool {
		rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", first))
		require.NoError(t, err)
		mustOK(t, rs)
		return rs[0].Row(0)[0].Int == 0
	}, 10*time.Second, 50*time.Millisecond, "the session that ran its work is still open")
}

// Calls too short to build much each are reset by their work: what a
// quick call left is gone once the connection worked fullResetWork
// since, at the call after, however many calls that took.
func TestQuickCallsStateIsBounded(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.resetAfter = time.Hour  // every call a quick one: only their work resets
	b.sessionWork = time.Hour // nor a new session
	ctx := context.Background()
	// The bound SECURITY.md states: under 10 ms of quick calls' work.
	require.LessOrEqual(t, fullResetWork+fullResetAfter, 10*time.Millisecond)
	// Each call takes at least this long, whatever this machine's speed
	// (pg_sleep waits whole milliseconds): n of them are past
	// fullResetWork.
	const least = time.Millisecond
	n := int(fullResetWork/least) + 1
	for i := range n {
		_, err := do(t, ctx, b, abi.PGBatch, stmt(fmt.Sprintf("SELECT set_config('hostile.s' || $1, 'left', false), pg_sleep(%g)", least.Seconds()), integer(int64(i))))
		require.NoError(t, err)
	}
	// This call ends with the whole reset, after its statement.
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	mustOK(t, rs)
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT coalesce(current_setting('hostile.s0', true), '')"))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, text(""), rs[0].Row(0)[0], "a setting outlived %d calls of %v or more", n, least)
}

// Prepared statements hold a plan each in the server and, the bridge's,
// their text in the host: 256 of a megabyte held a gigabyte. The bridge
// prepares none longer than maxPreparedText, and the session reset drops
// the plugin's SQL PREPAREs with its own.
func TestPreparedStatementsAreBounded(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.resetAfter = time.Hour  // quick calls, as a flood of them would be
	b.sessionWork = time.Hour // nor a new session
	ctx := context.Background()
	long := "SELECT length('" + strings.Repeat("x", maxPreparedText) + "')"
	for range 2 {
		_, err := do(t, ctx, b, abi.PGBatch, stmt(long))
		require.NoError(t, err)
	}
	// Each call takes at least least, whatever this machine's speed
	// (pg_sleep waits whole milliseconds): n of them are past
	// fullResetWork, and the call after them resets.
	const least = time.Millisecond
	n := int(fullResetWork/least) + 1
	for i := range n {
		_, err := do(t, ctx, b, abi.PGBatch, stmt(fmt.Sprintf("PREPARE hog%d AS SELECT repeat('x', 100000)", i)), stmt(fmt.Sprintf("SELECT pg_sleep(%g)", least.Seconds())))
		require.NoError(t, err)
	}
	_, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	rs, err := do(t, ctx, b, abi.PGBatch,
		stmt("SELECT count(*) FROM pg_prepared_statements WHERE from_sql"),
		stmt("SELECT count(*) FROM pg_prepared_statements WHERE length(statement) > $1", integer(maxPreparedText)),
		stmt("SELECT count(*) FROM pg_prepared_statements WHERE name = 'hog0'"))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Less(t, rs[0].Row(0)[0].Int, int64(n), "the plugin's prepared statements outlived the reset")
	require.Equal(t, integer(0), rs[2].Row(0)[0], "the first call's prepared statement outlived %d calls of %v or more", n, least)
	require.Equal(t, integer(0), rs[1].Row(0)[0], "the bridge prepared a statement longer than %d bytes", maxPreparedText)
}
