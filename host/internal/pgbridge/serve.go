package pgbridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/storage-host/storage-host/abi"
)

// Serve decodes a postgres request, runs it, and appends the whole
// response (status byte and body) to e. The request is read in place:
// its statements' texts and parameters alias reqBytes, which must not
// change during the call.
func (b *Bridge) Serve(ctx context.Context, reqBytes []byte, e *abi.Encoder) {
	req := requests.Get().(*request)
	defer req.release()
	if err := req.decode(reqBytes); err != nil {
		abi.AppendError(e, abi.StatusInvalid, "postgres request: "+err.Error())
		return
	}
	b.do(ctx, req, e)
}

// Do runs req and appends the response to e.
func (b *Bridge) Do(ctx context.Context, req *abi.PGRequest, e *abi.Encoder) {
	r := requests.Get().(*request)
	defer r.release()
	r.mode = req.Mode
	for i := range req.Statements {
		s := &req.Statements[i]
		p0 := len(r.params)
		r.params = append(r.params, s.Params...)
		r.stmts = append(r.stmts, statement{sql: []byte(s.SQL), p0: p0, p1: len(r.params)})
	}
	b.do(ctx, r, e)
}

// request is a decoded abi.PGRequest, reused from call to call: the
// statements' texts and text and bytea parameters alias the encoded
// request.
type request struct {
	mode   abi.PGMode
	stmts  []statement
	params []abi.PGValue // every statement's, one after another
}

// statement is one statement of a request: its text, and its parameters,
// request.params[p0:p1].
type statement struct {
	sql    []byte
	p0, p1 int
}

var requests = sync.Pool{New: func() any { return new(request) }}

// decode reads what abi.PGRequest.Encode wrote, with the same checks as
// abi.PGRequest.Decode.
func (r *request) decode(b []byte) error {
	var d abi.Decoder
	d.Reset(b)
	r.mode = abi.PGMode(d.U8())
	if d.Err() == nil && r.mode != abi.PGBatch && r.mode != abi.PGTransaction {
		return abi.ErrMalformed
	}
	n := d.Count(2)
	for i := 0; i < n && d.Err() == nil; i++ {
		sql := d.View()
		m := d.Count(1)
		p0 := len(r.params)
		for j := 0; j < m && d.Err() == nil; j++ {
			r.params = append(r.params, abi.PGValue{})
			r.params[len(r.params)-1].Decode(&d)
		}
		r.stmts = append(r.stmts, statement{sql: sql, p0: p0, p1: len(r.params)})
	}
	return d.Finish()
}

// release returns r to the pool, holding no reference to the request it
// was decoded from.
func (r *request) release() {
	clear(r.stmts)
	clear(r.params)
	r.stmts, r.params = r.stmts[:0], r.params[:0]
	if cap(r.params) > 4096 || cap(r.stmts) > 1024 {
		return // a large request's slices are not kept
	}
	requests.Put(r)
}

func (b *Bridge) do(ctx context.Context, req *request, e *abi.Encoder) {
	if len(req.stmts) > b.maxStmts {
		abi.AppendError(e, abi.StatusLimit, fmt.Sprintf("postgres: %d statements, more than the %d of one request", len(req.stmts), b.maxStmts))
		return
	}
	if len(req.stmts) == 0 {
		e.U8(uint8(abi.StatusOK))
		abi.EncodePGResults(e, nil)
		return
	}
	timeout := b.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		abi.AppendError(e, abi.StatusUnavailable, "postgres: the call's deadline has passed")
		return
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		abi.AppendError(e, abi.StatusUnavailable, "postgres: "+err.Error())
		return
	}
	// pgxpool closes, rather than reuses, a connection a plugin's own
	// BEGIN left inside a transaction.
	defer conn.Release()
	pc := conn.Conn().PgConn()
	start := len(e.Bytes())
	kept, sent, err := b.run(ctx, pc, req, timeout, e)
	clear(state(pc).values) // they alias the request
	if err != nil {
		e.Truncate(start)
		// The connection is in an unknown state: it is not reused.
		_ = pc.Close(context.WithoutCancel(ctx))
		st := abi.StatusUnknown
		if !sent || pgconn.SafeToRetry(err) {
			st = abi.StatusUnavailable
		}
		abi.AppendError(e, st, "postgres: "+err.Error())
		return
	}
	if !kept {
		e.Truncate(start)
		abi.AppendError(e, abi.StatusLimit, fmt.Sprintf("postgres: results longer than %d bytes; the statements ran, their results are dropped", b.maxBytes))
	}
}

