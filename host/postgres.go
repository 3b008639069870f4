package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/internal/pgbridge"
	"github.com/storage-host/storage-host/host/internal/wirepath"
)

// PostgresConfig connects a backend to PostgreSQL (Config.Postgres), for
// plugins that import the postgres capability. The host creates, from the
// admin connection of URL, a role and a schema for the backend, and every
// statement of the plugin runs as that role, which owns that schema and
// nothing else (RATIONALE.md, "Why confine a PostgreSQL backend to a
// schema and a role of its own?").
type PostgresConfig struct {
	// URL is a postgres:// URL (or libpq key=value string) of a role that
	// may create roles and schemas: CREATEROLE and CREATE on the database,
	// or a superuser. The backend's role logs in on the same server and
	// database with a password the host derives from URL, and with the
	// URL's TLS settings (sslmode, sslrootcert …). Required.
	URL string
	// Schema is the backend's schema, created when missing; the backend's
	// role is "storagehost_" + Schema. Lower-case letters, digits and
	// underscores, starting with a letter, at most 40 bytes. Two backends
	// with one schema share their data. Required.
	Schema string
	// MaxConns bounds the backend's connections. Default: 4.
	MaxConns int32
	// StatementTimeout bounds the statements of a call that has no
	// deadline, and, plus pgbridge.LockWait, the migrations at load
	// together, kept by the host (a migration may change the server's
	// statement_timeout). Default: the backend's Limits.CallTimeout.
	StatementTimeout time.Duration
	// TempFileLimitMB bounds the temporary files (sorts and hashes
	// spilled to disk; not temporary tables, which PostgreSQL does not
	// count there) one of the role's sessions holds at once, in MiB: the
	// role's temp_file_limit, set at Open when URL's role is a superuser
	// (only one may set it; the role cannot raise it). -1 leaves the
	// role's setting as it is. Default: 1024.
	TempFileLimitMB int64
}

// maxTempFileLimitMB is the largest temp_file_limit PostgreSQL takes
// (2^31 - 1 kB), in MiB.
const maxTempFileLimitMB = math.MaxInt32 / 1024

// defaultTempFileLimitMB is PostgresConfig.TempFileLimitMB's default.
const defaultTempFileLimitMB = 1024

// CheckPostgres reports what Open would refuse in c before connecting: no
// URL, one pgx cannot parse, a schema name out of form. It reads the
// files a URL points pgx to (a password or service file), and connects
// to nothing.
func CheckPostgres(c PostgresConfig) error {
	switch {
	case c.URL == "":
		return fmt.Errorf("%w: postgres: no URL", ErrInvalid)
	case CheckPostgresSchema(c.Schema) != nil:
		return fmt.Errorf("%w: postgres: %w", ErrInvalid, CheckPostgresSchema(c.Schema))
	case c.MaxConns < 0 || c.StatementTimeout < 0:
		return fmt.Errorf("%w: postgres: a negative max_conns or statement timeout", ErrInvalid)
	case c.TempFileLimitMB < -1 || c.TempFileLimitMB > maxTempFileLimitMB:
		return fmt.Errorf("%w: postgres: temp_file_limit_mb %d is outside -1 to %d", ErrInvalid, c.TempFileLimitMB, maxTempFileLimitMB)
	}
	if _, err := pgx.ParseConfig(c.URL); err != nil {
		// pgx's message quotes the URL with its password masked.
		return fmt.Errorf("%w: postgres: %w", ErrInvalid, err)
	}
	return nil
}

// CheckPostgresSchema reports whether schema may be PostgresConfig.Schema:
// lower-case letters, digits and underscores, starting with a letter, at
// most 40 bytes. Its message says so.
func CheckPostgresSchema(schema string) error {
	return pgbridge.CheckSchema(schema)
}

// PostgresRole returns the name of the role the host creates for a
// backend whose schema is schema.
func PostgresRole(schema string) string { return pgbridge.RolePrefix + schema }

// ErrSchemaNewer is the error of Open for a backend whose PostgreSQL
// schema has migrations the plugin does not know: a newer plugin has
// migrated it.
var ErrSchemaNewer = pgbridge.ErrSchemaNewer

