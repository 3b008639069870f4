package pgbridge

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// call runs stmts through Serve, from their encoding, and decodes the
// answer: a refusal of the bridge as the error, a malformed answer too.
// Safe to use from any goroutine.
func call(ctx context.Context, b *Bridge, mode abi.PGMode, stmts ...abi.PGStatement) ([]abi.PGResult, error) {
	var e abi.Encoder
	(&abi.PGRequest{Mode: mode, Statements: stmts}).Encode(&e)
	var out abi.Encoder
	b.Serve(ctx, e.Bytes(), &out)
	body, err := abi.ParseResponse(out.Bytes())
	if err != nil {
		return nil, err
	}
	d := abi.NewDecoder(body)
	rs := abi.DecodePGResults(d)
	if err := d.Finish(); err != nil {
		return nil, err
	}
	if len(rs) != len(stmts) {
		return nil, fmt.Errorf("%d results for %d statements", len(rs), len(stmts))
	}
	return rs, nil
}

// occupy runs a statement that takes the bridge's only slot until the
// returned function is called, then returns once the requests queued
// behind it number want.
func occupy(t *testing.T, b *Bridge) (release func(), queued func(want int)) {
	t.Helper()
	require.Equal(t, 1, b.pipes.Slots(), "the test needs a bridge of one connection")
	adm := admin(t)
	_, err := adm.Exec(context.Background(), "SELECT pg_advisory_lock(hashtext($1))", b.Schema())
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs, err := call(context.Background(), b, abi.PGBatch, stmt("SELECT pg_advisory_lock(hashtext($1)), pg_advisory_unlock(hashtext($1))", text(b.Schema())))
		if err == nil {
			err = rs[0].Err()
		}
		if err != nil {
			t.Error(err)
		}
	}()
	require.Eventually(t, func() bool { return b.pipes.Running() == 1 }, 10*time.Second, time.Millisecond)
	release = func() {
		_, err := adm.Exec(context.Background(), "SELECT pg_advisory_unlock(hashtext($1))", b.Schema())
		require.NoError(t, err)
		<-done
	}
	queued = func(want int) {
		require.Eventually(t, func() bool { return b.pipes.Queued() == want }, 10*time.Second, time.Millisecond)
	}
	return release, queued
}

type answer struct {
	rs  []abi.PGResult
	err error
}

// Reads that wait for a connection go together in one pipeline, and
// each keeps its own parameters, results, errors and transaction; a
// write does not wait in the queue.
func TestQueuedReadsShareOnePipeline(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: `CREATE TABLE t (k text PRIMARY KEY);`}})
	require.NoError(t, err)
	release, queued := occupy(t, b)

	const readers = 8
	reqs := make([][]abi.PGStatement, 0, readers+2)
	modes := make([]abi.PGMode, 0, readers+2)
	for i := range readers {
		reqs = append(reqs, []abi.PGStatement{stmt("SELECT $1::bigint * 2, pg_backend_pid()", integer(int64(i)))})
		modes = append(modes, abi.PGBatch)
	}
	// A batch with a failing statement, a transaction that fails.
	reqs = append(reqs,
		[]abi.PGStatement{stmt("SELECT 1/0"), stmt("SELECT 2")},
		[]abi.PGStatement{stmt("SELECT 3"), stmt("SELECT 1/0"), stmt("SELECT 4")},
	)
	modes = append(modes, abi.PGBatch, abi.PGTransaction)
	answers := make([]answer, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() {
			rs, err := call(ctx, b, modes[i], reqs[i]...)
			answers[i] = answer{rs, err}
		})
	}
	queued(len(reqs))
	var write answer
	wg.Go(func() {
		write.rs, write.err = call(ctx, b, abi.PGBatch, stmt("INSERT INTO t VALUES ('written')"))
	})
	require.Eventually(t, func() bool { return b.pipes.Running() == 2 }, 10*time.Second, time.Millisecond, "the write runs, over the count")
	queued(len(reqs))
	before := b.pipes.Stats()
	release()
	wg.Wait()

	got := b.pipes.Stats()
	require.Equal(t, uint64(1), got.Batches-before.Batches, "one shared pipeline")
	require.Equal(t, uint64(len(reqs)), got.Requests-before.Requests, "every queued read in it")
	var pid abi.PGValue
	for i := range readers {
		a := answers[i]
		require.NoError(t, a.err)
		mustOK(t, a.rs)
		require.Equal(t, integer(int64(2*i)), a.rs[0].Row(0)[0])
		if i == 0 {
			pid = a.rs[0].Row(0)[1]
		}
		require.Equal(t, pid, a.rs[0].Row(0)[1], "one connection")
	}
	batch := answers[readers]
	require.NoError(t, batch.err)
	require.Equal(t, "22012", sqlState(t, batch.rs[0]))
	require.Equal(t, integer(2), batch.rs[1].Row(0)[0])
	failed := answers[readers+1]
	require.NoError(t, failed.err)
	require.True(t, failed.rs[0].OK)
	require.Equal(t, "22012", sqlState(t, failed.rs[1]))
	require.Equal(t, "25P02", sqlState(t, failed.rs[2]))
	require.NoError(t, write.err)
	mustOK(t, write.rs)

	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT string_agg(k, ',') FROM t"))
	require.NoError(t, err)
	require.Equal(t, text("written"), rs[0].Row(0)[0])
}

