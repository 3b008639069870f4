package pgbridge

import (
	"context"
	"encoding/binary"
	"errors"
	neturl "net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/pgtest"
)

func open(t testing.TB, cfg Config) *Bridge {
	t.Helper()
	if cfg.AdminURL == "" {
		cfg.AdminURL = pgtest.URL(t)
	}
	if cfg.Schema == "" {
		cfg.Schema = pgtest.Schema(t, RolePrefix)
	}
	b, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b
}

func text(s string) abi.PGValue   { return abi.PGValue{Kind: abi.PGText, Bytes: []byte(s)} }
func integer(n int64) abi.PGValue { return abi.PGValue{Kind: abi.PGInt, Int: n} }

func stmt(sql string, params ...abi.PGValue) abi.PGStatement {
	return abi.PGStatement{SQL: sql, Params: params}
}

// do runs the statements through Serve, from their encoding, and decodes
// the response (call, for a test).
func do(t *testing.T, ctx context.Context, b *Bridge, mode abi.PGMode, stmts ...abi.PGStatement) ([]abi.PGResult, error) {
	t.Helper()
	return call(ctx, b, mode, stmts...)
}

func mustOK(t *testing.T, rs []abi.PGResult) {
	t.Helper()
	for i, r := range rs {
		require.NoError(t, r.Err(), "statement %d", i)
	}
}

func sqlState(t *testing.T, r abi.PGResult) string {
	t.Helper()
	require.False(t, r.OK, "the statement ran")
	return r.SQLState
}

func TestRoundTripTypedValues(t *testing.T) {
	b := open(t, Config{})
	ctx := context.Background()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: `CREATE TABLE t (i bigint, f double precision, s text, b bytea, ok boolean, at timestamptz, n integer);`}})
	require.NoError(t, err)
	at := time.Date(2026, 12, 2, 20, 0, 0, 123456000, time.UTC)
	rs, err := do(t, ctx, b, abi.PGBatch,
		stmt("INSERT INTO t VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint / 1e9), $7)",
			integer(-7), abi.PGValue{Kind: abi.PGFloat, Float: 2.5}, text("héllo"), abi.PGValue{Kind: abi.PGBytea, Bytes: []byte{0, 1, 255}},
			abi.PGValue{Kind: abi.PGBool, Bool: true}, integer(at.UnixNano()), abi.PGValue{Kind: abi.PGNull}),
		stmt("SELECT i, f, s, b, ok, at, n, 1.5::numeric FROM t"),
	)
	require.NoError(t, err)
	mustOK(t, rs)
	require.EqualValues(t, 1, rs[0].RowsAffected)
	require.Equal(t, 8, rs[1].Columns)
	require.Equal(t, 1, rs[1].Rows())
	row := rs[1].Row(0)
	require.Equal(t, integer(-7), row[0])
	require.Equal(t, abi.PGValue{Kind: abi.PGFloat, Float: 2.5}, row[1])
	require.Equal(t, text("héllo"), row[2])
	require.Equal(t, abi.PGValue{Kind: abi.PGBytea, Bytes: []byte{0, 1, 255}}, row[3])
	require.Equal(t, abi.PGValue{Kind: abi.PGBool, Bool: true}, row[4])
	// to_timestamp keeps microseconds.
	require.Equal(t, integer(at.Truncate(time.Microsecond).UnixNano()), row[5])
	require.Equal(t, abi.PGValue{Kind: abi.PGNull}, row[6])
	require.Equal(t, text("1.5"), row[7])
}

func TestBatchStatementsRunEachOnItsOwn(t *testing.T) {
	b := open(t, Config{})
	ctx := context.Background()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE k (id text PRIMARY KEY)"}})
	require.NoError(t, err)
	rs, err := do(t, ctx, b, abi.PGBatch,
		stmt("INSERT INTO k VALUES ($1)", text("a")),
		stmt("INSERT INTO k VALUES ($1)", text("a")),
		stmt("INSERT INTO k VALUES ($1)", text("b")),
		stmt("SELECT count(*) FROM k"),
	)
	require.NoError(t, err)
	require.Equal(t, "23505", sqlState(t, rs[1]))
	require.NoError(t, rs[2].Err())
	require.Equal(t, integer(2), rs[3].Row(0)[0])
}

func TestTransactionRollsBackOnAnyError(t *testing.T) {
	b := open(t, Config{})
	ctx := context.Background()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE k (id text PRIMARY KEY)"}})
	require.NoError(t, err)
	rs, err := do(t, ctx, b, abi.PGTransaction,
		stmt("INSERT INTO k VALUES ($1)", text("a")),
		stmt("INSERT INTO k VALUES ($1)", text("a")),
		stmt("INSERT INTO k VALUES ($1)", text("b")),
	)
	require.NoError(t, err)
	require.NoError(t, rs[0].Err())
	require.Equal(t, "23505", sqlState(t, rs[1]))
	require.Equal(t, "25P02", sqlState(t, rs[2]))
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT count(*) FROM k"))
	require.NoError(t, err)
	require.Equal(t, integer(0), rs[0].Row(0)[0], "the first insert was rolled back")

	rs, err = do(t, ctx, b, abi.PGTransaction, stmt("INSERT INTO k VALUES ($1)", text("a")), stmt("INSERT INTO k VALUES ($1)", text("b")))
	require.NoError(t, err)
	mustOK(t, rs)
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT count(*) FROM k"))
	require.NoError(t, err)
	require.Equal(t, integer(2), rs[0].Row(0)[0])
}

// The extended protocol, which every statement goes through, refuses a
// string of several statements: one cannot be smuggled after another.
func TestMultiStatementStringsRefused(t *testing.T) {
	b := open(t, Config{})
	rs, err := do(t, context.Background(), b, abi.PGBatch, stmt("SELECT 1; SELECT 2"))
	require.NoError(t, err)
	require.Equal(t, "42601", sqlState(t, rs[0]))
	require.Contains(t, rs[0].Message, "multiple commands")
}

// A plugin's own BEGIN does not leave a pooled connection inside its
// transaction for the next call.
func TestOpenTransactionNotReused(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("BEGIN"), stmt("SELECT set_config('storagehost.left', 'open', true)"))
	require.NoError(t, err)
	mustOK(t, rs)
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT coalesce(current_setting('storagehost.left', true), '')"))
	require.NoError(t, err)
	mustOK(t, rs)
	// A setting local to the open transaction would still read "open".
	require.Equal(t, text(""), rs[0].Row(0)[0])
}

