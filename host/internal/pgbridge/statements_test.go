package pgbridge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// bridgeStatements answers how many statements, and how many bytes of
// text, the bridge holds prepared in the session of b's one connection.
func bridgeStatements(t *testing.T, b *Bridge) (n, size int64) {
	t.Helper()
	rs, err := do(t, context.Background(), b, abi.PGBatch,
		stmt("SELECT count(*), coalesce(sum(length(statement)), 0)::bigint FROM pg_prepared_statements WHERE NOT from_sql"))
	require.NoError(t, err)
	mustOK(t, rs)
	return rs[0].Row(0)[0].Int, rs[0].Row(0)[1].Int
}

// An error that makes the bridge forget its prepared statements (26000,
// 0A000: any statement may raise them) has the server drop them too:
// otherwise the bridge prepares more under new names, past its bounds.
func TestForgottenStatementsAreDeallocated(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.sessionWork = time.Hour
	b.preparedWork = time.Hour // only the forgetting deallocates
	ctx := context.Background()
	body := strings.Repeat("x", 4000)
	for cycle := range 4 {
		var stmts []abi.PGStatement
		for i := range 200 {
			stmts = append(stmts, stmt(fmt.Sprintf("SELECT %d, %d, length('%s')", cycle, i, body)))
		}
		rs, err := do(t, ctx, b, abi.PGBatch, stmts...)
		require.NoError(t, err)
		mustOK(t, rs)
		rs, err = do(t, ctx, b, abi.PGBatch, stmt("DO $$ BEGIN RAISE EXCEPTION 'forget' USING ERRCODE = '0A000'; END $$"))
		require.NoError(t, err)
		require.Equal(t, "0A000", sqlState(t, rs[0]))
	}
	n, size := bridgeStatements(t, b)
	require.LessOrEqual(t, n, int64(maxPrepared))
	require.LessOrEqual(t, size, int64(maxPreparedBytes))
}

// What the server holds for a prepared statement is its parsed query,
// not its text: a short text naming a large view many times holds the
// whole tree. The bridge deallocates once the connection worked
// maxPreparedWork while it held statements or prepared some, so an idle
// session does not keep what many calls prepared (an outside check: 800
// MB in one idle server process, 162 statements of 150 bytes, the Bind
// of each failing so that it was prepared and never run).
func TestPreparedStatementsBoundedByTheirWork(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.sessionWork = time.Hour
	ctx := context.Background()
	var cols []string
	for i := range 1000 {
		cols = append(cols, fmt.Sprintf("i + %d AS c%d", i, i))
	}
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE VIEW v AS SELECT " + strings.Join(cols, ", ") + " FROM generate_series(1, 1) i"}})
	require.NoError(t, err)
	from := "v a0"
	for k := 1; k < 8; k++ {
		from += fmt.Sprintf(", v a%d", k)
	}
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT pg_backend_pid()::bigint"))
	require.NoError(t, err)
	pid := rs[0].Row(0)[0].Int
	for call := range 12 {
		var stmts []abi.PGStatement
		for i := range 20 {
			stmts = append(stmts, stmt(fmt.Sprintf("SELECT count(*) FROM %s WHERE $1::int = %d", from, call*100+i), text("x")))
		}
		// Each call past maxPreparedWork, whatever this machine's speed.
		stmts = append(stmts, stmt("SELECT pg_sleep($1::float8)", abi.PGValue{Kind: abi.PGFloat, Float: maxPreparedWork.Seconds()}))
		rs, err := do(t, ctx, b, abi.PGBatch, stmts...)
		require.NoError(t, err)
		require.Equal(t, "22P02", sqlState(t, rs[0]))
	}
	n, _ := bridgeStatements(t, b)
	require.Less(t, n, int64(20), "the bridge held the statements of calls that prepared for longer than %v", maxPreparedWork)
	if kb, ok := serverMemory(t, pid); ok {
		require.Less(t, kb, int64(300<<10), "an idle server process holds %d kB", kb)
	}
}

