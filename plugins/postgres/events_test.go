//go:build !wasip1

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/pgtest"
	"github.com/storage-host/storage-host/sdk"
)

// event is a row of the event table, without the host's columns.
type event struct {
	kind, op, agent, key string
	version, at          int64
}

func (e *event) String() string {
	if e == nil {
		return "no event"
	}
	return fmt.Sprintf("%s %s agent=%q key=%q version=%d at=%d", e.kind, e.op, e.agent, e.key, e.version, e.at)
}

// eventSession runs the plugin's statements on one connection to a real
// PostgreSQL, in a schema of its own made by the plugin's migrations and
// the host's event table, as the host's bridge runs them: the same
// parameter types (text untyped, the rest typed), binary results decoded
// to the same values.
type eventSession struct {
	t    *testing.T
	conn *pgx.Conn
	b    backend
	seen int64 // the highest seq of the event table read so far
}

// newEventSession opens a connection, creates the schema, and sets
// storagehost.events to setting ("" leaves it unset).
func newEventSession(t *testing.T, setting string) *eventSession {
	t.Helper()
	ctx := t.Context()
	schema := pgtest.Schema(t, "wevents_")
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	setup := []string{"CREATE SCHEMA " + schema, "SET search_path = " + schema}
	for _, m := range migrations {
		setup = append(setup, m.SQL)
	}
	if setting != "" {
		setup = append(setup, "SET "+abi.PGEventsSetting+" = "+setting)
	}
	for _, sql := range setup {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	s := &eventSession{t: t, conn: conn}
	// The host's own event table, made as the host makes it.
	run := func(_ context.Context, req *abi.PGRequest) ([]abi.PGResult, error) {
		var rs []abi.PGResult
		for _, st := range req.Statements {
			rs = append(rs, s.exec(st))
		}
		return rs, nil
	}
	if err := events.EnsurePostgresTable(ctx, run, schema); err != nil {
		t.Fatal(err)
	}
	return s
}

// exec runs one statement as the bridge does, in its own implicit
// transaction.
func (s *eventSession) exec(st abi.PGStatement) abi.PGResult {
	s.t.Helper()
	values := make([][]byte, len(st.Params))
	oids := make([]uint32, len(st.Params))
	formats := make([]int16, len(st.Params))
	for i, p := range st.Params {
		formats[i] = pgx.BinaryFormatCode
		switch p.Kind {
		case abi.PGNull:
		case abi.PGInt:
			oids[i], values[i] = 20, binary.BigEndian.AppendUint64(nil, uint64(p.Int))
		case abi.PGFloat:
			oids[i], values[i] = 701, binary.BigEndian.AppendUint64(nil, math.Float64bits(p.Float))
		case abi.PGText:
			formats[i], values[i] = pgx.TextFormatCode, append([]byte{}, p.Bytes...)
		case abi.PGBytea:
			oids[i], values[i] = 17, append([]byte{}, p.Bytes...)
		case abi.PGBool:
			oids[i], values[i] = 16, []byte{0}
			if p.Bool {
				values[i][0] = 1
			}
		}
	}
	rr := s.conn.PgConn().ExecParams(s.t.Context(), st.SQL, values, oids, formats, []int16{pgx.BinaryFormatCode})
	res := abi.PGResult{OK: true, Columns: len(rr.FieldDescriptions())}
	for rr.NextRow() {
		for j, raw := range rr.Values() {
			res.Values = append(res.Values, decodeValue(s.t, rr.FieldDescriptions()[j].DataTypeOID, raw))
		}
	}
	tag, err := rr.Close()
	if err != nil {
		s.t.Fatalf("%s\n%v", st.SQL, err)
	}
	res.RowsAffected = uint64(tag.RowsAffected())
	return res
}

// decodeValue decodes a binary result value as the bridge does.
func decodeValue(t *testing.T, oid uint32, raw []byte) abi.PGValue {
	t.Helper()
	if raw == nil {
		return abi.PGValue{Kind: abi.PGNull}
	}
	switch oid {
	case 21:
		return abi.PGValue{Kind: abi.PGInt, Int: int64(int16(binary.BigEndian.Uint16(raw)))}
	case 23:
		return abi.PGValue{Kind: abi.PGInt, Int: int64(int32(binary.BigEndian.Uint32(raw)))}
	case 20:
		return abi.PGValue{Kind: abi.PGInt, Int: int64(binary.BigEndian.Uint64(raw))}
	case 701:
		return abi.PGValue{Kind: abi.PGFloat, Float: math.Float64frombits(binary.BigEndian.Uint64(raw))}
	case 16:
		return abi.PGValue{Kind: abi.PGBool, Bool: raw[0] != 0}
	case 17:
		return abi.PGValue{Kind: abi.PGBytea, Bytes: slices.Clone(raw)}
	case 25:
		return abi.PGValue{Kind: abi.PGText, Bytes: slices.Clone(raw)}
	}
	// Any other type as text, as the bridge reads it (void, say).
	var text string
	if err := pgtype.NewMap().Scan(oid, pgx.BinaryFormatCode, raw, &text); err != nil {
		t.Fatalf("a result column of type %d: %v", oid, err)
	}
	return abi.PGValue{Kind: abi.PGText, Bytes: []byte(text)}
}

// do prepares it, checks it is one statement, runs that and finishes it
// from its result.
func (s *eventSession) do(it *item) {
	s.t.Helper()
	s.b.reset()
	s.b.prepare(it)
	if it.Err == nil && it.stmt >= 0 {
		if len(s.b.stmts) != 1 {
			s.t.Fatalf("%d statements, want one", len(s.b.stmts))
		}
		res := s.exec(s.b.stmts[0])
		s.b.finish(it, &res)
	}
	s.b.reset()
}

// tx prepares items and runs their statements in one transaction, as
// send runs a batch's, and finishes each item.
func (s *eventSession) tx(items []item) {
	s.t.Helper()
	ctx := s.t.Context()
	s.b.reset()
	for i := range items {
		s.b.prepare(&items[i])
	}
	if len(s.b.stmts) != len(items) {
		s.t.Fatalf("%d statements for %d items", len(s.b.stmts), len(items))
	}
	if _, err := s.conn.Exec(ctx, "BEGIN"); err != nil {
		s.t.Fatal(err)
	}
	results := make([]abi.PGResult, len(s.b.stmts))
	for i, st := range s.b.stmts {
		results[i] = s.exec(st)
	}
	if _, err := s.conn.Exec(ctx, "COMMIT"); err != nil {
		s.t.Fatal(err)
	}
	for i := range items {
		s.b.finish(&items[i], &results[items[i].stmt])
	}
	s.b.reset()
}

// events returns the rows of the event table inserted since the last
// call, checking that each leaves its position and data to the host.
func (s *eventSession) events() []event {
	s.t.Helper()
	rows, err := s.conn.Query(s.t.Context(), `SELECT seq, kind, op, agent, key, version, at, pos IS NULL, data IS NULL
FROM `+abi.PGEventsTable+` WHERE seq > $1 ORDER BY seq`, s.seen)
	if err != nil {
		s.t.Fatal(err)
	}
	var evs []event
	for rows.Next() {
		var e event
		var noPos, noData bool
		if err := rows.Scan(&s.seen, &e.kind, &e.op, &e.agent, &e.key, &e.version, &e.at, &noPos, &noData); err != nil {
			s.t.Fatal(err)
		}
		if !noPos || !noData {
			s.t.Errorf("event %s: position NULL %v, data NULL %v; want both", &e, noPos, noData)
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return evs
}

// version is the version of the agent state id in the table.
func (s *eventSession) version(id string) uint64 {
	s.t.Helper()
	var v int64
	if err := s.conn.QueryRow(s.t.Context(), "SELECT version FROM agent_states WHERE agent_id = $1", id).Scan(&v); err != nil {
		s.t.Fatalf("version of %s: %v", id, err)
	}
	return uint64(v)
}

// eventStep is one record operation and what it must do.
type eventStep struct {
	name string
	op   abi.Op
	// set fills the item's request.
	set func(s *eventSession, it *item)
	// err is nil, sdk.ErrNotFound or sdk.ErrConflict; written is a
	// restore's answer.
	err     error
	written bool
	// want is the event of the write (it is the item finished), or nil
	// when the operation writes nothing.
	want func(it *item) *event
}

// eventSteps are the record writes of every statement, each in every
// case where it writes and where it does not, in an order where each
// step's records are as its name says. Step i runs at t0 + i seconds, so
// a record written with a TTL of a millisecond has expired at the next
// step.
func eventSteps() []eventStep {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	ts := func(i int) time.Time { return t0.Add(-time.Hour + time.Duration(i)*time.Millisecond + 500) } // nanoseconds in the key
	short := abi.TTL{Mode: abi.TTLDuration, Duration: time.Millisecond}
	metric := func(i int) abi.Metric {
		return abi.Metric{AgentID: "a1", Name: "cpu", Timestamp: ts(i), Value: float64(i), Labels: map[string]string{"env": "prod"}}
	}
	putMetric := func(i int, ttl abi.TTL) func(*eventSession, *item) {
		return func(_ *eventSession, it *item) { it.Metric, it.TTL = metric(i), ttl }
	}
	delMetric := func(i int) func(*eventSession, *item) {
		return func(_ *eventSession, it *item) {
			m := metric(i)
			it.Metric = abi.Metric{AgentID: m.AgentID, Name: m.Name, Timestamp: m.Timestamp}
		}
	}
	metricEvent := func(op string, i int) func(*item) *event {
		return func(it *item) *event {
			return &event{"metrics", op, "a1", abi.MetricEventKey("cpu", ts(i)), 0, it.now.UnixNano()}
		}
	}
	alert := func(id string, st abi.AlertStatus) abi.Alert {
		return abi.Alert{ID: id, AgentID: "agent-of-" + id, Severity: abi.SeverityWarning, Status: st, Message: "m", Labels: map[string]string{"team": "x"},
			CreatedAt: t0.Add(-48 * time.Hour)}
	}
	putAlert := func(id string, st abi.AlertStatus, ttl abi.TTL) func(*eventSession, *item) {
		return func(_ *eventSession, it *item) { it.Alert, it.TTL = alert(id, st), ttl }
	}
	setStatus := func(id string, st abi.AlertStatus) func(*eventSession, *item) {
		return func(_ *eventSession, it *item) { it.Alert.ID, it.Status = id, st }
	}
	delAlert := func(id string) func(*eventSession, *item) {
		return func(_ *eventSession, it *item) { it.Alert.ID = id }
	}
	alertEvent := func(op, id string) func(*item) *event {
		return func(it *item) *event {
			n := it.now.UnixNano()
			if op == "delete" {
				return &event{"alerts", op, "agent-of-" + id, id, 0, n}
			}
			return &event{"alerts", op, "agent-of-" + id, id, n, n}
		}
	}
	putState := func(id string, c abi.ConditionMode, ttl abi.TTL) func(*eventSession, *item) {
		return func(s *eventSession, it *item) {
			it.State, it.TTL, it.Condition = abi.AgentState{AgentID: id, State: []byte(`{"s":1}`)}, ttl, abi.Condition{Mode: c}
			if c == abi.IfVersion {
				it.Condition.Version = s.version(id)
			}
		}
	}
	putStateStale := func(id string) func(*eventSession, *item) {
		return func(s *eventSession, it *item) {
			it.State, it.Condition = abi.AgentState{AgentID: id, State: []byte("x")}, abi.Condition{Mode: abi.IfVersion, Version: s.version(id) + 1000}
		}
	}
	delState := func(id string, c abi.ConditionMode, stale bool) func(*eventSession, *item) {
		return func(s *eventSession, it *item) {
			it.State.AgentID, it.Condition = id, abi.Condition{Mode: c}
			if c == abi.IfVersion {
				it.Condition.Version = 1 << 40 // no such version: the state may be gone
				if !stale {
					it.Condition.Version = s.version(id)
				}
			}
		}
	}
	stateEvent := func(id string) func(*item) *event {
		return func(it *item) *event {
			return &event{"agent_states", "put", id, id, int64(it.State.Version), it.now.UnixNano()}
		}
	}
	stateDeleted := func(id string) func(*item) *event {
		return func(it *item) *event { return &event{"agent_states", "delete", id, id, 0, it.now.UnixNano()} }
	}
	restore := func(r abi.Restore) func(*eventSession, *item) {
		return func(_ *eventSession, it *item) { it.Restore = r }
	}
	restoredMetric := func(i int, mode abi.RestoreMode) abi.Restore {
		return abi.Restore{Kind: abi.KindMetric, Mode: mode, Metric: metric(i)}
	}
	updated := t0.Add(-24 * time.Hour).Add(123)
	restoredAlert := func(id string, mode abi.RestoreMode) abi.Restore {
		a := alert(id, abi.AlertAcknowledged)
		a.CreatedAt, a.UpdatedAt = updated.Add(-time.Hour), updated
		return abi.Restore{Kind: abi.KindAlert, Mode: mode, Alert: a}
	}
	restoredAlertEvent := func(id string) func(*item) *event {
		return func(it *item) *event {
			return &event{"alerts", "put", "agent-of-" + id, id, updated.UnixNano(), it.now.UnixNano()}
		}
	}
	restoredState := func(id string, mode abi.RestoreMode) abi.Restore {
		return abi.Restore{Kind: abi.KindAgentState, Mode: mode,
			State: abi.AgentState{AgentID: id, State: []byte("r"), Version: 42, UpdatedAt: updated}}
	}
	restoredStateEvent := func(id string) func(*item) *event {
		return func(it *item) *event { return &event{"agent_states", "put", id, id, 42, it.now.UnixNano()} }
	}
	notFound, conflict := sdk.ErrNotFound, sdk.ErrConflict
	return []eventStep{
		{name: "put a metric", op: abi.OpPutMetric, set: putMetric(1, abi.TTL{}), want: metricEvent("put", 1)},
		{name: "put a metric again, keeping its ttl", op: abi.OpPutMetric, set: putMetric(1, abi.TTL{Mode: abi.TTLKeep}), want: metricEvent("put", 1)},
		{name: "delete a metric", op: abi.OpDeleteMetric, set: delMetric(1), want: metricEvent("delete", 1)},
		{name: "delete a missing metric", op: abi.OpDeleteMetric, set: delMetric(1), err: notFound},
		{name: "put a metric that expires", op: abi.OpPutMetric, set: putMetric(2, short), want: metricEvent("put", 2)},
		{name: "delete an expired metric", op: abi.OpDeleteMetric, set: delMetric(2), err: notFound},

		{name: "put an alert", op: abi.OpPutAlert, set: putAlert("al1", abi.AlertFiring, abi.TTL{}), want: alertEvent("put", "al1")},
		{name: "put an alert, acknowledged", op: abi.OpPutAlert, set: putAlert("al1", abi.AlertAcknowledged, abi.TTL{}), want: alertEvent("put", "al1")},
		{name: "put an alert, a transition refused", op: abi.OpPutAlert, set: putAlert("al1", abi.AlertFiring, abi.TTL{}), err: conflict},
		{name: "set an alert's status", op: abi.OpSetAlertStatus, set: setStatus("al1", abi.AlertResolved), want: alertEvent("status", "al1")},
		{name: "set an alert's status, a transition refused", op: abi.OpSetAlertStatus, set: setStatus("al1", abi.AlertAcknowledged), err: conflict},
		{name: "set a missing alert's status", op: abi.OpSetAlertStatus, set: setStatus("nobody", abi.AlertResolved), err: notFound},
		{name: "delete an alert", op: abi.OpDeleteAlert, set: delAlert("al1"), want: alertEvent("delete", "al1")},
		{name: "delete a missing alert", op: abi.OpDeleteAlert, set: delAlert("al1"), err: notFound},
		{name: "put an alert that expires", op: abi.OpPutAlert, set: putAlert("al2", abi.AlertFiring, short), want: alertEvent("put", "al2")},
		{name: "set an expired alert's status", op: abi.OpSetAlertStatus, set: setStatus("al2", abi.AlertAcknowledged), err: notFound},
		{name: "delete an expired alert", op: abi.OpDeleteAlert, set: delAlert("al2"), err: notFound},
		{name: "put an alert over an expired one", op: abi.OpPutAlert, set: putAlert("al2", abi.AlertAcknowledged, short), want: alertEvent("put", "al2")},
		{name: "put an alert over an expired one, from a status that refuses it", op: abi.OpPutAlert, set: putAlert("al2", abi.AlertFiring, abi.TTL{}), want: alertEvent("put", "al2")},

		{name: "put a state", op: abi.OpPutAgentState, set: putState("st1", abi.Unconditional, abi.TTL{}), want: stateEvent("st1")},
		{name: "put a state again", op: abi.OpPutAgentState, set: putState("st1", abi.Unconditional, abi.TTL{Mode: abi.TTLKeep}), want: stateEvent("st1")},
		{name: "put a state if absent, present", op: abi.OpPutAgentState, set: putState("st1", abi.IfAbsent, abi.TTL{}), err: conflict},
		{name: "put a state if absent", op: abi.OpPutAgentState, set: putState("st2", abi.IfAbsent, abi.TTL{}), want: stateEvent("st2")},
		{name: "put a state if version, stale", op: abi.OpPutAgentState, set: putStateStale("st1"), err: conflict},
		{name: "put a state if version", op: abi.OpPutAgentState, set: putState("st1", abi.IfVersion, abi.TTL{}), want: stateEvent("st1")},
		{name: "delete a state if version, stale", op: abi.OpDeleteAgentState, set: delState("st1", abi.IfVersion, true), err: conflict},
		{name: "delete a state if version", op: abi.OpDeleteAgentState, set: delState("st1", abi.IfVersion, false), want: stateDeleted("st1")},
		{name: "delete a missing state if version", op: abi.OpDeleteAgentState, set: delState("st1", abi.IfVersion, true), err: conflict},
		{name: "delete a state", op: abi.OpDeleteAgentState, set: delState("st2", abi.Unconditional, false), want: stateDeleted("st2")},
		{name: "delete a missing state", op: abi.OpDeleteAgentState, set: delState("st2", abi.Unconditional, false), err: notFound},
		{name: "put a state that expires", op: abi.OpPutAgentState, set: putState("st3", abi.Unconditional, short), want: stateEvent("st3")},
		{name: "put an expired state if version", op: abi.OpPutAgentState, set: putState("st3", abi.IfVersion, abi.TTL{}), err: conflict},
		{name: "delete an expired state if version", op: abi.OpDeleteAgentState, set: delState("st3", abi.IfVersion, false), err: conflict},
		{name: "delete an expired state", op: abi.OpDeleteAgentState, set: delState("st3", abi.Unconditional, false), err: notFound},
		{name: "put a state that expires, again", op: abi.OpPutAgentState, set: putState("st4", abi.Unconditional, short), want: stateEvent("st4")},
		{name: "put a state if absent, over an expired one", op: abi.OpPutAgentState, set: putState("st4", abi.IfAbsent, abi.TTL{}), want: stateEvent("st4")},

		{name: "restore a metric, overwrite", op: abi.OpRestore, set: restore(restoredMetric(3, abi.RestoreOverwrite)), written: true, want: metricEvent("put", 3)},
		{name: "restore a metric over a live one, overwrite", op: abi.OpRestore, set: restore(restoredMetric(3, abi.RestoreOverwrite)), written: true, want: metricEvent("put", 3)},
		{name: "restore a metric over a live one, fail", op: abi.OpRestore, set: restore(restoredMetric(3, abi.RestoreFail)), err: conflict},
		{name: "restore a metric over a live one, skip", op: abi.OpRestore, set: restore(restoredMetric(3, abi.RestoreSkip))},
		{name: "restore a metric, skip", op: abi.OpRestore, set: restore(restoredMetric(4, abi.RestoreSkip)), written: true, want: metricEvent("put", 4)},
		{name: "put a metric that expires, to restore over", op: abi.OpPutMetric, set: putMetric(5, short), want: metricEvent("put", 5)},
		{name: "restore a metric over an expired one, fail", op: abi.OpRestore, set: restore(restoredMetric(5, abi.RestoreFail)), written: true, want: metricEvent("put", 5)},
		{name: "restore an expired metric", op: abi.OpRestore, set: func(_ *eventSession, it *item) {
			r := restoredMetric(6, abi.RestoreOverwrite)
			r.Metric.ExpiresAt = t0
			it.Restore = r
		}},

		{name: "restore an alert, overwrite", op: abi.OpRestore, set: restore(restoredAlert("al3", abi.RestoreOverwrite)), written: true, want: restoredAlertEvent("al3")},
		{name: "restore an alert over a live one, overwrite", op: abi.OpRestore, set: restore(restoredAlert("al3", abi.RestoreOverwrite)), written: true, want: restoredAlertEvent("al3")},
		{name: "restore an alert over a live one, fail", op: abi.OpRestore, set: restore(restoredAlert("al3", abi.RestoreFail)), err: conflict},
		{name: "restore an alert over a live one, skip", op: abi.OpRestore, set: restore(restoredAlert("al3", abi.RestoreSkip))},
		{name: "restore an alert, fail", op: abi.OpRestore, set: restore(restoredAlert("al4", abi.RestoreFail)), written: true, want: restoredAlertEvent("al4")},
		{name: "put an alert that expires, to restore over", op: abi.OpPutAlert, set: putAlert("al5", abi.AlertFiring, short), want: alertEvent("put", "al5")},
		{name: "restore an alert over an expired one, skip", op: abi.OpRestore, set: restore(restoredAlert("al5", abi.RestoreSkip)), written: true, want: restoredAlertEvent("al5")},

		{name: "restore a state, overwrite", op: abi.OpRestore, set: restore(restoredState("st5", abi.RestoreOverwrite)), written: true, want: restoredStateEvent("st5")},
		{name: "restore a state over a live one, overwrite", op: abi.OpRestore, set: restore(restoredState("st5", abi.RestoreOverwrite)), written: true, want: restoredStateEvent("st5")},
		{name: "restore a state over a live one, fail", op: abi.OpRestore, set: restore(restoredState("st5", abi.RestoreFail)), err: conflict},
		{name: "restore a state over a live one, skip", op: abi.OpRestore, set: restore(restoredState("st5", abi.RestoreSkip))},
		{name: "restore a state, skip", op: abi.OpRestore, set: restore(restoredState("st6", abi.RestoreSkip)), written: true, want: restoredStateEvent("st6")},
		{name: "put a state that expires, to restore over", op: abi.OpPutAgentState, set: putState("st7", abi.Unconditional, short), want: stateEvent("st7")},
		{name: "restore a state over an expired one, fail", op: abi.OpRestore, set: restore(restoredState("st7", abi.RestoreFail)), written: true, want: restoredStateEvent("st7")},
	}
}

// Every write statement inserts its event (abi.PGEventsTable), with the
// values of abi/README.md section 16.6, when it writes and the session's
// storagehost.events is on; none when it does not write (a condition or
// a transition refused, a delete of a missing or expired record, a
// restore a live record is in the way of), none when the setting is off
// or unset, and none from the expiry sweep. What the operations answer
// is the same in each case.
func TestWriteEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real PostgreSQL; skipped with -short")
	}
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, setting := range []string{"on", "off", ""} {
		t.Run("storagehost.events="+setting, func(t *testing.T) {
			s := newEventSession(t, setting)
			var all []event
			for i, st := range eventSteps() {
				it := item{BatchOp: sdk.BatchOp{Op: st.op}, now: t0.Add(time.Duration(i) * time.Second)}
				st.set(s, &it)
				s.do(&it)
				switch {
				case st.err == nil && it.Err != nil, st.err != nil && !errors.Is(it.Err, st.err):
					t.Fatalf("%s: error %v, want %v", st.name, it.Err, st.err)
				case st.op == abi.OpRestore && it.Written != st.written:
					t.Fatalf("%s: written %v, want %v", st.name, it.Written, st.written)
				}
				var want *event
				if st.want != nil && setting == "on" {
					want = st.want(&it)
				}
				got := s.events()
				switch {
				case len(got) > 1:
					t.Errorf("%s: %d events: %v", st.name, len(got), got)
				case len(got) == 1 && (want == nil || got[0] != *want):
					t.Errorf("%s: %s, want %s", st.name, &got[0], want)
				case len(got) == 0 && want != nil:
					t.Errorf("%s: no event, want %s", st.name, want)
				}
				all = append(all, got...)
			}
			if setting == "on" && len(all) < 30 {
				t.Errorf("%d events in all", len(all))
			}

			// A batch's statements in one transaction: an event per item
			// written, in the items' order.
			now := t0.Add(time.Hour)
			items := []item{
				{BatchOp: sdk.BatchOp{Op: abi.OpPutAgentState, State: abi.AgentState{AgentID: "b1", State: []byte("x")}}, now: now},
				{BatchOp: sdk.BatchOp{Op: abi.OpDeleteAlert, Alert: abi.Alert{ID: "nobody"}}, now: now},
				{BatchOp: sdk.BatchOp{Op: abi.OpPutMetric, Metric: abi.Metric{AgentID: "b2", Name: "mem", Timestamp: now}}, now: now},
				{BatchOp: sdk.BatchOp{Op: abi.OpDeleteAgentState, State: abi.AgentState{AgentID: "b1"}}, now: now},
				{BatchOp: sdk.BatchOp{Op: abi.OpPutAgentState, State: abi.AgentState{AgentID: "b3", State: []byte("y")},
					TTL: abi.TTL{Mode: abi.TTLDuration, Duration: time.Second}}, now: now},
			}
			s.tx(items)
			if items[1].Err == nil || !errors.Is(items[1].Err, sdk.ErrNotFound) {
				t.Errorf("batch: deleting a missing alert: %v", items[1].Err)
			}
			var want []event
			if setting == "on" {
				n := now.UnixNano()
				want = []event{
					{"agent_states", "put", "b1", "b1", int64(items[0].State.Version), n},
					{"metrics", "put", "b2", abi.MetricEventKey("mem", now), 0, n},
					{"agent_states", "delete", "b1", "b1", 0, n},
					{"agent_states", "put", "b3", "b3", int64(items[4].State.Version), n},
				}
			}
			if got := s.events(); !slices.Equal(got, want) {
				t.Errorf("batch: events %v, want %v", got, want)
			}

			// The expiry sweep deletes expired rows (b3) and writes no
			// event.
			var swept uint64
			for _, sql := range sweeps {
				swept += s.exec(abi.PGStatement{SQL: sql, Params: []abi.PGValue{sdk.Int(t0.Add(1000 * time.Hour).UnixNano())}}).RowsAffected
			}
			if swept == 0 {
				t.Error("the sweep deleted no row")
			}
			if got := s.events(); len(got) != 0 {
				t.Errorf("sweep: events %v", got)
			}
		})
	}
}
