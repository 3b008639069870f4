// Package pgbridge runs the SQL statements of a plugin's postgres
// capability (abi.CapabilityPostgres) on PostgreSQL, confined by
// PostgreSQL itself: each backend has a schema of its own and a role of
// its own that owns that schema and nothing else, and every connection of
// the bridge's pool logs in as that role, so no statement a plugin sends
// can act with more than the role's privileges (RATIONALE.md, "Why
// confine a PostgreSQL backend to a schema and a role of its own?").
package pgbridge

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config is what the bridge needs to reach PostgreSQL for one backend.
type Config struct {
	// AdminURL connects as a role that may create roles and schemas
	// (CREATEROLE and CREATE on the database, or a superuser). The bridge
	// uses it while it opens, to create or check the backend's role and
	// schema, and to set the role's password back when the role changed
	// it (strays.go); no plugin statement ever runs on it.
	AdminURL string
	// Schema is the backend's schema, created if missing; its role is
	// RolePrefix + Schema. Lower-case letters, digits and underscores,
	// starting with a letter, at most 40 bytes.
	Schema string
	// MaxConns bounds the pool's connections; 0 means 4.
	MaxConns int32
	// StatementTimeout bounds a call without a deadline; 0 means 30 s. A
	// call with a deadline gets the time left to it. Migrate without a
	// deadline gets it plus LockWait, for all its migrations at once,
	// kept by the host (the plugin's SQL may change statement_timeout).
	StatementTimeout time.Duration
	// MaxResultBytes bounds the encoded results of one call; 0 means
	// 1 MiB. Past it the call answers LIMIT.
	MaxResultBytes int64
	// MaxStatements bounds the statements of one request; 0 means 1024.
	MaxStatements int
	// Settings are session settings (name → value) of every connection
	// of the backend's pool, such as abi.PGEventsSetting.
	Settings map[string]string
	// TempFileLimitKB, when above 0, is the role's temp_file_limit in
	// kB (ALTER ROLE … SET): the temporary files one session may hold at
	// once. Only a superuser may set it, and the role cannot change it;
	// an admin that is not one leaves the role's setting as it is
	// (Bridge.TempFileLimitKB tells what the role has).
	TempFileLimitKB int64
	// RunawayAfter is how long a session of the role may stay in one
	// statement or transaction before the bridge ends it as a stray
	// (strays.go); 0 means four times StatementTimeout, and a minute at
	// least.
	RunawayAfter time.Duration
}

// RolePrefix starts the name of every role the bridge creates.
const RolePrefix = "storagehost_"

// Errors of Open and Migrate.
var (
	// ErrConfig: the configuration is unusable (a bad schema name, an
	// unparsable URL).
	ErrConfig = errors.New("pgbridge: bad configuration")
	// ErrUnsafeRole: the backend's role or schema exists but is not what
	// the bridge would have created (a role with more privileges, a member
	// of another role, a schema owned by another role); the bridge does
	// not use it.
	ErrUnsafeRole = errors.New("pgbridge: the backend's role or schema is not confined")
	// ErrSchemaNewer: the backend's schema has migrations the plugin does
	// not know, applied by a newer plugin.
	ErrSchemaNewer = errors.New("pgbridge: the backend's schema is newer than the plugin")
)

var schemaName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// CheckSchema reports whether name may be a backend's schema: lower-case
// letters, digits and underscores, starting with a letter, at most 40
// bytes (so that the role's name, RolePrefix + name, stays within
// PostgreSQL's 63).
func CheckSchema(name string) error {
	if !schemaName.MatchString(name) {
		return fmt.Errorf("schema %q: want lower-case letters, digits and underscores, starting with a letter, at most 40 bytes", name)
	}
	return nil
}

// cancelWait is how long a call whose context ended waits for the server
// to act on its cancel request before the connection gives the call up
// (and is closed): a server that stopped answering answers neither. It
// keeps a call within half a second of its deadline, inside the second
// past the call timeout that host.Store.Close waits for calls in flight.
const cancelWait = 500 * time.Millisecond

