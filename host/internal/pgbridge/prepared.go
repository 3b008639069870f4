package pgbridge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A prepared transaction (PREPARE TRANSACTION, two-phase commit) outlives
// the call, the session, the host and a restart of PostgreSQL: it keeps
// its locks, holds back the whole database's vacuum horizon and
// transaction ID freezing, and takes one of the server's
// max_prepared_transactions slots, which every database shares. No
// privilege keeps a role from preparing one, so the bridge undoes them:
// a statement whose result says it prepared one makes the bridge roll
// back every transaction its role prepared in the database, on the same
// connection, before the connection is reused, and the call is refused
// (INVALID) whatever its statements answered. A connection the bridge
// gives up on (its own, or a migration's) has its session ended and the
// same roll back run on a new one (terminate): there the bridge may not
// have read the tag. Open does it for what an earlier host left behind (a
// crash between the two).

// tagPrepared is the command tag of PREPARE TRANSACTION.
const tagPrepared = "PREPARE TRANSACTION"

// preparedWait bounds the roll back, which runs after the call's
// deadline may have passed.
const preparedWait = 5 * time.Second

// errPrepared answers a call one of whose statements prepared a
// transaction.
const errPrepared = "postgres: PREPARE TRANSACTION is not allowed: the prepared transaction was rolled back, and nothing it did was kept"

// rollbackPrepared rolls back every transaction the session's role
// prepared in its database.
func rollbackPrepared(ctx context.Context, pc *pgconn.PgConn) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), preparedWait)
	defer cancel()
	res := pc.ExecParams(ctx, "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE owner OPERATOR(pg_catalog.=) CURRENT_USER AND database OPERATOR(pg_catalog.=) pg_catalog.current_database()", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("pgbridge: listing prepared transactions: %w", res.Err)
	}
	for _, row := range res.Rows {
		// An E'' literal reads the same whatever standard_conforming_strings
		// the session was left with.
		gid := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(string(row[0]))
		if _, err := pc.Exec(ctx, "ROLLBACK PREPARED E'"+gid+"'").ReadAll(); err != nil {
			return fmt.Errorf("pgbridge: rolling back a prepared transaction: %w", err)
		}
	}
	return nil
}

// afterPrepared rolls back, when a statement of parts prepared a
// transaction, what the role prepared, on the connection the pipeline ran
// on, and returns the pipeline's error or the roll back's. A pipeline
// that failed needs none here: its connection is given up on, and
// terminate rolls back. The parts that prepared are answered INVALID; the
// others ran in transactions of their own, which committed or not as
// they say.
func afterPrepared(ctx context.Context, pc *pgconn.PgConn, err error, parts ...*part) error {
	if err != nil || !slices.ContainsFunc(parts, func(x *part) bool { return x.prepared }) {
		return err
	}
	return rollbackPrepared(ctx, pc)
}
