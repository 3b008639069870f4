// Package statements is the SQL of the record operations of the
// postgres plugin (builtin:postgres), apart so that what measures the
// plugin against pgx sends exactly its statements.
//
// The statements of the record operations. Parameters named in the
// comments; "now" is the host clock in Unix nanoseconds, and a row is
// live while its expires_at is 0 or after now. Each one is a single
// statement, so that what it checks and what it writes are one atomic
// step in PostgreSQL.
//
// Each write also inserts its event into storagehost_events
// (abi.PGEventsTable, abi/README.md section 16.6), in the same statement:
// the write is a data-modifying WITH (w) whose RETURNING feeds the
// insert of the event (e) and the statement's own result, so the event
// commits with the write or not at all. The event's row is inserted only
// when the write happened (w returned a row, and for a delete the row
// removed was live), and only while the session's storagehost.events
// (abi.PGEventsSetting) is on; at is now. A statement's result is what it
// was without the event: the columns it selects from w, or none, when
// only the number of rows written is read (RowsAffected, the SELECT's
// count).
package statements

// Live is the condition on a row of any table (alias-free) that has not
// expired at the parameter now.
const Live = `(expires_at = 0 OR expires_at > $%d)`

// insertEvent opens e, the WITH item that inserts the event: a SELECT
// of its values from w follows, whose WHERE holds eventsOn, the
// condition that the session's events are on.
const (
	insertEvent = `e AS (INSERT INTO storagehost_events (kind, op, agent, key, version, at)`
	eventsOn    = `current_setting('storagehost.events', true) = 'on'`
)

