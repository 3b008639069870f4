package pgbridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/internal/wirepath"
)

// Serve decodes a postgres request, runs it, and appends the whole
// response (status byte and body) to e. The request is read in place:
// its statements' texts and parameters alias reqBytes, which must not
// change during the call.
func (b *Bridge) Serve(ctx context.Context, reqBytes []byte, e *abi.Encoder) {
	req := requests.Get().(*request)
	defer req.release()
	if err := req.decode(reqBytes, b.maxStmts); errors.Is(err, errTooLarge) {
		abi.AppendError(e, abi.StatusLimit, "postgres: "+err.Error())
		return
	} else if err != nil {
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

// maxParams bounds the parameters of one request's statements together,
// and maxStatementParams one statement's (the protocol's own bound). A
// NULL parameter is a byte of the request and some 460 bytes of the
// host's to send (2^20 of them, 1 MB, took it 486 MB before PostgreSQL's
// driver refused them); a bulk write of a thousand records through the
// built-in plugin sends a few thousand.
const (
	maxParams          = 1 << 18
	maxStatementParams = math.MaxUint16
)

// errTooLarge is the decoding error of a request past its statement
// bound, maxParams or maxStatementParams, answered LIMIT: the counts are
// checked as they are read, before what they count is decoded (a
// statement or a parameter is a byte or two of the request, and decoded
// 2^19 empty statements, 1 MB, took the host 110 MB).
var errTooLarge = errors.New("request too large")

// decode reads what abi.PGRequest.Encode wrote, with the same checks as
// abi.PGRequest.Decode, and refuses more than maxStmts statements.
func (r *request) decode(b []byte, maxStmts int) error {
	var d abi.Decoder
	d.Reset(b)
	r.mode = abi.PGMode(d.U8())
	if d.Err() == nil && r.mode != abi.PGBatch && r.mode != abi.PGTransaction {
		return fmt.Errorf("%w: mode %d is neither batch (%d) nor transaction (%d)", abi.ErrMalformed, r.mode, abi.PGBatch, abi.PGTransaction)
	}
	n := d.Count(2)
	if n > maxStmts {
		return fmt.Errorf("%w: %d statements, more than the %d of one request", errTooLarge, n, maxStmts)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		sql := d.View()
		m := d.Count(1)
		if m > maxStatementParams {
			return fmt.Errorf("%w: statement %d has %d parameters, more than PostgreSQL's %d", errTooLarge, i, m, maxStatementParams)
		}
		if len(r.params)+m > maxParams {
			return fmt.Errorf("%w: more than %d parameters in one request", errTooLarge, maxParams)
		}
		p0 := len(r.params)
		for j := 0; j < m && d.Err() == nil; j++ {
			r.params = append(r.params, abi.PGValue{})
			r.params[len(r.params)-1].Decode(&d)
		}
		r.stmts = append(r.stmts, statement{sql: sql, p0: p0, p1: len(r.params)})
	}
	if d.Finish() != nil {
		return errors.New(wirepath.Fault("PGRequest", b, &d))
	}
	return nil
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
	for i := range req.stmts {
		if leadsWithCopy(req.stmts[i].sql) {
			abi.AppendError(e, abi.StatusInvalid, fmt.Sprintf("postgres: statement %d %s", i, errCopy))
			return
		}
	}
	if len(req.stmts) == 0 {
		e.U8(uint8(abi.StatusOK))
		abi.EncodePGResults(e, nil)
		return
	}
	timeout, ok := b.timeLeft(ctx)
	if !ok {
		abi.AppendError(e, abi.StatusUnavailable, "postgres: the call's deadline has passed")
		return
	}
	b.share(ctx, req, timeout, e)
}

// timeLeft is how long the statements of a call may run: the time to its
// deadline, or the bridge's statement timeout for a call without one;
// false once the deadline has passed.
func (b *Bridge) timeLeft(ctx context.Context) (time.Duration, bool) {
	timeout := b.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	return timeout, timeout > 0
}

// alone runs req on a connection of its own.
func (b *Bridge) alone(ctx context.Context, req *request, timeout time.Duration, e *abi.Encoder) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		abi.AppendError(e, abi.StatusUnavailable, "postgres: "+oneLine(err))
		return
	}
	// pgxpool closes, rather than reuses, a connection a plugin's own
	// BEGIN left inside a transaction.
	defer conn.Release()
	pc := conn.Conn().PgConn()
	x := part{req: req, ms: timeoutStep(timeout), e: e, start: len(e.Bytes())}
	err = b.run(ctx, pc, &x)
	clear(state(pc).values) // they alias the request
	err = afterPrepared(ctx, pc, err, &x)
	if err != nil {
		// The connection is in an unknown state: it is not reused.
		b.abandon(ctx, pc)
	} else {
		b.retire(ctx, pc)
	}
	x.answer(err, b.maxBytes)
}