// Bridge is one backend's connection pool, logged in as its role.
type Bridge struct {
	pool       *pgxpool.Pool
	schema     string
	role       string
	lackedMu   sync.Mutex
	lacked     []string // what the role lacked at NoteLacking (Ready)
	timeout    time.Duration
	maxBytes   int64
	maxStmts   int
	cancelWait time.Duration
	pipes      *pipes
	tempFiles  int64 // the role's temp_file_limit in kB, -1 for none
	// resetAfter is fullResetAfter and resetWork fullResetWork; a test
	// sets them to make every call a quick one, or a slow one, or to
	// leave quick ones unreset.
	resetAfter, resetWork time.Duration
	// sessionWork is maxSessionWork; a test sets it lower.
	sessionWork time.Duration
	// preparedWork is maxPreparedWork; a test sets it otherwise.
	preparedWork time.Duration
	// admin and password set the role's password back (strays.go).
	admin    *pgx.ConnConfig
	password string
	runaway  time.Duration
	// ending tracks the terminations abandon started, and sweeping the
	// sweep (strays.go), which Close waits for; closed, set by Close
	// under mu, makes later terminations untracked, and stop ends the
	// sweep.
	ending   sync.WaitGroup
	sweeping sync.WaitGroup
	mu       sync.Mutex
	closed   bool
	stop     chan struct{}
}

// Open creates (or checks) the backend's role and schema through
// cfg.AdminURL and opens a pool that logs in as the role.
func Open(ctx context.Context, cfg Config) (*Bridge, error) {
	if err := CheckSchema(cfg.Schema); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	admin, err := pgx.ParseConfig(cfg.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres url: %v", ErrConfig, err)
	}
	b := &Bridge{
		schema:       cfg.Schema,
		role:         RolePrefix + cfg.Schema,
		timeout:      cfg.StatementTimeout,
		maxBytes:     cfg.MaxResultBytes,
		maxStmts:     cfg.MaxStatements,
		cancelWait:   cancelWait,
		resetAfter:   fullResetAfter,
		resetWork:    fullResetWork,
		sessionWork:  maxSessionWork,
		preparedWork: maxPreparedWork,
		admin:        admin,
		runaway:      cfg.RunawayAfter,
		stop:         make(chan struct{}),
	}
	if b.timeout <= 0 {
		b.timeout = 30 * time.Second
	}
	if b.runaway <= 0 {
		b.runaway = max(4*b.timeout, time.Minute)
	}
	if b.maxBytes <= 0 {
		b.maxBytes = 1 << 20
	}
	if b.maxStmts <= 0 {
		b.maxStmts = 1024
	}
	password := rolePassword(cfg.AdminURL, b.role)
	b.password = password
	if err := provision(ctx, admin, b.schema, b.role, password, cfg.TempFileLimitKB); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres url: %v", ErrConfig, err)
	}
	asRole(pc.ConnConfig, b.role, password)
	for name, value := range cfg.Settings {
		pc.ConnConfig.RuntimeParams[name] = value
	}
	// The bridge's own statements on the pool's connections go through
	// pgconn, prepared as it keeps track; the few the host sends through
	// pgx (at open, a readiness check) are not prepared, since a session's
	// prepared statements are dropped by its reset (DEALLOCATE ALL) and may
	// be by the plugin's SQL.
	pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	pc.ConnConfig.RuntimeParams["search_path"] = b.schema
	pc.ConnConfig.RuntimeParams["application_name"] = "storage-host " + b.schema
	// A call whose context ends is cancelled in the server at once, not
	// only abandoned by the client.
	pc.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: b.cancelWait}
	}
	// pgconn reads a whole message before handing out its row: a row of
	// a gigabyte would be a gigabyte in this process, whatever the result
	// bound. Past the bound (and room for a row's framing) the read
	// fails, the connection is closed, and the call answers LIMIT.
	maxBody := int(min(b.maxBytes+1<<16, math.MaxInt32))
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		c.PgConn().Frontend().SetMaxBodyLen(maxBody)
		return pinTempBuffers(ctx, c.PgConn())
	}
	pc.MaxConns = cfg.MaxConns
	if pc.MaxConns <= 0 {
		pc.MaxConns = 4
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgbridge: pool: %w", err)
	}
	// The role's own session says what bounds its temporary files,
	// whoever set it; and a failed query here is a failed connection.
	if err := pool.QueryRow(ctx, "SELECT setting::pg_catalog.int8 FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'temp_file_limit'").Scan(&b.tempFiles); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgbridge: connecting as %s: %w", b.role, err)
	}
	// What an earlier host's plugin left: sessions it gave up on and could
	// not end, transactions it prepared (strays.go).
	if err := pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		return b.endStrays(ctx, c.Conn().PgConn(), 0)
	}); err != nil {
		pool.Close()
		return nil, err
	}
	b.pool = pool
	b.pipes = b.newPipes(int(pc.MaxConns))
	b.sweeping.Go(b.sweep)
	return b, nil
}

