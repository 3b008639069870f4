package pgbridge

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/internal/coalesce"
)

// Auto-pipelining (package coalesce): the bridge sees the requests of
// every instance of its backend, and concurrent reads share a
// connection's round trip instead of each waiting for a connection of
// their own (RATIONALE.md, "Why do concurrent PostgreSQL reads share
// pipelines, and writes not?").
//
// A request takes a slot, one per pool connection, and runs alone on
// the caller's goroutine when one is free, as if there were no
// coalescer. A read (see reads) that finds none queues; a write runs
// alone all the same, its slot over the count. When a request ends and
// reads wait, a flusher goroutine takes them (up to maxSharedBatch
// statements) and sends them as one pipeline on one connection
// (Bridge.pipeline), then again while more wait.
//
// Each request keeps its own statement timeout, implicit transaction,
// result bound and answer. Its neighbours in a pipeline are requests of
// the same backend: one that runs long holds up those behind it, for at
// most its own statement timeout.
//
// A queued request whose context ends is answered UNAVAILABLE if no
// flusher has taken it yet (nothing of it reached the server), and
// UNKNOWN if one has (its statements may run).

// maxSharedStatements is the most statements of a request that shares
// pipelines: a larger one already amortises its round trip, and queueing
// it would hold small requests behind it.
const maxSharedStatements = 16

// maxSharedBatch bounds the statements of one shared pipeline.
const maxSharedBatch = 128

// reads reports whether every statement of req is a SELECT, which, as
// far as the bridge can tell without parsing SQL, writes nothing. Only
// such requests share pipelines: a connection runs the transactions of
// a pipeline one after another, each commit waiting for its own WAL
// flush, where transactions on connections of their own are flushed
// together (PostgreSQL's group commit); shared, concurrent writes were
// slower, not faster (RATIONALE.md). A SELECT that writes (through a
// function) is still answered rightly, only not sooner.
func reads(req *request) bool {
	if len(req.stmts) > maxSharedStatements {
		return false
	}
	for i := range req.stmts {
		sql := bytes.TrimLeft(req.stmts[i].sql, " \t\r\n(")
		if len(sql) < 7 || !bytes.EqualFold(sql[:6], []byte("select")) || !isSpace(sql[6]) {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// queued is a read waiting for a flusher: a copy of its request the
// queue owns, and its answer once the flusher is done.
type queued struct {
	req *request
	out abi.Encoder
}

// pipes is the bridge's coalescer of shared pipelines.
type pipes = coalesce.Coalescer[*queued]

func (b *Bridge) newPipes(slots int) *pipes {
	return coalesce.New(slots, maxSharedBatch, func(q *queued) int { return len(q.req.stmts) }, b.shared)
}

// share runs req and appends its response to e, in a pipeline shared with
// concurrent reads when every slot is taken and req reads.
func (b *Bridge) share(ctx context.Context, req *request, timeout time.Duration, e *abi.Encoder) {
	if !reads(req) {
		b.pipes.Start()
		b.alone(ctx, req, timeout, e)
		b.pipes.Finish()
		return
	}
	var q *queued
	res := b.pipes.Do(ctx, func() { b.alone(ctx, req, timeout, e) }, func() *queued {
		// req aliases the caller's memory (the plugin's, for Serve), which
		// is the caller's again once it is answered: a queued request may
		// outlive the call.
		q = &queued{req: req.clone()}
		return q
	})
	switch {
	case res == coalesce.Answered && q != nil:
		e.Raw(q.out.Bytes())
	case res == coalesce.Answered: // it ran alone
	case res == coalesce.Unsent:
		abi.AppendError(e, abi.StatusUnavailable, "postgres: the call ended before its statements were sent: "+context.Cause(ctx).Error())
	default:
		abi.AppendError(e, abi.StatusUnknown, "postgres: the call ended while its statements were on the way to the server: "+context.Cause(ctx).Error())
	}
}

// shared runs the requests of batch in one pipeline on one connection
// and answers each in its out.
func (b *Bridge) shared(ctx context.Context, batch []*coalesce.Entry[*queued]) {
	parts := make([]*part, 0, len(batch))
	for _, q := range batch {
		timeout, ok := b.timeLeft(q.Ctx)
		if !ok || q.Ctx.Err() != nil {
			abi.AppendError(&q.Item.out, abi.StatusUnavailable, "postgres: the call's deadline has passed")
			continue
		}
		parts = append(parts, &part{req: q.Item.req, ms: timeoutStep(timeout), e: &q.Item.out})
	}
	if len(parts) == 0 {
		return
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		for _, x := range parts {
			x.answer(err, b.maxBytes)
		}
		return
	}
	defer conn.Release()
	pc := conn.Conn().PgConn()
	err = b.pipeline(ctx, pc, state(pc), parts)
	clear(state(pc).values)
	err = afterPrepared(ctx, pc, err, parts...)
	if err != nil {
		b.abandon(ctx, pc)
	} else {
		b.retire(ctx, pc)
	}
	for _, x := range parts {
		x.answer(err, b.maxBytes)
	}
}

// clone returns a copy of r that aliases nothing of r's.
func (r *request) clone() *request {
	size := 0
	for i := range r.stmts {
		size += len(r.stmts[i].sql)
	}
	for i := range r.params {
		size += len(r.params[i].Bytes)
	}
	arena := make([]byte, 0, size)
	keep := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(arena)
		arena = append(arena, b...)
		return arena[start:len(arena):len(arena)]
	}
	n := &request{mode: r.mode, stmts: slices.Clone(r.stmts), params: slices.Clone(r.params)}
	for i := range n.stmts {
		n.stmts[i].sql = keep(n.stmts[i].sql)
	}
	for i := range n.params {
		n.params[i].Bytes = keep(n.params[i].Bytes)
	}
	return n
}