const (
	// $1 agent, $2 name, $3 ts, $4 value, $5 labels, $6 label_set,
	// $7 expiry for a new row, $8 keep, $9 now, $10 the event's key
	// (abi.MetricEventKey).
	PutMetric = `WITH w AS (INSERT INTO metrics AS m (agent_id, name, ts, value, labels, label_set, expires_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
ON CONFLICT (agent_id, name, ts) DO UPDATE SET value = excluded.value, labels = excluded.labels, label_set = excluded.label_set,
expires_at = CASE WHEN $8 AND (m.expires_at = 0 OR m.expires_at > $9) THEN m.expires_at ELSE excluded.expires_at END
RETURNING expires_at),
` + insertEvent + `
SELECT 'metrics', 'put', $1, $10, 0, $9 FROM w WHERE ` + eventsOn + `)
SELECT expires_at FROM w`
	// $1 agent, $2 name, $3 ts, $4 now.
	GetMetric = `SELECT value, labels, expires_at FROM metrics
WHERE agent_id = $1 AND name = $2 AND ts = $3 AND (expires_at = 0 OR expires_at > $4)`
	// $1 agent, $2 name, $3 ts, $4 now, $5 the event's key
	// (abi.MetricEventKey). Answers whether the row deleted was live (an
	// expired one goes too, answered NOT_FOUND, with no event).
	DeleteMetric = `WITH w AS (DELETE FROM metrics WHERE agent_id = $1 AND name = $2 AND ts = $3
RETURNING expires_at = 0 OR expires_at > $4 AS live),
` + insertEvent + `
SELECT 'metrics', 'delete', $1, $5, 0, $4 FROM w WHERE w.live AND ` + eventsOn + `)
SELECT live FROM w`

	// $1 id, $2 agent, $3 severity, $4 status, $5 message, $6 labels,
	// $7 label_set, $8 created_at for a new alert, $9 now (updated_at,
	// the event's version), $10 expiry for a new alert, $11 keep. No row
	// (and no event) when the status transition is not allowed
	// (abi.AlertStatus.CanTransition): 2 → 1 and 3 → 2 are the ones
	// refused.
	PutAlert = `WITH w AS (INSERT INTO alerts AS a (id, agent_id, severity, status, message, labels, label_set, created_at, updated_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id, severity = excluded.severity, status = excluded.status,
message = excluded.message, labels = excluded.labels, label_set = excluded.label_set,
created_at = CASE WHEN a.expires_at = 0 OR a.expires_at > $9 THEN a.created_at ELSE excluded.created_at END,
updated_at = excluded.updated_at,
expires_at = CASE WHEN $11 AND (a.expires_at = 0 OR a.expires_at > $9) THEN a.expires_at ELSE excluded.expires_at END
WHERE (a.expires_at <> 0 AND a.expires_at <= $9) OR NOT ((a.status = 2 AND excluded.status = 1) OR (a.status = 3 AND excluded.status = 2))
RETURNING created_at, expires_at),
` + insertEvent + `
SELECT 'alerts', 'put', $2, $1, $9, $9 FROM w WHERE ` + eventsOn + `)
SELECT created_at, expires_at FROM w`
	// $1 id, $2 now.
	GetAlert = `SELECT agent_id, severity, status, message, labels, created_at, updated_at, expires_at FROM alerts
WHERE id = $1 AND (expires_at = 0 OR expires_at > $2)`
	// $1 id, $2 now. The event's agent is the deleted row's.
	DeleteAlert = `WITH w AS (DELETE FROM alerts WHERE id = $1 RETURNING agent_id, expires_at = 0 OR expires_at > $2 AS live),
` + insertEvent + `
SELECT 'alerts', 'delete', agent_id, $1, 0, $2 FROM w WHERE w.live AND ` + eventsOn + `)
SELECT live FROM w`
	// $1 id, $2 status, $3 now (updated_at, the event's version). No
	// row: no live alert; a row whose columns after the first are NULL:
	// the transition from the first, the status the alert has, is not
	// allowed (no event: upd returned no row).
	SetAlertStatus = `WITH old AS (SELECT id, status FROM alerts WHERE id = $1 AND (expires_at = 0 OR expires_at > $3) FOR UPDATE),
upd AS (UPDATE alerts a SET status = $2, updated_at = $3 FROM old
WHERE a.id = old.id AND NOT ((old.status = 2 AND $2 = 1) OR (old.status = 3 AND $2 = 2))
RETURNING a.agent_id, a.severity, a.message, a.labels, a.created_at, a.expires_at),
` + insertEvent + `
SELECT 'alerts', 'status', agent_id, $1, $3, $3 FROM upd WHERE ` + eventsOn + `)
SELECT old.status, upd.agent_id, upd.severity, upd.message, upd.labels, upd.created_at, upd.expires_at FROM old LEFT JOIN upd ON true`

	// $1 agent, $2 state, $3 now (updated_at), $4 expiry for a new
	// state, $5 keep. The version is above the old one and, from the
	// sequence, above every version given before, so a state deleted
	// and created again never repeats one (a stale if_version cannot
	// match the new state). The sequence counts from the server's clock
	// in microseconds (newVersion): a dump restored in place, or the
	// schema made again, takes the sequence back, not the clock, so the
	// versions given after it are above those given before it too.
	putState = `INSERT INTO agent_states AS s (agent_id, state, version, updated_at, expires_at)
VALUES ($1, $2, ` + newVersion + `, $3, $4)
ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, version = GREATEST(s.version + 1, excluded.version),
updated_at = excluded.updated_at,
expires_at = CASE WHEN $5 AND (s.expires_at = 0 OR s.expires_at > $3) THEN s.expires_at ELSE excluded.expires_at END`
	// stateWritten ends a put of a state (w, without its closing
	// parenthesis): its event, version the new one, and its result.
	stateWritten = `
RETURNING version, expires_at),
` + insertEvent + `
SELECT 'agent_states', 'put', $1, $1, version, $3 FROM w WHERE ` + eventsOn + `)
SELECT version, expires_at FROM w`
	// PutStateIfAbsent is putState for if_absent: an expired state is absent.
	PutStateIfAbsent = `WITH w AS (` + putState + `
WHERE s.expires_at <> 0 AND s.expires_at <= $3` + stateWritten
	// PutStateAny is putState unconditional.
	PutStateAny = `WITH w AS (` + putState + stateWritten
	// As putState, and $6 the version the live state must have.
	PutStateIfVersion = `WITH w AS (UPDATE agent_states s SET state = $2, version = GREATEST(s.version + 1, ` + newVersion + `), updated_at = $3,
expires_at = CASE WHEN $5 THEN s.expires_at ELSE $4 END
WHERE agent_id = $1 AND version = $6 AND (expires_at = 0 OR expires_at > $3)` + stateWritten
	// newVersion is a new state's version: the server's clock in
	// microseconds plus the sequence's next value, which moves on at every
	// write, so two writes in one microsecond differ.
	newVersion = `(nextval('state_versions') + (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)`
	// $1 agent, $2 now.
	GetState = `SELECT state, version, updated_at, expires_at FROM agent_states
WHERE agent_id = $1 AND (expires_at = 0 OR expires_at > $2)`
	// $1 agent, $2 now. Answers whether the row deleted was live.
	DeleteState = `WITH w AS (DELETE FROM agent_states WHERE agent_id = $1 RETURNING expires_at = 0 OR expires_at > $2 AS live),
` + insertEvent + `
SELECT 'agent_states', 'delete', $1, $1, 0, $2 FROM w WHERE w.live AND ` + eventsOn + `)
SELECT live FROM w`
	// $1 agent, $2 now, $3 the version. No columns: a row per state
	// deleted (RowsAffected).
	DeleteStateIfVersion = `WITH w AS (DELETE FROM agent_states WHERE agent_id = $1 AND version = $3 AND (expires_at = 0 OR expires_at > $2)
RETURNING 1),
` + insertEvent + `
SELECT 'agent_states', 'delete', $1, $1, 0, $2 FROM w WHERE ` + eventsOn + `)
SELECT FROM w`
)

