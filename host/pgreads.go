package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/storage-host/storage-host/abi"
)

// sqlStateCanceled is PostgreSQL's query_canceled, which a statement
// past its statement_timeout ends with.
const sqlStateCanceled = "57014"

// maxPGReadSQL bounds a postgres read's statement: a point read, not a
// program.
const maxPGReadSQL = 4096

// pgReads holds each record kind's declared postgres read (abi.PGRead),
// indexed by kind; nil where the plugin declared none.
type pgReads [abi.KindAgentState + 1]*pgRead

// pgRead is a declared read's statement, and the number of columns its
// row has.
type pgRead struct {
	sql     string
	columns int
}

// setPGReads takes the plugin's declared postgres reads, once its
// capabilities are checked.
func (p *plugin) setPGReads() {
	if p.pg == nil {
		return
	}
	for _, r := range p.meta.PGReads {
		columns := 4
		if r.Kind == abi.KindAlert {
			columns = 8
		}
		p.pgReads[r.Kind] = &pgRead{sql: strings.Clone(r.SQL), columns: columns}
	}
}

// readPG answers the get of kind's record id with the statement the
// plugin declared it to be (abi.PGRead), without entering the guest.
// decode reads the row's values (the kind's columns, abi/README.md
// section 16.7) and says why they are out of form, or ""; mismatch then
// says why the record decoded is not the one asked for, or "". served is
// false, and the plugin is to be called as without the declaration, when
// the plugin declared no such read, for an ID out of form, when
// PostgreSQL refuses the statement, when the answer would pass the
// response bound, when the record's expiry has passed, and for an answer
// out of form (counted, and logged at most once a second). A read
// PostgreSQL cannot serve (UNAVAILABLE) is answered so, as the plugin's
// would be, without a second wait.
func (s *Store) readPG(ctx context.Context, kind abi.RecordKind, id string, decode func(row []abi.PGValue, now time.Time) (fault string), mismatch func() string) (served bool, err error) {
	r := s.p.pgReads[kind]
	if r == nil || abi.CheckID("id", id) != nil {
		return false, nil
	}
	if err := s.readBegins(ctx); err != nil {
		return true, err
	}
	defer s.calls.leave()
	sc := pgReadScratches.Get().(*pgReadScratch)
	defer pgReadScratches.Put(sc)
	now := s.now()
	sc.params[0] = abi.PGValue{Kind: abi.PGText, Bytes: append(sc.id[:0], id...)}
	sc.params[1] = abi.PGValue{Kind: abi.PGInt, Int: now.UnixNano()}
	sc.stmts[0] = abi.PGStatement{SQL: r.sql, Params: sc.params[:]}
	sc.req = abi.PGRequest{Mode: abi.PGBatch, Statements: sc.stmts[:]}
	sc.enc.Reset()
	rctx, cancel := context.WithTimeout(ctx, s.p.limits.CallTimeout)
	defer cancel()
	s.p.pg.Do(rctx, &sc.req, &sc.enc)
	resp := sc.enc.Bytes()
	if len(resp) > int(s.p.limits.MaxResponseBytes) {
		return false, nil
	}
	body, err := abi.ParseResponse(resp)
	if errors.Is(err, abi.StatusUnavailable) {
		// PostgreSQL did not answer: the plugin's own statement would
		// meet the same failure after a second wait.
		return true, fmt.Errorf("backend %s: %w", s.p.name, err)
	}
	if err != nil {
		return false, nil
	}
	sc.dec.Reset(body)
	results := sc.results.Decode(&sc.dec)
	var fault string
	rows := 0
	switch {
	case sc.dec.Finish() != nil || len(results) != 1:
		fault = "the bridge's answer does not decode" // cannot happen
	case !results[0].OK && (results[0].SQLState == sqlStateCanceled || rctx.Err() != nil):
		// The statement ran out the call's time: the plugin's get, the
		// same statement, would too, after a second wait.
		sc.dec.Reset(nil)
		if err := ctx.Err(); err != nil {
			return true, fmt.Errorf("backend %s: its declared read was stopped by its caller: %w", s.p.name, err)
		}
		return true, fmt.Errorf("backend %s: %w: its declared read ran past the call timeout of %v", s.p.name, ErrUnavailable, s.p.limits.CallTimeout)
	case !results[0].OK:
		sc.dec.Reset(nil)
		return false, nil // refused (a statement error): the plugin's to answer
	case results[0].Rows() > 1:
		fault = fmt.Sprintf("it answered %d rows", results[0].Rows())
	case results[0].Rows() == 1 && results[0].Columns != r.columns:
		fault = fmt.Sprintf("its row has %d columns, not %d", results[0].Columns, r.columns)
	default:
		rows = results[0].Rows()
	}
	if fault == "" && rows == 1 {
		fault = decode(results[0].Row(0), now)
	}
	sc.dec.Reset(nil)
	return s.readDone(&s.p.pgServed, &s.p.pgReadFaults, "a declared postgres read answered something other than the record; the plugin serves such reads (abi/README.md, section 16.7)",
		kind, id, "id "+id, rows == 1, fault, mismatch)
}