// openPostgres opens the backend's bridge. With events on, every session
// has abi.PGEventsSetting on, so that a write_events plugin's writes
// insert their events (abi/README.md, section 16.6).
func openPostgres(ctx context.Context, c *PostgresConfig, lim Limits, events bool) (*pgbridge.Bridge, error) {
	settings := map[string]string{abi.PGEventsSetting: "off"}
	if events {
		settings[abi.PGEventsSetting] = "on"
	}
	// A server that takes connections and never answers held the open
	// for ever (the startup's reply has no deadline of pgx's own): an
	// outside drill's daemon waited on it past 80 s, and its reloads
	// and other backends' attempts with it.
	ctx, cancel := context.WithTimeout(ctx, pgOpenWait(lim))
	defer cancel()
	b, err := pgbridge.Open(ctx, pgbridge.Config{
		AdminURL:         c.URL,
		Schema:           c.Schema,
		MaxConns:         c.MaxConns,
		StatementTimeout: cmp.Or(c.StatementTimeout, lim.CallTimeout),
		MaxResultBytes:   lim.replyBytes(),
		Settings:         settings,
		TempFileLimitKB:  tempFileLimitKB(c.TempFileLimitMB),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %w", openFailure(err), err)
	}
	return b, nil
}

// pgOpenWait bounds the network work of opening a PostgreSQL backend,
// each part on its own: the bridge's connections, the provisioning of
// its role and schema (whose advisory lock hosts opening at once wait for,
// pgbridge.LockWait at a time), and the event log's tables. Migrations
// have their deadline of their own.
func pgOpenWait(lim Limits) time.Duration {
	return max(10*time.Second, 2*lim.CallTimeout)
}

// openFailure is the sentinel of a bridge that did not open: ErrInvalid
// for what the configuration must change (its URL or schema, a refused
// login, a database that does not exist, rights the URL's role lacks),
// ErrUnavailable for what may pass by itself: a server that could not be
// reached or was not taking connections (connection exceptions, shutdown,
// too many connections), a read-only standby (after a failover), and the
// contention of hosts opening at once that outlasted the bridge's own
// retries (locks, serialization, deadlocks, catalog rows made at once).
func openFailure(err error) error {
	if errors.Is(err, pgbridge.ErrConfig) {
		return ErrInvalid
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 && !pgbridge.RunAgain(pgErr.Code) {
		switch pgErr.Code[:2] {
		case "08", "25", "40", "53", "57", "58": // connection, transaction state, rollback, resources, operator intervention, system
		default:
			return ErrInvalid
		}
	}
	return ErrUnavailable
}

// tempFileLimitKB is the role's temp_file_limit for limitMB
// (PostgresConfig.TempFileLimitMB): 0 for none to set.
func tempFileLimitKB(limitMB int64) int64 {
	switch {
	case limitMB < 0:
		return 0
	case limitMB == 0:
		return defaultTempFileLimitMB * 1024
	}
	return limitMB * 1024
}

// pgSQL runs the host's own statements (the event table's) through the
// backend's bridge, as the backend's role: never on the admin connection,
// whose privileges a table in a schema the plugin owns could borrow
// (through a trigger, say).
func pgSQL(b *pgbridge.Bridge) events.SQL {
	return func(ctx context.Context, req *abi.PGRequest) ([]abi.PGResult, error) {
		var e abi.Encoder
		b.Do(ctx, req, &e)
		body, err := abi.ParseResponse(e.Bytes())
		if err != nil {
			return nil, err
		}
		d := abi.NewDecoder(body)
		rs := abi.DecodePGResults(d)
		if err := d.Finish(); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		return rs, nil
	}
}

// migrate reads the plugin's migrations, if it has any, and applies
// those the backend's schema lacks.
func (in *instance) migrate(ctx context.Context) error {
	if in.mod.ExportedFunction(abi.ExportMigrations) == nil {
		return nil
	}
	ms, err := in.migrations(ctx)
	if err != nil {
		return err
	}
	version, err := in.p.pg.Migrate(ctx, ms)
	if err != nil {
		if errors.Is(err, pgbridge.ErrSchemaNewer) {
			return fmt.Errorf("%w: backend %s: %w", ErrIncompatible, in.p.name, err)
		}
		return fmt.Errorf("host: backend %s: %w", in.p.name, err)
	}
	in.p.log.Debug("postgres schema migrated", "schema", in.p.pg.Schema(), "version", version)
	return nil
}

// migrations reads and checks the plugin's migrations from its
// storage_migrations export: none when it has no such export. Migrations
// the host would refuse (a gap in their versions, a name of the host's)
// are ErrIncompatible, when the plugin is inspected as when it is loaded.
func (in *instance) migrations(ctx context.Context) (abi.Migrations, error) {
	fn := in.mod.ExportedFunction(abi.ExportMigrations)
	if fn == nil {
		return nil, nil
	}
	in.started.Store(monoNow())
	res, err := fn.Call(ctx)
	in.started.Store(0)
	if err != nil {
		if in.timedOut.Load() {
			return nil, abi.Errorf(abi.StatusLimit, "%s ran past the call timeout of %v", abi.ExportMigrations, in.p.limits.CallTimeout)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrIncompatible, abi.ExportMigrations, err)
	}
	if len(res) != 1 {
		return nil, fmt.Errorf("%w: %s returns no region", ErrIncompatible, abi.ExportMigrations)
	}
	b, err := in.read(res[0], "migrations")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIncompatible, err)
	}
	if len(b) > abi.MaxMigrationsBytes {
		return nil, fmt.Errorf("%w: migrations: %s returned %d bytes, more than the %d Migrations may hold (section 16.4)", ErrIncompatible, abi.ExportMigrations, len(b), abi.MaxMigrationsBytes)
	}
	if n := abi.NewDecoder(b).Uvarint(); n > abi.MaxMigrations {
		return nil, fmt.Errorf("%w: migrations: %s returned %d migrations, more than the %d Migrations may hold (section 16.4)", ErrIncompatible, abi.ExportMigrations, n, abi.MaxMigrations)
	}
	var ms abi.Migrations
	d := abi.NewDecoder(b)
	ms.Decode(d)
	if d.Finish() != nil {
		return nil, fmt.Errorf("%w: migrations: %s", ErrIncompatible, wirepath.Fault("Migrations", b, d))
	}
	if err := ms.Check(); err != nil {
		return nil, fmt.Errorf("%w: migrations: %v", ErrIncompatible, err)
	}
	return ms, nil
}