// part is one request's share of a pipeline, and its answer.
type part struct {
	req *request
	ms  int64 // its statement timeout, timeoutStep of the time left to it
	e   *abi.Encoder

	start      int   // the length of e before the answer: set by who makes the part
	budget     int64 // what is left of the result bound
	plan       []planned
	setTimeout bool // statement_timeout is set before its statements
	sent       bool // its statements were written to the server
	read       bool // its results are read and encoded
	// inOpenTx: it ran inside a transaction that a statement of an
	// earlier request in the pipeline opened and did not end.
	inOpenTx bool
	// last: the last request of its pipeline, which ends with
	// resetSession; reset: those statements ran, after its last one.
	last, reset bool
	// prepared: a statement of it prepared a transaction (prepared.go).
	prepared bool
}

// answer finishes x's response: the results read, or the error that
// stopped the pipeline before they were, which is the connection's.
func (x *part) answer(err error, maxBytes int64) {
	switch {
	case x.prepared:
		x.e.Truncate(x.start)
		abi.AppendError(x.e, abi.StatusInvalid, errPrepared)
	case x.read && x.inOpenTx:
		x.e.Truncate(x.start)
		abi.AppendError(x.e, abi.StatusUnknown, "postgres: the statements ran inside a transaction that an earlier call on the connection left open; it was rolled back unless they ended it")
	case x.read && x.budget < 0:
		x.e.Truncate(x.start)
		abi.AppendError(x.e, abi.StatusLimit, fmt.Sprintf("postgres: results longer than %d bytes; the statements ran, their results are dropped", maxBytes))
	case x.read:
	default:
		if err == nil {
			err = errors.New("pgbridge: the pipeline ended before the request's results")
		}
		x.e.Truncate(x.start)
		var tooLong *pgproto3.ExceededMaxBodyLenErr
		if errors.As(err, &tooLong) {
			abi.AppendError(x.e, abi.StatusLimit, fmt.Sprintf("postgres: a row of %d bytes is longer than the results may be (%d bytes); the statements ran, and the connection reading them was closed", tooLong.ActualBodyLen, maxBytes))
			return
		}
		st := abi.StatusUnknown
		if !x.sent || pgconn.SafeToRetry(err) {
			st = abi.StatusUnavailable
		}
		abi.AppendError(x.e, st, "postgres: "+oneLine(err))
	}
}

// oneLine is err's message on one line, its runs of white space single
// spaces: pgconn puts a connection failure's details on lines of their
// own ("failed to connect to `user=… database=…`:\n\t127.0.0.1:5432 …"),
// which the host would pass on escaped, as it does every control
// character of a plugin's message.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
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
	oidNumeric     = 1700
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

// run runs the one request of x on pc and appends its results to x.e;
// x.answer then finishes the response. An error is the connection's.
func (b *Bridge) run(ctx context.Context, pc *pgconn.PgConn, x *part) error {
	one := [1]*part{x}
	return b.pipeline(ctx, pc, state(pc), one[:])
}

// begin starts x's OK response.
func (x *part) begin(maxBytes int64) {
	x.budget = maxBytes
	x.e.U8(uint8(abi.StatusOK))
	x.e.Uvarint(uint64(len(x.req.stmts)))
}

