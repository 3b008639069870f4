package abi

import (
	"slices"
	"strings"
	"time"
)

// CapabilityPostgres is the "storagehost_postgres" module (ABI 1.5): SQL
// statements run on the backend's PostgreSQL through the host's
// connection pool, as the backend's own role, in the backend's own schema.
//
//	call(req_ptr i32, req_len i32, out_ptr i32, out_cap i32) -> i32
//	result(out_ptr i32, out_cap i32) -> i32
//
// with the same output protocol as storagehost_kv. The request is a
// PGRequest; the response is a status byte and, for StatusOK, one
// PGResult per statement. A statement PostgreSQL refuses is a PGResult
// carrying its SQLSTATE inside an OK response; the status is not OK only
// when the request is refused (StatusInvalid, StatusLimit) or PostgreSQL
// cannot be reached (StatusUnavailable) or the outcome of a write was lost
// (StatusUnknown).
const CapabilityPostgres Capability = "postgres"

// Function names of the postgres capability module.
const (
	FuncPostgresCall   = "call"
	FuncPostgresResult = "result"
)

// ExportMigrations is the optional export "storage_migrations() -> i64"
// (ABI 1.5): a packed region holding the encoded Migrations of a plugin
// that declares CapabilityPostgres. The host calls it once at load, before
// storage_configure, and applies the migrations the backend's schema does
// not have yet. A plugin without it has no migrations.
const ExportMigrations = "storage_migrations"

// PGEventsTable is the event log the host keeps in a postgres backend's
// schema. A backend that advertises FeatureWriteEvents (ABI 1.6) inserts
// the event of each record write it serves into it, in the statement or
// transaction of the write, and only while the session setting
// PGEventsSetting is "on":
//
//	INSERT INTO storagehost_events (kind, op, agent, key, version, at)
//	SELECT … WHERE current_setting('storagehost.events', true) = 'on'
//
// kind is the RecordKind's Name; op "put" (restores too), "delete" or
// "status"; agent the record's agent; key the agent ID of an agent state,
// the ID of an alert, or MetricEventKey of a metric; version the agent
// state's new version, the alert's updated_at in Unix nanoseconds, 0 for a
// metric and for any delete; at the host time of the request in Unix
// nanoseconds. A delete writes one only when it removed a live record.
// The host fills the table's other columns (abi/README.md, section 16.6).
const PGEventsTable = "storagehost_events"

// PGEventsSetting is the PostgreSQL session setting that is "on" on every
// connection of a backend whose events are enabled (ABI 1.6).
const PGEventsSetting = "storagehost.events"

// MetricEventKey is the key of a metric's events: its name, "@" and its
// timestamp in RFC 3339 with nanoseconds, in UTC.
func MetricEventKey(name string, ts time.Time) string {
	return name + "@" + ts.UTC().Format(time.RFC3339Nano)
}

// PGMode says how the statements of a PGRequest run.
type PGMode uint8

// PostgreSQL request modes.
const (
	// PGBatch sends the statements in one round trip; each runs on its own
	// (its own implicit transaction), and one that fails does not stop the
	// ones after it.
	PGBatch PGMode = 1
	// PGTransaction runs the statements in one transaction, begun and
	// ended within the call, in one round trip: the first that fails rolls
	// the whole transaction back, and the statements after it are not run.
	PGTransaction PGMode = 2
)

// PGKind is the type of a PGValue.
type PGKind uint8

// Value kinds. A timestamp travels as an int64 of Unix nanoseconds
// (PGInt), in parameters and in results.
const (
	PGNull  PGKind = 0 // SQL NULL; no body
	PGInt   PGKind = 1 // varint: smallint, integer, bigint, and timestamps as Unix ns
	PGFloat PGKind = 2 // f64: real, double precision
	PGText  PGKind = 3 // bytes: text, varchar, and numeric, uuid, json as text
	PGBytea PGKind = 4 // bytes: bytea
	PGBool  PGKind = 5 // bool
)