// serverMemory answers the anonymous memory (kB) of the server process
// pid, where the test can read it (a server on this machine).
func serverMemory(t *testing.T, pid int64) (int64, bool) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return 0, false
	}
	require.NoError(t, err)
	for l := range strings.Lines(string(status)) {
		var kb int64
		if _, err := fmt.Sscanf(l, "RssAnon: %d kB", &kb); err == nil {
			return kb, true
		}
	}
	t.Fatalf("no RssAnon in /proc/%d/status", pid)
	return 0, false
}

// A Bind builds what a Parse does when the statement must be analyzed
// again (DDL on what it reads) or planned for good: statements prepared
// cheaply on a small view, which the plugin then replaces with a large
// one of the same type, each hold the large tree after their next Bind,
// in pipelines that prepare nothing (an outside check: 490 MB in an idle
// server process). The connection's work while it holds statements
// counts, so they are deallocated after maxPreparedWork of it.
func TestPreparedStatementsBoundedWhenBoundAgain(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.sessionWork = time.Hour // no new session to free them
	ctx := context.Background()
	var cols []string
	for i := range 1000 {
		cols = append(cols, fmt.Sprintf("i + %d AS c%d", i, i))
	}
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE VIEW v AS SELECT " + strings.Join(cols, ", ") +
		" FROM generate_series(1, 1) i; CREATE VIEW w AS SELECT 1::bigint AS c"}})
	require.NoError(t, err)
	from := "v a0"
	for k := 1; k < 8; k++ {
		from += fmt.Sprintf(", v a%d", k)
	}
	var stmts []abi.PGStatement
	for i := range 100 {
		stmts = append(stmts, stmt(fmt.Sprintf("SELECT %d, CASE WHEN $1::int < 0 THEN 0::bigint ELSE (SELECT c FROM w) END", i), text("-1")))
	}
	rs, err := do(t, ctx, b, abi.PGBatch, stmts...)
	require.NoError(t, err)
	mustOK(t, rs)
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("CREATE OR REPLACE VIEW w AS SELECT 1::bigint AS c FROM "+from))
	require.NoError(t, err)
	mustOK(t, rs)
	for i := 0; i < len(stmts); i += 5 {
		rs, err = do(t, ctx, b, abi.PGBatch, stmts[i:i+5]...)
		require.NoError(t, err)
		mustOK(t, rs)
	}
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT pg_backend_pid()::bigint"))
	require.NoError(t, err)
	mustOK(t, rs)
	if kb, ok := serverMemory(t, rs[0].Row(0)[0].Int); ok {
		require.Less(t, kb, int64(150<<10), "an idle server process holds %d kB", kb)
	}
	n, _ := bridgeStatements(t, b)
	require.Less(t, n, int64(100), "the bridge held every statement bound again after the view changed")
}

// A statement sent to be prepared whose Parse the server skipped (an
// earlier statement of its transaction failed) or refused prepared
// nothing, and gives back its text's share of maxPreparedBytes: one
// failed call of long texts left the connection unable to prepare any.
func TestSkippedPreparesGiveBackTheirText(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.sessionWork = time.Hour
	b.preparedWork = time.Hour
	ctx := context.Background()
	body := strings.Repeat("x", maxPreparedText-100)
	stmts := []abi.PGStatement{stmt("SELECT 1/0")}
	for i := range 130 {
		stmts = append(stmts, stmt(fmt.Sprintf("SELECT %d, length('%s')", i, body)))
	}
	rs, err := do(t, ctx, b, abi.PGTransaction, stmts...)
	require.NoError(t, err)
	require.Equal(t, "22012", sqlState(t, rs[0]))
	stmts = stmts[1:]
	for i := range stmts {
		stmts[i].SQL += " FROM no_such_table"
	}
	rs, err = do(t, ctx, b, abi.PGBatch, stmts...)
	require.NoError(t, err)
	require.Equal(t, "42P01", sqlState(t, rs[0]))

	const q = "SELECT $1::bigint * 2"
	for i := range 3 {
		rs, err = do(t, ctx, b, abi.PGBatch, stmt(q, integer(int64(i))))
		require.NoError(t, err)
		mustOK(t, rs)
	}
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", text(q)))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, integer(1), rs[0].Row(0)[0], "the bridge no longer prepares anything on this connection")
}