// pipeline sends the requests of parts in one pipeline, in one round
// trip, and reads their results in order. Each request is first given
// its statement timeout, when it is not the one the connection has;
// then, in a batch, each statement goes followed by a sync (its own
// implicit transaction), or, in a transaction, all of them before one
// sync (one implicit transaction, which the first error rolls back). So
// requests sharing the pipeline share no transaction, and a statement of
// one that fails does not touch another's, unless a request's own BEGIN
// leaves a transaction open: the requests after it are then answered
// UNKNOWN (part.inOpenTx), and the connection is not reused. The last
// statement is followed by resetSession (UNLISTEN *, RESET ALL...), and, when the
// server skipped it, the pipeline sends it again in a second round trip.
//
// An error is the connection's; the parts not read by then are
// unanswered.
func (b *Bridge) pipeline(ctx context.Context, pc *pgconn.PgConn, c *connState, parts []*part) (err error) {
	start := time.Now()
	// A Bind of a held statement may build as much as its Parse did: it
	// analyzes it again after DDL on what it reads, and plans it for good
	// at its sixth run (maxPreparedWork).
	held := c.count > 0
	c.full = c.sinceFull >= b.resetWork
	p := pc.StartPipeline(ctx)
	defer func() {
		if cerr := p.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	n := 0
	for _, x := range parts {
		n += len(x.req.stmts)
	}
	// plan[i]: what statement i sends; a statement prepared in this
	// pipeline has its description come before its result.
	c.plan = slices.Grow(c.plan[:0], n)[:n]
	plans := c.plan
	timeoutMS := c.timeoutMS
	fresh := 0
	for i, x := range parts {
		x.plan, plans = plans[:len(x.req.stmts):len(x.req.stmts)], plans[len(x.req.stmts):]
		x.setTimeout = timeoutMS != x.ms
		timeoutMS = x.ms
		x.last = i == len(parts)-1
		c.send(p, x, &fresh)
	}
	if err := p.Flush(); err != nil {
		return err
	}
	for _, x := range parts {
		x.sent = true
	}
	inOpenTx := false
	for _, x := range parts {
		x.inOpenTx = inOpenTx
		x.begin(b.maxBytes)
		if err := c.receive(p, x); err != nil {
			return err
		}
		x.read = true
		inOpenTx = pc.TxStatus() != 'I'
	}
	if !parts[len(parts)-1].reset {
		// The last statement failed, and the server skipped the
		// statements behind it: once more, alone.
		if err := c.resetAlone(p); err != nil {
			return err
		}
	}
	took := time.Since(start)
	if !c.full && took >= b.resetAfter {
		// A call long enough to build much in its session: the whole
		// reset now, not at a later call.
		c.full = true
		if err := c.resetAlone(p); err != nil {
			return err
		}
		took = time.Since(start)
	}
	if c.full {
		c.sinceFull = 0
	} else {
		c.sinceFull += took
	}
	c.worked += took
	if held || c.parsed {
		c.preparedWork += took
	}
	c.parsed = false
	deallocate := c.sqlPrepared || c.forgot || c.preparedWork >= b.preparedWork
	if !c.hasTemp && !deallocate || c.retiring(b) {
		return nil // closed after the call (retire)
	}
	if c.hasTemp {
		p.SendQueryParams(discardTemp, nil, nil, nil, nil)
	}
	if deallocate {
		p.SendQueryParams(deallocateAll, nil, nil, nil, nil)
	}
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		return err
	}
	if c.hasTemp {
		if err := readResult(p, discardTemp, nil); err != nil {
			return err
		}
		c.hasTemp = false
	}
	if deallocate {
		if err := readResult(p, deallocateAll, nil); err != nil {
			return err
		}
		c.sqlPrepared, c.forgot = false, false
		c.forgetPrepared()
	}
	return expectSync(p)
}

// discardTemp drops the session's temporary objects, when the session
// reset finds some a plugin made, and deallocateAll its prepared
// statements, when it finds some the plugin made with SQL, when the bridge
// forgot its own (failed) or when the connection worked maxPreparedWork
// while it held them (see resetSession).
const (
	discardTemp   = "DISCARD TEMP"
	deallocateAll = "DEALLOCATE ALL"
)