func TestResultsPastTheBoundAreRefused(t *testing.T) {
	b := open(t, Config{MaxResultBytes: 64 << 10})
	ctx := context.Background()
	var e abi.Encoder
	(&abi.PGRequest{Mode: abi.PGBatch, Statements: []abi.PGStatement{stmt("SELECT repeat('x', 1000) FROM generate_series(1, 1000)")}}).Encode(&e)
	var out abi.Encoder
	b.Serve(ctx, e.Bytes(), &out)
	_, err := abi.ParseResponse(out.Bytes())
	require.ErrorIs(t, err, abi.StatusLimit)
	require.Less(t, len(out.Bytes()), 1024)
	// The connection serves the next call.
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT repeat('x', 1000) FROM generate_series(1, 10)"))
	require.NoError(t, err)
	require.Equal(t, 10, rs[0].Rows())
}

// One row longer than the result bound is refused before the host holds
// it: pgconn would read the whole message (a SELECT of repeat('x', 2e8)
// had 381 MiB allocated for a call bound to 8 MiB), and a value past
// what is left of the bound is not copied.
func TestRowPastTheBoundIsNotRead(t *testing.T) {
	b := open(t, Config{MaxResultBytes: 64 << 10})
	ctx := context.Background()
	for _, sql := range []string{
		"SELECT repeat('x', 8000000)",                          // one row past the bound and its framing
		"SELECT repeat('x', 40000), repeat('y', 40000)",        // within the framing, past the bound at its second value
		"SELECT 1, repeat('x', 70000) UNION ALL SELECT 2, 'y'", // a value past what is left
	} {
		var e abi.Encoder
		(&abi.PGRequest{Mode: abi.PGBatch, Statements: []abi.PGStatement{stmt(sql)}}).Encode(&e)
		var out abi.Encoder
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.Serve(ctx, e.Bytes(), &out)
		runtime.ReadMemStats(&after)
		_, err := abi.ParseResponse(out.Bytes())
		require.ErrorIs(t, err, abi.StatusLimit, sql)
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "%s: bytes allocated", sql)
		// The next call is served.
		rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT repeat('x', 1000) FROM generate_series(1, 10)"))
		require.NoError(t, err, sql)
		require.Equal(t, 10, rs[0].Rows())
	}
}

func TestTooManyStatementsRefused(t *testing.T) {
	b := open(t, Config{MaxStatements: 2})
	_, err := do(t, context.Background(), b, abi.PGBatch, stmt("SELECT 1"), stmt("SELECT 1"), stmt("SELECT 1"))
	require.ErrorIs(t, err, abi.StatusLimit)
}

// A request's statements and parameters are a few bytes each, and cost
// the host hundreds to send: 2^19 empty statements (1 MB) took 110 MB to
// decode before the statement bound refused them, and one statement of
// 2^20 NULL parameters 486 MB before the driver did. Both are refused
// from the request's counts, before the rest is decoded.
func TestRequestsPastTheirCountsAreRefusedCheaply(t *testing.T) {
	b := open(t, Config{})
	nulls := make([]abi.PGValue, 1<<20)
	many := make([]abi.PGStatement, 1<<19)
	for i := range many {
		many[i] = stmt("")
	}
	spread := make([]abi.PGStatement, 5)
	for i := range spread {
		spread[i] = stmt("SELECT 1", nulls[:60_000]...)
	}
	for name, c := range map[string]struct {
		stmts []abi.PGStatement
		says  string
		bound uint64
	}{
		"statements":                  {many, "524288 statements, more than the 1024 of one request", 1 << 20},
		"parameters of one statement": {[]abi.PGStatement{stmt("SELECT 1", nulls...)}, "statement 0 has 1048576 parameters, more than PostgreSQL's 65535", 1 << 20},
		// Refused at the statement that passes the bound: what came before
		// it was decoded, as a request at the bound would be.
		"parameters of the statements": {spread, "more than 262144 parameters in one request", 128 << 20},
	} {
		var enc, out abi.Encoder
		(&abi.PGRequest{Mode: abi.PGBatch, Statements: c.stmts}).Encode(&enc)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.Serve(context.Background(), enc.Bytes(), &out)
		runtime.ReadMemStats(&after)
		_, err := abi.ParseResponse(out.Bytes())
		require.ErrorIs(t, err, abi.StatusLimit, name)
		require.ErrorContains(t, err, c.says, name)
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, c.bound, "%s: bytes the refusal of %d allocated", name, len(enc.Bytes()))
	}
}

func TestMalformedRequestInvalid(t *testing.T) {
	b := open(t, Config{})
	var out abi.Encoder
	b.Serve(context.Background(), []byte{3, 0}, &out)
	_, err := abi.ParseResponse(out.Bytes())
	require.ErrorIs(t, err, abi.StatusInvalid)
}

