package main

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/plugins/postgres/statements"
	"github.com/storage-host/storage-host/sdk"
)

// item is one record operation: decoded, then prepared into one
// statement (or answered without one), then finished from its result.
type item struct {
	sdk.BatchOp
	now time.Time
	// stmt is the index of the item's statement in backend.stmts; -1
	// when it has none (it failed before, or needs no statement).
	stmt int
}

// add appends a statement and returns its index. Its parameters are
// copied into b.params, which the statements share until they are sent.
func (b *backend) add(sql string, params ...abi.PGValue) int {
	p0 := len(b.params)
	b.params = append(b.params, params...)
	b.stmts = append(b.stmts, abi.PGStatement{SQL: sql, Params: b.params[p0:len(b.params):len(b.params)]})
	return len(b.stmts) - 1
}

// reset drops the statements added.
func (b *backend) reset() {
	clear(b.params) // no reference to a record's bytes outlives the call
	b.stmts, b.params = b.stmts[:0], b.params[:0]
}

// text is a text parameter that aliases s rather than copying it, as
// sdk.Text does: a parameter is only read, when its request is encoded.
func text(s string) abi.PGValue {
	return abi.PGValue{Kind: abi.PGText, Bytes: unsafe.Slice(unsafe.StringData(s), len(s))}
}

// prepare adds the item's statement, unless it failed already or needs
// none.
func (b *backend) prepare(it *item) {
	it.stmt = -1
	if it.Err != nil {
		return
	}
	now := ns(it.now)
	switch it.Op {
	case abi.OpPutMetric:
		m := &it.Metric
		exp := it.TTL.ExpiresAt(it.now, b.metricTTL, time.Time{}, false)
		it.stmt = b.add(statements.PutMetric, text(m.AgentID), text(m.Name), sdk.Int(ns(m.Timestamp)), sdk.Float(m.Value),
			sdk.Bytea(b.encodeLabels(m.Labels)), text(labelSet(m.Labels)), sdk.Int(ns(exp)), sdk.Bool(it.TTL.Mode == abi.TTLKeep), sdk.Int(now),
			text(abi.MetricEventKey(m.Name, m.Timestamp)))
	case abi.OpGetMetric:
		m := &it.Metric
		it.stmt = b.add(statements.GetMetric, text(m.AgentID), text(m.Name), sdk.Int(ns(m.Timestamp)), sdk.Int(now))
	case abi.OpDeleteMetric:
		m := &it.Metric
		it.stmt = b.add(statements.DeleteMetric, text(m.AgentID), text(m.Name), sdk.Int(ns(m.Timestamp)), sdk.Int(now),
			text(abi.MetricEventKey(m.Name, m.Timestamp)))

	case abi.OpPutAlert:
		a := &it.Alert
		if a.CreatedAt.IsZero() {
			a.CreatedAt = it.now
		}
		a.UpdatedAt = it.now
		exp := it.TTL.ExpiresAt(it.now, b.alertTTL, time.Time{}, false)
		it.stmt = b.add(statements.PutAlert, text(a.ID), text(a.AgentID), sdk.Int(int64(a.Severity)), sdk.Int(int64(a.Status)),
			sdk.Bytea([]byte(a.Message)), sdk.Bytea(b.encodeLabels(a.Labels)), text(labelSet(a.Labels)),
			sdk.Int(ns(a.CreatedAt)), sdk.Int(now), sdk.Int(ns(exp)), sdk.Bool(it.TTL.Mode == abi.TTLKeep))
	case abi.OpGetAlert:
		it.stmt = b.add(statements.GetAlert, text(it.Alert.ID), sdk.Int(now))
	case abi.OpDeleteAlert:
		it.stmt = b.add(statements.DeleteAlert, text(it.Alert.ID), sdk.Int(now))
	case abi.OpSetAlertStatus:
		it.stmt = b.add(statements.SetAlertStatus, text(it.Alert.ID), sdk.Int(int64(it.Status)), sdk.Int(now))

	case abi.OpPutAgentState:
		s := &it.State
		s.UpdatedAt = it.now
		exp := it.TTL.ExpiresAt(it.now, b.stateTTL, time.Time{}, false)
		keep := sdk.Bool(it.TTL.Mode == abi.TTLKeep)
		switch it.Condition.Mode {
		case abi.IfVersion:
			if it.Condition.Version > math.MaxInt64 {
				it.Err = stateConflict(s.AgentID, it.Condition) // no version is that large
				return
			}
			it.stmt = b.add(statements.PutStateIfVersion, text(s.AgentID), sdk.Bytea(s.State), sdk.Int(now), sdk.Int(ns(exp)), keep,
				sdk.Int(int64(it.Condition.Version)))
		case abi.IfAbsent:
			it.stmt = b.add(statements.PutStateIfAbsent, text(s.AgentID), sdk.Bytea(s.State), sdk.Int(now), sdk.Int(ns(exp)), keep)
		default:
			it.stmt = b.add(statements.PutStateAny, text(s.AgentID), sdk.Bytea(s.State), sdk.Int(now), sdk.Int(ns(exp)), keep)
		}
	case abi.OpGetAgentState:
		it.stmt = b.add(statements.GetState, text(it.State.AgentID), sdk.Int(now))
	case abi.OpDeleteAgentState:
		if it.Condition.Mode == abi.IfVersion {
			if it.Condition.Version > math.MaxInt64 {
				it.Err = stateConflict(it.State.AgentID, it.Condition)
				return
			}
			it.stmt = b.add(statements.DeleteStateIfVersion, text(it.State.AgentID), sdk.Int(now), sdk.Int(int64(it.Condition.Version)))
			return
		}
		it.stmt = b.add(statements.DeleteState, text(it.State.AgentID), sdk.Int(now))

	case abi.OpRestore:
		b.prepareRestore(it)
	default:
		it.Err = abi.Errorf(abi.StatusUnsupported, "unknown op %d", it.Op)
	}
}