// maxSessionWork bounds the time a session's calls may run, together,
// before it is closed after its call and the pool opens another: what
// PostgreSQL keeps in a session's memory, no reset frees, and what a
// session can build grows with the time its statements run. Outside
// checks: a plugin looked up 3.2 million names that do not exist and one
// idle server process kept 1.55 GB of negative catalog entries (about 60
// MB a second of statement time); another set custom settings of new
// names, whose names RESET ALL and DISCARD ALL keep (about 120 MB a
// second); PL/pgSQL function caches grow the same way. One second of
// work is a new session every 1 000 calls of a millisecond, and bounds
// such memory to what a second builds, per pooled connection.
const maxSessionWork = time.Second

// retiring reports whether c's session is to be closed after its call:
// its calls ran maxSessionWork.
func (c *connState) retiring(b *Bridge) bool { return c.worked >= b.sessionWork }

// retire closes pc, which its caller then releases to the pool, which
// drops it, when its session is retiring.
func (b *Bridge) retire(ctx context.Context, pc *pgconn.PgConn) {
	if !state(pc).retiring(b) {
		return
	}
	closing, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = pc.Close(closing)
}

// readResult reads the result of the bridge's own statement q, passing
// its rows to row when not nil.
func readResult(p *pgconn.Pipeline, q string, row func(values [][]byte)) error {
	got, err := p.GetResults()
	if err != nil {
		return fmt.Errorf("pgbridge: %s: %w", q, err)
	}
	rr, ok := got.(*pgconn.ResultReader)
	if !ok {
		return fmt.Errorf("pgbridge: expected the result of %s, got %T", q, got)
	}
	for row != nil && rr.NextRow() {
		row(rr.Values())
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("pgbridge: %s: %w", q, err)
	}
	return nil
}

// resetAlone sends the reset statements of c.full in a round trip of
// their own, and reads them.
func (c *connState) resetAlone(p *pgconn.Pipeline) error {
	c.sendReset(p, c.timeoutMS)
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		return err
	}
	if err := c.receiveReset(p); err != nil {
		return err
	}
	return expectSync(p)
}

// resetSession ends the pipelines the bridge sends, so that what a
// plugin's statements leave in the session does not outlive its call, or
// not for long:
//
//   - a LISTEN (however hidden: PL/pgSQL's EXECUTE, a function, a DO
//     block that commits and then fails), ended by the UNLISTEN * that
//     ends every pipeline. Nobody reads a pooled connection's
//     notifications while it idles, so a listener left there would hold
//     PostgreSQL's notification queue, which is the whole server's, at
//     its position: the queue would fill (8 GB) with what any session
//     notified since, and from then on every NOTIFY of every database
//     would fail (RATIONALE.md, "Why does every call end with UNLISTEN
//     *?");
//   - memory the session holds (settings: set_config of 100 MB values took
//     one server process to 1.37 GB, kept while the connection idled;
//     cursors WITH HOLD; temporary tables, and their local buffers,
//     which only closing the session frees (pinTempBuffers, retire), and
//     the other objects of the temporary schema;
//     prepared statements of the plugin's SQL PREPAREs, with the bridge's
//     own, which it prepares again as it needs them), session advisory
//     locks, and a
//     statement_timeout of the plugin's: the rest of resetSession, which
//     costs the server more than a keyed read's whole call. What a
//     session can build grows with the time its statements run, so the
//     rest is sent by work, not by count: it ends the first pipeline
//     after the connection's pipelines since the last full reset ran
//     fullResetWork together, and, at once, in a round trip of its own,
//     any pipeline that took fullResetAfter or more. A connection then
//     holds what one slow call built until that call ends, and what
//     quick ones built in under fullResetWork + fullResetAfter of work
//     (one in 16 calls, whatever their time, let 15 of up to 2 ms build,
//     and keyed reads of 60 µs paid for a reset every 16: BENCHMARKS.md,
//     "The session reset by work"). The statement_timeout
//     RESET ALL returns to the login's is set again to the one the
//     bridge last gave the connection (connState.timeoutMS).
//
// They go after the last statement, before its sync, in its implicit
// transaction: a sync of their own would cost the server another flush
// and the host another read (BENCHMARKS.md). When that statement fails,
// the server skips them, and the pipeline sends them again alone. They
// are parsed on every call, as the unnamed statement: a prepared one, a
// plugin could deallocate or replace. Temporary objects and prepared
// statements are dropped after them, in a round trip of their own, only
// when the last one finds the session has some of the plugin's (objects
// by their dependency on the temporary schema, an index lookup in
// pg_depend: a scan of pg_class by namespace cost a reset 50 to 100 µs in
// a small database, and missed functions and types): DISCARD
// TEMP costs as much as the rest of a keyed read's call, and a DEALLOCATE
// ALL after every call of 2 ms or more had the bridge parse its own
// statements again at each (a batch of 100 puts, one Parse each, ran at a
// fifth of its speed). The bridge's own statements are bounded in count
// and text (maxPrepared) and, since what the server holds for one is not
// its text but its parsed query (a short text naming a large view many
// times: an outside check's plugin held 800 MB in an idle server process
// with 162 statements of 150 bytes), by the time the connection worked
// while it held them: maxPreparedWork.
var resetSession = [...]string{
	"UNLISTEN *",
	"RESET ALL",
	"CLOSE ALL",
	"SELECT pg_catalog.pg_advisory_unlock_all(), pg_catalog.set_config('statement_timeout', $1, false), EXISTS (SELECT FROM pg_catalog.pg_depend WHERE refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass AND refobjid OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()), EXISTS (SELECT FROM pg_catalog.pg_prepared_statements WHERE from_sql)",
}