// Parameter OIDs: ints, floats, bools and byteas are typed; text is
// sent as unknown, so the server gives it the type its place calls for.
const (
	oidUnknown     = 0
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidFloat4      = 700
	oidFloat8      = 701
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidName        = 19
	oidTimestamp   = 1114
	oidTimestamptz = 1184
)

var (
	binaryFormat = []int16{pgx.BinaryFormatCode}
	// The bodies of the boolean parameters and of an empty text or bytea,
	// never written to.
	boolFalse, boolTrue, empty = []byte{0}, []byte{1}, []byte{}
)

// params sets the connection's parameter buffers to vals. Text and bytea
// values alias vals: pgconn copies every value into its send buffer when
// a statement is queued.
func (c *connState) params(vals []abi.PGValue) {
	c.values, c.oids, c.formats = c.values[:0], c.oids[:0], c.formats[:0]
	c.arena = slices.Grow(c.arena[:0], 8*len(vals))
	for _, v := range vals {
		var (
			val    []byte
			oid    uint32
			format int16 = pgx.BinaryFormatCode
		)
		switch v.Kind {
		case abi.PGNull:
			oid = oidUnknown
		case abi.PGInt:
			oid = oidInt8
			val = c.word(uint64(v.Int))
		case abi.PGFloat:
			oid = oidFloat8
			val = c.word(math.Float64bits(v.Float))
		case abi.PGText:
			oid, format, val = oidUnknown, pgx.TextFormatCode, v.Bytes
		case abi.PGBytea:
			oid, val = oidBytea, v.Bytes
		case abi.PGBool:
			oid, val = oidBool, boolFalse
			if v.Bool {
				val = boolTrue
			}
		}
		if val == nil && (v.Kind == abi.PGText || v.Kind == abi.PGBytea) {
			val = empty // empty, not NULL
		}
		c.values = append(c.values, val)
		c.oids = append(c.oids, oid)
		c.formats = append(c.formats, format)
	}
}

// word appends a big-endian 64-bit value to the arena and returns it.
func (c *connState) word(v uint64) []byte {
	n := len(c.arena)
	c.arena = binary.BigEndian.AppendUint64(c.arena, v)
	return c.arena[n:len(c.arena):len(c.arena)]
}

// Encoded results that are not a row's values.
var errNotRun = abi.PGResult{SQLState: "25P02", Message: "not run: an earlier statement of the transaction failed"}

// run sends the statements and appends the OK response to e. It reports
// kept false when the results passed maxBytes (what it appended is then
// to be dropped), and sent whether any of the request may have reached
// the server.
//
// A single statement already prepared on the connection, when the
// statement timeout is the one set, goes alone with its sync, as
// pgconn's ExecStatement sends it; anything else goes in one pipeline:
// first the statement timeout, then, in a batch, each statement followed
// by a sync (its own implicit transaction), or, in a transaction, all of
// them before one sync (one implicit transaction, which the first error
// rolls back).
func (b *Bridge) run(ctx context.Context, pc *pgconn.PgConn, req *request, timeout time.Duration, e *abi.Encoder) (kept, sent bool, err error) {
	c := state(pc)
	ms := timeoutStep(timeout)
	e.U8(uint8(abi.StatusOK))
	e.Uvarint(uint64(len(req.stmts)))
	budget := b.maxBytes
	if len(req.stmts) == 1 && c.timeoutMS == ms {
		s := &req.stmts[0]
		c.params(req.params[s.p0:s.p1])
		if sd := c.lookup(s.sql, c.oids); sd != nil {
			rr := pc.ExecStatement(ctx, sd, c.values, c.formats, binaryFormat)
			if err := c.result(rr, &budget, e); err != nil && !errors.Is(err, errStatementFailed) {
				return false, true, err
			}
			return budget >= 0, true, nil
		}
	}
	return b.pipeline(ctx, pc, c, req, ms, &budget, e)
}