func admin(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// A call whose context ends is cancelled in the server, not only
// abandoned: the statement no longer runs in pg_stat_activity.
func TestCancelledCallStopsInTheServer(t *testing.T) {
	b := open(t, Config{StatementTimeout: time.Minute})
	adm := admin(t)
	ctx, cancel := context.WithCancel(context.Background())
	type answer struct {
		rs  []abi.PGResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT pg_sleep(60)"))
		done <- answer{rs, err}
	}()
	running := func() bool {
		var n int
		require.NoError(t, adm.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query LIKE '%pg_sleep(60)%'", b.Role()).Scan(&n))
		return n > 0
	}
	require.Eventually(t, running, 10*time.Second, 10*time.Millisecond, "the statement never started")
	cancel()
	a := <-done
	// Cancelled by a cancel request on a live connection, which the
	// statement's result reports, rather than by tearing the connection
	// down, which would leave the outcome unknown.
	require.NoError(t, a.err)
	require.Equal(t, "57014", sqlState(t, a.rs[0]))
	require.Eventually(t, func() bool { return !running() }, 10*time.Second, 10*time.Millisecond,
		"the statement still runs in the server after its call ended")
}

// A call's deadline becomes the statement timeout: past it, the server
// itself stops the statement.
func TestDeadlineIsTheStatementTimeout(t *testing.T) {
	b := open(t, Config{})
	b.cancelWait = time.Hour // the client does not cancel: the server must
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT pg_sleep(30)"))
	if err != nil {
		// The client's cancel request raced the server's timeout.
		require.True(t, errors.Is(err, abi.StatusUnknown) || errors.Is(err, abi.StatusUnavailable), "%v", err)
		return
	}
	require.Equal(t, "57014", sqlState(t, rs[0]))
}

// hostile runs sql as the backend's role and requires PostgreSQL to
// refuse it.
func hostile(t *testing.T, b *Bridge, sql string) abi.PGResult {
	t.Helper()
	rs, err := do(t, context.Background(), b, abi.PGBatch, stmt(sql))
	require.NoError(t, err)
	require.False(t, rs[0].OK, "%s ran", sql)
	return rs[0]
}

func TestHostileStatementsConfined(t *testing.T) {
	url := pgtest.URL(t)
	victim := open(t, Config{AdminURL: url})
	_, err := victim.Migrate(context.Background(), abi.Migrations{{Version: 1, SQL: "CREATE TABLE secrets (s text); INSERT INTO secrets VALUES ('x')"}})
	require.NoError(t, err)
	b := open(t, Config{AdminURL: url})
	other := pgx.Identifier{victim.Schema(), "secrets"}.Sanitize()

	for _, c := range []struct{ name, sql, state string }{
		{"read another backend's table", "SELECT * FROM " + other, "42501"},
		{"write another backend's table", "INSERT INTO " + other + " VALUES ('y')", "42501"},
		{"create in public", "CREATE TABLE public.leak (x int)", "42501"},
		{"create a schema", "CREATE SCHEMA mine", "42501"},
		{"read a server file", "SELECT pg_read_file('/etc/passwd')", "42501"},
		{"list the server's files", "SELECT pg_ls_dir('.')", "42501"},
		{"set role", "SET ROLE postgres", "42501"},
		{"set session authorization", "SET SESSION AUTHORIZATION postgres", "42501"},
		{"become superuser", "ALTER ROLE " + b.Role() + " SUPERUSER", "42501"},
		{"create roles", "ALTER ROLE " + b.Role() + " CREATEROLE", "42501"},
		{"create an extension", "CREATE EXTENSION IF NOT EXISTS dblink", "42501"},
		{"load a library", "LOAD 'dblink'", "42501"},
		{"terminate another backend", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres' AND pid <> pg_backend_pid() LIMIT 1", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.state == "" {
				// pg_terminate_backend answers false for another role's
				// session rather than failing; either way, it is not done.
				rs, err := do(t, context.Background(), b, abi.PGBatch, stmt(c.sql))
				require.NoError(t, err)
				if rs[0].OK && rs[0].Rows() > 0 {
					require.NotEqual(t, abi.PGValue{Kind: abi.PGBool, Bool: true}, rs[0].Row(0)[0])
				}
				return
			}
			r := hostile(t, b, c.sql)
			// dblink may not be installed at all; refused either way.
			if strings.Contains(c.sql, "dblink") && (r.SQLState == "58P01" || r.SQLState == "0A000") {
				return
			}
			require.Equal(t, c.state, r.SQLState, r.Message)
		})
	}

	// The bridge refuses every COPY before sending it (copy.go); the role
	// may not run one to or from the server's files or programs either.
	role, err := b.connectAsRole(context.Background())
	require.NoError(t, err)
	defer role.Close(context.Background())
	for _, sql := range []string{
		"COPY (SELECT 1) TO PROGRAM 'touch /tmp/pwned'",
		"COPY " + pgx.Identifier{VersionTable}.Sanitize() + " FROM '/etc/passwd'",
	} {
		_, err := role.Exec(context.Background(), sql)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, sql)
		require.Equal(t, "42501", pgErr.Code, sql)
	}

	// RESET ROLE and RESET SESSION AUTHORIZATION go back to the role the
	// connection logged in as: the backend's own.
	rs, err := do(t, context.Background(), b, abi.PGBatch, stmt("RESET ROLE"), stmt("RESET SESSION AUTHORIZATION"), stmt("SELECT current_user, session_user"))
	require.NoError(t, err)
	require.Equal(t, []abi.PGValue{text(b.Role()), text(b.Role())}, rs[2].Row(0))

	// dblink, were it installed by an administrator, would still need a
	// password to connect as another role; the role cannot even call it.
	rs, err = do(t, context.Background(), b, abi.PGBatch, stmt("SELECT count(*) FROM pg_extension WHERE extname = 'dblink'"))
	require.NoError(t, err)
	if rs[0].Row(0)[0].Int > 0 {
		hostile(t, b, "SELECT * FROM dblink('dbname=test user=postgres', 'SELECT 1') AS t(x int)")
	}
}

func TestUnsafeRoleRefused(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, RolePrefix)
	adm := admin(t)
	_, err := adm.Exec(context.Background(), "CREATE ROLE "+RolePrefix+schema+" LOGIN")
	require.NoError(t, err)
	_, err = adm.Exec(context.Background(), "GRANT pg_read_server_files TO "+RolePrefix+schema)
	require.NoError(t, err)
	_, err = Open(context.Background(), Config{AdminURL: url, Schema: schema})
	require.ErrorIs(t, err, ErrUnsafeRole)
}

func TestBadSchemaNameRefused(t *testing.T) {
	for _, s := range []string{"", "Public", "a;drop", "1a", strings.Repeat("a", 41)} {
		_, err := Open(context.Background(), Config{AdminURL: "postgres://x@127.0.0.1/x", Schema: s})
		require.ErrorIs(t, err, ErrConfig, s)
	}
}

func TestMigrationsOnceUnderConcurrentOpens(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, RolePrefix)
	ms := abi.Migrations{
		{Version: 1, SQL: "CREATE TABLE a (x int)"},
		{Version: 2, SQL: "ALTER TABLE a ADD COLUMN y int; CREATE TABLE b (z int)"},
	}
	const hosts = 6
	var wg sync.WaitGroup
	errs := make([]error, hosts)
	for i := range hosts {
		wg.Go(func() {
			b, err := Open(context.Background(), Config{AdminURL: url, Schema: schema})
			if err != nil {
				errs[i] = err
				return
			}
			defer b.Close()
			_, errs[i] = b.Migrate(context.Background(), ms)
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "host %d", i)
	}
	var versions []int64
	rows, err := admin(t).Query(context.Background(), "SELECT version FROM "+pgx.Identifier{schema, VersionTable}.Sanitize()+" ORDER BY version")
	require.NoError(t, err)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, versions)

	// A plugin that knows only version 1 is refused that schema.
	b := open(t, Config{AdminURL: url, Schema: schema})
	_, err = b.Migrate(context.Background(), ms[:1])
	require.ErrorIs(t, err, ErrSchemaNewer)
	// One that knows a third applies only the third.
	v, err := b.Migrate(context.Background(), append(ms, abi.Migration{Version: 3, SQL: "CREATE TABLE c (w int)"}))
	require.NoError(t, err)
	require.EqualValues(t, 3, v)
}

