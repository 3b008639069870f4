package pgbridge

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

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
func (b *Bridge) Migrate(ctx context.Context, ms abi.Migrations) (_ uint64, err error) {
	if err := ms.Check(); err != nil {
		return 0, fmt.Errorf("pgbridge: migrations: %w", err)
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("pgbridge: migrations: %w", err)
	}
	// The plugin's migrations run in this connection's session, and what
	// they leave there would outlive them in the pool: a LISTEN (see
	// unlisten), a setting, a temporary table, a session's advisory lock.
	// The connection is closed, not reused; after a failure (a migration
	// past its deadline may go on in the server) its session is ended.
	defer func() {
		pc := conn.Hijack().PgConn()
		if err != nil {
			b.abandon(ctx, pc)
			return
		}
		_ = pc.Close(context.WithoutCancel(ctx))
	}()
	table := pgx.Identifier{b.schema, VersionTable}.Sanitize()
	var current uint64
	err = lockedTx(ctx, conn.Conn(), "migrations of schema "+b.schema, "storage-host migrate "+b.schema, func(tx pgx.Tx) error {
		for _, q := range []string{
			fmt.Sprintf("SELECT set_config('statement_timeout', '%d', true)", b.timeout.Milliseconds()),
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
			// The simple protocol: a migration may hold several statements.
			if _, err := tx.Conn().PgConn().Exec(ctx, m.SQL).ReadAll(); err != nil {
				return fmt.Errorf("pgbridge: migration %d of schema %s: %w", m.Version, b.schema, err)
			}
			// A host that applied it first makes this insert fail
			// (unique_violation): the transaction runs again and finds it.
			if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (version) VALUES ($1)", m.Version); err != nil {
				return fmt.Errorf("pgbridge: migration %d of schema %s: %w", m.Version, b.schema, err)
			}
		}
		return nil
	})
	if err != nil {
		return current, err
	}
	return uint64(len(ms)), nil
}