func (b *Bridge) pipeline(ctx context.Context, pc *pgconn.PgConn, c *connState, req *request, ms int64, budget *int64, e *abi.Encoder) (kept, sent bool, err error) {
	p := pc.StartPipeline(ctx)
	defer func() {
		if cerr := p.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	setTimeout := c.timeoutMS != ms
	if setTimeout {
		p.SendQueryParams("SELECT set_config('statement_timeout', $1, false)", [][]byte{strconv.AppendInt(nil, ms, 10)}, []uint32{oidText}, nil, nil)
		p.SendPipelineSync()
	}
	// plan[i]: what statement i sends; a statement prepared in this
	// request has its description come before its result.
	c.plan = slices.Grow(c.plan[:0], len(req.stmts))[:len(req.stmts)]
	fresh := 0
	for i := range req.stmts {
		s := &req.stmts[i]
		c.params(req.params[s.p0:s.p1])
		pl := &c.plan[i]
		*pl = planned{}
		switch sd := c.lookup(s.sql, c.oids); {
		case sd != nil:
			p.SendQueryStatement(sd, c.values, c.formats, binaryFormat)
		case c.count+fresh < maxPrepared:
			fresh++
			c.next++
			pl.name = "storagehost_" + strconv.FormatUint(c.next, 10)
			pl.oids = slices.Clone(c.oids)
			p.SendPrepare(pl.name, string(s.sql), c.oids)
			p.SendQueryPrepared(pl.name, c.values, c.formats, binaryFormat)
		default:
			p.SendQueryParams(string(s.sql), c.values, c.oids, c.formats, binaryFormat)
		}
		if req.mode == abi.PGBatch {
			p.SendPipelineSync()
		}
	}
	if req.mode == abi.PGTransaction {
		p.SendPipelineSync()
	}
	if err := p.Flush(); err != nil {
		return false, false, err
	}
	sent = true
	if setTimeout {
		if err := drain(p); err != nil {
			return false, sent, err
		}
		if err := expectSync(p); err != nil {
			return false, sent, err
		}
		c.timeoutMS = ms
	}
	failed := false
	for i := range req.stmts {
		if failed {
			if *budget >= 0 {
				errNotRun.Encode(e)
			}
			continue
		}
		var err error
		if pl := &c.plan[i]; pl.name != "" {
			var got any
			if got, err = p.GetResults(); err == nil {
				sd, ok := got.(*pgconn.StatementDescription)
				if !ok {
					return false, sent, fmt.Errorf("pgbridge: expected a statement's description, got %T", got)
				}
				// pgconn leaves the name and text of a description it
				// read in a pipeline empty.
				sd.Name, sd.SQL = pl.name, string(req.stmts[i].sql)
				c.add(sd, pl.oids)
			}
		}
		if err == nil {
			var got any
			if got, err = p.GetResults(); err == nil {
				rr, ok := got.(*pgconn.ResultReader)
				if !ok {
					return false, sent, fmt.Errorf("pgbridge: expected a statement's result, got %T", got)
				}
				err = c.result(rr, budget, e)
			}
		}
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr):
			// Only a description's error gets here; a result's is
			// encoded by result.
			c.failed(pgErr)
			if *budget >= 0 {
				(&abi.PGResult{SQLState: pgErr.Code, Message: pgErr.Message}).Encode(e)
			}
			failed = req.mode == abi.PGTransaction
		case errors.Is(err, errStatementFailed):
			failed = req.mode == abi.PGTransaction
		case err != nil:
			return false, sent, err
		}
		if req.mode == abi.PGBatch {
			// After an error the server skipped to the sync, which
			// GetResults returns next.
			if err := expectSync(p); err != nil {
				return false, sent, err
			}
		}
	}
	if req.mode == abi.PGTransaction {
		if err := expectSync(p); err != nil {
			return false, sent, err
		}
	}
	return *budget >= 0, sent, nil
}

// errStatementFailed is result's report of a statement PostgreSQL
// refused, whose error it encoded.
var errStatementFailed = errors.New("pgbridge: the statement failed")

