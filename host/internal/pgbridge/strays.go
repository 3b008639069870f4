package pgbridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A stray is a session of the backend's role that no call answers for any
// more: one the bridge gave up on (abandon), whose statement may catch its
// cancel request and run on for good, holding its locks, a snapshot that
// keeps VACUUM from every table of the database, its transaction ID, and
// a CPU; or one an earlier host gave up on and could not end. Strays are
// ended with pg_terminate_backend, which the role may call on its own
// sessions and which no exception handler catches, and what the role
// prepared is rolled back (prepared.go).
//
// Three things end them: abandon, for the session it gives up on, at
// once; Open, for what an earlier host left; and a sweep every half
// runaway, for any session of the role in one statement or transaction
// for longer than runaway (Config.RunawayAfter), whatever made it: no
// call of any host's lasts past its statement timeout, a migration's
// included, so a session four times past it was given up on by whoever
// sent it. A host sharing the backend with a statement timeout over four
// times this one's would have its longest calls ended too.

// endStrays ends, from pc, a session of the role's own, the session pid
// (when not 0) and every session of the role in one statement or
// transaction for longer than b.runaway, then rolls back what the role
// prepared. A process that ended by itself, or a pid since given to
// another role's session, is left alone.
func (b *Bridge) endStrays(ctx context.Context, pc *pgconn.PgConn, pid uint32) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), terminateWait)
	defer cancel()
	res := pc.ExecParams(ctx, endStraysSQL,
		[][]byte{fmt.Appendf(nil, "%d", pid), fmt.Appendf(nil, "%d milliseconds", b.runaway.Milliseconds())}, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("pgbridge: ending the role's stray sessions: %w", res.Err)
	}
	return rollbackPrepared(ctx, pc)
}

// endStraysSQL is endStrays' statement. It runs in the role's session,
// whose search_path is the plugin's schema, where the plugin may define
// functions and operators: one for an argument type pg_catalog has no
// exact match for (bigint * interval) took the statement over, raised an
// error, and no session of the role could be ended (an outside check).
// So every function, operator and type is pg_catalog's by name, and the
// bound is an interval parameter.
const endStraysSQL = `SELECT pg_catalog.pg_terminate_backend(a.pid) FROM pg_catalog.pg_stat_activity a
	WHERE a.usename OPERATOR(pg_catalog.=) CURRENT_USER
	AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
	AND (a.pid OPERATOR(pg_catalog.=) $1::pg_catalog.int4
		OR a.state OPERATOR(pg_catalog.<>) 'idle'::pg_catalog.text
		AND pg_catalog.now() OPERATOR(pg_catalog.-) COALESCE(a.xact_start, a.query_start) OPERATOR(pg_catalog.>) $2::pg_catalog.interval)`

// terminate ends the session pid, and any other stray, on a connection of
// its own: the pool may be full of the same plugin's stuck calls.
func (b *Bridge) terminate(pid uint32) error {
	ctx, cancel := context.WithTimeout(context.Background(), terminateWait)
	defer cancel()
	conn, err := b.connectAsRole(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return b.endStrays(ctx, conn.PgConn(), pid)
}

// connectAsRole opens a connection as the backend's role. The role may
// change its own password (ALTER ROLE CURRENT_USER PASSWORD: no privilege
// prevents it), and the pool's open connections keep working, but a new
// one, which ends strays, would be refused: a login refused for its
// password has the admin set the password back first.
func (b *Bridge) connectAsRole(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, b.ConnConfig())
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "28P01" && pgErr.Code != "28000" {
		return conn, err
	}
	if err := b.restorePassword(ctx); err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, b.ConnConfig())
}

// restorePassword sets the role's password back to the one the bridge
// logs in with, from an admin connection.
func (b *Bridge) restorePassword(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, b.admin)
	if err != nil {
		return fmt.Errorf("pgbridge: admin connection: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The password is a hex digest: no quoting issue (provisionTx).
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{b.role}.Sanitize()+" PASSWORD '"+b.password+"'"); err != nil {
		return fmt.Errorf("pgbridge: setting the role's password back: %w", err)
	}
	return nil
}

// endBlockers ends, every LockWait until stop, the sessions of role that
// hold a lock the admin session adminPID waits for. Provisioning rewrites
// the role's own catalog rows (its password, its search_path), which the
// role may update itself (ALTER ROLE CURRENT_USER SET, PASSWORD) in a
// transaction that never ends: a plugin's statement ignoring its cancel
// when its host was killed, which nothing ended since. The next Open
// waited on it for good, before it could end any stray (an outside
// check). They are ended as the role, which may signal its own sessions
// and whose password the blocker's change, not committed, has not
// changed; a role not made yet cannot log in, and there is nothing to end.
func endBlockers(ctx context.Context, admin *pgx.ConnConfig, role, password string, adminPID uint32, stop <-chan struct{}) {
	t := time.NewTicker(LockWait)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		func() {
			cfg := admin.Copy()
			asRole(cfg, role, password)
			cfg.RuntimeParams["search_path"] = "pg_catalog"
			tctx, cancel := context.WithTimeout(ctx, terminateWait)
			defer cancel()
			conn, err := pgx.ConnectConfig(tctx, cfg)
			if err != nil {
				return
			}
			defer conn.Close(context.WithoutCancel(tctx))
			_, _ = conn.Exec(tctx, `SELECT pg_catalog.pg_terminate_backend(a.pid) FROM pg_catalog.pg_stat_activity a
				WHERE a.pid OPERATOR(pg_catalog.=) ANY (pg_catalog.pg_blocking_pids($1::pg_catalog.int4))
				AND a.usename OPERATOR(pg_catalog.=) CURRENT_USER`, int64(adminPID))
		}()
	}
}

// sweep ends strays every half runaway until Close.
func (b *Bridge) sweep() {
	t := time.NewTicker(b.runaway / 2)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			_ = b.terminate(0)
		}
	}
}