func (b *backend) prepareRestore(it *item) {
	r := &it.Restore
	if r.Expired(it.now) {
		return // nothing to restore: written false
	}
	ifAbsent := r.Mode != abi.RestoreOverwrite
	now := sdk.Int(ns(it.now))
	switch r.Kind {
	case abi.KindMetric:
		m := &r.Metric
		sql := statements.RestoreMetric
		if ifAbsent {
			sql = statements.RestoreMetricIfAbsent
		}
		it.stmt = b.add(sql, text(m.AgentID), text(m.Name), sdk.Int(ns(m.Timestamp)), sdk.Float(m.Value),
			sdk.Bytea(b.encodeLabels(m.Labels)), text(labelSet(m.Labels)), sdk.Int(ns(m.ExpiresAt)), now,
			text(abi.MetricEventKey(m.Name, m.Timestamp)))
	case abi.KindAlert:
		a := &r.Alert
		sql := statements.RestoreAlert
		if ifAbsent {
			sql = statements.RestoreAlertIfAbsent
		}
		it.stmt = b.add(sql, text(a.ID), text(a.AgentID), sdk.Int(int64(a.Severity)), sdk.Int(int64(a.Status)),
			sdk.Bytea([]byte(a.Message)), sdk.Bytea(b.encodeLabels(a.Labels)), text(labelSet(a.Labels)),
			sdk.Int(ns(a.CreatedAt)), sdk.Int(ns(a.UpdatedAt)), sdk.Int(ns(a.ExpiresAt)), now)
	case abi.KindAgentState:
		s := &r.State
		if s.Version > math.MaxInt64 {
			it.Err = abi.Errorf(abi.StatusInvalid, "agent state %q: version %d is over the largest this backend keeps, %d", s.AgentID, s.Version, int64(math.MaxInt64))
			return
		}
		sql := statements.RestoreState
		if ifAbsent {
			sql = statements.RestoreStateIfAbsent
		}
		it.stmt = b.add(sql, text(s.AgentID), sdk.Bytea(s.State), sdk.Int(int64(s.Version)), sdk.Int(ns(s.UpdatedAt)), sdk.Int(ns(s.ExpiresAt)), now)
	default:
		it.Err = abi.Errorf(abi.StatusInvalid, "unknown record kind %d", r.Kind)
	}
}