// result reads the result of one statement and encodes it, unless the
// budget is spent: it keeps the rows, charging their encoded size to the
// budget; past it, it reads them to the end and encodes nothing. A
// statement PostgreSQL refused is encoded as its error, and reported as
// errStatementFailed; any other error is the connection's.
func (c *connState) result(rr *pgconn.ResultReader, budget *int64, e *abi.Encoder) error {
	fields := rr.FieldDescriptions()
	vals := &c.vals
	vals.Reset()
	n := 0
	var convErr error
	for rr.NextRow() {
		if *budget < 0 || convErr != nil {
			continue // drained, not kept
		}
		for j, raw := range rr.Values() {
			charge, err := appendValue(vals, fields[j].DataTypeOID, raw)
			if err != nil {
				convErr = fmt.Errorf("column %q: %w", fields[j].Name, err)
				break
			}
			*budget -= int64(charge)
			n++
		}
	}
	tag, err := rr.Close()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c.failed(pgErr)
		if *budget >= 0 {
			(&abi.PGResult{SQLState: pgErr.Code, Message: pgErr.Message}).Encode(e)
		}
		return errStatementFailed
	}
	if err != nil {
		return err
	}
	if *budget < 0 {
		return nil
	}
	if convErr != nil {
		(&abi.PGResult{SQLState: "0A000", Message: "pgbridge: " + convErr.Error()}).Encode(e)
		return nil
	}
	e.Bool(true)
	e.Uvarint(uint64(tag.RowsAffected()))
	e.Uvarint(uint64(len(fields)))
	if len(fields) == 0 {
		e.Uvarint(0)
		return nil
	}
	e.Uvarint(uint64(n))
	e.Raw(vals.Bytes())
	return nil
}

// failed forgets the connection's prepared statements when PostgreSQL's
// refusal says they are gone or stale: a statement of the plugin's
// (DEALLOCATE, DISCARD) dropped them, or DDL changed what one returns
// ("cached plan must not change result type"). They are prepared again
// from the next call on.
func (c *connState) failed(pgErr *pgconn.PgError) {
	if pgErr.Code == "26000" || pgErr.Code == "0A000" {
		clear(c.byText)
		c.count = 0
	}
}

// maxPrepared bounds the statements the bridge keeps prepared on one
// connection; past it, statements are parsed on every call.
const maxPrepared = 256

// connState is the bridge's state of one connection, kept in its
// CustomData: its prepared statements, the statement timeout it has, and
// buffers reused by each call on it (a connection serves one call at a
// time).
type connState struct {
	// byText holds the prepared statements by text; a text bound with
	// other parameter types is another statement.
	byText map[string][]preparedStmt
	count  int    // statements in byText
	next   uint64 // the number in the last statement's name
	// timeoutMS is the statement_timeout in milliseconds the bridge last
	// set, 0 before it has set one.
	timeoutMS int64

	values  [][]byte
	oids    []uint32
	formats []int16
	arena   []byte // the bodies of int and float parameters
	plan    []planned
	vals    abi.Encoder // one result's values
}

type preparedStmt struct {
	oids []uint32
	sd   *pgconn.StatementDescription
}

// planned is a statement of a pipeline that prepares it: the name it
// gets and its parameter types.
type planned struct {
	name string
	oids []uint32
}

const stateKey = "storagehost.bridge"

func state(pc *pgconn.PgConn) *connState {
	c, ok := pc.CustomData()[stateKey].(*connState)
	if !ok {
		c = &connState{byText: map[string][]preparedStmt{}}
		pc.CustomData()[stateKey] = c
	}
	return c
}

// lookup returns the statement prepared with text sql and parameter
// types oids, or nil.
func (c *connState) lookup(sql []byte, oids []uint32) *pgconn.StatementDescription {
	for _, p := range c.byText[string(sql)] {
		if slices.Equal(p.oids, oids) {
			return p.sd
		}
	}
	return nil
}

func (c *connState) add(sd *pgconn.StatementDescription, oids []uint32) {
	c.byText[sd.SQL] = append(c.byText[sd.SQL], preparedStmt{oids: oids, sd: sd})
	c.count++
}

// timeoutStep rounds the time left to a call down to a step of a
// geometric series (each step 1.25 times the one before), in
// milliseconds, at least 1. Calls whose deadlines are about as far share
// a step, so the bridge sets statement_timeout on a connection only when
// the step changes, not on every call (a statement of its own costs about
// as much as a small query); a statement may be stopped in the server at
// most a fifth of its time early, and the cancel request sent when the
// call's context ends stops it at the deadline itself. A plugin that sets
// statement_timeout itself changes it for its own calls only, and the
// cancel request still applies.
func timeoutStep(d time.Duration) int64 {
	ms := d.Milliseconds()
	if ms <= 1 {
		return 1
	}
	k := math.Floor(math.Log(float64(ms)) / math.Log(1.25))
	step := int64(math.Pow(1.25, k))
	for step > ms { // floating-point rounding
		step = int64(float64(step) / 1.25)
	}
	return max(step, 1)
}