// pgReadScratch is a postgres read's request, response and decoding
// buffers, kept between reads.
type pgReadScratch struct {
	id      []byte
	params  [2]abi.PGValue
	stmts   [1]abi.PGStatement
	req     abi.PGRequest
	enc     abi.Encoder
	dec     abi.Decoder
	results abi.PGResultsBuffer
}

var pgReadScratches = sync.Pool{New: func() any { return new(pgReadScratch) }}

// decodePGState reads an agent state's row (state, version, updated_at,
// expires_at) into out, the state of id.
func decodePGState(row []abi.PGValue, id string, now time.Time, out *AgentState) (fault string) {
	if row[0].Kind != abi.PGBytea {
		return "state is not bytea"
	}
	if row[1].Kind != abi.PGInt || row[1].Int < 1 {
		return "version is not an int of 1 or more"
	}
	if row[2].Kind != abi.PGInt || row[3].Kind != abi.PGInt {
		return "updated_at or expires_at is not an int"
	}
	*out = AgentState{AgentID: id, Version: uint64(row[1].Int), UpdatedAt: nsTime(row[2].Int), ExpiresAt: nsTime(row[3].Int)}
	if len(row[0].Bytes) > 0 {
		out.State = bytes.Clone(row[0].Bytes)
	}
	if passed(out.ExpiresAt, now) {
		return errPassed
	}
	return ""
}

// decodePGAlert reads an alert's row (agent_id, severity, status,
// message, labels, created_at, updated_at, expires_at) into out, the
// alert id.
func decodePGAlert(row []abi.PGValue, id string, now time.Time, out *Alert) (fault string) {
	switch {
	case row[0].Kind != abi.PGText:
		return "agent_id is not text"
	case row[1].Kind != abi.PGInt, row[2].Kind != abi.PGInt:
		return "severity or status is not an int"
	case row[3].Kind != abi.PGText && row[3].Kind != abi.PGBytea:
		return "message is not text or bytea"
	case row[4].Kind != abi.PGBytea:
		return "labels is not bytea"
	case row[5].Kind != abi.PGInt, row[6].Kind != abi.PGInt, row[7].Kind != abi.PGInt:
		return "created_at, updated_at or expires_at is not an int"
	case row[1].Int < 1 || row[1].Int > 3 || row[2].Int < 1 || row[2].Int > 3:
		return "severity or status is not 1 to 3"
	}
	*out = Alert{ID: id, AgentID: string(row[0].Bytes), Severity: abi.Severity(row[1].Int), Status: abi.AlertStatus(row[2].Int),
		Message: string(row[3].Bytes), CreatedAt: nsTime(row[5].Int), UpdatedAt: nsTime(row[6].Int), ExpiresAt: nsTime(row[7].Int)}
	d := abi.NewDecoder(row[4].Bytes)
	if labels := abi.DecodeLabels(d); d.Finish() != nil {
		return "labels do not decode: " + d.Err().Error()
	} else if len(labels) > 0 {
		out.Labels = labels
	}
	if passed(out.ExpiresAt, now) {
		return errPassed
	}
	return ""
}

// nsTime is the time of n Unix nanoseconds, the zero time for 0.
func nsTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
