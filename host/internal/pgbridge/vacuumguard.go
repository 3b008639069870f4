package pgbridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A table's owner may set the autovacuum cost of its own tables
// (ALTER TABLE … SET (autovacuum_vacuum_cost_delay = 100,
// autovacuum_vacuum_cost_limit = 1), or the same for its TOAST table):
// an outside check's plugin did so on four tables of dead rows, and every
// autovacuum worker of the server (autovacuum_max_workers, three by
// default, shared by every database on it) crawled them at 2.5 pages a
// second, for about 49 minutes a table, while no other table of any
// database was vacuumed; the options outlived the daemon. PostgreSQL has
// no privilege for them, so the host refuses them where it can: an admin
// that is a superuser installs an event trigger, once per database, that
// fails a statement of a backend's role (RolePrefix) leaving either
// option on a table, a materialized view or its TOAST table, and at every
// open resets them on the tables of the backend's schema (set before the
// trigger was there, or by a host that had none).

// vacuumGuardFunction is the event trigger's function. It runs as the
// statement's user, and returns at once for a role not the host's. Every
// name in it is qualified, and pg_temp searched last: a role's temporary
// table named pg_class would otherwise hide the catalog's (a review
// passed the options so, with DISCARD PLANS). Its owner must be a
// superuser (guardVacuumOptions): the owner of a function may change it,
// and the trigger runs it for every role, superusers included.
const vacuumGuardFunction = `CREATE FUNCTION public.storagehost_vacuum_options() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  rel pg_catalog.regclass;
BEGIN
  IF pg_catalog.starts_with(current_user::pg_catalog.text, 'storagehost_') IS NOT TRUE THEN
    RETURN;
  END IF;
  SELECT c.oid INTO rel
    FROM pg_catalog.pg_event_trigger_ddl_commands() d
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
    LEFT JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) c.reltoastrelid
   WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
     AND EXISTS (SELECT FROM pg_catalog.unnest(pg_catalog.array_cat(c.reloptions, t.reloptions)) o
                 WHERE pg_catalog.split_part(o, '=', 1) OPERATOR(pg_catalog.=) ANY ('{autovacuum_vacuum_cost_delay,autovacuum_vacuum_cost_limit}'::pg_catalog.text[]))
   LIMIT 1;
  IF rel IS NOT NULL THEN
    RAISE EXCEPTION 'storage-host: % may not set autovacuum_vacuum_cost_delay or autovacuum_vacuum_cost_limit: the server''s autovacuum workers serve every database', rel
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END
$f$`

// vacuumGuardTrigger is the event trigger's name.
const vacuumGuardTrigger = "storagehost_vacuum_options"

// guardVacuumOptions installs the event trigger (or makes it so again:
// its function replaced, its owner a superuser, the trigger enabled) and
// resets the two options on the tables of schema. In the provisioning
// transaction of an admin that is a superuser. Only a repair takes an
// advisory lock, and does without it if another session holds it (any
// role may take any key: a wait would let it keep the backend from
// opening); a reset that waits past LockWait for its table is left to
// the next open, the trigger refusing new options meanwhile. A database
// without the schema public gets the reset only.
func guardVacuumOptions(ctx context.Context, tx pgx.Tx, schema string) error {
	var public, current bool
	var enabled string
	check := func() error {
		return tx.QueryRow(ctx, `SELECT to_regnamespace('public') IS NOT NULL,
		coalesce((SELECT p.prosrc = substring($1 from '\$f\$(.*)\$f\$') AND r.rolsuper AND NOT p.prosecdef
				AND p.proconfig = '{"search_path=pg_catalog, pg_temp"}' AND l.lanname = 'plpgsql'
			FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner JOIN pg_language l ON l.oid = p.prolang
			WHERE p.oid = to_regprocedure('public.storagehost_vacuum_options()')), false),
		coalesce((SELECT e.evtenabled::text FROM pg_event_trigger e JOIN pg_roles r ON r.oid = e.evtowner
			WHERE e.evtname = $2 AND r.rolsuper AND e.evtfoid = to_regprocedure('public.storagehost_vacuum_options()')), '')`,
			vacuumGuardFunction, vacuumGuardTrigger).Scan(&public, &current, &enabled)
	}
	if err := check(); err != nil {
		return err
	}
	if public && (!current || enabled == "" || enabled == "D") {
		var locked bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock(hashtext('storagehost vacuum options'))").Scan(&locked); err != nil {
			return err
		}
		if locked {
			if err := check(); err != nil { // as another host may have left it
				return err
			}
			var stmts []string
			if !current {
				// A function not made by a superuser, or changed since,
				// goes with its trigger, whoever owns them.
				stmts = append(stmts, "DROP FUNCTION IF EXISTS public.storagehost_vacuum_options() CASCADE", vacuumGuardFunction)
				enabled = ""
			}
			switch enabled {
			case "":
				stmts = append(stmts, "DROP EVENT TRIGGER IF EXISTS "+vacuumGuardTrigger,
					"CREATE EVENT TRIGGER "+vacuumGuardTrigger+" ON ddl_command_end EXECUTE FUNCTION public.storagehost_vacuum_options()")
			case "D":
				stmts = append(stmts, "ALTER EVENT TRIGGER "+vacuumGuardTrigger+" ENABLE")
			}
			for _, q := range stmts {
				if _, err := tx.Exec(ctx, q); err != nil {
					return fmt.Errorf("%s: %w", q[:min(len(q), 60)], err)
				}
			}
		}
	}
	var resets []string
	err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(format('ALTER %s %s RESET (autovacuum_vacuum_cost_delay, autovacuum_vacuum_cost_limit%s)',
			CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, c.oid::regclass,
			CASE WHEN c.reltoastrelid <> 0 THEN ', toast.autovacuum_vacuum_cost_delay, toast.autovacuum_vacuum_cost_limit' ELSE '' END)), '{}')
		FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
		WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND c.relkind IN ('r', 'm')
			AND EXISTS (SELECT FROM unnest(array_cat(c.reloptions, t.reloptions)) o
				WHERE split_part(o, '=', 1) IN ('autovacuum_vacuum_cost_delay', 'autovacuum_vacuum_cost_limit'))`, schema).Scan(&resets)
	if err != nil || len(resets) == 0 {
		return err
	}
	return waitingAtMostLockWait(ctx, tx, func() error {
		for _, q := range resets {
			sp, err := tx.Begin(ctx) // a savepoint
			if err != nil {
				return err
			}
			if _, err := sp.Exec(ctx, q); err != nil {
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "55P03" { // lock_not_available: the next open's
					return fmt.Errorf("%s: %w", q, err)
				}
				if err := sp.Rollback(ctx); err != nil {
					return err
				}
				continue
			}
			if err := sp.Commit(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}