// PGValue is one parameter or one result value: kind u8, then for int a
// varint, for float an f64, for text and bytea bytes, for bool a bool;
// null has no body.
type PGValue struct {
	Kind  PGKind
	Int   int64
	Float float64
	Bytes []byte // text and bytea
	Bool  bool
}

// Encode appends v.
func (v *PGValue) Encode(e *Encoder) {
	e.U8(uint8(v.Kind))
	switch v.Kind {
	case PGInt:
		e.Varint(v.Int)
	case PGFloat:
		e.F64(v.Float)
	case PGText, PGBytea:
		e.BytesField(v.Bytes)
	case PGBool:
		e.Bool(v.Bool)
	}
}

// Decode reads what Encode wrote. Text and bytea alias the decoder's
// input; an empty one is a non-nil empty slice, distinct from null.
func (v *PGValue) Decode(d *Decoder) {
	*v = PGValue{Kind: PGKind(d.U8())}
	switch v.Kind {
	case PGNull:
	case PGInt:
		v.Int = d.Varint()
	case PGFloat:
		v.Float = d.F64()
	case PGText, PGBytea:
		v.Bytes = d.View()
		if v.Bytes == nil {
			v.Bytes = []byte{}
		}
	case PGBool:
		v.Bool = d.Bool()
	default:
		d.fail(ErrMalformed)
	}
}

// PGStatement is one SQL statement and its parameters ($1, $2, …): sql
// string, then count and each PGValue.
type PGStatement struct {
	SQL    string
	Params []PGValue
}

// PGRequest is the request of storagehost_postgres.call: mode u8, count,
// then each PGStatement.
type PGRequest struct {
	Mode       PGMode
	Statements []PGStatement
}

// Encode appends r.
func (r *PGRequest) Encode(e *Encoder) {
	e.U8(uint8(r.Mode))
	e.Uvarint(uint64(len(r.Statements)))
	for i := range r.Statements {
		s := &r.Statements[i]
		e.String(s.SQL)
		e.Uvarint(uint64(len(s.Params)))
		for j := range s.Params {
			s.Params[j].Encode(e)
		}
	}
}

// Decode reads what Encode wrote. Parameters alias the decoder's input.
func (r *PGRequest) Decode(d *Decoder) {
	*r = PGRequest{Mode: PGMode(d.U8())}
	if r.Mode != PGBatch && r.Mode != PGTransaction {
		d.fail(ErrMalformed)
		return
	}
	n := d.Count(2)
	r.Statements = prealloc[PGStatement](n)
	for i := 0; i < n && d.err == nil; i++ {
		s := PGStatement{SQL: d.String()}
		m := d.Count(1)
		s.Params = prealloc[PGValue](m)
		for j := 0; j < m && d.err == nil; j++ {
			var v PGValue
			v.Decode(d)
			s.Params = append(s.Params, v)
		}
		r.Statements = append(r.Statements, s)
	}
}

// MaxPGColumns bounds the columns of a PGResult: PostgreSQL's own limit
// on the columns of a result.
const MaxPGColumns = 1664

// PGResult is the outcome of one statement: ok u8 (1 or 0); when 1
// rows affected uvarint, columns uvarint, then count and each PGValue,
// row after row (count is rows × columns); when 0 the SQLSTATE and
// message strings.
type PGResult struct {
	OK bool
	// RowsAffected is the command tag's count (rows inserted, updated,
	// deleted, or returned by a SELECT).
	RowsAffected uint64
	Columns      int
	// Values holds the rows one after another: row i is
	// Values[i*Columns : (i+1)*Columns].
	Values   []PGValue
	SQLState string // when not OK: the five-character SQLSTATE, as 23505
	Message  string // when not OK
}

// Rows returns the number of rows r holds.
func (r *PGResult) Rows() int {
	if r.Columns == 0 {
		return 0
	}
	return len(r.Values) / r.Columns
}