// finish sets the item's record or error from its statement's result.
func (b *backend) finish(it *item, res *abi.PGResult) {
	if err := res.Err(); err != nil {
		it.Err = statementError(err)
		return
	}
	var err error
	switch it.Op {
	case abi.OpPutMetric:
		it.Metric.ExpiresAt = fromNS(res.Row(0)[0].Int)
	case abi.OpGetMetric:
		if res.Rows() == 0 {
			err = metricNotFound(&it.Metric)
			break
		}
		row := res.Row(0)
		it.Metric.Value = row[0].Float
		it.Metric.Labels, err = decodeLabels(row[1].Bytes)
		it.Metric.ExpiresAt = fromNS(row[2].Int)
	case abi.OpDeleteMetric:
		if res.Rows() == 0 || !res.Row(0)[0].Bool {
			err = metricNotFound(&it.Metric)
		}

	case abi.OpPutAlert:
		if res.Rows() == 0 {
			err = fmt.Errorf("alert %q: the status it has cannot go to %s: %w", it.Alert.ID, it.Alert.Status, sdk.ErrConflict)
			break
		}
		row := res.Row(0)
		it.Alert.CreatedAt, it.Alert.ExpiresAt = fromNS(row[0].Int), fromNS(row[1].Int)
	case abi.OpGetAlert:
		if res.Rows() == 0 {
			err = alertNotFound(it.Alert.ID)
			break
		}
		err = decodeAlert(&it.Alert, res.Row(0))
	case abi.OpDeleteAlert:
		if res.Rows() == 0 || !res.Row(0)[0].Bool {
			err = alertNotFound(it.Alert.ID)
		}
	case abi.OpSetAlertStatus:
		if res.Rows() == 0 {
			err = alertNotFound(it.Alert.ID)
			break
		}
		row := res.Row(0)
		if row[1].Kind == abi.PGNull {
			err = fmt.Errorf("alert %q: cannot go from %s to %s: %w", it.Alert.ID, abi.AlertStatus(row[0].Int), it.Status, sdk.ErrConflict)
			break
		}
		a := &it.Alert
		a.AgentID, a.Severity, a.Status, a.Message = string(row[1].Bytes), abi.Severity(row[2].Int), it.Status, string(row[3].Bytes)
		a.Labels, err = decodeLabels(row[4].Bytes)
		a.CreatedAt, a.UpdatedAt, a.ExpiresAt = fromNS(row[5].Int), it.now, fromNS(row[6].Int)

	case abi.OpPutAgentState:
		if res.Rows() == 0 {
			err = stateConflict(it.State.AgentID, it.Condition)
			break
		}
		row := res.Row(0)
		it.State.Version, it.State.ExpiresAt = uint64(row[0].Int), fromNS(row[1].Int)
	case abi.OpGetAgentState:
		if res.Rows() == 0 {
			err = stateNotFound(it.State.AgentID)
			break
		}
		row := res.Row(0)
		s := &it.State
		// The state aliases the response, valid until the next
		// statement is sent: a single get's record is encoded as soon
		// as it returns, and a batch's items before the next request.
		s.State = row[0].Bytes
		s.Version, s.UpdatedAt, s.ExpiresAt = uint64(row[1].Int), fromNS(row[2].Int), fromNS(row[3].Int)
	case abi.OpDeleteAgentState:
		switch {
		case it.Condition.Mode == abi.IfVersion && res.RowsAffected == 0:
			err = stateConflict(it.State.AgentID, it.Condition)
		case it.Condition.Mode != abi.IfVersion && (res.Rows() == 0 || !res.Row(0)[0].Bool):
			err = stateNotFound(it.State.AgentID)
		}

	case abi.OpRestore:
		it.Written = res.RowsAffected > 0
		if !it.Written && it.Restore.Mode == abi.RestoreFail {
			err = fmt.Errorf("restore %s: a live record has its key: %w", it.Restore.Kind, sdk.ErrConflict)
		}
	}
	it.Err = err
}