func TestMigrationRunsAsTheRole(t *testing.T) {
	b := open(t, Config{})
	_, err := b.Migrate(context.Background(), abi.Migrations{{Version: 1, SQL: "CREATE TABLE public.escape (x int)"}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "permission denied")
}

func TestMigrationVersionsChecked(t *testing.T) {
	b := open(t, Config{})
	_, err := b.Migrate(context.Background(), abi.Migrations{{Version: 2, SQL: "SELECT 1"}})
	require.ErrorIs(t, err, abi.StatusInvalid)
}

func TestTimeoutStep(t *testing.T) {
	prev := int64(0)
	for ms := int64(1); ms < 100_000; ms += 7 {
		step := timeoutStep(time.Duration(ms) * time.Millisecond)
		require.LessOrEqual(t, step, ms, "a step past the time left")
		require.GreaterOrEqual(t, float64(step)*1.25+1, float64(ms), "a step more than a fifth early at %d ms", ms)
		require.GreaterOrEqual(t, step, prev)
		prev = step
	}
}

// Statements are prepared once per connection and text and parameter
// types: the same text bound with other types, again and again, in
// batches and transactions, answers as if parsed each time.
func TestPreparedStatementsReused(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	for range 3 {
		for _, c := range []struct {
			param abi.PGValue
			want  abi.PGValue
		}{
			{integer(41), text("41")},
			{text("x"), text("x")},
			{abi.PGValue{Kind: abi.PGNull}, text("null")},
			{abi.PGValue{Kind: abi.PGBool, Bool: true}, text("true")},
		} {
			for _, mode := range []abi.PGMode{abi.PGBatch, abi.PGTransaction} {
				rs, err := do(t, ctx, b, mode, stmt("SELECT coalesce($1::text, 'null')", c.param), stmt("SELECT coalesce($1::text, 'null')", c.param))
				require.NoError(t, err)
				mustOK(t, rs)
				require.Equal(t, c.want, rs[0].Row(0)[0])
				require.Equal(t, c.want, rs[1].Row(0)[0])
			}
		}
	}
	// A plugin that drops the prepared statements costs itself one failed
	// statement, not the connection.
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("DEALLOCATE ALL"))
	require.NoError(t, err)
	mustOK(t, rs)
	_, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT coalesce($1::text, 'null')", integer(1)))
	require.NoError(t, err)
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT coalesce($1::text, 'null')", integer(1)))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, text("1"), rs[0].Row(0)[0])
}

// A transaction's statements of one text are prepared once, however
// many there are: a batch of 100 puts after a reset that deallocated
// them is one Parse, not 100. A text bound with other parameter types
// is another statement; a statement whose Parse fails fails the
// transaction, the statements of its text after it too.
func TestTransactionPreparesEachTextOnce(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.resetAfter, b.resetWork = time.Hour, time.Hour // no reset between the calls,
	b.sessionWork = time.Hour                        // nor a new session
	ctx := context.Background()
	const add = "SELECT $1::bigint + 1"
	var stmts []abi.PGStatement
	for i := range 20 {
		stmts = append(stmts, stmt(add, integer(int64(i))))
	}
	stmts = append(stmts, stmt(add, text("7")), stmt(add, text("8")),
		stmt("SELECT count(*) FROM pg_prepared_statements WHERE statement = $1 AND NOT from_sql", text(add)))
	rs, err := do(t, ctx, b, abi.PGTransaction, stmts...)
	require.NoError(t, err)
	mustOK(t, rs)
	for i := range 20 {
		require.Equal(t, integer(int64(i+1)), rs[i].Row(0)[0], "statement %d", i)
	}
	require.Equal(t, integer(8), rs[20].Row(0)[0])
	require.Equal(t, integer(9), rs[21].Row(0)[0])
	require.Equal(t, integer(2), rs[22].Row(0)[0], "statements of one text and parameter types prepared more than once")

	const missing = "SELECT x FROM no_such_table WHERE x = $1"
	rs, err = do(t, ctx, b, abi.PGTransaction, stmt(missing, integer(1)), stmt(missing, integer(2)), stmt(add, integer(3)))
	require.NoError(t, err)
	require.Equal(t, "42P01", sqlState(t, rs[0]))
	require.Equal(t, "25P02", sqlState(t, rs[1]))
	require.Equal(t, "25P02", sqlState(t, rs[2]))
	// The connection is whole: the next call's statements run.
	rs, err = do(t, ctx, b, abi.PGTransaction, stmt(add, integer(4)), stmt(add, integer(5)))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, integer(6), rs[1].Row(0)[0])
}

// A call of 2 ms or more ends with the whole session reset; it drops the
// statements a plugin prepared with SQL, and keeps the bridge's own
// (bounded by maxPrepared), which it would otherwise parse again at every
// such call.
func TestLongCallKeepsOnlyTheBridgesStatements(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.sessionWork = time.Hour  // no new session
	b.preparedWork = time.Hour // nor a deallocation for the time spent preparing
	ctx := context.Background()
	const add = "SELECT $1::bigint + 1"
	count := func(sql string, params ...abi.PGValue) int64 {
		t.Helper()
		rs, err := do(t, ctx, b, abi.PGBatch, stmt(sql, params...))
		require.NoError(t, err)
		mustOK(t, rs)
		return rs[0].Row(0)[0].Int
	}
	rs, err := do(t, ctx, b, abi.PGTransaction, stmt(add, integer(1)), stmt("SELECT pg_sleep(0.005)"))
	require.NoError(t, err)
	mustOK(t, rs)
	bridges := "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1 AND NOT from_sql"
	require.Equal(t, int64(1), count(bridges, text(add)), "the reset after a long call dropped the bridge's statement")

	rs, err = do(t, ctx, b, abi.PGTransaction, stmt("PREPARE mine AS SELECT 1"), stmt("SELECT pg_sleep(0.005)"))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, int64(0), count("SELECT count(*) FROM pg_prepared_statements WHERE from_sql"),
		"a statement the plugin prepared outlived the reset after its long call")
	// The bridge's went with it, and it prepares them again.
	rs, err = do(t, ctx, b, abi.PGTransaction, stmt(add, integer(2)), stmt(add, integer(3)))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, integer(4), rs[1].Row(0)[0])
	require.Equal(t, int64(1), count(bridges, text(add)))
}

