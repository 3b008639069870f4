package pgbridge

import (
	"context"
	"fmt"
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
// (INVALID) whatever its statements answered. Open does the same for
// those an earlier host left behind (a crash between the two), and so
// does a migration's end.

// tagPrepared is the command tag of PREPARE TRANSACTION.
const tagPrepared = "PREPARE TRANSACTION"

// preparedWait bounds the roll back, which runs after the call's
// deadline may have passed.
const preparedWait = 5 * time.Second

// errPrepared answers a call one of whose statements prepared a
// transaction.
const errPrepared = "postgres: PREPARE TRANSACTION is not allowed: the prepared transaction was rolled back, and nothing it did was kept"

// rollbackPrepared rolls back every transaction the session's role
// prepared in its database, and returns how many.
func rollbackPrepared(ctx context.Context, pc *pgconn.PgConn) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), preparedWait)
	defer cancel()
	res := pc.ExecParams(ctx, "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE owner = current_user AND database = current_database()", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return 0, fmt.Errorf("pgbridge: listing prepared transactions: %w", res.Err)
	}
	for _, row := range res.Rows {
		// An E'' literal reads the same whatever standard_conforming_strings
		// the session was left with.
		gid := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(string(row[0]))
		if _, err := pc.Exec(ctx, "ROLLBACK PREPARED E'"+gid+"'").ReadAll(); err != nil {
			return 0, fmt.Errorf("pgbridge: rolling back a prepared transaction: %w", err)
		}
	}
	return len(res.Rows), nil
}

// afterPrepared rolls back what the statements of parts prepared, when
// one did, and returns the pipeline's error, or the roll back's: a
// connection whose roll back failed is not reused (Open's sweep finds
// what it left). The parts that prepared are answered INVALID; the others
// ran in transactions of their own, which committed or not as they say.
func (b *Bridge) afterPrepared(ctx context.Context, pc *pgconn.PgConn, err error, parts ...*part) error {
	c := state(pc)
	found := c.prepared
	for _, x := range parts {
		found = found || x.prepared
	}
	if !found {
		return err
	}
	c.prepared = false
	if _, rerr := rollbackPrepared(ctx, pc); rerr != nil && err == nil {
		err = rerr
	}
	return err
}