// A request whose own BEGIN leaves a transaction open cannot pull the
// requests after it in a pipeline into it unnoticed: they are answered
// UNKNOWN. (Only reads share pipelines, and a SELECT cannot begin a
// transaction; the pipeline checks all the same.)
func TestPipelineAfterOpenTransactionIsUnknown(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	_, err := b.Migrate(ctx, abi.Migrations{{Version: 1, SQL: `CREATE TABLE t (k text PRIMARY KEY);`}})
	require.NoError(t, err)
	conn, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	pc := conn.Conn().PgConn()

	mk := func(sql string) *part {
		r := &request{mode: abi.PGBatch, stmts: []statement{{sql: []byte(sql)}}}
		e := new(abi.Encoder)
		return &part{req: r, ms: timeoutStep(time.Minute), e: e}
	}
	parts := []*part{mk("BEGIN"), mk("INSERT INTO t VALUES ('inside')"), mk("SELECT 1")}
	require.NoError(t, b.pipeline(ctx, pc, state(pc), parts))
	for _, x := range parts {
		x.answer(nil, b.maxBytes)
	}
	_, err = abi.ParseResponse(parts[0].e.Bytes())
	require.NoError(t, err)
	for _, x := range parts[1:] {
		_, err = abi.ParseResponse(x.e.Bytes())
		require.ErrorIs(t, err, abi.StatusUnknown)
	}
	require.NotEqual(t, byte('I'), pc.TxStatus(), "the transaction is still open")
	_, err = pc.Exec(ctx, "ROLLBACK").ReadAll()
	require.NoError(t, err)
}

// A transaction of reads that fails leaves the statements after it
// unrun, and the reads behind it in the pipeline their own results. Before,
// pgconn kept the description of each skipped statement sent by its
// description, and read the next request's result with it: a bigint 42
// came back as the 8 bytes of its binary form, as text.
func TestFailedTransactionInASharedPipelineLeavesItsNeighboursResults(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	failing := []abi.PGStatement{stmt("SELECT 1 / $1::int", integer(0)), stmt("SELECT 'skipped'::text")}
	neighbour := stmt("SELECT 42::bigint")
	// Every statement prepared first: they go by their descriptions.
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT 1 / $1::int", integer(1)), failing[1], neighbour)
	require.NoError(t, err)
	mustOK(t, rs)

	release, queued := occupy(t, b)
	before := b.pipes.Stats().Batches
	var tx, other answer
	var wg sync.WaitGroup
	wg.Go(func() { tx.rs, tx.err = call(ctx, b, abi.PGTransaction, failing...) })
	queued(1)
	wg.Go(func() { other.rs, other.err = call(ctx, b, abi.PGBatch, neighbour) })
	queued(2)
	release()
	wg.Wait()
	require.Equal(t, before+1, b.pipes.Stats().Batches, "the two shared a pipeline")
	require.NoError(t, tx.err)
	require.Equal(t, "22012", sqlState(t, tx.rs[0]))
	require.Equal(t, "25P02", sqlState(t, tx.rs[1]))
	require.NoError(t, other.err)
	mustOK(t, other.rs)
	require.Equal(t, []abi.PGValue{integer(42)}, other.rs[0].Row(0))
}

