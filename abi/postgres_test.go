package abi_test

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

var (
	pgText       = abi.PGValue{Kind: abi.PGText, Bytes: []byte("héllo")}
	pgEmptyText  = abi.PGValue{Kind: abi.PGText, Bytes: []byte{}}
	pgAllKinds   = []abi.PGValue{{Kind: abi.PGNull}, {Kind: abi.PGInt, Int: -1 << 62}, {Kind: abi.PGFloat, Float: math.Inf(-1)}, pgText, {Kind: abi.PGBytea, Bytes: []byte{0, 255}}, {Kind: abi.PGBool, Bool: true}}
	pgBatch      = abi.PGRequest{Mode: abi.PGBatch, Statements: []abi.PGStatement{{SQL: "SELECT $1, $2, $3, $4, $5, $6", Params: pgAllKinds}, {SQL: "SELECT 1", Params: []abi.PGValue{}}}}
	pgTx         = abi.PGRequest{Mode: abi.PGTransaction, Statements: []abi.PGStatement{{SQL: "", Params: []abi.PGValue{pgEmptyText}}}}
	pgResults    = []abi.PGResult{{OK: true, RowsAffected: 2, Columns: 3, Values: append(append([]abi.PGValue{}, pgAllKinds...), pgAllKinds...)[:6]}, {SQLState: "23505", Message: "duplicate key"}, {OK: true, RowsAffected: 7}}
	pgNoRows     = abi.PGResult{OK: true, Columns: 3}
	pgMigrations = abi.Migrations{{Version: 1, SQL: "CREATE TABLE t (x int)"}, {Version: 2, SQL: "ALTER TABLE t ADD y int; CREATE INDEX ON t (y)"}}
)

func pgResultsBytes(rs []abi.PGResult) []byte {
	return encoded(func(e *abi.Encoder) { abi.EncodePGResults(e, rs) })
}

func TestPGRoundTrip(t *testing.T) {
	for _, r := range []abi.PGRequest{pgBatch, pgTx, {Mode: abi.PGBatch, Statements: []abi.PGStatement{}}} {
		b := encoded(r.Encode)
		var got abi.PGRequest
		d := abi.NewDecoder(b)
		got.Decode(d)
		require.NoError(t, d.Finish())
		require.Equal(t, b, encoded(got.Encode))
	}
	// A result with columns and no rows (a SELECT that matched nothing)
	// decodes: its column count is not a count of encoded values.
	for _, rs := range [][]abi.PGResult{pgResults, {pgNoRows}, {}} {
		d := abi.NewDecoder(pgResultsBytes(rs))
		got := abi.DecodePGResults(d)
		require.NoError(t, d.Finish())
		require.Equal(t, pgResultsBytes(rs), pgResultsBytes(got))
	}
	d := abi.NewDecoder(pgResultsBytes(pgResults))
	got := abi.DecodePGResults(d)
	require.Equal(t, 2, got[0].Rows())
	require.Equal(t, pgAllKinds[3:6], got[0].Row(1))
	var pgErr *abi.PGError
	require.ErrorAs(t, got[1].Err(), &pgErr)
	require.Equal(t, "23505", pgErr.SQLState)
	require.NoError(t, got[2].Err())

	var ms abi.Migrations
	d = abi.NewDecoder(encoded(pgMigrations.Encode))
	ms.Decode(d)
	require.NoError(t, d.Finish())
	require.Equal(t, pgMigrations, ms)
	require.NoError(t, ms.Check())
	require.ErrorIs(t, abi.Migrations{{Version: 2}}.Check(), abi.StatusInvalid)
	// A list longer than a Migrations may hold is malformed, before any
	// of it is decoded.
	many := make(abi.Migrations, abi.MaxMigrations+1)
	for i := range many {
		many[i].Version = uint64(i) + 1
	}
	d = abi.NewDecoder(encoded(many.Encode))
	ms.Decode(d)
	require.ErrorIs(t, d.Finish(), abi.ErrMalformed)
	d = abi.NewDecoder(encoded(many[:abi.MaxMigrations].Encode))
	ms.Decode(d)
	require.NoError(t, d.Finish())
	require.Len(t, ms, abi.MaxMigrations)
	require.ErrorIs(t, abi.Migrations{{Version: 1}, {Version: 1}}.Check(), abi.StatusInvalid)
	// The host's own tables are not a plugin's to create or change.
	for _, sql := range []string{
		"CREATE TABLE storagehost_events (x int)",
		"CREATE TABLE t (x int); ALTER TABLE StorageHost_Migrations ADD COLUMN y int",
	} {
		err := abi.Migrations{{Version: 1, SQL: sql}}.Check()
		require.ErrorIs(t, err, abi.StatusInvalid, sql)
		require.ErrorContains(t, err, "are the host's")
	}
}

func TestPGMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"unknown mode":       {3, 0},
		"mode zero":          {0, 0},
		"unknown value kind": {1, 1, 0, 1, 6},
		"bool not 0 or 1":    {1, 1, 0, 1, 5, 2},
		"truncated float":    {1, 1, 0, 1, 2, 0, 0},
	} {
		var r abi.PGRequest
		d := abi.NewDecoder(b)
		r.Decode(d)
		require.Error(t, d.Finish(), name)
	}
	for name, b := range map[string][]byte{
		"rows without columns":   {1, 1, 0, 0, 1},
		"too many columns":       append([]byte{1, 1, 0}, encoded(func(e *abi.Encoder) { e.Uvarint(abi.MaxPGColumns + 1); e.Uvarint(0) })...),
		"more values than bytes": {1, 1, 0, 2, 9, 0, 0},
		"a row cut short":        {1, 1, 0, 2, 1, 0},
	} {
		d := abi.NewDecoder(b)
		abi.DecodePGResults(d)
		require.Error(t, d.Finish(), name)
	}
}

// TestPGResultsBufferDecodes: a PGResultsBuffer decodes response after
// response as DecodePGResults does, malformed ones included.
func TestPGResultsBufferDecodes(t *testing.T) {
	var buf abi.PGResultsBuffer
	for _, rs := range [][]abi.PGResult{pgResults, {pgNoRows}, {}, pgResults, {pgResults[2]}, pgResults} {
		b := pgResultsBytes(rs)
		d := abi.NewDecoder(b)
		got := buf.Decode(d)
		require.NoError(t, d.Finish())
		require.Equal(t, abi.DecodePGResults(abi.NewDecoder(b)), got)
		require.Equal(t, b, pgResultsBytes(got))
	}
	for _, b := range [][]byte{{1, 1, 0, 0, 1}, {1, 1, 0, 2, 9, 0, 0}, {1, 1, 0, 2, 1, 0}} {
		d := abi.NewDecoder(b)
		buf.Decode(d)
		require.Error(t, d.Finish())
	}
}

// pgRows is a response of one result of rows rows of cols text values.
func pgRows(rows, cols int) []byte {
	vs := make([]abi.PGValue, rows*cols)
	for i := range vs {
		vs[i] = abi.PGValue{Kind: abi.PGText, Bytes: []byte(fmt.Sprintf("value %d", i))}
	}
	return pgResultsBytes([]abi.PGResult{{OK: true, RowsAffected: uint64(rows), Columns: cols, Values: vs}})
}

// minAllocs is the least of a few rounds of testing.AllocsPerRun: other
// goroutines' allocations count too.
func minAllocs(f func()) float64 {
	least := math.Inf(1)
	for range 5 {
		least = min(least, testing.AllocsPerRun(100, f))
	}
	return least
}

// TestPGResultsBufferReuses: once warm, decoding a response allocates
// nothing, where DecodePGResults allocates the results and each one's
// values. (A failed statement's SQLSTATE and message are strings of
// their own.)
func TestPGResultsBufferReuses(t *testing.T) {
	puts := make([]abi.PGResult, 100)
	for i := range puts {
		puts[i] = abi.PGResult{OK: true, RowsAffected: 1, Columns: 2, Values: []abi.PGValue{{Kind: abi.PGInt, Int: int64(i)}, {Kind: abi.PGInt}}}
	}
	for name, b := range map[string][]byte{"one row": pgRows(1, 4), "100 results": pgResultsBytes(puts), "mixed": pgResultsBytes([]abi.PGResult{pgResults[0], pgNoRows, pgResults[2]})} {
		var buf abi.PGResultsBuffer
		var d abi.Decoder
		decode := func() {
			d.Reset(b)
			buf.Decode(&d)
			if d.Finish() != nil {
				panic("malformed")
			}
		}
		decode()
		assert.Zero(t, minAllocs(decode), "%s: allocations with a buffer", name)
		assert.NotZero(t, minAllocs(func() { abi.DecodePGResults(abi.NewDecoder(b)) }), "%s: allocations without", name)
	}
}

