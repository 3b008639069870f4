-- What one sequencer run costs as the rows it numbered pile up between two
-- VACUUMs (BENCHMARKS.md, "PostgreSQL events: the sequencer's scan"):
--   psql -h 127.0.0.1 -U postgres test -f host/events/testdata/sequencer_scan.sql
-- The table is the event table as host/events creates it, with autovacuum
-- off; 190 000 rows are numbered (as runs would) before 30 new ones arrive.
-- Each run is rolled back, so each numbers the same 30 rows.
\set ON_ERROR_STOP on
\timing off
DROP SCHEMA IF EXISTS sequencer_scan CASCADE;
CREATE SCHEMA sequencer_scan;
SET search_path = sequencer_scan;
CREATE TABLE e (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text NOT NULL, op text NOT NULL,
	agent text NOT NULL, key text NOT NULL, version bigint NOT NULL, at bigint NOT NULL, data bytea, pos bigint)
	WITH (autovacuum_enabled = false);
CREATE UNIQUE INDEX e_pos ON e (pos);
CREATE INDEX e_new ON e (seq) WHERE pos IS NULL;
CREATE PROCEDURE fill() LANGUAGE plpgsql AS $$BEGIN
	FOR i IN 1..190 LOOP
		INSERT INTO e (kind, op, agent, key, version, at) SELECT 'state', 'put', 'a', '', 1, 1 FROM generate_series(1, 1000);
		UPDATE e SET pos = seq WHERE pos IS NULL;
		COMMIT;
	END LOOP;
END$$;
CALL fill();
INSERT INTO e (kind, op, agent, key, version, at) SELECT 'state', 'put', 'a', '', 1, 1 FROM generate_series(1, 30);
-- The statement as host/events sends it (not prepared: a prepared statement
-- without parameters keeps the plan of its first execution).
\set run 'EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) WITH n AS (SELECT seq, row_number() OVER (ORDER BY seq) AS r FROM e WHERE pos IS NULL), b AS (SELECT coalesce(max(pos), 0) AS base FROM e) UPDATE e SET pos = b.base + n.r FROM n, b WHERE e.seq = n.seq'
\echo bitmap scan (what the planner chooses), twice
BEGIN; :run; ROLLBACK;
BEGIN; :run; ROLLBACK;
\echo plain index scan (the first one marks the dead entries), three times
BEGIN; SET LOCAL enable_bitmapscan = off; :run; ROLLBACK;
BEGIN; SET LOCAL enable_bitmapscan = off; :run; ROLLBACK;
BEGIN; SET LOCAL enable_bitmapscan = off; :run; ROLLBACK;
VACUUM e;
\echo after VACUUM: plain index scan, twice
BEGIN; SET LOCAL enable_bitmapscan = off; :run; ROLLBACK;
BEGIN; SET LOCAL enable_bitmapscan = off; :run; ROLLBACK;
DROP SCHEMA sequencer_scan CASCADE;
