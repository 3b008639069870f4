package pgbridge

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// BenchmarkGet compares one keyed read through the bridge (encode the
// request, Serve, decode the response) with the same statement through
// pgx on the bridge's own pool: the bridge's cost over plain pgx.
func BenchmarkGet(b *testing.B) {
	br := open(b, Config{})
	ctx := context.Background()
	_, err := br.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE kv (k text PRIMARY KEY, v bytea); INSERT INTO kv VALUES ('a', repeat('x', 200)::bytea)"}})
	require.NoError(b, err)
	const q = "SELECT v FROM kv WHERE k = $1"
	b.Run("bridge", func(b *testing.B) {
		req := keyedRead(q)
		var out abi.Encoder
		for b.Loop() {
			if err := serveRead(ctx, br, req, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgx-exec", func(b *testing.B) {
		var v []byte
		for b.Loop() {
			if err := br.pool.QueryRow(ctx, q, pgx.QueryExecModeExec, "a").Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgx", func(b *testing.B) {
		var v []byte
		for b.Loop() {
			if err := br.pool.QueryRow(ctx, q, "a").Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetParallel is BenchmarkGet from 64 goroutines at once, over
// the bridge's pool of 4 connections: concurrent reads through the bridge
// share pipelines (coalesce.go), pgx's each wait for a connection.
func BenchmarkGetParallel(b *testing.B) {
	br := open(b, Config{})
	ctx := context.Background()
	_, err := br.Migrate(ctx, abi.Migrations{{Version: 1, SQL: "CREATE TABLE kv (k text PRIMARY KEY, v bytea); INSERT INTO kv VALUES ('a', repeat('x', 200)::bytea)"}})
	require.NoError(b, err)
	const q = "SELECT v FROM kv WHERE k = $1"
	b.Run("bridge", func(b *testing.B) {
		b.SetParallelism(32) // 64 goroutines on 2 CPUs
		before := br.pipes.Stats()
		b.RunParallel(func(pb *testing.PB) {
			req := keyedRead(q)
			var out abi.Encoder
			for pb.Next() {
				if err := serveRead(ctx, br, req, &out); err != nil {
					b.Error(err)
					return
				}
			}
		})
		st := br.pipes.Stats()
		if n := st.Batches - before.Batches; n > 0 {
			shared := st.Requests - before.Requests
			b.ReportMetric(float64(shared)/float64(n), "reads/pipeline")
			b.ReportMetric(float64(shared)/float64(b.N), "shared/read")
		}
	})
	b.Run("pgx", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			var v []byte
			for pb.Next() {
				if err := br.pool.QueryRow(ctx, q, "a").Scan(&v); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// keyedRead encodes the request of q with the key "a".
func keyedRead(q string) []byte {
	var req abi.Encoder
	(&abi.PGRequest{Mode: abi.PGBatch, Statements: []abi.PGStatement{{SQL: q, Params: []abi.PGValue{{Kind: abi.PGText, Bytes: []byte("a")}}}}}).Encode(&req)
	return req.Bytes()
}

// serveRead serves req into out and checks that it read one row.
func serveRead(ctx context.Context, br *Bridge, req []byte, out *abi.Encoder) error {
	out.Reset()
	br.Serve(ctx, req, out)
	body, err := abi.ParseResponse(out.Bytes())
	if err != nil {
		return err
	}
	if rs := abi.DecodePGResults(abi.NewDecoder(body)); len(rs) != 1 || rs[0].Rows() != 1 {
		return errors.New("no row")
	}
	return nil
}