func expectSync(p *pgconn.Pipeline) error {
	r, err := p.GetResults()
	if err != nil {
		return err
	}
	if _, ok := r.(*pgconn.PipelineSync); !ok {
		return fmt.Errorf("pgbridge: expected the end of a sync, got %T", r)
	}
	return nil
}

// drain reads the result of one statement and keeps none of it.
func drain(p *pgconn.Pipeline) error {
	got, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := got.(*pgconn.ResultReader)
	if !ok {
		return fmt.Errorf("pgbridge: expected a statement's result, got %T", got)
	}
	_, err = rr.Close()
	return err
}

// charge is what a value costs the response: its kind, and its body at
// most.
func charge(body int) int { return 1 + binary.MaxVarintLen64 + body }

// typeMap converts the binary values of types the ABI has no kind for
// (numeric, uuid, json …) to text.
var typeMap = pgtype.NewMap()

// pgEpochNanos is 2000-01-01 UTC, PostgreSQL's epoch, in Unix
// nanoseconds.
const pgEpochNanos = 946684800 * int64(time.Second)

// appendValue converts one binary result value and appends it to e as
// abi.PGValue.Encode does, and returns its charge. The reader reuses its
// buffer: the bytes are copied into e.
func appendValue(e *abi.Encoder, oid uint32, raw []byte) (int, error) {
	if raw == nil {
		e.U8(uint8(abi.PGNull))
		return charge(0), nil
	}
	switch oid {
	case oidInt2, oidInt4, oidInt8:
		var n int64
		switch len(raw) {
		case 2:
			n = int64(int16(binary.BigEndian.Uint16(raw)))
		case 4:
			n = int64(int32(binary.BigEndian.Uint32(raw)))
		case 8:
			n = int64(binary.BigEndian.Uint64(raw))
		default:
			return 0, fmt.Errorf("an integer of %d bytes", len(raw))
		}
		e.U8(uint8(abi.PGInt))
		e.Varint(n)
		return charge(0), nil
	case oidFloat4:
		if len(raw) != 4 {
			return 0, fmt.Errorf("a real of %d bytes", len(raw))
		}
		e.U8(uint8(abi.PGFloat))
		e.F64(float64(math.Float32frombits(binary.BigEndian.Uint32(raw))))
		return charge(0), nil
	case oidFloat8:
		if len(raw) != 8 {
			return 0, fmt.Errorf("a double of %d bytes", len(raw))
		}
		e.U8(uint8(abi.PGFloat))
		e.F64(math.Float64frombits(binary.BigEndian.Uint64(raw)))
		return charge(0), nil
	case oidBool:
		if len(raw) != 1 {
			return 0, fmt.Errorf("a boolean of %d bytes", len(raw))
		}
		e.U8(uint8(abi.PGBool))
		e.Bool(raw[0] != 0)
		return charge(0), nil
	case oidBytea:
		e.U8(uint8(abi.PGBytea))
		e.BytesField(raw)
		return charge(len(raw)), nil
	case oidText, oidVarchar, oidBPChar, oidName:
		e.U8(uint8(abi.PGText))
		e.BytesField(raw)
		return charge(len(raw)), nil
	case oidTimestamp, oidTimestamptz:
		if len(raw) != 8 {
			return 0, fmt.Errorf("a timestamp of %d bytes", len(raw))
		}
		us := int64(binary.BigEndian.Uint64(raw))
		const maxMicros = (math.MaxInt64 - pgEpochNanos) / 1000
		const minMicros = (math.MinInt64 + pgEpochNanos) / 1000
		if us > maxMicros || us < minMicros {
			return 0, errors.New("a timestamp outside the range of int64 Unix nanoseconds (infinity?)")
		}
		e.U8(uint8(abi.PGInt))
		e.Varint(us*1000 + pgEpochNanos)
		return charge(0), nil
	}
	var s string
	if err := typeMap.Scan(oid, pgx.BinaryFormatCode, raw, &s); err != nil {
		return 0, fmt.Errorf("type %d has no value kind in the ABI; cast it to text in the statement (%w)", oid, err)
	}
	e.U8(uint8(abi.PGText))
	e.String(s)
	return charge(len(s)), nil
}
