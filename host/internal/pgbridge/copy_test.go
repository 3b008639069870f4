package pgbridge

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/pgtest"
)

func TestHasCopy(t *testing.T) {
	for _, c := range []struct {
		sql  string
		copy bool
	}{
		{"COPY t FROM STDIN", true},
		{"copy (SELECT 1) TO STDOUT", true},
		{"  \n\t-- rows\n/* a /* nested */ comment */ CoPy t TO STDOUT", true},
		{"CREATE TABLE t (s text); COPY t FROM STDIN", true},
		{"CREATE TABLE t (s text);COPY t FROM STDIN", true},
		{"SELECT 1;; copy t to stdout", true},
		{"COPY", true},
		{"copy\tt from stdin", true},
		{"SELECT 1", false},
		{"SELECT copy FROM t", false},
		{"INSERT INTO copy VALUES (1)", false},
		{"copying", false},
		{"copy_of_t", false},
		{"SELECT 'x; COPY t FROM STDIN'", false},
		{"SELECT 'it''s; COPY t FROM STDIN'", false},
		{`SELECT E'\'; COPY t FROM STDIN'`, false},
		{`SELECT "a;"; SELECT "b"" ; copy"`, false},
		{"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; COPY t FROM STDIN $$ LANGUAGE sql", false},
		{"CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $$ ; copy $body$ LANGUAGE sql", false},
		{"SELECT $1::text; SELECT 2", false},
		{"SELECT 1 -- ; COPY t FROM STDIN", false},
		{"SELECT 1 /* ; COPY t FROM STDIN */", false},
		{"SELECT $1; COPY t FROM STDIN", true},
		{"DO $$ BEGIN NULL; END $$; COPY t TO STDOUT", true},
		{"--x\rCOPY t TO STDOUT", true}, // a carriage return ends a comment too
		// With standard_conforming_strings off, '\'' is a string of a quote.
		{`SELECT '\''; COPY t FROM STDIN; SELECT ''`, true},
		{`SELECT 'a\\'; COPY t FROM STDIN`, true},
	} {
		require.Equal(t, c.copy, hasCopy([]byte(c.sql)), c.sql)
	}
	// One statement: its first word alone.
	for sql, copy := range map[string]bool{
		"COPY t TO STDOUT": true, " \n/* x /* y */ */ -- z\rcopy\tt": true, "--x\nCoPy t": true,
		"SELECT 'COPY'": false, "copying": false, "/* COPY */ SELECT 1": false, "": false, "-- COPY": false,
	} {
		require.Equal(t, copy, leadsWithCopy([]byte(sql)), sql)
	}
}

// A COPY would break the pipeline after PostgreSQL ran what came before
// it (a transaction request's statements were committed, and the call
// answered outcome-unknown): the request is refused whole, nothing sent.
func TestCopyRefusedBeforeSending(t *testing.T) {
	b := open(t, Config{AdminURL: pgtest.URL(t)})
	ctx := context.Background()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE c (s text)"}})
	require.NoError(t, err)
	for _, sql := range []string{
		"COPY c FROM STDIN",
		"COPY c TO STDOUT",
		"/* rows */ copy (SELECT 1) to stdout",
		"COPY (SELECT 1) TO PROGRAM 'true'",
		"--rows\rCOPY c TO STDOUT",
	} {
		for _, mode := range []abi.PGMode{abi.PGBatch, abi.PGTransaction} {
			_, err := do(t, ctx, b, mode, stmt("INSERT INTO c VALUES ('a')"), stmt(sql))
			require.ErrorIs(t, err, abi.StatusInvalid, "%s (mode %d)", sql, mode)
			require.ErrorContains(t, err, "COPY")
			rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT count(*) FROM c"))
			require.NoError(t, err)
			require.Equal(t, integer(0), rs[0].Row(0)[0], "%s (mode %d): a statement was sent", sql, mode)
		}
	}
}

// A migration's COPY FROM STDIN held the connection and the schema's lock
// until the load's deadline, waiting for rows; it is refused at once, and
// the migration's other statements are rolled back with it.
func TestMigrationWithCopyRefused(t *testing.T) {
	b := open(t, Config{AdminURL: pgtest.URL(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE c (s text);\nCOPY c FROM STDIN;\nINSERT INTO c VALUES ('m')"}})
	require.ErrorContains(t, err, "COPY")
	require.Less(t, time.Since(start), 15*time.Second, "the migration waited for its deadline")
	v, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE c (s text); INSERT INTO c VALUES ('m')"}})
	require.NoError(t, err, "the refused migration left its table")
	require.Equal(t, uint64(1), v)

	// A migration that turns standard_conforming_strings off for the ones
	// after it, one of which hides a COPY from a reading that takes
	// backslashes for plain characters.
	start = time.Now()
	_, err = b.Migrate(ctx, abi.Migrations{
		{Version: 1, SQL: "CREATE TABLE c (s text); INSERT INTO c VALUES ('m')"},
		{Version: 2, SQL: "SET standard_conforming_strings = off"},
		{Version: 3, SQL: `SELECT '\''; COPY c FROM STDIN; SELECT ''`},
	})
	require.ErrorContains(t, err, "COPY")
	require.Less(t, time.Since(start), 15*time.Second, "the migration waited for its deadline")
}