// A queued call whose context ends before a flusher takes it is answered
// UNAVAILABLE, and its statements never run.
func TestQueuedCallEndedIsNotSent(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	b.resetAfter, b.resetWork = time.Hour, time.Hour // no reset after the long call could hide the setting
	b.sessionWork = time.Hour                        // nor a new session
	ctx := context.Background()
	release, queued := occupy(t, b)

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := call(cctx, b, abi.PGBatch, stmt("SELECT set_config('storagehost.queued', 'ran', false)"))
		done <- err
	}()
	queued(1)
	cancel()
	require.ErrorIs(t, <-done, abi.StatusUnavailable)
	queued(0)
	release()
	// The bridge has one connection: a statement that ran would have set
	// the setting on it.
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT coalesce(current_setting('storagehost.queued', true), '')"))
	require.NoError(t, err)
	require.Equal(t, text(""), rs[0].Row(0)[0])
}

// Each request of a shared pipeline keeps its own statement timeout: one
// near its deadline is stopped by the server at it, and the request after
// it, with time to spare, runs.
func TestSharedPipelineStatementTimeoutsPerRequest(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	release, queued := occupy(t, b)

	var slow, quick answer
	var wg sync.WaitGroup
	wg.Go(func() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		slow.rs, slow.err = call(sctx, b, abi.PGBatch, stmt("SELECT pg_sleep(60)"))
	})
	queued(1)
	wg.Go(func() {
		qctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		quick.rs, quick.err = call(qctx, b, abi.PGBatch, stmt("SELECT 7"))
	})
	queued(2)
	start := time.Now()
	release()
	wg.Wait()

	if slow.err == nil {
		require.Equal(t, "57014", sqlState(t, slow.rs[0]))
	} else {
		// The caller gave up at its deadline while the statement ran.
		require.ErrorIs(t, slow.err, abi.StatusUnknown)
	}
	require.NoError(t, quick.err)
	require.Equal(t, integer(7), quick.rs[0].Row(0)[0])
	require.Less(t, time.Since(start), 30*time.Second, "the slow statement ran past its own timeout")
}

// A shared pipeline whose connection dies answers each of its requests,
// none of them hangs, and the next call gets a new connection.
func TestSharedPipelineConnectionLost(t *testing.T) {
	b := open(t, Config{MaxConns: 1})
	ctx := context.Background()
	adm := admin(t)
	release, queued := occupy(t, b)

	answers := make([]answer, 3)
	var wg sync.WaitGroup
	for i, sql := range []string{"SELECT pg_sleep(60)", "SELECT 1", "SELECT 2"} {
		wg.Go(func() {
			answers[i].rs, answers[i].err = call(ctx, b, abi.PGBatch, stmt(sql))
		})
		queued(i + 1)
	}
	release()
	sleeping := func() (pid int32) {
		_ = adm.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%pg_sleep(60)%' AND state = 'active'", b.Role()).Scan(&pid)
		return pid
	}
	require.Eventually(t, func() bool { return sleeping() != 0 }, 10*time.Second, 5*time.Millisecond)
	_, err := adm.Exec(ctx, "SELECT pg_terminate_backend($1)", sleeping())
	require.NoError(t, err)
	wg.Wait()
	for i, a := range answers {
		// Sent, and the connection lost before an answer: the outcome of
		// each is unknown to the bridge (for these reads, harmlessly so).
		require.ErrorIs(t, a.err, abi.StatusUnknown, "request %d", i)
	}
	rs, err := do(t, ctx, b, abi.PGBatch, stmt("SELECT 3"))
	require.NoError(t, err)
	require.Equal(t, integer(3), rs[0].Row(0)[0])
}
