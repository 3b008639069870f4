-- What the host's VACUUM of the event table costs with and without a
-- parallel worker (BENCHMARKS.md, "The event table's VACUUM without a
-- parallel worker"):
--   psql -h 127.0.0.1 -U postgres test -f host/events/testdata/vacuum_parallel.sql
-- The table is the event table as host/events creates it, with autovacuum
-- off, holding 100 000 numbered events (the default retention). Each case
-- numbers new rows as sequencer runs would (every number leaves a dead row
-- version), then vacuums them, the two forms in turn, three times: the
-- default (PostgreSQL starts a parallel worker for the indexes, past
-- min_parallel_index_scan_size) and PARALLEL 0 (what the host sends).
\set ON_ERROR_STOP on
\timing off
DROP SCHEMA IF EXISTS vacuum_parallel CASCADE;
CREATE SCHEMA vacuum_parallel;
SET search_path = vacuum_parallel;
CREATE TABLE e (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text NOT NULL, op text NOT NULL,
	agent text NOT NULL, key text NOT NULL, version bigint NOT NULL, at bigint NOT NULL, data bytea, pos bigint)
	WITH (autovacuum_enabled = false);
CREATE UNIQUE INDEX e_pos ON e (pos);
CREATE INDEX e_new ON e (seq) WHERE pos IS NULL;
INSERT INTO e (kind, op, agent, key, version, at, pos)
	SELECT 'agent_states', 'put', 'agent-' || i % 1000, 'agent-' || i % 1000, i, i, i FROM generate_series(1, 100000) i;
VACUUM e;
-- numbered :n appends :n events and numbers them.
\set number 'INSERT INTO e (kind, op, agent, key, version, at) SELECT ''agent_states'', ''put'', ''a'', ''a'', 1, 1 FROM generate_series(1, :n); UPDATE e SET pos = seq WHERE pos IS NULL;'
\set default 'VACUUM (SKIP_LOCKED, TRUNCATE false) e'
\set serial 'VACUUM (SKIP_LOCKED, TRUNCATE false, PARALLEL 0) e'

\echo nothing numbered since the last VACUUM: default, PARALLEL 0, three times
\timing on
:default; :serial; :default; :serial; :default; :serial;
\timing off

\echo 40 rows numbered (a few writes in the 2 s between two VACUUMs): default, PARALLEL 0, three times
\set n 40
\ir vacuum_parallel_round.sql
\ir vacuum_parallel_round.sql
\ir vacuum_parallel_round.sql

\echo 6000 rows numbered (2 s of writes at 3 000 a second): default, PARALLEL 0, three times
\set n 6000
\ir vacuum_parallel_round.sql
\ir vacuum_parallel_round.sql
\ir vacuum_parallel_round.sql

DROP SCHEMA vacuum_parallel CASCADE;