// TempFileLimitKB returns the temp_file_limit of the backend's role as
// its sessions see it, in kB: -1 when its temporary files are unbounded.
func (b *Bridge) TempFileLimitKB() int64 { return b.tempFiles }

// rolePassword derives the role's password from the admin URL, so that
// every host given the same URL computes the same password and none
// resets it under another's pool, and nobody without the URL knows it.
func rolePassword(adminURL, role string) string {
	m := hmac.New(sha256.New, []byte(adminURL))
	m.Write([]byte("storage-host role password\x00" + role))
	return hex.EncodeToString(m.Sum(nil))
}

// provision creates the backend's role and schema, or checks the ones
// that exist, under an advisory lock (hosts opening the same backend at
// once), in one transaction on an admin connection (see lockedTx).
func provision(ctx context.Context, admin *pgx.ConnConfig, schema, role, password string, tempFileLimitKB int64) error {
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("pgbridge: admin connection: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	stop := make(chan struct{})
	var ending sync.WaitGroup
	ending.Go(func() { endBlockers(ctx, admin, role, password, conn.PgConn().PID(), stop) })
	defer func() {
		close(stop)
		ending.Wait()
	}()
	return lockedTx(ctx, conn, "provisioning", "storage-host provision "+schema, func(tx pgx.Tx) error {
		return provisionTx(ctx, tx, schema, role, password, tempFileLimitKB)
	})
}

// LockWait bounds how long a host waits for one of its advisory locks
// (provisioning a backend, migrating its schema, creating its event
// table). Any role may take any advisory lock, so another backend's
// plugin could hold one of this backend's for good: past LockWait the
// work runs without it, which it may, since it is one transaction whose
// conflicts with a host doing the same (a role, a schema, a migration's
// version made first) abort it, and it runs again (up to lockAttempts
// times) to find them made. Short enough to fit in a call's statement
// timeout (5 s by default), as the event table's creation must.
const LockWait = 2 * time.Second

const lockAttempts = 4

// lockedTx runs f in a transaction on conn, the first time under the
// advisory lock key, waited for at most LockWait, then without it while
// it fails for a reason running again may cure (RunAgain). what names the
// work in its errors.
func lockedTx(ctx context.Context, conn *pgx.Conn, what, key string, f func(pgx.Tx) error) error {
	var err error
	for attempt := range lockAttempts {
		err = func() error {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return fmt.Errorf("pgbridge: %s: %w", what, err)
			}
			defer tx.Rollback(context.WithoutCancel(ctx))
			if attempt == 0 {
				if err := advisoryLock(ctx, tx, key); err != nil {
					return fmt.Errorf("pgbridge: %s lock: %w", what, err)
				}
			}
			if err := f(tx); err != nil {
				return err
			}
			if err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("pgbridge: %s: %w", what, err)
			}
			return nil
		}()
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || !RunAgain(pe.Code) {
			return err
		}
	}
	return err
}

// advisoryLock takes the advisory lock key for tx, waiting at most
// LockWait.
func advisoryLock(ctx context.Context, tx pgx.Tx, key string) error {
	return waitingAtMostLockWait(ctx, tx, func() error {
		_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", key)
		return err
	})
}

// waitingAtMostLockWait runs f with tx's lock_timeout at LockWait, then
// sets it back for the rest of tx.
func waitingAtMostLockWait(ctx context.Context, tx pgx.Tx, f func() error) error {
	var was string
	if err := tx.QueryRow(ctx, "SELECT current_setting('lock_timeout')").Scan(&was); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", strconv.FormatInt(LockWait.Milliseconds(), 10)); err != nil {
		return err
	}
	if err := f(); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", was)
	return err
}

