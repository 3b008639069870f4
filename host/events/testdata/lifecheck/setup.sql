-- The event table of host/events with 100 000 events, its sequencer and
-- three record tables, in a schema of its own, for the scripts of
-- this directory (BENCHMARKS.md, "PostgreSQL events: the cost of checking
-- the log's life"):
--   psql -h 127.0.0.1 -U postgres test -f host/events/testdata/lifecheck/setup.sql
--   psql ... -f reads.sql
--   psql ... -f sequencer.sql
\set ON_ERROR_STOP on
DROP SCHEMA IF EXISTS lifecheck CASCADE;
CREATE SCHEMA lifecheck;
SET search_path = lifecheck;
CREATE TABLE storagehost_events (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text NOT NULL, op text NOT NULL,
	agent text NOT NULL, key text NOT NULL, version bigint NOT NULL, at bigint NOT NULL, data bytea, pos bigint);
CREATE UNIQUE INDEX storagehost_events_pos ON storagehost_events (pos);
CREATE INDEX storagehost_events_new ON storagehost_events (seq) WHERE pos IS NULL;
INSERT INTO storagehost_events (kind, op, agent, key, version, at, pos)
	SELECT 'agent_states', 'put', 'a', 'k' || g, g, g, g FROM generate_series(1, 100000) g;
CREATE TABLE storagehost_events_sequencer (one boolean PRIMARY KEY DEFAULT true CHECK (one), high bigint NOT NULL DEFAULT 0);
INSERT INTO storagehost_events_sequencer DEFAULT VALUES;
CREATE TABLE agent_states (agent_id text PRIMARY KEY, state bytea, version bigint, updated_at bigint, expires_at bigint);
CREATE TABLE alerts (id text PRIMARY KEY);
CREATE TABLE metrics (agent_id text, name text, ts bigint, PRIMARY KEY (agent_id, name, ts));
VACUUM ANALYZE storagehost_events;