// The statement timeout the server enforces is the time left to the
// call, never more, and at most a fifth less.
func TestDeadlineSetsTheStatementTimeout(t *testing.T) {
	b := open(t, Config{StatementTimeout: time.Hour})
	for _, left := range []time.Duration{10 * time.Second, 700 * time.Millisecond, 10 * time.Second} {
		ctx, cancel := context.WithTimeout(context.Background(), left)
		rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'"))
		cancel()
		require.NoError(t, err)
		ms := rs[0].Row(0)[0].Int
		require.LessOrEqual(t, ms, left.Milliseconds())
		require.GreaterOrEqual(t, float64(ms), 0.75*float64(left.Milliseconds()), "left %v", left)
	}
}

// TestAdminWithCreateRoleOnly opens a backend through an admin that is no
// superuser: CREATEROLE, and CREATE on the database, as the documentation
// asks. Such an admin must be a member of a role to give it a schema.
func TestAdminWithCreateRoleOnly(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	var database string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&database))
	admin := pgtest.Schema(t, "") + "_admin"
	ident := pgx.Identifier{admin}.Sanitize()
	_, err = conn.Exec(ctx, "CREATE ROLE "+ident+" LOGIN CREATEROLE")
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, q := range []string{"DROP OWNED BY " + ident, "DROP ROLE " + ident} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	_, err = conn.Exec(ctx, "GRANT CREATE ON DATABASE "+pgx.Identifier{database}.Sanitize()+" TO "+ident)
	require.NoError(t, err)

	// libpq takes the last of a repeated key; a URL gets its user replaced.
	adminURL := url + " user=" + admin
	if u, err := neturl.Parse(url); err == nil && u.Scheme != "" {
		u.User = neturl.User(admin)
		adminURL = u.String()
	}
	schema := pgtest.Schema(t, RolePrefix)
	b := open(t, Config{AdminURL: adminURL, Schema: schema, TempFileLimitKB: 1024})
	// Only a superuser may bound the role's temporary files: this admin
	// leaves the server's setting, and the bridge says what it is.
	var serverTempFiles int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT boot_val::bigint FROM pg_settings WHERE name = 'temp_file_limit'").Scan(&serverTempFiles))
	require.Equal(t, serverTempFiles, b.TempFileLimitKB())
	_, err = b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE t (x int)"}})
	require.NoError(t, err)
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("INSERT INTO t VALUES (1)"), stmt("SELECT count(*) FROM t"))
	require.NoError(t, err)
	mustOK(t, rs)

	// Opening it again (a restart, another host) checks what exists.
	again, err := Open(ctx, Config{AdminURL: adminURL, Schema: schema})
	require.NoError(t, err)
	again.Close()

	// The admin lends the backend's role nothing, and keeps no membership
	// of it past provisioning.
	var member bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'USAGE')", admin, b.Role()).Scan(&member))
	require.False(t, member, "the admin is left a member of the backend's role")
}

// An admin that is a superuser bounds the temporary files of the
// backend's role: a sort that spills past the bound fails in the server,
// and the role cannot lift the bound.
func TestTempFilesOfTheRoleBounded(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	if _, super := pgtest.RoleSetting(t, url, "", "temp_file_limit"); !super {
		t.Skip("the test server's admin is not a superuser (TestAdminWithCreateRoleOnly covers that case)")
	}
	b := open(t, Config{TempFileLimitKB: 1024})
	require.Equal(t, int64(1024), b.TempFileLimitKB())

	spill := stmt("SELECT count(*) FROM (SELECT g FROM generate_series(1, 500000) g ORDER BY g DESC OFFSET 0) s")
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT set_config('work_mem', '64kB', false)"), spill)
	require.NoError(t, err)
	require.Len(t, rs, 2)
	require.NoError(t, rs[0].Err())
	assert.Equal(t, "53400", sqlState(t, rs[1]), "a sort of 500 000 rows in 64 kB of memory spills past 1 MiB")

	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT set_config('temp_file_limit', '-1', false)"))
	require.NoError(t, err)
	assert.Equal(t, "42501", sqlState(t, rs[0]), "the role lifted its bound")

	// Opening again without a bound leaves the one set.
	again, err := Open(ctx, Config{AdminURL: url, Schema: b.schema})
	require.NoError(t, err)
	again.Close()
	setting, _ := pgtest.RoleSetting(t, url, b.Role(), "temp_file_limit")
	assert.Equal(t, "temp_file_limit=1024", setting)
}

// superAdminURL is the test server's admin URL, the test skipped unless
// its role is a superuser: without one, why (SECURITY.md).
func superAdminURL(t *testing.T, without string) string {
	t.Helper()
	url := pgtest.URL(t)
	if _, super := pgtest.RoleSetting(t, url, "", "log_min_messages"); !super {
		t.Skipf("the test server's admin is not a superuser: %s (SECURITY.md)", without)
	}
	return url
}

// An admin that is a superuser keeps what the backend's role raises out
// of the server's log, which every database on the server shares: a
// plugin's RAISE WARNING in a loop wrote 40 MB there in one call.
func TestRoleWritesNothingToTheServerLog(t *testing.T) {
	ctx := context.Background()
	url := superAdminURL(t, "the role's log settings are the server's")
	b := open(t, Config{})
	for _, name := range []string{"log_min_messages", "log_min_error_statement"} {
		setting, _ := pgtest.RoleSetting(t, url, b.Role(), name)
		assert.Equal(t, name+"=panic", setting)
	}
	rs, err := do(t, ctx, b, abi.PGBatch,
		stmt("SELECT current_setting('log_min_messages'), current_setting('log_min_error_statement')"),
		stmt("SELECT set_config('log_min_messages', 'warning', false)"))
	require.NoError(t, err)
	require.NoError(t, rs[0].Err())
	assert.Equal(t, []abi.PGValue{text("panic"), text("panic")}, rs[0].Row(0))
	assert.Equal(t, "42501", sqlState(t, rs[1]), "the role lowered its log level")
}

