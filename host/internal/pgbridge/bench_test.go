package pgbridge

import (
	"context"
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
		var req, out abi.Encoder
		(&abi.PGRequest{Mode: abi.PGBatch, Statements: []abi.PGStatement{{SQL: q, Params: []abi.PGValue{{Kind: abi.PGText, Bytes: []byte("a")}}}}}).Encode(&req)
		for b.Loop() {
			out.Reset()
			br.Serve(ctx, req.Bytes(), &out)
			body, err := abi.ParseResponse(out.Bytes())
			if err != nil {
				b.Fatal(err)
			}
			d := abi.NewDecoder(body)
			if rs := abi.DecodePGResults(d); len(rs) != 1 || rs[0].Rows() != 1 {
				b.Fatal("no row")
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
		b.RunParallel(func(pb *testing.PB) {
			var req, out abi.Encoder
			(&abi.PGRequest{Mode: abi.PGBatch, Statements: []abi.PGStatement{{SQL: q, Params: []abi.PGValue{{Kind: abi.PGText, Bytes: []byte("a")}}}}}).Encode(&req)
			for pb.Next() {
				out.Reset()
				br.Serve(ctx, req.Bytes(), &out)
				body, err := abi.ParseResponse(out.Bytes())
				if err != nil {
					b.Error(err)
					return
				}
				d := abi.NewDecoder(body)
				if rs := abi.DecodePGResults(d); len(rs) != 1 || rs[0].Rows() != 1 {
					b.Error("no row")
					return
				}
			}
		})
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