// decodeAlert reads the columns of statements.GetAlert (and of an alert query
// after its id) into a.
func decodeAlert(a *abi.Alert, row []abi.PGValue) error {
	a.AgentID, a.Severity, a.Status, a.Message = string(row[0].Bytes), abi.Severity(row[1].Int), abi.AlertStatus(row[2].Int), string(row[3].Bytes)
	var err error
	a.Labels, err = decodeLabels(row[4].Bytes)
	a.CreatedAt, a.UpdatedAt, a.ExpiresAt = fromNS(row[5].Int), fromNS(row[6].Int), fromNS(row[7].Int)
	return err
}

func metricNotFound(m *abi.Metric) error {
	return fmt.Errorf("metric %q of agent %q at %s: %w", m.Name, m.AgentID, m.Timestamp.Format(time.RFC3339Nano), sdk.ErrNotFound)
}

func alertNotFound(id string) error { return fmt.Errorf("alert %q: %w", id, sdk.ErrNotFound) }

func stateNotFound(id string) error { return fmt.Errorf("agent state %q: %w", id, sdk.ErrNotFound) }

func stateConflict(id string, c abi.Condition) error {
	if c.Mode == abi.IfAbsent {
		return fmt.Errorf("agent state %q exists: %w", id, sdk.ErrConflict)
	}
	return fmt.Errorf("agent state %q: version %d is not current: %w", id, c.Version, sdk.ErrConflict)
}

// statementError maps a statement PostgreSQL refused to the status a
// caller can act on: UNAVAILABLE for what may pass when asked again (a
// timeout, a serialization failure, a server short of resources, the
// backend's tables gone until it is opened again), LIMIT for a program
// limit, and UNAVAILABLE, with PostgreSQL's message, for what the server's
// own rules refused: a constraint, a trigger's exception, a privilege, a
// value a column type refuses (rules an operator added to the backend's
// tables; not INTERNAL, which after a request reached the store tells the
// caller the outcome is unknown). INTERNAL otherwise. A refused statement
// did not take effect: its implicit transaction rolled back.
func statementError(err error) error {
	var pe *abi.PGError
	if !errors.As(err, &pe) {
		return err
	}
	switch s := pe.SQLState; {
	case s == "57014" || s == "40001" || s == "40P01" || s == "55P03" ||
		strings.HasPrefix(s, "53") || strings.HasPrefix(s, "57P") || strings.HasPrefix(s, "08"):
		return abi.Errorf(abi.StatusUnavailable, "%v", err)
	case strings.HasPrefix(s, "54"):
		return abi.Errorf(abi.StatusLimit, "%v", err)
	case s == "42P01" || s == "3F000":
		// undefined_table, invalid_schema_name: the backend's schema was
		// dropped under it (or its database dropped and created again).
		return abi.Errorf(abi.StatusUnavailable, "the backend's tables are missing (its schema or database was dropped; opening the backend again creates them): %v", err)
	case strings.HasPrefix(s, "23") || strings.HasPrefix(s, "P0") || strings.HasPrefix(s, "22") || s == "42501" || strings.HasPrefix(s, "27"):
		// integrity constraint, PL/pgSQL raise, data exception,
		// insufficient privilege, triggered data change violation
		return abi.Errorf(abi.StatusUnavailable, "PostgreSQL refused the statement, which did not take effect: %v", err)
	}
	return abi.Errorf(abi.StatusInternal, "%v", err)
}

// run sends the prepared statements of items in one request (one round
// trip), and finishes each item from its result.
func (b *backend) run(items []item) {
	if len(b.stmts) == 0 {
		for i := range items {
			if items[i].Err == nil && items[i].Op == abi.OpRestore {
				items[i].Written = false
			}
		}
		return
	}
	results, err := b.send(b.stmts)
	b.reset()
	for i := range items {
		it := &items[i]
		if it.Err != nil || it.stmt < 0 {
			continue
		}
		if err != nil {
			it.Err = err
			continue
		}
		b.finish(it, &results[it.stmt])
	}
}