// A keyed read on a warm connection allocates nothing in the bridge's
// own code: the request is read in place, the parameters and the result's
// values go through the connection's buffers, and the result is encoded
// straight into the response. What it allocates is pgconn's: its pipeline
// keeps a list element for each message it queues and sends (16 for the
// statement, the UNLISTEN that ends every call, and their sync; the first
// call after every fullResetWork of calls sends the rest of resetSession,
// a fraction of an allocation more a call), and a command tag.
func TestServeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own (20 a call here, 19 without)")
	}
	b := open(t, Config{MaxConns: 1})
	b.resetAfter = time.Hour  // a loaded machine's slow call is still a quick one
	b.sessionWork = time.Hour // nor a new session
	ctx := context.Background()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE kv (k text PRIMARY KEY, v bytea, n bigint); INSERT INTO kv VALUES ('a', repeat('x', 200)::bytea, 7)"}})
	require.NoError(t, err)
	var req, out abi.Encoder
	(&abi.PGRequest{Mode: abi.PGBatch, Statements: []abi.PGStatement{stmt("SELECT v, n FROM kv WHERE k = $1 AND n > $2", text("a"), integer(1))}}).Encode(&req)
	serve := func() {
		out.Reset()
		b.Serve(ctx, req.Bytes(), &out)
	}
	serve()
	serve()
	// The fewest of a few rounds: testing.AllocsPerRun counts every
	// goroutine's allocations, and on a loaded machine a round can take in
	// a pool's background work or an extra read of a reply that arrived in
	// pieces; a regression in the bridge's own code shows in every round.
	n := testing.AllocsPerRun(50, serve)
	for range 4 {
		n = min(n, testing.AllocsPerRun(50, serve))
	}
	t.Logf("%.0f allocations per call", n)
	body, err := abi.ParseResponse(out.Bytes())
	require.NoError(t, err)
	d := abi.NewDecoder(body)
	rs := abi.DecodePGResults(d)
	require.NoError(t, d.Finish())
	require.Equal(t, 1, rs[0].Rows())
	require.LessOrEqual(t, n, 19.0, "allocations per call")
}

// An error of pgconn's on several lines reaches the plugin on one.
func TestErrorsOnOneLine(t *testing.T) {
	err := errors.New("failed to connect to `user=u database=d`:\n\t127.0.0.1:5439 (127.0.0.1): dial error: connection refused\n\t[::1]:5439: refused")
	assert.Equal(t, "failed to connect to `user=u database=d`: 127.0.0.1:5439 (127.0.0.1): dial error: connection refused [::1]:5439: refused", oneLine(err))
}

// unstoppable is a DO block, marked by mark, that loops in PL/pgSQL and
// catches the query_canceled its cancel request or statement timeout
// raises, after running first.
func unstoppable(mark, first string) string {
	return `DO $$ BEGIN
		PERFORM '` + mark + `';
		` + first + `
		LOOP
			BEGIN
				PERFORM pg_sleep(0.05);
			EXCEPTION WHEN query_canceled THEN NULL;
			END;
		END LOOP;
	END $$`
}

// sessionsRunning counts the sessions of b's role whose statement has
// mark in it, as the admin sees them.
func sessionsRunning(t *testing.T, b *Bridge, mark string) func() int {
	return sessionsRunningOn(t, admin(t), b.Role(), mark)
}

// sessionsRunningOn counts the sessions of role whose statement has mark
// in it, as adm sees them.
func sessionsRunningOn(t *testing.T, adm *pgx.Conn, role, mark string) func() int {
	return func() int {
		var n int
		require.NoError(t, adm.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%' || $2 || '%' AND pid <> pg_backend_pid()", role, mark).Scan(&n))
		return n
	}
}

// A statement that catches its cancel request and goes on (a DO block
// looping in PL/pgSQL, here after committing a LISTEN) does not outlive
// its call: the server process behind the connection the bridge gave up
// is ended, and with it what it held, rather than running on with its
// locks, listens and snapshot after the call, and after the host. A
// migration at load is bounded the same way.
func TestStatementIgnoringItsCancelIsEnded(t *testing.T) {
	b := open(t, Config{})
	b.cancelWait = 100 * time.Millisecond
	running := sessionsRunning(t, b, "storagehost_unstoppable")
	loop := unstoppable("storagehost_unstoppable", "EXECUTE 'LISTEN storagehost_unstoppable'; COMMIT;")
	for round := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		var err error
		if round < 2 {
			var rs []abi.PGResult
			rs, err = do(t, ctx, b, abi.PGBatch, stmt(loop))
			if err == nil && len(rs) == 1 && !rs[0].OK && rs[0].SQLState == "57014" {
				// The cancel came before the loop's handler did (its
				// LISTEN and COMMIT took the whole call on a loaded
				// machine): the statement ended as any other does.
				t.Logf("round %d: cancelled before the loop", round)
				err = rs[0].Err()
			}
		} else {
			// A plugin's migration, at load, the same.
			_, err = b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: loop}})
		}
		cancel()
		require.Error(t, err, "round %d: the call cannot have finished", round)
		require.Less(t, time.Since(start), 5*time.Second, "round %d: the call is answered near its deadline", round)
		require.Eventually(t, func() bool { return running() == 0 }, 10*time.Second, 20*time.Millisecond,
			"round %d: the statement still runs in the server after its call ended", round)
	}
	// The pool still serves.
	rs, err := do(t, context.Background(), b, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	mustOK(t, rs)
}