// fullResetWork and fullResetAfter say when a pipeline ends with all of
// resetSession (see there): the first after the connection's pipelines
// since the last full reset ran fullResetWork together, and, at once,
// one that took fullResetAfter alone. Between two, a session's quick
// calls ran under 10 ms, a third of what 15 quick calls could, and a
// call of less than half a millisecond is reset less often than one in
// 16 (a keyed read, one in 130 or so; a put that waits for its commit's
// flush, one in 20).
const (
	fullResetWork  = 8 * time.Millisecond
	fullResetAfter = 2 * time.Millisecond
)

// sendReset queues the reset statements: UNLISTEN alone, or, when c.full,
// all of resetSession, the statement timeout the connection is to keep ms.
func (c *connState) sendReset(p *pgconn.Pipeline, ms int64) {
	if !c.full {
		p.SendQueryParams(resetSession[0], nil, nil, nil, nil)
		return
	}
	last := len(resetSession) - 1
	for _, q := range resetSession[:last] {
		p.SendQueryParams(q, nil, nil, nil, nil)
	}
	p.SendQueryParams(resetSession[last], [][]byte{strconv.AppendInt(nil, ms, 10)}, []uint32{oidText}, nil, nil)
}

// receiveReset reads the results of resetSession. Any error is the
// connection's, which may still listen or hold what the plugin left, and
// is closed; PostgreSQL's refusal (a statement timeout the plugin set,
// the call's cancel request) also rolled back the statements of its
// implicit transaction, whose results said they succeeded: the call is
// answered UNKNOWN.
func (c *connState) receiveReset(p *pgconn.Pipeline) error {
	sent := resetSession[:1]
	if c.full {
		sent = resetSession[:]
	}
	if c.readLast == nil {
		// Made once per connection: a closure made at each reset would
		// be an allocation of every full reset.
		c.readLast = func(v [][]byte) {
			whole := len(v) == 4
			c.hasTemp = whole && string(v[2]) == "t"
			c.sqlPrepared = whole && string(v[3]) == "t"
		}
	}
	for i, q := range sent {
		var row func([][]byte)
		if i == len(resetSession)-1 {
			row = c.readLast
		}
		if err := readResult(p, q, row); err != nil {
			return err
		}
	}
	return nil
}

