package sdk

import (
	"github.com/storage-host/storage-host/abi"
)

// Postgres is the client of the host's postgres capability (ABI 1.5):
// SQL statements run on the backend's PostgreSQL through the host's
// connection pool, as the backend's own role, whose search_path is the
// backend's own schema. A plugin that uses it lists abi.CapabilityPostgres
// in Plugin.Capabilities, and the backend's configuration must grant it;
// its tables come from Plugin.Migrations.
//
// Every statement is one SQL command with parameters $1, $2 …, sent with
// the extended protocol: a string of several commands is refused by
// PostgreSQL (SQLSTATE 42601). A timestamp travels as an int64 of Unix
// nanoseconds: bind it as to_timestamp($1::bigint / 1e9) or compare
// bigint columns, and read timestamp columns back as PGInt.
//
// Results and their values are the client's, reused by its next call
// (Exec, Batch or Tx), which overwrites them; the bytes of text and bytea
// values alias the buffer the plugin receives every response in, which
// the next call of any Postgres overwrites. Both are valid until then:
// what is kept longer (in a cache, in a record served after another
// query) must be copied. The zero Postgres is ready to use; one per
// plugin is enough, as calls into an instance never overlap.
type Postgres struct {
	enc abi.Encoder
	dec abi.Decoder
	res abi.PGResultsBuffer
	req abi.PGRequest
	one [1]abi.PGStatement
}

func (p *Postgres) send() ([]abi.PGResult, error) {
	p.enc.Reset()
	p.req.Encode(&p.enc)
	body, err := abi.ParseResponse(postgresCall(p.enc.Bytes()))
	if err != nil {
		return nil, err
	}
	p.dec.Reset(body)
	results := p.res.Decode(&p.dec)
	if err := p.dec.Finish(); err != nil {
		return nil, abi.Errorf(abi.StatusInternal, "postgres response: %v", err)
	}
	if len(results) != len(p.req.Statements) {
		return nil, abi.Errorf(abi.StatusInternal, "postgres: %d results to %d statements", len(results), len(p.req.Statements))
	}
	return results, nil
}

// Exec runs one statement and returns its result. A statement PostgreSQL
// refused is returned as err, an *abi.PGError (its SQLState says why:
// 23505 a unique violation, 40001 a serialization failure …); an err
// that is an *abi.Error is the host's refusal (StatusInvalid, StatusLimit)
// or an unreachable PostgreSQL (StatusUnavailable, StatusUnknown).
func (p *Postgres) Exec(sql string, params ...abi.PGValue) (abi.PGResult, error) {
	p.one[0] = abi.PGStatement{SQL: sql, Params: params}
	p.req = abi.PGRequest{Mode: abi.PGBatch, Statements: p.one[:]}
	results, err := p.send()
	if err != nil {
		return abi.PGResult{}, err
	}
	return results[0], results[0].Err()
}

// Batch sends the statements in one round trip; each runs on its own,
// in its own implicit transaction, and one that fails does not stop the
// others. It returns a result per statement, in order: check each one's
// Err.
func (p *Postgres) Batch(statements []abi.PGStatement) ([]abi.PGResult, error) {
	p.req = abi.PGRequest{Mode: abi.PGBatch, Statements: statements}
	return p.send()
}

// Tx runs the statements in one transaction, in one round trip: all of
// them take effect, or, when one fails, none does. It returns the
// results, and the first failed statement's *abi.PGError as err (the
// statements after it have SQLSTATE 25P02, not run).
func (p *Postgres) Tx(statements []abi.PGStatement) ([]abi.PGResult, error) {
	p.req = abi.PGRequest{Mode: abi.PGTransaction, Statements: statements}
	results, err := p.send()
	if err != nil {
		return nil, err
	}
	for i := range results {
		if err := results[i].Err(); err != nil {
			return results, err
		}
	}
	return results, nil
}

// Null is a NULL parameter, untyped: PostgreSQL types it by its place.
func Null() abi.PGValue { return abi.PGValue{Kind: abi.PGNull} }

// Int is a bigint parameter (and a timestamp, as Unix nanoseconds).
func Int(v int64) abi.PGValue { return abi.PGValue{Kind: abi.PGInt, Int: v} }

// Float is a double precision parameter.
func Float(v float64) abi.PGValue { return abi.PGValue{Kind: abi.PGFloat, Float: v} }

// Text is a text parameter, sent untyped: PostgreSQL gives it the type its
// place in the statement calls for (text, varchar, numeric, uuid, jsonb …).
func Text(v string) abi.PGValue { return abi.PGValue{Kind: abi.PGText, Bytes: []byte(v)} }

// Bytea is a bytea parameter.
func Bytea(v []byte) abi.PGValue { return abi.PGValue{Kind: abi.PGBytea, Bytes: v} }

// Bool is a boolean parameter.
func Bool(v bool) abi.PGValue { return abi.PGValue{Kind: abi.PGBool, Bool: v} }