// The role may change its own defaults (ALTER ROLE CURRENT_USER SET),
// which its later sessions take at login: serializable, read-only and
// deferrable defaults made a plain SELECT of the host's wait for a safe
// snapshot that the plugin's own serializable statement withheld, so
// the termination of that statement waited, and so did the next Open.
// The host's sessions ask for the server's defaults at login instead.
func TestRoleDefaultsDoNotHoldTheHost(t *testing.T) {
	schema := pgtest.Schema(t, RolePrefix)
	b := open(t, Config{Schema: schema})
	b.cancelWait = 100 * time.Millisecond
	ctx := context.Background()
	rs, err := do(t, ctx, b, abi.PGBatch,
		stmt("ALTER ROLE CURRENT_USER SET default_transaction_isolation = 'serializable'"),
		stmt("ALTER ROLE CURRENT_USER SET default_transaction_read_only = on"),
		stmt("ALTER ROLE CURRENT_USER SET default_transaction_deferrable = on"),
		stmt("ALTER ROLE CURRENT_USER SET statement_timeout = 1"))
	require.NoError(t, err)
	mustOK(t, rs)

	running := sessionsRunning(t, b, "storagehost_serializable")
	loop := unstoppable("storagehost_serializable", "")
	dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = do(t, dctx, b, abi.PGBatch,
		stmt("SET default_transaction_isolation = 'serializable'"),
		stmt("SET default_transaction_read_only = off"),
		stmt("SET default_transaction_deferrable = off"),
		stmt("SET statement_timeout = 0"),
		stmt(loop))
	cancel()
	require.Error(t, err, "the call cannot have finished")
	require.Eventually(t, func() bool { return running() == 0 }, 10*time.Second, 20*time.Millisecond,
		"the serializable statement still runs in the server after its call ended")

	// A host opening the backend again is not held either.
	octx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	again, err := Open(octx, Config{AdminURL: pgtest.URL(t), Schema: schema})
	require.NoError(t, err)
	defer again.Close()
	rs, err = do(t, ctx, again, abi.PGBatch, stmt("SELECT 1"))
	require.NoError(t, err)
	mustOK(t, rs)
}

// Role defaults that fail every later login of the role (a library that
// does not load) or end its idle sessions within a millisecond: a
// plugin that set them kept its backend, and the daemon with it, from
// opening again, and its stuck statements from being ended (the host's
// sweep logs in as the role). The host's sessions override them at login,
// and opening the backend again clears whatever the role set for itself.
func TestRoleDefaultsDoNotBreakLogins(t *testing.T) {
	schema := pgtest.Schema(t, RolePrefix)
	b := open(t, Config{Schema: schema})
	ctx := context.Background()
	rs, err := do(t, ctx, b, abi.PGBatch,
		stmt("ALTER ROLE CURRENT_USER SET local_preload_libraries = 'storagehost_does_not_exist'"),
		stmt("ALTER ROLE CURRENT_USER SET idle_session_timeout = 1"),
		stmt("ALTER ROLE CURRENT_USER SET exit_on_error = on"),
		stmt("ALTER ROLE CURRENT_USER SET client_encoding = 'LATIN1'"),
		stmt("ALTER ROLE CURRENT_USER SET standard_conforming_strings = off"),
		stmt("ALTER ROLE CURRENT_USER SET default_table_access_method = 'storagehost_none'"))
	require.NoError(t, err)
	mustOK(t, rs)

	b.pool.Reset() // new sessions, which take the role's settings at login
	time.Sleep(10 * time.Millisecond)
	rs, err = do(t, ctx, b, abi.PGBatch, stmt(`SELECT current_setting('local_preload_libraries'), current_setting('idle_session_timeout'),
		current_setting('exit_on_error'), current_setting('client_encoding'), 'ключ-€'::text, 'a\_b'::text`))
	require.NoError(t, err, "a login of the role while the host runs")
	mustOK(t, rs)
	require.Equal(t, []abi.PGValue{text(""), text("0"), text("off"), text("UTF8"), text("ключ-€"), text(`a\_b`)}, rs[0].Row(0))

	again, err := Open(ctx, Config{AdminURL: pgtest.URL(t), Schema: schema})
	require.NoError(t, err)
	defer again.Close()
	admin, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	defer admin.Close(ctx)
	var settings []string
	require.NoError(t, admin.QueryRow(ctx, `SELECT coalesce(array_agg(u), '{}') FROM pg_db_role_setting d, unnest(d.setconfig) u
		WHERE d.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)`, b.Role()).Scan(&settings))
	for _, set := range settings {
		require.NotRegexp(t, `^(local_preload_libraries|idle_session_timeout|exit_on_error|client_encoding|standard_conforming_strings|default_table_access_method)=`, set, "opening again reset the role's own defaults")
	}
	rs, err = do(t, ctx, again, abi.PGBatch, stmt("CREATE TABLE storagehost_t (n int)"))
	require.NoError(t, err)
	mustOK(t, rs)
}

// A commit the host acknowledges is on disk: the host's sessions ask for
// synchronous_commit on at login, whatever the role (here its plugin),
// the database or the server set. Off, a PostgreSQL killed under load
// lost acknowledged writes (an outside drill, 3 of 3 runs).
func TestSessionsCommitSynchronously(t *testing.T) {
	schema := pgtest.Schema(t, RolePrefix)
	b := open(t, Config{Schema: schema})
	ctx := context.Background()
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("ALTER ROLE CURRENT_USER SET synchronous_commit = off"))
	require.NoError(t, err)
	mustOK(t, rs)
	b.pool.Reset() // new sessions, which take the role's settings at login
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("SELECT current_setting('synchronous_commit')"))
	require.NoError(t, err)
	mustOK(t, rs)
	require.Equal(t, text("on"), rs[0].Row(0)[0])
}

// TestLargeNumericsAreRefusedBeforeConversion: a numeric whose text would
// pass maxNumericText fails its statement (0A000, as a type the host
// cannot send) without being converted; cast to text, the server converts
// it and it arrives whole.
func TestLargeNumericsAreRefusedBeforeConversion(t *testing.T) {
	b := open(t, Config{})
	ctx := context.Background()
	rs, err := do(t, ctx, b, abi.PGBatch,
		stmt("SELECT repeat('9', 131072)::numeric"),
		stmt("SELECT 1e131071::numeric"),
		stmt("SELECT 0.5e-16000::numeric"),
		stmt("SELECT repeat('9', 131072)::numeric::text"),
		stmt("SELECT (repeat('9', 1000) || '.5')::numeric, -0.000125::numeric, 'NaN'::numeric"),
	)
	require.NoError(t, err)
	for i := range 3 {
		require.Equal(t, "0A000", sqlState(t, rs[i]), "statement %d", i)
		require.Contains(t, rs[i].Message, "cast it to text")
	}
	require.NoError(t, rs[3].Err())
	require.Len(t, rs[3].Row(0)[0].Bytes, 131072)
	require.NoError(t, rs[4].Err())
	row := rs[4].Row(0)
	require.Equal(t, text(strings.Repeat("9", 1000)+".5"), row[0])
	require.Equal(t, text("-0.000125"), row[1])
	require.Equal(t, text("NaN"), row[2])
}

