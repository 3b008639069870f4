package bench_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/pgtest"
	"github.com/storage-host/storage-host/plugins/postgres/statements"
)

// BenchmarkPostgres runs each workload through the postgres plugin
// (host.Store on builtin:postgres) and issued directly with pgx on the
// same PostgreSQL, side by side in one run.
//
// Variants: "plugin" is the default pool (Config.Instances and
// PostgresConfig.MaxConns unset: 8 instances per CPU, 4 connections);
// "direct" sends, with a pgxpool of the same 4 connections, the
// statements the plugin sends for the operation (plugins/postgres
// statements.go: statements.GetState, statements.PutStateAny below are copies), a bulk put
// being the 100 statements in one transaction, in one round trip, as the
// plugin sends a batch; "plain" is the plainest pgx code an application
// would write: one table (agent_id text PRIMARY KEY, state bytea),
// SELECT state … WHERE agent_id = $1, INSERT … ON CONFLICT DO UPDATE,
// and a pgx.Batch of 100 of those for the bulk put. Each side has a
// schema of its own, seeded alike; every response is checked.
//
// The metric and alert workloads (pgrecords_bench_test.go) go the same
// way: PutMetric, QueryMetrics (an agent's series in a time range),
// PutAlert and QueryAlerts (by one label, no agent); direct sends the
// plugin's statements and reads its columns, decoding the labels as the
// plugin does, and plain has tables of its own with labels as jsonb
// (plainRecordTables).
//
// Metrics: ops/s (wall clock), p50-µs and p99-µs of the per-call latency,
// the CPU time per op of this process (host-cpu-µs/op) and, on Linux,
// that of the rest of the machine (other-cpu-µs/op: PostgreSQL's, when it
// runs here and nothing else does; /proc/stat counts in 10 ms ticks, so
// give a run a second or more). An op of
// BulkPut100 is a batch of 100 states. At the end it prints a summary
// whose ratio columns are each variant's ops/s over plain's and over
// direct's.
//
//	go test ./cmd/storage-host/internal/bench -run '^$' -bench Postgres -benchtime 3s
func BenchmarkPostgres(b *testing.B) {
	ctx := context.Background()
	url := pgtest.URL(b)
	st, schema := openPostgresBench(b, url)
	direct := newPGPool(b, url, schema)
	plain := newPGPool(b, url, pgtest.Schema(b, "storagehost_"))
	if _, err := plain.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{plainSchema(plain)}.Sanitize()); err != nil {
		b.Fatal(err)
	}
	if _, err := plain.Exec(ctx, `CREATE TABLE plain_states (agent_id text PRIMARY KEY, state bytea NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	if _, err := plain.Exec(ctx, plainRecordTables); err != nil {
		b.Fatal(err)
	}
	for i := range benchAgents {
		for _, put := range []func(context.Context, int) error{
			func(ctx context.Context, i int) error { return pluginPutState(ctx, st, i) },
			func(ctx context.Context, i int) error { return directPGPut(ctx, direct, i) },
			func(ctx context.Context, i int) error { return plainPGPut(ctx, plain, i) },
		} {
			if err := put(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
	}

	if err := seedPGRecords(ctx, st, direct, plain); err != nil {
		b.Fatal(err)
	}

	// Warm the pools: 64 plugin instances and every connection.
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			for _, get := range []func() error{
				func() error { return pluginGetState(ctx, st, i) },
				func() error { return directPGGet(ctx, direct, i) },
				func() error { return plainPGGet(ctx, plain, i) },
			} {
				if err := get(); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()

	workloads := []struct {
		name   string
		plugin func(ctx context.Context, st *host.Store, i int) error
		direct func(ctx context.Context, p *pgxpool.Pool, i int) error
		plain  func(ctx context.Context, p *pgxpool.Pool, i int) error
	}{
		{"GetAgentState", pluginGetState, directPGGet, plainPGGet},
		{"PutAgentState", pluginPutState, directPGPut, plainPGPut},
		{"BulkPut100", pluginBulkPut100, directPGBulk, plainPGBulk},
		{"PutMetric", pluginPutMetric, directPGPutMetric, plainPGPutMetric},
		{"QueryMetrics", pluginQueryMetrics, directPGQueryMetrics, plainPGQueryMetrics},
		{"PutAlert", pluginPutAlert, directPGPutAlert, plainPGPutAlert},
		{"QueryAlerts", pluginQueryAlerts, directPGQueryAlerts, plainPGQueryAlerts},
	}
	sum := make(map[string]latencyResult)
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) {
			for _, callers := range []int{1, 64} {
				b.Run("callers="+strconv.Itoa(callers), func(b *testing.B) {
					key := w.name + "/" + strconv.Itoa(callers) + "/"
					b.Run("plugin", func(b *testing.B) {
						sum[key+"plugin"] = measurePG(b, callers, func(ctx context.Context, i int) error { return w.plugin(ctx, st, i) })
					})
					b.Run("direct", func(b *testing.B) {
						sum[key+"direct"] = measurePG(b, callers, func(ctx context.Context, i int) error { return w.direct(ctx, direct, i) })
					})
					b.Run("plain", func(b *testing.B) {
						sum[key+"plain"] = measurePG(b, callers, func(ctx context.Context, i int) error { return w.plain(ctx, plain, i) })
					})
				})
			}
		})
	}

	var t strings.Builder
	fmt.Fprintf(&t, "\n%-14s %7s %-8s %10s %9s %9s %9s %9s %9s %9s", "workload", "callers", "variant", "ops/s", "p50-µs", "p99-µs", "/plain", "/direct", "host-cpu", "other-cpu")
	for _, w := range workloads {
		for _, callers := range []int{1, 64} {
			key := w.name + "/" + strconv.Itoa(callers) + "/"
			for _, v := range []string{"plain", "direct", "plugin"} {
				r, ok := sum[key+v]
				if !ok {
					continue
				}
				ratio := func(base string) string {
					if d, ok := sum[key+base]; ok {
						return strconv.FormatFloat(r.opsPerSec/d.opsPerSec, 'f', 2, 64)
					}
					return "-"
				}
				other := "-"
				if r.otherCPU >= 0 {
					other = strconv.FormatFloat(r.otherCPU, 'f', 1, 64)
				}
				fmt.Fprintf(&t, "\n%-14s %7d %-8s %10.0f %9.1f %9.1f %9s %9s %9.1f %9s", w.name, callers, v, r.opsPerSec, r.p50, r.p99, ratio("plain"), ratio("direct"), r.hostCPU, other)
			}
		}
	}
	if !b.Failed() {
		fmt.Println(t.String())
	}
}

func openPostgresBench(b *testing.B, url string) (*host.Store, string) {
	b.Helper()
	schema := pgtest.Schema(b, "storagehost_")
	st, err := host.Open(context.Background(), host.Config{
		Plugin:   "builtin:postgres",
		Postgres: &host.PostgresConfig{URL: url, Schema: schema},
	}, host.WithCompilationCache(benchCache))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close(context.Background()) })
	return st, schema
}

// newPGPool returns a pool of 4 connections (the plugin's default) whose
// search_path is schema, with events on as the host sets them: the
// plugin's write statements, sent by direct, insert their events as they
// do through the plugin.
func newPGPool(b *testing.B, url, schema string) *pgxpool.Pool {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.ConnConfig.RuntimeParams[abi.PGEventsSetting] = "on"
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return p
}

func plainSchema(p *pgxpool.Pool) string { return p.Config().ConnConfig.RuntimeParams["search_path"] }

func directPGGet(ctx context.Context, p *pgxpool.Pool, i int) error {
	var state []byte
	var version, updated, expires int64
	if err := p.QueryRow(ctx, statements.GetState, benchAgent(i), time.Now().UnixNano()).Scan(&state, &version, &updated, &expires); err != nil {
		return err
	}
	if version == 0 {
		return fmt.Errorf("version 0")
	}
	return nil
}

func directPGPut(ctx context.Context, p *pgxpool.Pool, i int) error {
	var version, expires int64
	return p.QueryRow(ctx, statements.PutStateAny, benchAgent(i), benchState, time.Now().UnixNano(), int64(0), false).Scan(&version, &expires)
}

func directPGBulk(ctx context.Context, p *pgxpool.Pool, _ int) error {
	now := time.Now().UnixNano()
	var batch pgx.Batch
	for i := range 100 {
		batch.Queue(statements.PutStateAny, benchAgent(i), benchState, now, int64(0), false)
	}
	return sendAll(ctx, p, &batch)
}

func plainPGGet(ctx context.Context, p *pgxpool.Pool, i int) error {
	var state []byte
	if err := p.QueryRow(ctx, `SELECT state FROM plain_states WHERE agent_id = $1`, benchAgent(i)).Scan(&state); err != nil {
		return err
	}
	if len(state) == 0 {
		return fmt.Errorf("empty state")
	}
	return nil
}

const plainPut = `INSERT INTO plain_states (agent_id, state) VALUES ($1, $2) ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state`

func plainPGPut(ctx context.Context, p *pgxpool.Pool, i int) error {
	_, err := p.Exec(ctx, plainPut, benchAgent(i), benchState)
	return err
}

func plainPGBulk(ctx context.Context, p *pgxpool.Pool, _ int) error {
	var batch pgx.Batch
	for i := range 100 {
		batch.Queue(plainPut, benchAgent(i), benchState)
	}
	return sendAll(ctx, p, &batch)
}

// sendAll sends batch (one round trip, one implicit transaction) and
// checks every statement's result.
func sendAll(ctx context.Context, p *pgxpool.Pool, batch *pgx.Batch) error {
	br := p.SendBatch(ctx, batch)
	for range batch.Len() {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

// measurePG runs b.N calls of op over callers goroutines, each call
// timed, and reports ops/s, p50-µs, p99-µs and host-cpu-µs/op.
func measurePG(b *testing.B, callers int, op func(ctx context.Context, i int) error) latencyResult {
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	host0 := hostCPU()
	machine0, machineOK := machineCPU()
	b.ResetTimer()
	for range callers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				t0 := time.Now()
				err := op(ctx, i)
				lat[i] = time.Since(t0)
				if err != nil {
					b.Error(err)
					next.Store(math.MaxInt32)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	elapsed := b.Elapsed()
	host1 := hostCPU()
	machine1, ok := machineCPU()
	slices.Sort(lat)
	r := latencyResult{
		opsPerSec: float64(b.N) / elapsed.Seconds(),
		p50:       float64(lat[(len(lat)-1)*50/100]) / 1e3,
		p99:       float64(lat[(len(lat)-1)*99/100]) / 1e3,
		hostCPU:   float64(host1-host0) / 1e3 / float64(b.N),
		otherCPU:  -1,
	}
	b.ReportMetric(r.opsPerSec, "ops/s")
	b.ReportMetric(r.p50, "p50-µs")
	b.ReportMetric(r.p99, "p99-µs")
	b.ReportMetric(r.hostCPU, "host-cpu-µs/op")
	if machineOK && ok {
		r.otherCPU = max(0, float64(machine1-machine0-(host1-host0))/1e3/float64(b.N))
		b.ReportMetric(r.otherCPU, "other-cpu-µs/op")
	}
	return r
}
