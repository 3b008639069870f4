package main

// The statements of the record operations. Parameters named in the
// comments; "now" is the host clock in Unix nanoseconds, and a row is
// live while its expires_at is 0 or after now. Each one is a single
// statement, so that what it checks and what it writes are one atomic
// step in PostgreSQL.

// live is the condition on a row of any table (alias-free) that has not
// expired at the parameter now.
const live = `(expires_at = 0 OR expires_at > $%d)`

const (
	// $1 agent, $2 name, $3 ts, $4 value, $5 labels, $6 label_set,
	// $7 expiry for a new row, $8 keep, $9 now.
	sqlPutMetric = `INSERT INTO metrics AS m (agent_id, name, ts, value, labels, label_set, expires_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
ON CONFLICT (agent_id, name, ts) DO UPDATE SET value = excluded.value, labels = excluded.labels, label_set = excluded.label_set,
expires_at = CASE WHEN $8 AND (m.expires_at = 0 OR m.expires_at > $9) THEN m.expires_at ELSE excluded.expires_at END
RETURNING expires_at`
	// $1 agent, $2 name, $3 ts, $4 now.
	sqlGetMetric = `SELECT value, labels, expires_at FROM metrics
WHERE agent_id = $1 AND name = $2 AND ts = $3 AND (expires_at = 0 OR expires_at > $4)`
	// $1 agent, $2 name, $3 ts, $4 now. Answers whether the row deleted
	// was live (an expired one goes too, answered NOT_FOUND).
	sqlDeleteMetric = `DELETE FROM metrics WHERE agent_id = $1 AND name = $2 AND ts = $3
RETURNING expires_at = 0 OR expires_at > $4`

	// $1 id, $2 agent, $3 severity, $4 status, $5 message, $6 labels,
	// $7 label_set, $8 created_at for a new alert, $9 now (updated_at),
	// $10 expiry for a new alert, $11 keep. No row when the status
	// transition is not allowed (abi.AlertStatus.CanTransition): 2 → 1
	// and 3 → 2 are the ones refused.
	sqlPutAlert = `INSERT INTO alerts AS a (id, agent_id, severity, status, message, labels, label_set, created_at, updated_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id, severity = excluded.severity, status = excluded.status,
message = excluded.message, labels = excluded.labels, label_set = excluded.label_set,
created_at = CASE WHEN a.expires_at = 0 OR a.expires_at > $9 THEN a.created_at ELSE excluded.created_at END,
updated_at = excluded.updated_at,
expires_at = CASE WHEN $11 AND (a.expires_at = 0 OR a.expires_at > $9) THEN a.expires_at ELSE excluded.expires_at END
WHERE (a.expires_at <> 0 AND a.expires_at <= $9) OR NOT ((a.status = 2 AND excluded.status = 1) OR (a.status = 3 AND excluded.status = 2))
RETURNING created_at, expires_at`
	// $1 id, $2 now.
	sqlGetAlert = `SELECT agent_id, severity, status, message, labels, created_at, updated_at, expires_at FROM alerts
WHERE id = $1 AND (expires_at = 0 OR expires_at > $2)`
	// $1 id, $2 now.
	sqlDeleteAlert = `DELETE FROM alerts WHERE id = $1 RETURNING expires_at = 0 OR expires_at > $2`
	// $1 id, $2 status, $3 now. No row: no live alert; a row whose
	// columns after the first are NULL: the transition from the first,
	// the status the alert has, is not allowed.
	sqlSetAlertStatus = `WITH old AS (SELECT id, status FROM alerts WHERE id = $1 AND (expires_at = 0 OR expires_at > $3) FOR UPDATE),
upd AS (UPDATE alerts a SET status = $2, updated_at = $3 FROM old
WHERE a.id = old.id AND NOT ((old.status = 2 AND $2 = 1) OR (old.status = 3 AND $2 = 2))
RETURNING a.agent_id, a.severity, a.message, a.labels, a.created_at, a.expires_at)
SELECT old.status, upd.agent_id, upd.severity, upd.message, upd.labels, upd.created_at, upd.expires_at FROM old LEFT JOIN upd ON true`

	// $1 agent, $2 state, $3 now (updated_at), $4 expiry for a new
	// state, $5 keep. The version is above the old one and, from the
	// sequence, above every version given before, so a state deleted
	// and created again never repeats one (a stale if_version cannot
	// match the new state).
	sqlPutState = `INSERT INTO agent_states AS s (agent_id, state, version, updated_at, expires_at)
VALUES ($1, $2, nextval('state_versions'), $3, $4)
ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, version = GREATEST(s.version + 1, excluded.version),
updated_at = excluded.updated_at,
expires_at = CASE WHEN $5 AND (s.expires_at = 0 OR s.expires_at > $3) THEN s.expires_at ELSE excluded.expires_at END`
	sqlReturningState = `
RETURNING version, expires_at`
	// sqlPutState for if_absent: an expired state is absent.
	sqlPutStateIfAbsent = sqlPutState + `
WHERE s.expires_at <> 0 AND s.expires_at <= $3` + sqlReturningState
	sqlPutStateAny = sqlPutState + sqlReturningState
	// As sqlPutState, and $6 the version the live state must have.
	sqlPutStateIfVersion = `UPDATE agent_states s SET state = $2, version = GREATEST(s.version + 1, nextval('state_versions')), updated_at = $3,
expires_at = CASE WHEN $5 THEN s.expires_at ELSE $4 END
WHERE agent_id = $1 AND version = $6 AND (expires_at = 0 OR expires_at > $3)
RETURNING version, expires_at`
	// $1 agent, $2 now.
	sqlGetState = `SELECT state, version, updated_at, expires_at FROM agent_states
WHERE agent_id = $1 AND (expires_at = 0 OR expires_at > $2)`
	// $1 agent, $2 now.
	sqlDeleteState = `DELETE FROM agent_states WHERE agent_id = $1 RETURNING expires_at = 0 OR expires_at > $2`
	// $1 agent, $2 now, $3 the version.
	sqlDeleteStateIfVersion = `DELETE FROM agent_states WHERE agent_id = $1 AND version = $3 AND (expires_at = 0 OR expires_at > $2)`
)

