package redisbridge

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Auto-pipelining: the bridge sees the requests of every instance of its
// backend, and concurrent ones share pipelines instead of taking a
// connection and a round trip each (as rueidis does for its callers).
//
// At most maxInFlight pipelines are on the wire at once. A request that
// finds one free sends its commands at once on the caller's goroutine, as
// if alone. Otherwise it queues; when a pipeline comes back and requests
// are waiting, a flusher goroutine takes all of them (up to maxCommands
// commands) and sends their commands as one pipeline on one connection,
// then again while more wait. So a lone caller pays no hand-off, and under
// load the requests of one round trip travel together.
//
// Only pipelines and script calls of at most maxSharedRequest commands
// share: a transaction keeps its own connection (MULTI/EXEC), a bulk
// request is a pipeline of its own, and no blocking or connection-state
// command is in the command table. A cluster client keeps per-request
// pipelines.
//
// Outcomes stay per request. A shared pipeline that fails before any byte
// is written fails every command unsent (UNAVAILABLE); one that fails after
// fails every command not yet answered as possibly sent, so each request
// with a write among them is UNKNOWN (outcome.go). A queued request whose
// context ends leaves the queue untouched by Redis (UNAVAILABLE) if no
// flusher has taken it yet, and is answered as possibly sent (UNKNOWN with
// a write) if one has.

// maxSharedRequest is the most commands of a request that shares
// pipelines: a larger one (a bulk write) already amortises its round trip,
// and queueing it would hold small requests behind it.
const maxSharedRequest = 16

// defaultMaxInFlight is how many pipelines a bridge keeps on the wire at
// once (BENCHMARKS.md, Redis: auto-pipelining).
const defaultMaxInFlight = 2

// coalescer queues the requests that find every pipeline in flight.
type coalescer struct {
	send        func(ctx context.Context, cmds []*rawCmd) // one pipeline (Bridge.exec)
	maxInFlight int
	maxCommands int // of one shared pipeline

	mu       sync.Mutex
	inFlight int
	queue    []*queued
}

// queued is a request waiting for a flusher.
type queued struct {
	ctx   context.Context
	cmds  []*rawCmd
	done  chan struct{} // closed once its commands have their replies
	taken bool          // under mu: a flusher holds it
}

// sendResult is how a request sent through the coalescer ended.
type sendResult uint8

const (
	answered       sendResult = iota // the commands have their replies or errors
	abandonedQueue                   // the caller's context ended before anything was sent
	abandonedSent                    // it ended once a flusher held the commands: possibly sent
)

// do sends cmds, sharing a pipeline with concurrent requests when every
// pipeline is in flight. Unless it returns answered, the commands belong
// to the flusher and the caller must not read them.
func (c *coalescer) do(ctx context.Context, cmds []*rawCmd) sendResult {
	c.mu.Lock()
	if c.inFlight < c.maxInFlight {
		c.inFlight++
		c.mu.Unlock()
		c.send(ctx, cmds)
		c.next()
		return answered
	}
	// The request's byte arguments alias the plugin's memory, which is the
	// plugin's again once the bridge answers: a request that may be
	// answered before a flusher writes it must own its bytes.
	own(cmds)
	q := &queued{ctx: ctx, cmds: cmds, done: make(chan struct{})}
	c.queue = append(c.queue, q)
	c.mu.Unlock()
	select {
	case <-q.done:
		return answered
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if q.taken {
		select {
		case <-q.done:
			return answered
		default:
			return abandonedSent
		}
	}
	if i := slices.Index(c.queue, q); i >= 0 {
		c.queue = slices.Delete(c.queue, i, i+1)
	}
	return abandonedQueue
}

// next hands the caller's pipeline slot to a flusher of the queued
// requests, or frees it.
func (c *coalescer) next() {
	c.mu.Lock()
	batch := c.take()
	if batch == nil {
		c.inFlight--
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go c.flush(batch)
}

// take removes the first queued requests, up to maxCommands commands (at
// least one request), from the queue; nil when it is empty. The caller
// holds mu.
func (c *coalescer) take() []*queued {
	if len(c.queue) == 0 {
		return nil
	}
	n, cmds := 0, 0
	for n < len(c.queue) && (n == 0 || cmds+len(c.queue[n].cmds) <= c.maxCommands) {
		cmds += len(c.queue[n].cmds)
		c.queue[n].taken = true
		n++
	}
	batch := slices.Clone(c.queue[:n])
	c.queue = slices.Delete(c.queue, 0, n)
	return batch
}

// flush sends batches of queued requests until none waits, then frees its
// pipeline slot.
func (c *coalescer) flush(batch []*queued) {
	for batch != nil {
		var cmds []*rawCmd
		for _, q := range batch {
			cmds = append(cmds, q.cmds...)
		}
		ctx, cancel := batchContext(batch)
		c.send(ctx, cmds)
		cancel()
		for _, q := range batch {
			close(q.done)
		}
		c.mu.Lock()
		if batch = c.take(); batch == nil {
			c.inFlight--
		}
		c.mu.Unlock()
	}
}

// batchContext is the context of a shared pipeline: not cancelled by any
// one caller (a caller that gives up is answered without it), with the
// latest deadline of the batch, or none if one caller has none (then the
// bridge's read and write timeouts bound it).
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

// own replaces the byte arguments of cmds with one copy of them all.
func own(cmds []*rawCmd) {
	size := 0
	for _, c := range cmds {
		for _, a := range c.Args() {
			if b, ok := a.([]byte); ok {
				size += len(b)
			}
		}
	}
	arena := make([]byte, 0, size)
	for _, c := range cmds {
		args := c.Args()
		for i, a := range args {
			if b, ok := a.([]byte); ok {
				start := len(arena)
				arena = append(arena, b...)
				args[i] = arena[start:len(arena):len(arena)]
			}
		}
	}
}