func TestNumericTextLenBoundsTheText(t *testing.T) {
	for _, c := range []struct {
		ndigits, weight, sign, dscale uint16
		text                          string
	}{
		{2, 0, 0, 1, "1.5"},
		{1, 1, 0, 0, "10000"},
		{3, 2, 0x4000, 3, "-123456789.123"},
		{1, 0xffff, 0, 6, "0.000125"}, // weight −1
		{0, 0, 0xc000, 0, "NaN"},
	} {
		raw := binary.BigEndian.AppendUint16(nil, c.ndigits)
		raw = binary.BigEndian.AppendUint16(raw, c.weight)
		raw = binary.BigEndian.AppendUint16(raw, c.sign)
		raw = binary.BigEndian.AppendUint16(raw, c.dscale)
		require.GreaterOrEqual(t, numericTextLen(raw), len(c.text), c.text)
		require.LessOrEqual(t, numericTextLen(raw), len(c.text)+5, c.text)
	}
	require.Zero(t, numericTextLen([]byte{0, 1}))
}

// An admin that is a superuser keeps the backend's role from slowing the
// server's autovacuum workers on its tables (whose cost options every
// table's owner may set: a plugin's four tables held every worker for
// about 49 minutes each): a statement of the role leaving either option,
// on a table, its TOAST table or a materialized view, fails, however it
// is sent; the role's other autovacuum options are its own; and what
// was set before (here by the admin) is reset at the next open.
func TestVacuumCostOptionsOfTheRoleRefused(t *testing.T) {
	ctx := context.Background()
	url := superAdminURL(t, "the options are the role's")
	b := open(t, Config{})
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE t (a int, b text)"}})
	require.NoError(t, err)
	_, err = b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE t (a int, b text)"},
		{Version: 2, SQL: "CREATE TABLE m (a int) WITH (autovacuum_vacuum_cost_delay = 100)"}})
	require.ErrorContains(t, err, "may not set autovacuum_vacuum_cost_delay", "a migration sets the option")

	for _, q := range []string{
		"CREATE TABLE u (a int) WITH (autovacuum_vacuum_cost_delay = 100)",
		"ALTER TABLE t SET (autovacuum_vacuum_cost_limit = 1)",
		"ALTER TABLE t SET (toast.autovacuum_vacuum_cost_delay = 100)",
		"DO $$ BEGIN EXECUTE 'ALTER TABLE t SET (autovacuum_vacuum_cost_delay = ' || 50 || ')'; END $$",
		"CREATE MATERIALIZED VIEW v WITH (autovacuum_vacuum_cost_limit = 1) AS SELECT 1 AS x",
	} {
		rs, err := do(t, ctx, b, abi.PGBatch, stmt(q))
		require.NoError(t, err)
		assert.Equal(t, "42501", sqlState(t, rs[0]), "%s", q)
	}
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("ALTER TABLE t SET (autovacuum_vacuum_scale_factor = 0.01)"))
	require.NoError(t, err)
	mustOK(t, rs)
	// A temporary table named pg_class does not hide the catalog's.
	rs, err = do(t, ctx, b, abi.PGBatch, stmt("CREATE TEMP TABLE pg_class (oid oid, reltoastrelid oid, reloptions text[])"),
		stmt("DISCARD PLANS"), stmt("ALTER TABLE t SET (autovacuum_vacuum_cost_delay = 100)"))
	require.NoError(t, err)
	mustOK(t, rs[:2])
	assert.Equal(t, "42501", sqlState(t, rs[2]), "a temporary pg_class hid the catalog from the trigger")

	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	table := pgx.Identifier{b.schema, "t"}.Sanitize()
	_, err = admin.Exec(ctx, "ALTER TABLE "+table+" SET (autovacuum_vacuum_cost_delay = 100, toast.autovacuum_vacuum_cost_limit = 1)")
	require.NoError(t, err, "the admin's own statement is not the role's")
	// Any role may hold the guard's advisory lock: the open goes on.
	_, err = admin.Exec(ctx, "SELECT pg_advisory_lock(hashtext('storagehost vacuum options'))")
	require.NoError(t, err)
	again, err := Open(ctx, Config{AdminURL: url, Schema: b.schema})
	require.NoError(t, err)
	again.Close()
	_, err = admin.Exec(ctx, "SELECT pg_advisory_unlock(hashtext('storagehost vacuum options'))")
	require.NoError(t, err)
	var options []string
	require.NoError(t, admin.QueryRow(ctx, `SELECT coalesce(c.reloptions, '{}') || coalesce(s.reloptions, '{}')
		FROM pg_class c LEFT JOIN pg_class s ON s.oid = c.reltoastrelid WHERE c.oid = $1::regclass`, table).Scan(&options))
	assert.Equal(t, []string{"autovacuum_vacuum_scale_factor=0.01"}, options, "the cost options are reset at open")
}

// The trigger's function runs for every role's DDL, superusers' included,
// so one a role made first in public (or changed since) is not taken for
// it: the host makes its own in its place. In a database of the test's
// own, whose public a role is granted CREATE on.
func TestVacuumGuardFunctionOfAnotherRoleIsReplaced(t *testing.T) {
	ctx := context.Background()
	url := superAdminURL(t, "no guard is installed")
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	suffix := strings.TrimPrefix(pgtest.Schema(t, RolePrefix), "t_")
	db, owner := "storagehost_guard_"+suffix, "guardowner_"+suffix
	_, err = admin.Exec(ctx, "CREATE DATABASE "+db)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+owner)
		_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+RolePrefix+"g"+suffix)
	})
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	cfg.Database = db
	other, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer other.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE " + owner, "GRANT CREATE ON SCHEMA public TO " + owner, "SET ROLE " + owner,
		"CREATE FUNCTION public.storagehost_vacuum_options() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$",
		"RESET ROLE",
	} {
		_, err := other.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	dbURL, err := neturl.Parse(url)
	require.NoError(t, err)
	dbURL.Path = "/" + db
	b, err := Open(ctx, Config{AdminURL: dbURL.String(), Schema: "g" + suffix})
	require.NoError(t, err)
	defer b.Close()
	var super bool
	require.NoError(t, other.QueryRow(ctx, `SELECT r.rolsuper FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
		WHERE p.oid = 'public.storagehost_vacuum_options()'::regprocedure`).Scan(&super))
	assert.True(t, super, "the function is another role's")
	rs, err := call(ctx, b, abi.PGBatch, stmt("CREATE TABLE t (a int) WITH (autovacuum_vacuum_cost_limit = 1)"))
	require.NoError(t, err)
	assert.Equal(t, "42501", sqlState(t, rs[0]))
}