// send queues the statements of x in p.
func (c *connState) send(p *pgconn.Pipeline, x *part, fresh *int) {
	if x.setTimeout {
		p.SendQueryParams("SELECT pg_catalog.set_config('statement_timeout', $1, false)", [][]byte{strconv.AppendInt(nil, x.ms, 10)}, []uint32{oidText}, nil, nil)
		p.SendPipelineSync()
	}
	req := x.req
	clear(c.pending)
	for i := range req.stmts {
		s := &req.stmts[i]
		c.params(req.params[s.p0:s.p1])
		pl := &x.plan[i]
		*pl = planned{}
		sd, earlier := c.lookup(s.sql, c.oids), ""
		if sd == nil && req.mode == abi.PGTransaction {
			earlier = c.preparing(x, s.sql)
		}
		switch {
		case sd != nil && (i == 0 || req.mode == abi.PGBatch || x.last):
			p.SendQueryStatement(sd, c.values, c.formats, binaryFormat)
		case earlier != "":
			// Prepared by an earlier statement of this transaction, whose
			// description is read only with its result: one Parse for
			// the transaction's statements of one text, not one each (a
			// batch of 100 puts after a reset that deallocated them). It
			// is exact in a transaction: if that Parse failed, or was
			// skipped, so is every statement after it.
			p.SendQueryPrepared(earlier, c.values, c.formats, binaryFormat)
		case sd != nil:
			// pgconn keeps the description of each statement sent by its
			// description, to read its result with, and does not drop
			// the description of one the server skips (an earlier
			// statement of its transaction failed): the next request's
			// statement sent so would be read with it, wrong types and
			// all. One that may be skipped, with requests after it in
			// the pipeline, has the server describe its result instead.
			p.SendQueryPrepared(sd.Name, c.values, c.formats, binaryFormat)
		case c.count+*fresh < maxPrepared && len(s.sql) <= maxPreparedText && c.textBytes+len(s.sql) <= maxPreparedBytes:
			*fresh++
			c.textBytes += len(s.sql)
			c.next++
			pl.name = "storagehost_" + strconv.FormatUint(c.next, 10)
			pl.oids = slices.Clone(c.oids)
			if req.mode == abi.PGTransaction {
				if c.pending == nil {
					c.pending = map[string][]int{}
				}
				c.pending[string(s.sql)] = append(c.pending[string(s.sql)], i)
			}
			p.SendPrepare(pl.name, string(s.sql), c.oids)
			p.SendQueryPrepared(pl.name, c.values, c.formats, binaryFormat)
		default:
			p.SendQueryParams(string(s.sql), c.values, c.oids, c.formats, binaryFormat)
		}
		if req.mode == abi.PGBatch {
			if x.last && i == len(req.stmts)-1 {
				c.sendReset(p, x.ms)
			}
			p.SendPipelineSync()
		}
	}
	if req.mode == abi.PGTransaction {
		if x.last {
			c.sendReset(p, x.ms)
		}
		p.SendPipelineSync()
	}
}

