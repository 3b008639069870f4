package pgbridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/storage-host/storage-host/abi"
)

// VersionTable is the table, in the backend's schema, that records the
// migrations applied to it.
const VersionTable = "storagehost_migrations"

// Migrate applies the migrations the backend's schema does not have yet,
// in version order, as the backend's role, in one transaction under an
// advisory lock of the schema (or, held past LockWait, without it: see
// lockedTx), so that hosts loading the backend at once apply each
// migration once. It refuses (ErrSchemaNewer) a schema that
// has a version past the last of ms. It returns the schema's version.
//
// All of it, the wait for a connection and the lock and the commit
// included, runs within ctx's deadline or, when ctx has none, the
// bridge's statement timeout plus LockWait (see migrationDeadline): past
// it the connection is given up and its session ended (abandon).
func (b *Bridge) Migrate(ctx context.Context, ms abi.Migrations) (_ uint64, err error) {
	if err := ms.Check(); err != nil {
		return 0, fmt.Errorf("pgbridge: migrations: %w", err)
	}
	ctx, cancel, bound := b.migrationDeadline(ctx)
	defer cancel()
	var version uint64 // the migration running, 0 for the host's own steps
	defer func() {
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = b.pastDeadline(version, bound, err)
		}
	}()
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("pgbridge: migrations: %w", err)
	}
	// The plugin's migrations run in this connection's session, and what
	// they leave there would outlive them in the pool: a LISTEN (see
	// resetSession), a setting, a temporary table, a session's advisory lock.
	// The connection is closed, not reused; after a failure (a migration
	// past its deadline may go on in the server) its session is ended.
	defer func() {
		pc := conn.Hijack().PgConn()
		if err != nil { // a PREPARE TRANSACTION's too: terminate rolls it back
			b.abandon(ctx, pc)
			return
		}
		_ = pc.Close(context.WithoutCancel(ctx))
	}()
	table := pgx.Identifier{b.schema, VersionTable}.Sanitize()
	var current uint64
	err = lockedTx(ctx, conn.Conn(), "migrations of schema "+b.schema, "storage-host migrate "+b.schema, func(tx pgx.Tx) error {
		version = 0
		for _, q := range []string{
			fmt.Sprintf("SELECT pg_catalog.set_config('statement_timeout', '%d', true)", b.timeout.Milliseconds()),
			"CREATE TABLE IF NOT EXISTS " + table + " (version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("pgbridge: migrations of schema %s: %w", b.schema, err)
			}
		}
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+table).Scan(&current); err != nil {
			return fmt.Errorf("pgbridge: migrations of schema %s: %w", b.schema, err)
		}
		if current > uint64(len(ms)) {
			return fmt.Errorf("%w: schema %s is at version %d, the plugin knows %d", ErrSchemaNewer, b.schema, current, len(ms))
		}
		for _, m := range ms[current:] {
			version = m.Version
			if err := runMigration(ctx, tx.Conn().PgConn(), m.SQL); err != nil {
				return fmt.Errorf("pgbridge: migration %d of schema %s: %w", m.Version, b.schema, err)
			}
			// A host that applied it first makes this insert fail
			// (unique_violation): the transaction runs again and finds it.
			if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (version) VALUES ($1)", m.Version); err != nil {
				return fmt.Errorf("pgbridge: migration %d of schema %s: %w", m.Version, b.schema, err)
			}
		}
		version = 0 // the commit is the host's
		return nil
	})
	if err != nil {
		return current, err
	}
	return uint64(len(ms)), nil
}

// migrationDeadline gives ctx the deadline of the migrations at load:
// ctx's own, or, when it has none, the bridge's statement timeout plus
// LockWait (the most a held advisory lock delays them) from now. It is
// the host's, kept by the context's cancel request and then the
// connection's closing, because every bound in the server is a session
// setting the plugin's own SQL may change: a migration runs through the
// simple protocol, several statements at once, and one starting
// "SET LOCAL statement_timeout = 0" undid the host's statement_timeout
// (lock_timeout and idle_in_transaction_session_timeout the same) and
// held Open for good, its transaction holding back VACUUM in the whole
// database. bound describes the deadline, for errors.
func (b *Bridge) migrationDeadline(ctx context.Context) (_ context.Context, _ context.CancelFunc, bound string) {
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel := context.WithCancel(ctx)
		return ctx, cancel, "the deadline of its context"
	}
	d := b.timeout + LockWait
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, cancel, fmt.Sprintf("the migration timeout of %v (the statement timeout %v and LockWait %v)", d, b.timeout, LockWait)
}

// pastDeadline is the error of migrations whose deadline (bound, from
// migrationDeadline) ended them while version ran (0: a step of the
// host's, such as the lock or the commit), wrapping err, what the
// connection answered, and context.DeadlineExceeded. The connection's
// session, if it had one, is ended (abandon).
func (b *Bridge) pastDeadline(version uint64, bound string, err error) error {
	what := "migrations of schema " + b.schema
	if version != 0 {
		what = fmt.Sprintf("migration %d of schema %s", version, b.schema)
	}
	return fmt.Errorf("pgbridge: %s ran past %s: %w (%w)", what, bound, context.DeadlineExceeded, err)
}

// runMigration runs sql, a migration, through the simple protocol (it may
// hold several statements), reading its results a row at a time and
// throwing them away: a migration that SELECTs a large table, or rows of
// many NULLs, is bounded by its deadline like any other, not held whole
// in the host's memory (pgconn's ReadAll kept every row; each message is
// bounded by the connection's body limit). PREPARE TRANSACTION is
// refused; the caller rolls back. So is a COPY, before anything is sent
// (copy.go).
func runMigration(ctx context.Context, pc *pgconn.PgConn, sql string) error {
	if hasCopy([]byte(sql)) {
		return errors.New("it holds a COPY statement, which a migration may not run (its rows would travel in PostgreSQL's copy sub-protocol): use INSERT … VALUES or INSERT … SELECT")
	}
	mrr := pc.Exec(ctx, sql)
	prepared := false
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			// thrown away: nothing of a row outlives the next
		}
		tag, err := rr.Close()
		if err == nil && tag.String() == tagPrepared {
			prepared = true
		}
	}
	if err := mrr.Close(); err != nil {
		return err
	}
	if prepared {
		return errors.New("PREPARE TRANSACTION is not allowed; it is rolled back")
	}
	return nil
}