// send runs statements in one round trip. Several go in one transaction,
// so that PostgreSQL commits (and flushes its log) once for all of them
// rather than once per statement; the statements check their own
// conditions and do not fail when one does not hold, so a transaction
// fails only when a statement meets an error (a deadlock with another
// batch, a timeout …). Then nothing of it took effect, and the
// statements are sent again as a batch, each in its own transaction, so
// that the failure of one does not fail the others (an OpBatch is not
// atomic). RATIONALE.md, "Why does the postgres plugin send a batch as
// one transaction?"
func (b *backend) send(stmts []abi.PGStatement) ([]abi.PGResult, error) {
	if len(stmts) == 1 {
		return b.pg.Batch(stmts)
	}
	results, err := b.pg.Tx(stmts)
	var pe *abi.PGError
	if errors.As(err, &pe) {
		return b.pg.Batch(stmts)
	}
	return results, err
}

// single serves one record operation.
func (b *backend) single(it *item) error {
	b.reset()
	b.prepare(it)
	b.run(b.one[:])
	return it.Err
}

// begin returns the item of a single operation, reset for op.
func (b *backend) begin(op abi.Op) *item {
	b.one[0] = item{BatchOp: sdk.BatchOp{Op: op}, now: sdk.Now()}
	return &b.one[0]
}

func (m *metrics) PutMetric(r *abi.PutMetric) (abi.Metric, error) {
	b := (*backend)(m)
	it := b.begin(abi.OpPutMetric)
	it.Metric, it.TTL = r.Metric, r.TTL
	err := b.single(it)
	return it.Metric, err
}

func (m *metrics) GetMetric(k *abi.MetricKey) (abi.Metric, error) {
	b := (*backend)(m)
	it := b.begin(abi.OpGetMetric)
	it.Metric = abi.Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp.UTC()}
	err := b.single(it)
	return it.Metric, err
}

func (m *metrics) DeleteMetric(k *abi.MetricKey) error {
	b := (*backend)(m)
	it := b.begin(abi.OpDeleteMetric)
	it.Metric = abi.Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp}
	return b.single(it)
}

func (a *alerts) PutAlert(r *abi.PutAlert) (abi.Alert, error) {
	b := (*backend)(a)
	it := b.begin(abi.OpPutAlert)
	it.Alert, it.TTL = r.Alert, r.TTL
	err := b.single(it)
	return it.Alert, err
}

func (a *alerts) GetAlert(id string) (abi.Alert, error) {
	b := (*backend)(a)
	it := b.begin(abi.OpGetAlert)
	it.Alert.ID = id
	err := b.single(it)
	return it.Alert, err
}

func (a *alerts) DeleteAlert(id string) error {
	b := (*backend)(a)
	it := b.begin(abi.OpDeleteAlert)
	it.Alert.ID = id
	return b.single(it)
}

func (a *alerts) SetAlertStatus(r *abi.SetAlertStatus) (abi.Alert, error) {
	b := (*backend)(a)
	it := b.begin(abi.OpSetAlertStatus)
	it.Alert.ID, it.Status = r.ID, r.Status
	err := b.single(it)
	return it.Alert, err
}

func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	b := (*backend)(s)
	it := b.begin(abi.OpPutAgentState)
	it.State = abi.AgentState{AgentID: r.State.AgentID, State: r.State.State}
	it.TTL, it.Condition = r.TTL, r.Condition
	err := b.single(it)
	return it.State, err
}

func (s *states) GetAgentState(agentID string) (abi.AgentState, error) {
	b := (*backend)(s)
	it := b.begin(abi.OpGetAgentState)
	it.State.AgentID = agentID
	err := b.single(it)
	return it.State, err
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	b := (*backend)(s)
	it := b.begin(abi.OpDeleteAgentState)
	it.State.AgentID, it.Condition = r.AgentID, r.Condition
	return b.single(it)
}

// Restore writes a record exactly as given (abi.OpRestore), its mode
// checked by the statement that writes.
func (b *backend) Restore(r *abi.Restore) (bool, error) {
	it := b.begin(abi.OpRestore)
	it.Restore = *r
	err := b.single(it)
	return it.Written, err
}
