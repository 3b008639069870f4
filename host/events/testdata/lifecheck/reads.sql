-- What a read round of the fan-out costs PostgreSQL, before and with the
-- life checks (BENCHMARKS.md, "PostgreSQL events: the cost of checking the
-- log's life"), after setup.sql:
--   psql -h 127.0.0.1 -U postgres test -f host/events/testdata/lifecheck/reads.sql
-- Each statement runs 20 000 times in a loop inside the server (static
-- SQL in PL/pgSQL: prepared, as the bridge's are, with no round trip), at
-- the newest of 100 000 events (an idle round), the variants in turn,
-- three times; the result is microseconds a statement.
\set ON_ERROR_STOP on
SET search_path = lifecheck;
CREATE OR REPLACE FUNCTION bench(variant text, n int) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	oid_ bigint := 'storagehost_events'::regclass::oid;
	node bigint := pg_relation_filenode('storagehost_events');
	p bigint := 100000;
BEGIN
	t0 := clock_timestamp();
	FOR i IN 1..n LOOP
		CASE variant
		WHEN 'before' THEN -- the OID, the events after the position
			PERFORM t.epoch, e.pos, left(e.kind, 64), left(e.op, 64), left(e.agent, 4096), left(e.key, 4096), e.version, e.at, substring(e.data for 16384)
			FROM (SELECT 'storagehost_events'::regclass::oid::bigint AS epoch) t
			LEFT JOIN LATERAL (SELECT * FROM storagehost_events WHERE pos > CASE WHEN t.epoch = oid_ THEN p ELSE 0 END ORDER BY pos LIMIT 512) e ON true;
		WHEN 'now' THEN -- the storage, the events from the position on (host/events)
			PERFORM t.epoch, e.pos, e.seq, left(e.kind, 64), left(e.op, 64), left(e.agent, 4096), left(e.key, 4096), e.version, e.at, substring(e.data for 16384)
			FROM (SELECT pg_relation_filenode('storagehost_events')::bigint AS epoch) t
			LEFT JOIN LATERAL (SELECT * FROM storagehost_events WHERE pos > CASE WHEN t.epoch = node THEN p - 1 ELSE 0 END ORDER BY pos LIMIT 513) e ON true;
		WHEN 'lookup' THEN -- not taken: the event at the position looked up apart
			PERFORM t.epoch, h.seq, h.at, e.pos, e.seq, left(e.kind, 64), left(e.op, 64), left(e.agent, 4096), left(e.key, 4096), e.version, e.at, substring(e.data for 16384)
			FROM (SELECT pg_relation_filenode('storagehost_events')::bigint AS epoch) t
			LEFT JOIN storagehost_events h ON t.epoch = node AND h.pos = p
			LEFT JOIN LATERAL (SELECT * FROM storagehost_events WHERE pos > CASE WHEN t.epoch = node THEN p ELSE 0 END ORDER BY pos LIMIT 512) e ON true;
		WHEN 'tables' THEN -- the record tables' storage, every 2 s
			PERFORM coalesce(string_agg(c.oid::text || '/' || c.relfilenode::text, ',' ORDER BY c.oid), '')
			FROM pg_class c
			WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'lifecheck') AND c.relkind = 'r' AND c.relname NOT LIKE 'storagehost\_%';
		END CASE;
	END LOOP;
	RETURN round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n, 2);
END$$;
SELECT (SELECT count(*) FROM pg_class) AS relations_in_pg_class;
SELECT r AS round, bench('before', 20000) AS before, bench('now', 20000) AS now,
	bench('lookup', 20000) AS lookup, bench('tables', 20000) AS tables
FROM generate_series(1, 3) r;
DROP FUNCTION bench;
