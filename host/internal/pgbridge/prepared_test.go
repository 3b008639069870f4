package pgbridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/pgtest"
)

// preparedBy counts the transactions role has prepared on the server.
func preparedBy(t *testing.T, url, role string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_prepared_xacts WHERE owner = $1", role).Scan(&n))
	return n
}

// privateSchema names a fresh schema and its role, for a test on a server
// of the test binary's own, whose cleanup pgtest.Schema does not do.
func privateSchema() (schema, role string) {
	var id [6]byte
	_, _ = rand.Read(id[:])
	schema = "t_" + hex.EncodeToString(id[:])
	return schema, RolePrefix + schema
}

// A plugin's PREPARE TRANSACTION does not outlive its call: its locks,
// its hold on the vacuum horizon and its slot of the server's would last
// past the host and a restart. Whatever hides it (a batch, a
// transaction's last statement, a migration), the bridge rolls it back
// and refuses the call; Open rolls back what an earlier host left.
func TestPreparedTransactionsAreRolledBack(t *testing.T) {
	url := pgtest.TwoPhaseURL(t)
	schema, role := privateSchema()
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		rows, _ := conn.Query(context.Background(), "SELECT gid FROM pg_prepared_xacts WHERE owner = $1", role)
		gids, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, g := range gids {
			_, _ = conn.Exec(context.Background(), "ROLLBACK PREPARED '"+g+"'")
		}
		pgtest.Drop(t, url, schema, role)
	})
	b := open(t, Config{AdminURL: url, Schema: schema, MaxConns: 1})
	ctx := context.Background()
	_, err := do(t, ctx, b, abi.PGBatch, stmt("CREATE TABLE kept (v int)"))
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		mode  abi.PGMode
		stmts []abi.PGStatement
	}{
		"batch": {abi.PGBatch, []abi.PGStatement{stmt("BEGIN"), stmt("INSERT INTO kept VALUES (1)"),
			stmt("SELECT pg_advisory_xact_lock(7)"), stmt("PREPARE TRANSACTION 'hostile-1'")}},
		"commented": {abi.PGBatch, []abi.PGStatement{stmt("BEGIN"), stmt("INSERT INTO kept VALUES (2)"),
			stmt("/* hidden */ prepare\ttransaction 'it''s \\ hostile'")}},
	} {
		rs, err := do(t, ctx, b, tc.mode, tc.stmts...)
		require.ErrorIs(t, err, abi.StatusInvalid, "%s: %v", name, rs)
		require.ErrorContains(t, err, "PREPARE TRANSACTION is not allowed", name)
		require.Zero(t, preparedBy(t, url, role), "%s: a prepared transaction outlived the call", name)
	}
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT count(*) FROM kept"))
	require.NoError(t, err)
	require.Equal(t, integer(0), rs[0].Row(0)[0], "what the prepared transactions wrote was rolled back")

	// A session that ends itself right after preparing one: the bridge
	// never reads the tag, gives the connection up, and sweeps.
	_, err = do(t, ctx, b, abi.PGBatch, stmt("BEGIN"), stmt("INSERT INTO kept VALUES (4)"),
		stmt("PREPARE TRANSACTION 'then-gone'"), stmt("SELECT pg_terminate_backend(pg_backend_pid())"))
	require.Error(t, err)
	require.Eventually(t, func() bool { return preparedBy(t, url, role) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the prepared transaction of a session the bridge gave up on outlived it")

	// A migration that prepares its own transaction.
	_, err = b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE m (v int); PREPARE TRANSACTION 'in-migration'"}})
	require.ErrorContains(t, err, "PREPARE TRANSACTION is not allowed")
	b.ending.Wait() // the migration's connection is given up on, and swept
	require.Zero(t, preparedBy(t, url, role), "a migration's prepared transaction outlived it")

	// One left by an earlier host (prepared outside the bridge, as the
	// role): the next Open rolls it back.
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	cfg.User, cfg.Password = role, rolePassword(url, role)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "BEGIN; INSERT INTO "+pgx.Identifier{schema, "kept"}.Sanitize()+" VALUES (3); PREPARE TRANSACTION 'left-behind'")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	require.Equal(t, 1, preparedBy(t, url, role))
	open(t, Config{AdminURL: url, Schema: schema})
	require.Zero(t, preparedBy(t, url, role), "Open rolled back what an earlier host left")
}