// Restores write every column as given. The ...IfAbsent forms, for the
// fail and skip modes, replace only an expired row (their last parameter
// is now): no row affected means a live record is in the way.
const (
	sqlRestoreMetric = `INSERT INTO metrics AS m (agent_id, name, ts, value, labels, label_set, expires_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
ON CONFLICT (agent_id, name, ts) DO UPDATE SET value = excluded.value, labels = excluded.labels, label_set = excluded.label_set,
expires_at = excluded.expires_at`
	sqlRestoreMetricIfAbsent = sqlRestoreMetric + `
WHERE m.expires_at <> 0 AND m.expires_at <= $8`

	sqlRestoreAlert = `INSERT INTO alerts AS a (id, agent_id, severity, status, message, labels, label_set, created_at, updated_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id, severity = excluded.severity, status = excluded.status,
message = excluded.message, labels = excluded.labels, label_set = excluded.label_set,
created_at = excluded.created_at, updated_at = excluded.updated_at, expires_at = excluded.expires_at`
	sqlRestoreAlertIfAbsent = sqlRestoreAlert + `
WHERE a.expires_at <> 0 AND a.expires_at <= $11`

	sqlRestoreState = `INSERT INTO agent_states AS s (agent_id, state, version, updated_at, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, version = excluded.version,
updated_at = excluded.updated_at, expires_at = excluded.expires_at`
	sqlRestoreStateIfAbsent = sqlRestoreState + `
WHERE s.expires_at <> 0 AND s.expires_at <= $6`
)