// receive reads the results of x's statements from p and encodes them in
// x.e, charging x.budget.
func (c *connState) receive(p *pgconn.Pipeline, x *part) error {
	if x.setTimeout {
		if err := drain(p); err != nil {
			return err
		}
		if err := expectSync(p); err != nil {
			return err
		}
		c.timeoutMS = x.ms
	}
	req, e, budget := x.req, x.e, &x.budget
	// failed: a statement of the implicit transaction failed, and the
	// server skips what follows it to the sync.
	failed := false
	for i := range req.stmts {
		if failed {
			if x.plan[i].name != "" {
				c.unprepared(req.stmts[i].sql) // skipped: nothing prepared
			}
			if *budget >= 0 {
				errNotRun.Encode(e)
			}
			continue
		}
		var err error
		if pl := &x.plan[i]; pl.name != "" {
			var got any
			if got, err = p.GetResults(); err == nil {
				sd, ok := got.(*pgconn.StatementDescription)
				if !ok {
					return fmt.Errorf("pgbridge: expected a statement's description, got %T", got)
				}
				// pgconn leaves the name and text of a description it
				// read in a pipeline empty.
				sd.Name, sd.SQL = pl.name, string(req.stmts[i].sql)
				c.add(sd, pl.oids)
				c.parsed = true
			} else {
				c.unprepared(req.stmts[i].sql) // the Parse failed
			}
		}
		if err == nil {
			var got any
			if got, err = p.GetResults(); err == nil {
				rr, ok := got.(*pgconn.ResultReader)
				if !ok {
					return fmt.Errorf("pgbridge: expected a statement's result, got %T", got)
				}
				err = c.result(rr, budget, e)
			}
		}
		if err != nil {
			var pgErr *pgconn.PgError // declared here: it escapes
			switch {
			case errors.As(err, &pgErr):
				// Only a description's error gets here; a result's is
				// encoded by result.
				c.failed(pgErr)
				if *budget >= 0 {
					(&abi.PGResult{SQLState: pgErr.Code, Message: pgErr.Message}).Encode(e)
				}
				failed = true
			case errors.Is(err, errStatementFailed):
				failed = true
			default:
				return err
			}
		}
		if x.last && i == len(req.stmts)-1 && !failed {
			if err := c.receiveReset(p); err != nil {
				return err
			}
			x.reset = true
		}
		if req.mode == abi.PGBatch {
			failed = false
			// After an error the server skipped to the sync, which
			// GetResults returns next.
			if err := expectSync(p); err != nil {
				return err
			}
		}
	}
	if req.mode == abi.PGTransaction {
		if err := expectSync(p); err != nil {
			return err
		}
	}
	x.prepared, c.prepared = c.prepared, false
	return nil
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
	var convErr, shapeErr error
	for rr.NextRow() {
		if *budget < 0 || convErr != nil || shapeErr != nil {
			continue // drained, not kept
		}
		row := rr.Values()
		if len(row) != len(fields) {
			// The description is the one the bridge read when it
			// prepared the statement; the row is what the server runs
			// under that name now. The plugin's own SQL may have
			// replaced the statement (DEALLOCATE and PREPARE, hidden in
			// PL/pgSQL), so nothing of this connection's prepared
			// statements is to be trusted any more.
			shapeErr = fmt.Errorf("pgbridge: a row of %d values for a statement described with %d columns: the connection's prepared statement was replaced; the connection is closed", len(row), len(fields))
			continue
		}
		for j, raw := range row {
			if int64(len(raw)) > *budget {
				*budget = -1 // not copied: one value past the bound
				break
			}
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
	if tag.String() == tagPrepared {
		c.prepared = true
	}
	if err != nil {
		var pgErr *pgconn.PgError // declared here: it escapes
		if errors.As(err, &pgErr) {
			c.failed(pgErr)
			if *budget >= 0 {
				(&abi.PGResult{SQLState: pgErr.Code, Message: pgErr.Message}).Encode(e)
			}
			return errStatementFailed
		}
		return err
	}
	if shapeErr != nil {
		return shapeErr // the connection's: it is not reused
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
		c.forgetPrepared()
		c.forgot = true // the server may still hold the others
	}
}

// forgetPrepared empties the connection's record of its prepared
// statements, which the server has dropped or is to drop.
func (c *connState) forgetPrepared() {
	clear(c.byText)
	c.count, c.textBytes, c.preparedWork = 0, 0, 0
}

// unprepared gives back the text budget of a statement the pipeline sent
// to be prepared whose Parse failed or was skipped.
func (c *connState) unprepared(sql []byte) {
	c.textBytes = max(c.textBytes-len(sql), 0) // forgetPrepared may have run since
}

// maxPrepared, maxPreparedText and maxPreparedBytes bound the statements
// the bridge keeps prepared on one connection: their count, the text of
// one, and the texts of all. The server keeps a plan of each, the bridge
// its text: 256 statements of a megabyte held a gigabyte in a server
// process, and a third of it in the host. A statement past them is
// parsed on every call.
const (
	maxPrepared      = 256
	maxPreparedText  = 8 << 10
	maxPreparedBytes = 1 << 20
)

// maxPreparedWork bounds the time a connection works (its pipelines, each
// counted whole) while the bridge holds prepared statements on it, or
// prepares some, before the bridge deallocates them all and prepares its
// own again as it needs them. What the server holds for a statement is
// its parsed query, not its text, and a Parse builds it, and so does a
// Bind, which analyzes the statement again after DDL on what it reads and
// plans it for good at its sixth run: outside checks held 800 MB in an
// idle server process with 162 statements of 150 bytes (a view named
// eight times, their Binds failing), and 490 MB with 100 statements
// prepared on a small view the plugin then replaced with a large one.
// How much a statement holds grows with the time spent building it, and
// a Parse's or a Bind's own time is not seen apart from the pipeline's.
// A steady workload prepares its texts again once every 100 ms of work,
// once each (a transaction's statements of one text share one Parse).
const maxPreparedWork = 100 * time.Millisecond

// connState is the bridge's state of one connection, kept in its
// CustomData: its prepared statements, the statement timeout it has, and
// buffers reused by each call on it (a connection serves one call at a
// time).
type connState struct {
	// byText holds the prepared statements by text; a text bound with
	// other parameter types is another statement.
	byText    map[string][]preparedStmt
	count     int    // statements in byText
	textBytes int    // their texts' bytes, and those being prepared
	next      uint64 // the number in the last statement's name
	// timeoutMS is the statement_timeout in milliseconds the bridge last
	// set, 0 before it has set one.
	timeoutMS int64
	// prepared: a statement since the bridge last looked prepared a
	// transaction (prepared.go).
	prepared bool
	// hasTemp: the session's temporary schema holds objects (tables,
	// sequences, views, functions); sqlPrepared: statements prepared with
	// SQL PREPARE (resetSession).
	hasTemp, sqlPrepared bool
	// forgot: the bridge forgot its prepared statements, which the server
	// may still hold (failed).
	forgot bool
	// parsed: a Parse of the pipeline being read succeeded.
	parsed bool
	// preparedWork is the time of the pipelines run while the bridge held
	// prepared statements, or prepared some, since the last deallocation
	// (maxPreparedWork).
	preparedWork time.Duration
	// worked is the time the session's calls ran (maxSessionWork).
	worked time.Duration
	// readLast reads the row of resetSession's last statement
	// (receiveReset).
	readLast func([][]byte)
	// full: the pipeline being sent ends with all of resetSession, not
	// its UNLISTEN alone; sinceFull: the time of the pipelines since the
	// last that did (fullResetWork).
	full      bool
	sinceFull time.Duration

	values  [][]byte
	oids    []uint32
	formats []int16
	arena   []byte // the bodies of int and float parameters
	plan    []planned
	// pending maps the texts the statements of the transaction being
	// sent prepare to those statements, one for each set of parameter
	// types (preparing); not the pipeline's count of Parses, fresh.
	pending map[string][]int
	vals    abi.Encoder // one result's values
}

// preparing returns the name of the statement of text sql, with the
// parameter types of c.oids, that a statement of x sent before prepares
// in this pipeline, or "".
func (c *connState) preparing(x *part, sql []byte) string {
	for _, j := range c.pending[string(sql)] {
		if slices.Equal(x.plan[j].oids, c.oids) {
			return x.plan[j].name
		}
	}
	return ""
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

// maxNumericText bounds the text of a numeric result the host writes
// itself. Converting one costs the host time and memory far past its size
// on the wire (pgtype builds a big.Int of its digits and formats it): the
// 64 KiB value of 131 072 nines took 95 ms and 40 MB, and the ten bytes of
// 1e131071 10 ms, none of it within the call's fuel. A plugin that needs
// larger numerics casts them to text, and the server converts them.
const maxNumericText = 1024

// numericTextLen bounds from above the length of the text of raw, a
// numeric in PostgreSQL's binary form (ndigits, weight, sign and dscale,
// each 16 bits, then the base-10 000 digits, as many as the value needs):
// its sign and point, four characters for each digit before the point (one
// at least) and dscale after it. Raw too short for the header is 0: the
// conversion fails on it.
func numericTextLen(raw []byte) int {
	if len(raw) < 8 {
		return 0
	}
	weight := int(int16(binary.BigEndian.Uint16(raw[2:])))
	dscale := int(binary.BigEndian.Uint16(raw[6:]))
	return 2 + 4*max(weight+1, 1) + dscale
}

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
	if oid == oidNumeric {
		if n := numericTextLen(raw); n > maxNumericText {
			return 0, fmt.Errorf("a numeric of %d characters, more than the %d the host writes as text; cast it to text in the statement", n, maxNumericText)
		}
	}
	var s string
	if err := typeMap.Scan(oid, pgx.BinaryFormatCode, raw, &s); err != nil {
		return 0, fmt.Errorf("type %d has no value kind in the ABI; cast it to text in the statement (%w)", oid, err)
	}
	e.U8(uint8(abi.PGText))
	e.String(s)
	return charge(len(s)), nil
}
