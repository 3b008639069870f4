package pgbridge

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
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
// statement's user, who cannot replace it (the schema public is the
// database owner's), and returns at once for a role not the host's.
const vacuumGuardFunction = `CREATE OR REPLACE FUNCTION public.storagehost_vacuum_options() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $f$
DECLARE
  rel regclass;
BEGIN
  IF current_user NOT LIKE 'storagehost\_%' THEN
    RETURN;
  END IF;
  SELECT c.oid INTO rel
    FROM pg_event_trigger_ddl_commands() d
    JOIN pg_class c ON c.oid = d.objid
    LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
   WHERE d.classid = 'pg_class'::regclass
     AND EXISTS (SELECT FROM unnest(coalesce(c.reloptions, '{}') || coalesce(t.reloptions, '{}')) o
                 WHERE split_part(o, '=', 1) IN ('autovacuum_vacuum_cost_delay', 'autovacuum_vacuum_cost_limit'))
   LIMIT 1;
  IF rel IS NOT NULL THEN
    RAISE EXCEPTION 'storage-host: % may not set autovacuum_vacuum_cost_delay or autovacuum_vacuum_cost_limit: the server''s autovacuum workers serve every database', rel
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END
$f$`

// vacuumGuardTrigger is the event trigger's name.
const vacuumGuardTrigger = "storagehost_vacuum_options"

// guardVacuumOptions installs the event trigger (or brings it up to date,
// or enables it again) and resets the two options on the tables of
// schema. In the provisioning transaction of an admin that is a
// superuser; hosts beside it wait for the same advisory lock. A database
// without the schema public gets the reset only.
func guardVacuumOptions(ctx context.Context, tx pgx.Tx, schema string) error {
	if err := advisoryLock(ctx, tx, "storagehost vacuum options"); err != nil {
		return err
	}
	var public, current bool
	var enabled string
	err := tx.QueryRow(ctx, `SELECT to_regnamespace('public') IS NOT NULL,
		coalesce((SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure('public.storagehost_vacuum_options()')), '') =
			substring($1 from '\$f\$(.*)\$f\$'),
		coalesce((SELECT evtenabled::text FROM pg_event_trigger WHERE evtname = $2), '')`,
		vacuumGuardFunction, vacuumGuardTrigger).Scan(&public, &current, &enabled)
	if err != nil {
		return err
	}
	var stmts []string
	if public && !current {
		stmts = append(stmts, vacuumGuardFunction)
	}
	switch {
	case !public:
	case enabled == "":
		stmts = append(stmts, "CREATE EVENT TRIGGER "+vacuumGuardTrigger+" ON ddl_command_end EXECUTE FUNCTION public.storagehost_vacuum_options()")
	case enabled != "O":
		stmts = append(stmts, "ALTER EVENT TRIGGER "+vacuumGuardTrigger+" ENABLE")
	}
	var resets []string
	err = tx.QueryRow(ctx, `SELECT coalesce(array_agg(format('ALTER %s %s RESET (autovacuum_vacuum_cost_delay, autovacuum_vacuum_cost_limit%s)',
			CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, c.oid::regclass,
			CASE WHEN c.reltoastrelid <> 0 THEN ', toast.autovacuum_vacuum_cost_delay, toast.autovacuum_vacuum_cost_limit' ELSE '' END)), '{}')
		FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
		WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND c.relkind IN ('r', 'm')
			AND EXISTS (SELECT FROM unnest(coalesce(c.reloptions, '{}') || coalesce(t.reloptions, '{}')) o
				WHERE split_part(o, '=', 1) IN ('autovacuum_vacuum_cost_delay', 'autovacuum_vacuum_cost_limit'))`, schema).Scan(&resets)
	if err != nil {
		return err
	}
	for _, q := range append(stmts, resets...) {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q[:min(len(q), 60)], err)
		}
	}
	return nil
}