// Row returns row i of r.
func (r *PGResult) Row(i int) []PGValue { return r.Values[i*r.Columns : (i+1)*r.Columns] }

// Err returns the error of a failed statement as a *PGError, or nil.
func (r *PGResult) Err() error {
	if r.OK {
		return nil
	}
	return &PGError{SQLState: r.SQLState, Message: r.Message}
}

// PGError is a statement PostgreSQL refused.
type PGError struct {
	SQLState string
	Message  string
}

func (e *PGError) Error() string { return "postgres: " + e.SQLState + ": " + e.Message }

// Encode appends r. A result with values has Columns > 0 and
// len(Values) a multiple of it.
func (r *PGResult) Encode(e *Encoder) {
	e.Bool(r.OK)
	if !r.OK {
		e.String(r.SQLState)
		e.String(r.Message)
		return
	}
	e.Uvarint(r.RowsAffected)
	e.Uvarint(uint64(r.Columns))
	e.Uvarint(uint64(len(r.Values)))
	for i := range r.Values {
		r.Values[i].Encode(e)
	}
}

// Decode reads what Encode wrote. Values alias the decoder's input. A
// count of values that is not a multiple of the columns is malformed.
func (r *PGResult) Decode(d *Decoder) { r.decode(d, nil) }

// decode is Decode with the values appended to vs, which it returns;
// r.Values is the part of the returned slice they take, its capacity cut
// to its length. With vs nil, r.Values is a slice of its own.
func (r *PGResult) decode(d *Decoder, vs []PGValue) []PGValue {
	*r = PGResult{OK: d.Bool()}
	if !r.OK {
		r.SQLState = d.String()
		r.Message = d.String()
		return vs
	}
	r.RowsAffected = d.Uvarint()
	c := d.Uvarint()
	if d.err != nil {
		return vs
	}
	if c > MaxPGColumns {
		d.fail(ErrMalformed)
		return vs
	}
	r.Columns = int(c)
	n := d.Count(1)
	if d.err != nil {
		return vs
	}
	if (r.Columns == 0 && n != 0) || (r.Columns != 0 && n%r.Columns != 0) {
		d.fail(ErrMalformed)
		return vs
	}
	if vs == nil {
		vs = prealloc[PGValue](n)
	} else if cap(vs)-len(vs) < n {
		vs = slices.Grow(vs, min(n, maxKeptPGValues))
	}
	start := len(vs)
	for i := 0; i < n && d.err == nil; i++ {
		vs = append(vs, PGValue{})
		vs[start+i].Decode(d)
	}
	r.Values = vs[start:len(vs):len(vs)]
	return vs
}

// EncodePGResults appends a postgres call's OK body: count, then each
// result.
func EncodePGResults(e *Encoder, rs []PGResult) {
	e.Uvarint(uint64(len(rs)))
	for i := range rs {
		rs[i].Encode(e)
	}
}

// DecodePGResults reads what EncodePGResults wrote.
func DecodePGResults(d *Decoder) []PGResult {
	n := d.Count(1)
	rs := prealloc[PGResult](n)
	for i := 0; i < n && d.err == nil; i++ {
		var r PGResult
		r.Decode(d)
		rs = append(rs, r)
	}
	return rs
}

// PGResultsBuffer decodes postgres call responses into storage it keeps
// from one response to the next, so that a client decoding many small
// responses allocates nothing for their results and values. The zero
// PGResultsBuffer is ready to use; it is not safe for concurrent use.
//
// Storage past 1024 results or 8192 values is not kept for the next
// response: a large one (a page of a thousand rows) is decoded into
// storage of its own, which is garbage once the next response's results
// replace it, rather than held for as long as the buffer lives.
type PGResultsBuffer struct {
	results []PGResult
	values  []PGValue
}