// TestPGResultsBufferKeepsNoLargeResult: after a large response the
// buffer does not keep its storage (the withdrawn kept-storage decoder
// kept what the largest response needed for as long as the plugin
// lived), and what it keeps refers to nothing of an earlier response.
func TestPGResultsBufferKeepsNoLargeResult(t *testing.T) {
	var buf abi.PGResultsBuffer
	var d abi.Decoder
	decode := func(b []byte) []abi.PGResult {
		d.Reset(b)
		rs := buf.Decode(&d)
		require.NoError(t, d.Finish())
		return rs
	}
	many := make([]abi.PGResult, 3000)
	for i := range many {
		many[i] = abi.PGResult{OK: true, RowsAffected: 1}
	}
	decode(pgRows(2, 3))
	rs, vs := abi.KeptPGStorage(&buf)
	small := [2]int{cap(rs), cap(vs)}

	for _, large := range [][]byte{pgRows(10_000, 5), pgResultsBytes(many)} {
		rs := decode(large)
		require.NotEmpty(t, rs)
		got := decode(pgRows(2, 3))
		require.Len(t, got, 1)
		require.Equal(t, "value 5", string(got[0].Row(1)[2].Bytes))
		// The large response's storage is dropped by the decode after it.
		decode(pgRows(2, 3))
		rs, vs := abi.KeptPGStorage(&buf)
		assert.LessOrEqual(t, cap(rs), abi.MaxKeptPGResults)
		assert.LessOrEqual(t, cap(vs), abi.MaxKeptPGValues)
		assert.LessOrEqual(t, cap(rs), 4*small[0], "results kept after a small response")
		assert.LessOrEqual(t, cap(vs), 4*small[1], "values kept after a small response")
	}

	// Entries past the last response's are cleared: a response of three
	// results, then one of one, leaves no value or message of the first.
	decode(pgResultsBytes(append([]abi.PGResult{pgResults[0]}, pgResults...)))
	decode(pgRows(1, 1))
	rs, vs = abi.KeptPGStorage(&buf)
	for i := 1; i < len(rs); i++ {
		require.Zero(t, rs[i], "result %d", i)
	}
	for i := 1; i < len(vs); i++ {
		require.Zero(t, vs[i], "value %d", i)
	}
}

var (
	pgRequestBody = recordCodec[abi.PGRequest]()
	pgResultsBody = bodyCodec{
		decode: func(d *abi.Decoder) any { return abi.DecodePGResults(d) },
		encode: func(e *abi.Encoder, v any) { abi.EncodePGResults(e, v.([]abi.PGResult)) },
	}
	migrationsBody = recordCodec[abi.Migrations]()
)

func FuzzDecodePGRequest(f *testing.F) {
	seed(f, pgRequestBody, pgBatch, pgTx)
	seedRaw(f, []byte{3, 0}, []byte{1, 1, 0, 1, 6}, []byte{2, 1, 0, 0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, pgRequestBody) })
}

func FuzzDecodePGResults(f *testing.F) {
	seed(f, pgResultsBody, pgResults, []abi.PGResult{pgNoRows}, []abi.PGResult{})
	seedRaw(f, []byte{1, 1, 0, 0, 1}, []byte{1, 1, 0, 2, 9, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, pgResultsBody) })
}

func FuzzDecodeMigrations(f *testing.F) {
	seed(f, migrationsBody, pgMigrations, abi.Migrations{})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, migrationsBody) })
}

// postgresExample is the example of README.md section 13.4: a batch of an
// insert and a select, and its response.
func postgresExample() string {
	req := abi.PGRequest{Mode: abi.PGBatch, Statements: []abi.PGStatement{
		{SQL: "INSERT INTO t VALUES ($1)", Params: []abi.PGValue{{Kind: abi.PGInt, Int: 7}}},
		{SQL: "SELECT x FROM t"},
	}}
	resp := encoded(func(e *abi.Encoder) {
		e.U8(uint8(abi.StatusOK))
		abi.EncodePGResults(e, []abi.PGResult{
			{OK: true, RowsAffected: 1},
			{OK: true, RowsAffected: 1, Columns: 1, Values: []abi.PGValue{{Kind: abi.PGInt, Int: 7}}},
		})
	})
	return fmt.Sprintf("request:  %x\nresponse: %x\n", encoded(req.Encode), resp)
}

// The example of README.md section 13.4 (TestREADMEPostgresExample keeps
// them equal).
func Example_postgresBatch() {
	fmt.Print(postgresExample())
	// Output:
	// request:  010219494e5345525420494e544f20742056414c554553202824312901010e0f53454c45435420782046524f4d207400
	// response: 00020101000001010101010e
}

func TestREADMEPostgresExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(readme), postgresExample()),
		"README.md must contain the output of Example_postgresBatch verbatim:\n%s", postgresExample())
}
