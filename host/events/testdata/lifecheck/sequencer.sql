-- What a sequencer run's numbering costs PostgreSQL before and since it
-- reads the highest position deleted (BENCHMARKS.md, "PostgreSQL events:
-- the cost of checking the log's life"), after setup.sql:
--   psql -h 127.0.0.1 -U postgres test -f host/events/testdata/lifecheck/sequencer.sql
-- Each round appends ten events and numbers them, 4000 times, the two
-- statements in turn (so that the table's growth weighs on both alike),
-- each run committed; the result is microseconds a numbering statement,
-- three rounds with a VACUUM before each.
\set ON_ERROR_STOP on
CREATE OR REPLACE PROCEDURE lifecheck.bench_sequencer(n int, INOUT before_us numeric DEFAULT 0, INOUT now_us numeric DEFAULT 0) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; tb interval := '0'; tn interval := '0';
BEGIN
	FOR i IN 1..n LOOP
		INSERT INTO lifecheck.storagehost_events (kind, op, agent, key, version, at) SELECT 'agent_states', 'put', 'a', 'k', 1, 1 FROM generate_series(1, 10);
		COMMIT;
		PERFORM set_config('enable_bitmapscan', 'off', true);
		PERFORM FROM lifecheck.storagehost_events_sequencer FOR UPDATE;
		t0 := clock_timestamp();
		IF i % 2 = 0 THEN
			WITH n AS (SELECT seq, row_number() OVER (ORDER BY seq) AS r FROM lifecheck.storagehost_events WHERE pos IS NULL),
			b AS (SELECT coalesce(max(pos), 0) AS base FROM lifecheck.storagehost_events)
			UPDATE lifecheck.storagehost_events e SET pos = b.base + n.r FROM n, b WHERE e.seq = n.seq;
			tb := tb + (clock_timestamp() - t0);
		ELSE
			WITH n AS (SELECT seq, row_number() OVER (ORDER BY seq) AS r FROM lifecheck.storagehost_events WHERE pos IS NULL),
			b AS (SELECT greatest(coalesce(max(pos), 0), (SELECT coalesce(max(high), 0) FROM lifecheck.storagehost_events_sequencer)) AS base FROM lifecheck.storagehost_events)
			UPDATE lifecheck.storagehost_events e SET pos = b.base + n.r FROM n, b WHERE e.seq = n.seq;
			tn := tn + (clock_timestamp() - t0);
		END IF;
		COMMIT;
	END LOOP;
	before_us := round(extract(epoch FROM tb) * 2e6 / n, 1);
	now_us := round(extract(epoch FROM tn) * 2e6 / n, 1);
END$$;
VACUUM lifecheck.storagehost_events;
CALL lifecheck.bench_sequencer(4000);
VACUUM lifecheck.storagehost_events;
CALL lifecheck.bench_sequencer(4000);
VACUUM lifecheck.storagehost_events;
CALL lifecheck.bench_sequencer(4000);
DROP PROCEDURE lifecheck.bench_sequencer;
