package pgbridge

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/storage-host/storage-host/abi"
)

// Auto-pipelining: the bridge sees the requests of every instance of its
// backend, and concurrent small ones share a connection's round trip
// instead of each waiting for a connection of its own (as the Redis
// bridge does for its commands; RATIONALE.md, "Why do concurrent
// PostgreSQL reads share pipelines, and writes not?").
//
// A request takes a slot, one per pool connection, and runs alone on
// the caller's goroutine when one is free, as if there were no
// coalescer. A read (see reads) that finds none queues; a write runs
// alone all the same, its slot over the count. When a request ends and
// reads wait, a flusher goroutine takes them (up to maxSharedBatch statements) and
// sends them as one pipeline on one connection (Bridge.pipeline), then
// again while more wait. So a lone caller pays no hand-off, and under
// load the requests of one round trip travel together.
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
// pipelines: a larger one (a bulk write) already amortises its round
// trip, and queueing it would hold small requests behind it.
const maxSharedStatements = 16

// reads reports whether every statement of req is a SELECT, which, as
// far as the bridge can tell without parsing SQL, writes nothing. Only
// such requests share pipelines: a connection runs the transactions of
// a pipeline one after another, each commit waiting for its own WAL
// flush, where transactions on connections of their own are flushed
// together (PostgreSQL's group commit); shared, concurrent writes were
// slower, not faster (BENCHMARKS.md). A SELECT that writes (through a
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

// maxSharedBatch bounds the statements of one shared pipeline.
const maxSharedBatch = 128

// coalescer queues the requests that find every connection slot taken.
type coalescer struct {
	b     *Bridge
	slots int // requests running at once outside the queue: the pool's size

	mu      sync.Mutex
	running int // slots taken
	queue   []*queued
	shared  coalescerStats
}

// coalescerStats counts the shared pipelines and the requests they
// carried.
type coalescerStats struct {
	pipelines, requests uint64
}

func (c *coalescer) stats() coalescerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shared
}

// queued is a request waiting for a flusher.
type queued struct {
	ctx   context.Context
	req   *request    // a copy the queue owns
	out   abi.Encoder // its response, once done is closed
	done  chan struct{}
	taken bool // under mu: a flusher holds it
}

// do runs req and appends its response to e, in a pipeline shared with
// concurrent requests when every slot is taken and req reads.
func (c *coalescer) do(ctx context.Context, req *request, timeout time.Duration, e *abi.Encoder) {
	c.mu.Lock()
	if c.running < c.slots || !reads(req) {
		c.running++
		c.mu.Unlock()
		c.b.alone(ctx, req, timeout, e)
		c.next()
		return
	}
	// req aliases the caller's memory (the plugin's, for Serve), which is
	// the caller's again once it is answered: a queued request may
	// outlive the call.
	q := &queued{ctx: ctx, req: req.clone(), done: make(chan struct{})}
	c.queue = append(c.queue, q)
	c.mu.Unlock()
	select {
	case <-q.done:
		e.Raw(q.out.Bytes())
		return
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if q.taken {
		select {
		case <-q.done:
			e.Raw(q.out.Bytes())
		default:
			abi.AppendError(e, abi.StatusUnknown, "postgres: the call ended while its statements were on the way to the server: "+context.Cause(ctx).Error())
		}
		return
	}
	if i := slices.Index(c.queue, q); i >= 0 {
		c.queue = slices.Delete(c.queue, i, i+1)
	}
	abi.AppendError(e, abi.StatusUnavailable, "postgres: the call ended before its statements were sent: "+context.Cause(ctx).Error())
}

// next hands the caller's slot to a flusher of the queued requests, or
// frees it.
func (c *coalescer) next() {
	c.mu.Lock()
	batch := c.take()
	if batch == nil {
		c.running--
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go c.flush(batch)
}

// take removes the first queued requests, up to maxSharedBatch
// statements (at least one request), from the queue; nil when it is
// empty. The caller holds mu.
func (c *coalescer) take() []*queued {
	if len(c.queue) == 0 {
		return nil
	}
	n, stmts := 0, 0
	for n < len(c.queue) && (n == 0 || stmts+len(c.queue[n].req.stmts) <= maxSharedBatch) {
		stmts += len(c.queue[n].req.stmts)
		c.queue[n].taken = true
		n++
	}
	batch := slices.Clone(c.queue[:n])
	c.queue = slices.Delete(c.queue, 0, n)
	c.shared.pipelines++
	c.shared.requests += uint64(n)
	return batch
}

// flush runs batches of queued requests until none waits, then frees its
// slot.
func (c *coalescer) flush(batch []*queued) {
	for batch != nil {
		c.b.shared(batch)
		for _, q := range batch {
			close(q.done)
		}
		c.mu.Lock()
		if batch = c.take(); batch == nil {
			c.running--
		}
		c.mu.Unlock()
	}
}

// shared runs the requests of batch in one pipeline on one connection
// and answers each in its out.
func (b *Bridge) shared(batch []*queued) {
	ctx, cancel := batchContext(batch)
	defer cancel()
	parts := make([]*part, 0, len(batch))
	for _, q := range batch {
		timeout, ok := b.timeLeft(q.ctx)
		if !ok || q.ctx.Err() != nil {
			abi.AppendError(&q.out, abi.StatusUnavailable, "postgres: the call's deadline has passed")
			continue
		}
		parts = append(parts, &part{req: q.req, ms: timeoutStep(timeout), e: &q.out})
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
	if err != nil {
		_ = pc.Close(context.WithoutCancel(ctx))
	}
	for _, x := range parts {
		x.answer(err, b.maxBytes)
	}
}

// batchContext is the context of a shared pipeline: not cancelled by any
// one caller (a caller that gives up is answered without it), with the
// latest deadline of the batch, or none if one caller has none (then the
// statement timeouts bound it).
func batchContext(batch []*queued) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, q := range batch {
		d, ok := q.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(batch[0].ctx))
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
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