// Bounds on the storage a PGResultsBuffer keeps from one response to the
// next: 80 KiB of results and 448 KiB of values as the sizes of the
// types go on a 64-bit platform (wasm included).
const (
	maxKeptPGResults = 1024
	maxKeptPGValues  = 8192
)

// Decode reads what EncodePGResults wrote, as DecodePGResults does, into
// b's storage. The results and their values are valid until the next
// Decode of b, which overwrites them: copy what is kept longer. Text and
// bytea values alias d's input, as with DecodePGResults.
func (b *PGResultsBuffer) Decode(d *Decoder) []PGResult {
	// Storage past the bounds is dropped. Of what is kept, the entries
	// this response does not overwrite are cleared after it is decoded,
	// so that nothing of an earlier response (the input its values
	// alias) stays reachable from them.
	rs, vs := b.results, b.values
	keptR, keptV := len(rs), len(vs)
	if cap(rs) > maxKeptPGResults {
		rs, keptR = nil, 0
	}
	if cap(vs) > maxKeptPGValues || vs == nil {
		vs, keptV = []PGValue{}, 0 // not nil: decode appends to it
	}
	rs, vs = rs[:0], vs[:0]
	n := d.Count(1)
	if cap(rs) < n {
		rs = slices.Grow(rs, min(n, maxKeptPGResults))
	}
	for i := 0; i < n && d.err == nil; i++ {
		rs = append(rs, PGResult{})
		vs = rs[i].decode(d, vs)
	}
	if len(rs) < keptR {
		clear(rs[len(rs):keptR])
	}
	if len(vs) < keptV {
		clear(vs[len(vs):keptV])
	}
	b.results, b.values = rs, vs
	return rs
}

// Migration is one step of a plugin's schema: version uvarint (from 1,
// each one more than the one before), then the DDL as a string, which may
// hold several statements.
type Migration struct {
	Version uint64
	SQL     string
}

// Migrations is what storage_migrations returns: count, then each
// Migration, in version order.
type Migrations []Migration

// Bounds on what storage_migrations returns: at most MaxMigrations
// migrations, in at most MaxMigrationsBytes bytes. A list past either is
// refused before any of it is decoded (a region of 60 MB of empty
// migrations decoded to 1.2 GB of the host's memory). No schema comes
// near them: a migration is a release's change to it.
const (
	MaxMigrations      = 4096
	MaxMigrationsBytes = 4 << 20
)

// Encode appends m.
func (m Migrations) Encode(e *Encoder) {
	e.Uvarint(uint64(len(m)))
	for _, s := range m {
		e.Uvarint(s.Version)
		e.String(s.SQL)
	}
}

// Decode reads what Encode wrote; a list of more than MaxMigrations is
// malformed.
func (m *Migrations) Decode(d *Decoder) {
	n := d.countAtMost(2, MaxMigrations)
	*m = prealloc[Migration](n)
	for i := 0; i < n && d.err == nil; i++ {
		v := d.Uvarint()
		*m = append(*m, Migration{Version: v, SQL: d.String()})
	}
}

// PGReservedPrefix starts the names of the objects the host keeps in a
// backend's schema (its migrations table, its event log): a migration
// that names one is refused.
const PGReservedPrefix = "storagehost_"

// Check reports whether the versions of m run 1, 2, 3 … with no gap, and
// whether any migration names an object of the host's (PGReservedPrefix).
func (m Migrations) Check() error {
	for i, s := range m {
		if s.Version != uint64(i)+1 {
			return Errorf(StatusInvalid, "migration %d has version %d, want %d: versions run from 1 without a gap", i, s.Version, i+1)
		}
		if at := strings.Index(strings.ToLower(s.SQL), PGReservedPrefix); at >= 0 {
			return Errorf(StatusInvalid, "migration %d names %q: names starting with %q are the host's", s.Version, s.SQL[at:min(len(s.SQL), at+40)], PGReservedPrefix)
		}
	}
	return nil
}