// RunAgain reports whether a transaction of the host's that failed with
// SQLSTATE code may succeed when run again: its lock was held past
// LockWait, or a host beside it made the same object first.
func RunAgain(code string) bool {
	switch code {
	case "55P03", // lock_not_available
		"23505", // unique_violation (a catalog row made at once)
		"42710", // duplicate_object
		"42P06", // duplicate_schema
		"42P07", // duplicate_table
		"42701", // duplicate_column
		"40001", // serialization_failure
		"40P01": // deadlock_detected
		return true
	}
	return false
}

func provisionTx(ctx context.Context, tx pgx.Tx, schema, role, password string, tempFileLimitKB int64) error {
	r := pgx.Identifier{role}.Sanitize()
	s := pgx.Identifier{schema}.Sanitize()
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return fmt.Errorf("pgbridge: provisioning: %w", err)
	}
	var adminIsSuper bool
	if err := tx.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&adminIsSuper); err != nil {
		return fmt.Errorf("pgbridge: provisioning: %w", err)
	}
	// The password is a hex digest: no quoting issue, and it cannot be
	// a parameter of a utility statement.
	attrs := " LOGIN NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD '" + password + "'"
	if !exists || adminIsSuper {
		// Only a superuser may alter these three: an admin that is not
		// one leaves them, and the check below refuses a role that has
		// any of them.
		attrs = " NOSUPERUSER NOREPLICATION NOBYPASSRLS" + attrs
	}
	stmts := []string{}
	if !exists {
		stmts = append(stmts, "CREATE ROLE "+r+attrs)
	} else {
		// The role may set its own defaults (ALTER ROLE CURRENT_USER
		// SET), which every later login of it takes: a plugin that set
		// local_preload_libraries to a file that does not exist, or
		// idle_session_timeout to 1 ms, failed every login of its role,
		// so that the backend, and the daemon with it, could not open
		// again. So each default the role could have set for itself (a
		// setting of user or backend context) is reset by name, for
		// every database and for this one; what only a superuser may set
		// (temp_file_limit, the log levels, a module's) stays as it is,
		// never written again, and the host's own are set below.
		var resets []string
		err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(pg_catalog.format('ALTER ROLE %I%s RESET %I', $1::text,
				CASE WHEN d.setdatabase = 0 THEN '' ELSE pg_catalog.format(' IN DATABASE %I', pg_catalog.current_database()) END, g.name)), '{}')
			FROM pg_catalog.pg_db_role_setting d, pg_catalog.unnest(d.setconfig) u, pg_catalog.pg_settings g
			WHERE d.setrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1::text)
				AND d.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))
				AND g.name = pg_catalog.split_part(u, '=', 1) AND g.context IN ('user', 'backend')`, role).Scan(&resets)
		if err != nil {
			return fmt.Errorf("pgbridge: provisioning: %w", err)
		}
		stmts = append(stmts, "ALTER ROLE "+r+attrs)
		stmts = append(stmts, resets...)
	}
	// An admin that is not a superuser may give a schema to a role only
	// while it may act as that role (PostgreSQL 15: be a member of it;
	// 16 on: with the SET option): it grants itself the role for the
	// transaction, and revokes the grant before it commits.
	lend := !adminIsSuper
	if lend && exists {
		if err := tx.QueryRow(ctx, `SELECT NOT pg_has_role(current_user, $1,
			CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'SET' ELSE 'MEMBER' END)`, role).Scan(&lend); err != nil {
			return fmt.Errorf("pgbridge: provisioning: %w", err)
		}
	}
	if lend {
		stmts = append(stmts, "GRANT "+r+" TO CURRENT_USER")
	}
	stmts = append(stmts,
		"CREATE SCHEMA IF NOT EXISTS "+s+" AUTHORIZATION "+r,
		"ALTER ROLE "+r+" SET search_path = "+s,
	)
	if tempFileLimitKB > 0 && adminIsSuper {
		stmts = append(stmts, "ALTER ROLE "+r+" SET temp_file_limit = "+strconv.FormatInt(min(tempFileLimitKB, math.MaxInt32), 10))
	}
	if adminIsSuper {
		// What the role's statements raise (RAISE WARNING of any text, as
		// often as a loop runs) and the text of those that fail would go
		// to the server's log, which every database on it shares: 40 MB
		// in one call of 0.8 s. The plugin gets its errors in its results.
		stmts = append(stmts,
			"ALTER ROLE "+r+" SET log_min_messages = panic",
			"ALTER ROLE "+r+" SET log_min_error_statement = panic")
	}
	if lend {
		stmts = append(stmts, "REVOKE "+r+" FROM CURRENT_USER")
	}
	// PostgreSQL 15 grants no CREATE on public to PUBLIC; older ones do,
	// which would let the role create objects every backend sees. Revoked
	// only where granted: from 15 on, an admin that does not own the
	// database need not be able to.
	var publicCreate bool
	if err := tx.QueryRow(ctx, "SELECT coalesce(has_schema_privilege('public', 'public', 'CREATE'), false)").Scan(&publicCreate); err != nil {
		return fmt.Errorf("pgbridge: provisioning: %w", err)
	}
	if publicCreate {
		stmts = append(stmts, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("pgbridge: provisioning role %s and schema %s: %w", role, schema, err)
		}
	}
	if adminIsSuper {
		if err := guardVacuumOptions(ctx, tx, schema); err != nil {
			return fmt.Errorf("pgbridge: guarding the autovacuum options of schema %s: %w", schema, err)
		}
	}
	var super, createRole, createDB, bypass, repl, member, foreignOwner bool
	err := tx.QueryRow(ctx, `SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,
		EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid),
		EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = $2 AND n.nspowner <> r.oid)
		FROM pg_roles r WHERE r.rolname = $1`, role, schema).Scan(&super, &createRole, &createDB, &bypass, &repl, &member, &foreignOwner)
	if err != nil {
		return fmt.Errorf("pgbridge: checking role %s: %w", role, err)
	}
	switch {
	case super || createRole || createDB || bypass || repl:
		return fmt.Errorf("%w: role %s keeps a privileged attribute", ErrUnsafeRole, role)
	case member:
		return fmt.Errorf("%w: role %s is a member of another role", ErrUnsafeRole, role)
	case foreignOwner:
		return fmt.Errorf("%w: schema %s is owned by another role than %s", ErrUnsafeRole, schema, role)
	}
	return nil
}

// Schema returns the backend's schema.
func (b *Bridge) Schema() string { return b.schema }

// Role returns the backend's role, the user of every pooled connection.
func (b *Bridge) Role() string { return b.role }

// Ready reports whether PostgreSQL answers, as the backend's role, with
// the backend's schema in place: one dropped under it (or its database
// dropped and created again) leaves every statement of the plugin failing
// until the backend is opened again, which creates it. So does a
// privilege on the schema or its tables and sequences taken from the role
// since NoteLacking (an operator's REVOKE): the plugin's writes, and the
// event log's, fail meanwhile (an outside drill saw 7 037 writes refused
// while the backend said it was ready); the first one missing is named.
func (b *Bridge) Ready(ctx context.Context) error {
	present, lacking, err := b.privileges(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("pgbridge: %w", err)
	case !present:
		return fmt.Errorf("pgbridge: schema %s is gone (dropped, or its database created again): the backend is ready again once it is opened again (a restart)", b.schema)
	}
	b.lackedMu.Lock()
	defer b.lackedMu.Unlock()
	for _, l := range lacking {
		if !slices.Contains(b.lacked, l) {
			return fmt.Errorf("pgbridge: role %s lacks %s in schema %s: the statements that need it fail until it is granted again", b.role, l, b.schema)
		}
	}
	return nil
}

// NoteLacking records the privileges the role lacks now on its schema's
// tables and sequences, which Ready then leaves out: a plugin's
// migrations may revoke some of its own (an append-only table). The
// schema's USAGE, and the host's own tables (storagehost_…), are always
// needed.
func (b *Bridge) NoteLacking(ctx context.Context) error {
	_, lacking, err := b.privileges(ctx)
	if err != nil {
		return fmt.Errorf("pgbridge: %w", err)
	}
	lacking = slices.DeleteFunc(lacking, func(l string) bool {
		return strings.HasPrefix(l, "USAGE on the schema") ||
			strings.Contains(l, " on table storagehost_") || strings.Contains(l, " on sequence storagehost_")
	})
	b.lackedMu.Lock()
	b.lacked = lacking
	b.lackedMu.Unlock()
	return nil
}

// privileges answers whether the schema exists, and the privileges the
// role lacks on it, and on its tables and sequences.
func (b *Bridge) privileges(ctx context.Context) (present bool, lacking []string, err error) {
	err = b.pool.QueryRow(ctx, privilegesLacking, b.schema).Scan(&present, &lacking)
	return present, lacking, err
}

// privilegesLacking answers whether schema $1 exists and the privileges
// the role lacks that a plugin's statements and the event log need: USAGE
// on the schema; SELECT, INSERT, UPDATE and DELETE on the tables the role
// owns (its plugin's, made by its migrations, and the event log's: not a
// table an operator put there, nor a partition, reached through its
// parent); USAGE or UPDATE (either lets nextval run) on the sequences it
// owns but an identity column's, which an INSERT uses without either
// ("INSERT on table t").
const privilegesLacking = `SELECT n.oid IS NOT NULL, ARRAY(
	SELECT 'USAGE on the schema' WHERE NOT pg_catalog.has_schema_privilege(n.oid, 'USAGE')
	UNION ALL
	(SELECT p.priv OPERATOR(pg_catalog.||) ' on table ' OPERATOR(pg_catalog.||) c.relname
		FROM pg_catalog.pg_class c, pg_catalog.unnest('{SELECT,INSERT,UPDATE,DELETE}'::pg_catalog.text[]) AS p(priv)
		WHERE c.relnamespace OPERATOR(pg_catalog.=) n.oid AND c.relowner OPERATOR(pg_catalog.=) r.oid AND NOT c.relispartition
			AND CASE WHEN c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}') THEN NOT pg_catalog.has_table_privilege(c.oid, p.priv) ELSE false END
		ORDER BY c.relname, p.priv)
	UNION ALL
	(SELECT 'USAGE on sequence ' OPERATOR(pg_catalog.||) c.relname
		FROM pg_catalog.pg_class c
		WHERE c.relnamespace OPERATOR(pg_catalog.=) n.oid AND c.relowner OPERATOR(pg_catalog.=) r.oid
			AND CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'S' THEN NOT pg_catalog.has_sequence_privilege(c.oid, 'USAGE, UPDATE') ELSE false END
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
				AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'i')
		ORDER BY c.relname))
	FROM (SELECT) AS one LEFT JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) $1
	LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) CURRENT_USER`

// ConnConfig returns a copy of what the bridge's connections log in
// with: the backend's role and password, its search_path, the admin URL's
// server and TLS settings. For a connection of the host's own that
// must not hold the admin's privileges (the event log's LISTEN).
func (b *Bridge) ConnConfig() *pgx.ConnConfig { return b.pool.Config().ConnConfig.Copy() }

// asRole makes c log in as role, with the settings every session of the
// host's asks for at login. The role may change its own defaults (ALTER
// ROLE CURRENT_USER SET), which every later session of it takes at
// login, the host's own included: a serializable, read-only, deferrable
// default makes a plain SELECT wait for a safe snapshot, which the
// plugin's own transaction can withhold for good (the termination of its
// stuck statement, and the next Open, then waited too). A setting sent at
// login overrides the role's, so the host's sessions ask for the server's
// defaults (sessionDefaults); the operator's Settings come after.
func asRole(c *pgx.ConnConfig, role, password string) {
	c.User, c.Password = role, password
	for name, value := range sessionDefaults {
		c.RuntimeParams[name] = value
	}
}

// sessionDefaults are the settings every session of the role asks for at
// login, over what the role set for itself, or the database or the
// server (temp_buffers: see pinTempBuffers): synchronous_commit off (set for the role by its plugin, or for
// the whole server) answers a commit before its WAL is on disk, and an
// outside drill lost 13 to 16 acknowledged writes of 21 000 to a
// PostgreSQL killed under load, 3 of 3 runs. on is what a write the host
// acknowledges needs (Config.Settings, which come after, could say
// otherwise; the host's do not).
var sessionDefaults = map[string]string{
	"synchronous_commit":                  "on",
	"temp_buffers":                        "8MB", // pinned at login: pinTempBuffers
	"default_transaction_isolation":       "read committed",
	"default_transaction_read_only":       "off",
	"default_transaction_deferrable":      "off",
	"statement_timeout":                   "0",
	"lock_timeout":                        "0",
	"idle_in_transaction_session_timeout": "0",
	// Set by the role for itself while the host runs, these failed its
	// every login after (a library that does not load), ended its
	// pooled sessions and the host's migrations (1 ms idle), made every
	// error end the session (exit_on_error), had the server convert the
	// host's text (LATIN1: the event log's keys stored double encoded,
	// with no error), or read a backslash in the host's literals as an
	// escape (standard_conforming_strings): the host's sweep of its
	// stuck statements logs in as the role too.
	"local_preload_libraries":     "",
	"idle_session_timeout":        "0",
	"exit_on_error":               "off",
	"client_encoding":             "UTF8",
	"standard_conforming_strings": "on",
}

// pinTempBuffers fixes the session's temp_buffers at its login's (8 MB,
// sessionDefaults) for its life: PostgreSQL sizes a session's local
// buffers by the temp_buffers in force when it first uses a temporary
// table, keeps them until the session ends (no RESET or DISCARD frees
// them), and from then on refuses to change the setting. Any role may
// SET it, to terabytes: an outside check's plugin left 2.4, 1.1 and 1.0
// GB in three idle pooled sessions, and another did the same from a
// transaction it rolled back, which leaves no temporary table to see.
// So the host uses a temporary table first, in the statement that
// drops it, before any of the plugin's.
// A role that may not create temporary tables (TEMPORARY revoked on the
// database) needs no pin: the plugin cannot make them either.
func pinTempBuffers(ctx context.Context, pc *pgconn.PgConn) error {
	_, err := pc.Exec(ctx, pinTemp).ReadAll()
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42501" { // insufficient_privilege
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgbridge: fixing the session's temp_buffers: %w", err)
	}
	return nil
}

// pinTemp is pinTempBuffers' statement: one implicit transaction, at whose
// commit the table goes.
const pinTemp = "CREATE TEMPORARY TABLE storagehost_pin (x pg_catalog.int4) ON COMMIT DROP; INSERT INTO pg_temp.storagehost_pin VALUES (1)"

// terminateWait bounds a termination's connection and statement.
const terminateWait = 5 * time.Second

// abandon closes pc, a connection the bridge gives up on (its call ran
// past its deadline, or the connection is in a state it cannot answer
// for), and ends the server process behind it. Closing the socket is not
// enough: a server process running a statement notices a closed client
// only when it next reads or writes it, and a statement may keep it from
// doing so for good (a DO block looping in PL/pgSQL, which may catch the
// cancel request's query_canceled and sleep on), holding its locks, its
// LISTEN registrations, a snapshot that keeps VACUUM from every table of
// the database, and a CPU. pg_terminate_backend makes the process exit
// with FATAL, which no exception handler catches; the backend's role may
// signal its own sessions, so it runs as the role, on a connection of its
// own (the pool may be full of the same plugin's stuck calls), in the
// background: the call is answered at once.
func (b *Bridge) abandon(ctx context.Context, pc *pgconn.PgConn) {
	pid := pc.PID()
	_ = pc.Close(context.WithoutCancel(ctx))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		// A call that outlived Close's wait: its session is ended all
		// the same.
		go func() { _ = b.terminate(pid) }()
		return
	}
	b.ending.Go(func() { _ = b.terminate(pid) })
}

// closeWait bounds how long Close waits for the pool's connections to
// close, and abandoned sessions to be ended.
const closeWait = 2 * time.Second

// Close closes the pool. A connection whose server stopped answering
// takes pgconn up to 15 s to close (a cancel request, then Terminate,
// each waiting for the server), so Close waits for them at most
// closeWait: those still closing then finish in the background, within
// pgconn's own bound.
func (b *Bridge) Close() {
	done := make(chan struct{})
	b.mu.Lock()
	if !b.closed {
		close(b.stop)
	}
	b.closed = true
	b.mu.Unlock()
	go func() {
		b.pool.Close()
		b.ending.Wait()
		b.sweeping.Wait()
		close(done)
	}()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
