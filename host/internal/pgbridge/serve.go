package pgbridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/storage-host/storage-host/abi"
)

// Serve decodes a postgres request, runs it, and appends the whole
// response (status byte and body) to e.
func (b *Bridge) Serve(ctx context.Context, reqBytes []byte, e *abi.Encoder) {
	var req abi.PGRequest
	d := abi.NewDecoder(reqBytes)
	req.Decode(d)
	if err := d.Finish(); err != nil {
		abi.AppendError(e, abi.StatusInvalid, "postgres request: "+err.Error())
		return
	}
	b.Do(ctx, &req, e)
}

// Do runs req and appends the response to e.
func (b *Bridge) Do(ctx context.Context, req *abi.PGRequest, e *abi.Encoder) {
	if len(req.Statements) > b.maxStmts {
		abi.AppendError(e, abi.StatusLimit, fmt.Sprintf("postgres: %d statements, more than the %d of one request", len(req.Statements), b.maxStmts))
		return
	}
	if len(req.Statements) == 0 {
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
	results, sent, err := b.run(ctx, conn.Conn().PgConn(), req, timeout)
	if err != nil {
		// The connection is in an unknown state: it is not reused.
		_ = conn.Conn().PgConn().Close(context.WithoutCancel(ctx))
		st := abi.StatusUnknown
		if !sent || pgconn.SafeToRetry(err) {
			st = abi.StatusUnavailable
		}
		abi.AppendError(e, st, "postgres: "+err.Error())
		return
	}
	if results == nil {
		abi.AppendError(e, abi.StatusLimit, fmt.Sprintf("postgres: results longer than %d bytes; the statements ran, their results are dropped", b.maxBytes))
		return
	}
	e.U8(uint8(abi.StatusOK))
	abi.EncodePGResults(e, results)
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

var binaryFormat = []int16{pgx.BinaryFormatCode}

func params(vals []abi.PGValue) (values [][]byte, oids []uint32, formats []int16) {
	values = make([][]byte, len(vals))
	oids = make([]uint32, len(vals))
	formats = make([]int16, len(vals))
	for i, v := range vals {
		formats[i] = pgx.BinaryFormatCode
		switch v.Kind {
		case abi.PGNull:
			oids[i] = oidUnknown
		case abi.PGInt:
			oids[i] = oidInt8
			values[i] = binary.BigEndian.AppendUint64(nil, uint64(v.Int))
		case abi.PGFloat:
			oids[i] = oidFloat8
			values[i] = binary.BigEndian.AppendUint64(nil, math.Float64bits(v.Float))
		case abi.PGText:
			oids[i] = oidUnknown
			formats[i] = pgx.TextFormatCode
			values[i] = append([]byte{}, v.Bytes...)
		case abi.PGBytea:
			oids[i] = oidBytea
			values[i] = append([]byte{}, v.Bytes...)
		case abi.PGBool:
			oids[i] = oidBool
			if v.Bool {
				values[i] = []byte{1}
			} else {
				values[i] = []byte{0}
			}
		}
	}
	return values, oids, formats
}

// errNotRun is the result of a statement of a failed transaction that
// PostgreSQL skipped.
var errNotRun = abi.PGResult{SQLState: "25P02", Message: "not run: an earlier statement of the transaction failed"}

// run sends the statements in one pipeline: first the statement timeout,
// then, in a batch, each statement followed by a sync (its own implicit
// transaction), or, in a transaction, all of them before one sync (one
// implicit transaction, which the first error rolls back). It returns
// nil results when they passed maxBytes; sent reports whether any of the
// request may have reached the server.
func (b *Bridge) run(ctx context.Context, pc *pgconn.PgConn, req *abi.PGRequest, timeout time.Duration) (results []abi.PGResult, sent bool, err error) {
	p := pc.StartPipeline(ctx)
	defer func() {
		if cerr := p.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	ms := timeoutStep(timeout)
	setTimeout := pc.CustomData()[timeoutKey] != ms
	if setTimeout {
		p.SendQueryParams("SELECT set_config('statement_timeout', $1, false)", [][]byte{[]byte(strconv.FormatInt(ms, 10))}, []uint32{oidText}, nil, nil)
		p.SendPipelineSync()
	}
	cache := statements(pc)
	// prepared[i]: statement i is prepared in this request, and its
	// description comes before its result.
	prepared := make([]string, len(req.Statements))
	names := make([]string, len(req.Statements))
	for i := range req.Statements {
		s := &req.Statements[i]
		values, oids, formats := params(s.Params)
		key := statementKey(s.SQL, oids)
		switch sd, ok := cache.byKey[key]; {
		case ok:
			p.SendQueryStatement(sd, values, formats, binaryFormat)
		case len(cache.byKey)+countPrepared(prepared) < maxPrepared:
			cache.next++
			name := "storagehost_" + strconv.FormatUint(cache.next, 10)
			prepared[i], names[i] = key, name
			p.SendPrepare(name, s.SQL, oids)
			p.SendQueryPrepared(name, values, formats, binaryFormat)
		default:
			p.SendQueryParams(s.SQL, values, oids, formats, binaryFormat)
		}
		if req.Mode == abi.PGBatch {
			p.SendPipelineSync()
		}
	}
	if req.Mode == abi.PGTransaction {
		p.SendPipelineSync()
	}
	if err := p.Flush(); err != nil {
		return nil, false, err
	}
	sent = true
	if setTimeout {
		if _, err := b.next(p, nil); err != nil {
			return nil, sent, err
		}
		if err := expectSync(p); err != nil {
			return nil, sent, err
		}
		pc.CustomData()[timeoutKey] = ms
	}
	results = make([]abi.PGResult, len(req.Statements))
	budget := b.maxBytes
	failed := false
	for i := range req.Statements {
		if failed {
			results[i] = errNotRun
			continue
		}
		var r abi.PGResult
		var err error
		if prepared[i] != "" {
			var got any
			if got, err = p.GetResults(); err == nil {
				sd, ok := got.(*pgconn.StatementDescription)
				if !ok {
					return nil, sent, fmt.Errorf("pgbridge: expected a statement's description, got %T", got)
				}
				// pgconn leaves the name and text of a description it
				// read in a pipeline empty.
				sd.Name, sd.SQL = names[i], req.Statements[i].SQL
				cache.byKey[prepared[i]] = sd
			}
		}
		if err == nil {
			r, err = b.next(p, &budget)
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "26000" || pgErr.Code == "0A000") {
			// A statement of the plugin's (DEALLOCATE, DISCARD) dropped
			// the connection's prepared statements, or DDL changed what
			// one returns ("cached plan must not change result type"):
			// they are prepared again from the next call on.
			clear(cache.byKey)
		}
		switch {
		case errors.As(err, &pgErr):
			results[i] = abi.PGResult{SQLState: pgErr.Code, Message: pgErr.Message}
			failed = req.Mode == abi.PGTransaction
			if req.Mode == abi.PGBatch {
				// After an error the server skipped to the sync, which
				// GetResults returns next.
				if err := expectSync(p); err != nil {
					return nil, sent, err
				}
				continue
			}
		case err != nil:
			return nil, sent, err
		default:
			results[i] = r
		}
		if req.Mode == abi.PGBatch {
			if err := expectSync(p); err != nil {
				return nil, sent, err
			}
		}
	}
	if req.Mode == abi.PGTransaction {
		if err := expectSync(p); err != nil {
			return nil, sent, err
		}
	}
	if budget < 0 {
		return nil, sent, nil
	}
	return results, sent, nil
}

// maxPrepared bounds the statements the bridge keeps prepared on one
// connection; past it, statements are parsed on every call.
const maxPrepared = 256

// statementCache is a connection's prepared statements, by statementKey.
type statementCache struct {
	byKey map[string]*pgconn.StatementDescription
	next  uint64 // the number in the last statement's name
}

const cacheKey = "storagehost.statements"

func statements(pc *pgconn.PgConn) *statementCache {
	c, ok := pc.CustomData()[cacheKey].(*statementCache)
	if !ok {
		c = &statementCache{byKey: map[string]*pgconn.StatementDescription{}}
		pc.CustomData()[cacheKey] = c
	}
	return c
}

// statementKey names a statement by its text and its parameters' types:
// one text bound with other types is another prepared statement.
func statementKey(sql string, oids []uint32) string {
	b := make([]byte, 0, len(sql)+1+4*len(oids))
	b = append(b, sql...)
	b = append(b, 0)
	for _, o := range oids {
		b = binary.BigEndian.AppendUint32(b, o)
	}
	return string(b)
}

func countPrepared(keys []string) int {
	n := 0
	for _, k := range keys {
		if k != "" {
			n++
		}
	}
	return n
}

// timeoutKey holds, in a connection's CustomData, the statement_timeout
// in milliseconds the bridge last set on it.
const timeoutKey = "storagehost.statement_timeout"

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

// next reads the result of one statement. With a budget it keeps the rows,
// charging their encoded size to it; past it, it reads them to the end
// and keeps none.
func (b *Bridge) next(p *pgconn.Pipeline, budget *int64) (abi.PGResult, error) {
	got, err := p.GetResults()
	if err != nil {
		return abi.PGResult{}, err
	}
	rr, ok := got.(*pgconn.ResultReader)
	if !ok {
		return abi.PGResult{}, fmt.Errorf("pgbridge: expected a statement's result, got %T", got)
	}
	if budget == nil {
		_, err := rr.Close()
		return abi.PGResult{}, err
	}
	fields := rr.FieldDescriptions()
	res := abi.PGResult{OK: true, Columns: len(fields)}
	var convErr error
	for rr.NextRow() {
		if *budget < 0 || convErr != nil {
			continue // drained, not kept
		}
		for j, raw := range rr.Values() {
			v, err := value(fields[j].DataTypeOID, raw)
			if err != nil {
				convErr = fmt.Errorf("column %q: %w", fields[j].Name, err)
				break
			}
			*budget -= int64(size(&v))
			res.Values = append(res.Values, v)
		}
	}
	tag, err := rr.Close()
	if err != nil {
		return abi.PGResult{}, err
	}
	if convErr != nil {
		return abi.PGResult{SQLState: "0A000", Message: "pgbridge: " + convErr.Error()}, nil
	}
	res.RowsAffected = uint64(tag.RowsAffected())
	if len(fields) == 0 {
		res.Values = nil
	}
	return res, nil
}

// size is what v costs the response: its kind, and its body at most.
func size(v *abi.PGValue) int { return 1 + binary.MaxVarintLen64 + len(v.Bytes) }

// typeMap converts the binary values of types the ABI has no kind for
// (numeric, uuid, json …) to text.
var typeMap = pgtype.NewMap()

// pgEpochNanos is 2000-01-01 UTC, PostgreSQL's epoch, in Unix
// nanoseconds.
const pgEpochNanos = 946684800 * int64(time.Second)

// value converts one binary result value. The bytes are copied: the
// reader reuses its buffer.
func value(oid uint32, raw []byte) (abi.PGValue, error) {
	if raw == nil {
		return abi.PGValue{Kind: abi.PGNull}, nil
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
			return abi.PGValue{}, fmt.Errorf("an integer of %d bytes", len(raw))
		}
		return abi.PGValue{Kind: abi.PGInt, Int: n}, nil
	case oidFloat4:
		if len(raw) != 4 {
			return abi.PGValue{}, fmt.Errorf("a real of %d bytes", len(raw))
		}
		return abi.PGValue{Kind: abi.PGFloat, Float: float64(math.Float32frombits(binary.BigEndian.Uint32(raw)))}, nil
	case oidFloat8:
		if len(raw) != 8 {
			return abi.PGValue{}, fmt.Errorf("a double of %d bytes", len(raw))
		}
		return abi.PGValue{Kind: abi.PGFloat, Float: math.Float64frombits(binary.BigEndian.Uint64(raw))}, nil
	case oidBool:
		if len(raw) != 1 {
			return abi.PGValue{}, fmt.Errorf("a boolean of %d bytes", len(raw))
		}
		return abi.PGValue{Kind: abi.PGBool, Bool: raw[0] != 0}, nil
	case oidBytea:
		return abi.PGValue{Kind: abi.PGBytea, Bytes: append([]byte{}, raw...)}, nil
	case oidText, oidVarchar, oidBPChar, oidName:
		return abi.PGValue{Kind: abi.PGText, Bytes: append([]byte{}, raw...)}, nil
	case oidTimestamp, oidTimestamptz:
		if len(raw) != 8 {
			return abi.PGValue{}, fmt.Errorf("a timestamp of %d bytes", len(raw))
		}
		us := int64(binary.BigEndian.Uint64(raw))
		const maxMicros = (math.MaxInt64 - pgEpochNanos) / 1000
		const minMicros = (math.MinInt64 + pgEpochNanos) / 1000
		if us > maxMicros || us < minMicros {
			return abi.PGValue{}, errors.New("a timestamp outside the range of int64 Unix nanoseconds (infinity?)")
		}
		return abi.PGValue{Kind: abi.PGInt, Int: us*1000 + pgEpochNanos}, nil
	}
	var s string
	if err := typeMap.Scan(oid, pgx.BinaryFormatCode, raw, &s); err != nil {
		return abi.PGValue{}, fmt.Errorf("type %d has no value kind in the ABI; cast it to text in the statement (%w)", oid, err)
	}
	return abi.PGValue{Kind: abi.PGText, Bytes: []byte(s)}, nil
}