// Restores write every column as given. The ...IfAbsent forms, for the
// fail and skip modes, replace only an expired row: no row written (no
// event, RowsAffected 0) means a live record is in the way. Their
// results have no columns, a row per record written (RowsAffected). The
// event is a put, its version the restored record's (0 for a metric).
const (
	// $1 agent, $2 name, $3 ts, $4 value, $5 labels, $6 label_set,
	// $7 expires_at, $8 now, $9 the event's key (abi.MetricEventKey).
	restoreMetric = `WITH w AS (INSERT INTO metrics AS m (agent_id, name, ts, value, labels, label_set, expires_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
ON CONFLICT (agent_id, name, ts) DO UPDATE SET value = excluded.value, labels = excluded.labels, label_set = excluded.label_set,
expires_at = excluded.expires_at`
	metricRestored = `
RETURNING 1),
` + insertEvent + `
SELECT 'metrics', 'put', $1, $9, 0, $8 FROM w WHERE ` + eventsOn + `)
SELECT FROM w`
	// RestoreMetric overwrites; RestoreMetricIfAbsent replaces only an expired row.
	RestoreMetric         = restoreMetric + metricRestored
	RestoreMetricIfAbsent = restoreMetric + `
WHERE m.expires_at <> 0 AND m.expires_at <= $8` + metricRestored

	// $1 id, $2 agent, $3 severity, $4 status, $5 message, $6 labels,
	// $7 label_set, $8 created_at, $9 updated_at (the event's version),
	// $10 expires_at, $11 now.
	restoreAlert = `WITH w AS (INSERT INTO alerts AS a (id, agent_id, severity, status, message, labels, label_set, created_at, updated_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id, severity = excluded.severity, status = excluded.status,
message = excluded.message, labels = excluded.labels, label_set = excluded.label_set,
created_at = excluded.created_at, updated_at = excluded.updated_at, expires_at = excluded.expires_at`
	alertRestored = `
RETURNING 1),
` + insertEvent + `
SELECT 'alerts', 'put', $2, $1, $9, $11 FROM w WHERE ` + eventsOn + `)
SELECT FROM w`
	// RestoreAlert overwrites; RestoreAlertIfAbsent replaces only an expired row.
	RestoreAlert         = restoreAlert + alertRestored
	RestoreAlertIfAbsent = restoreAlert + `
WHERE a.expires_at <> 0 AND a.expires_at <= $11` + alertRestored

	// $1 agent, $2 state, $3 version (the event's), $4 updated_at,
	// $5 expires_at, $6 now.
	restoreState = `WITH w AS (INSERT INTO agent_states AS s (agent_id, state, version, updated_at, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, version = excluded.version,
updated_at = excluded.updated_at, expires_at = excluded.expires_at`
	stateRestored = `
RETURNING 1),
` + insertEvent + `
SELECT 'agent_states', 'put', $1, $1, $3, $6 FROM w WHERE ` + eventsOn + `)
SELECT FROM w`
	// RestoreState overwrites; RestoreStateIfAbsent replaces only an expired row.
	RestoreState         = restoreState + stateRestored
	RestoreStateIfAbsent = restoreState + `
WHERE s.expires_at <> 0 AND s.expires_at <= $6` + stateRestored
)
