// Package coalesce shares round trips between the concurrent requests of
// one client, as rueidis does for its callers: the Redis and PostgreSQL
// bridges see every instance of their backend, and requests that would
// each wait for a connection travel together instead.
//
// A Coalescer has a number of slots (pipelines on the wire, or
// connections). A request that finds one free runs at once on its
// caller's goroutine, as if there were no Coalescer, so a lone caller
// pays no hand-off; one that finds none queues (both in Do). When a
// request finishes and others wait, a flusher goroutine takes the queue
// (up to a weight) and sends it as one batch, then again while more
// wait, and frees its slot once the queue is empty.
//
// A queued request whose context ends is Unsent if no flusher has taken
// it yet, and MaybeSent if one has: then its batch goes on without it,
// and what the flusher writes for it is nobody's.
package coalesce

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Result is how a request ended.
type Result uint8

const (
	// Answered: it ran alone, or a flusher sent it and is done with it.
	Answered Result = iota
	// Unsent: its context ended before any flusher took it.
	Unsent
	// MaybeSent: its context ended once a flusher held it.
	MaybeSent
)

// Entry is a queued request as a flush sees it.
type Entry[T any] struct {
	Ctx  context.Context // the caller's
	Item T

	done  chan struct{} // closed once its flush returned
	taken bool          // under mu: a flusher holds it
}

// Coalescer queues the requests that find every slot taken and sends
// them in batches.
type Coalescer[T any] struct {
	slots     int
	maxWeight int
	maxWait   time.Duration // Bound; 0: a queued request waits as long as its context
	weight    func(T) int
	flush     func(ctx context.Context, batch []*Entry[T])

	// enter and leave, when set (Track), bracket each flusher.
	enter, leave func()

	mu      sync.Mutex
	running int // slots taken, by callers or flushers
	queue   []*Entry[T]
	stats   Stats
}

// Stats counts the batches flushers sent and the requests they carried.
type Stats struct {
	Batches, Requests uint64
}

// New returns a Coalescer of slots slots whose flushers send batches of
// at most maxWeight (and at least one request) with flush. flush gets
// a context that no one caller cancels, with the latest deadline of the
// batch (none if one request has none); it must answer every entry.
func New[T any](slots, maxWeight int, weight func(T) int, flush func(ctx context.Context, batch []*Entry[T])) *Coalescer[T] {
	return &Coalescer[T]{slots: max(slots, 1), maxWeight: maxWeight, weight: weight, flush: flush}
}

// Track makes each flusher count as work in flight from before the call
// that starts it returns: Finish calls enter on its caller's goroutine
// before it starts a flusher, and the flusher calls leave once it has
// freed its slot. Call it before the first request.
func (c *Coalescer[T]) Track(enter, leave func()) { c.enter, c.leave = enter, leave }

// Bound makes a request that queues wait at most d from then, in the
// queue and in the batch that carries it, even when its context has no
// deadline or a later one: past it, Do returns Unsent or MaybeSent with
// the caller's context still alive. Call it before the first request.
func (c *Coalescer[T]) Bound(d time.Duration) { c.maxWait = d }

// Start takes a slot even when none is free, for a request that must not
// queue; its caller then calls Finish.
func (c *Coalescer[T]) Start() {
	c.mu.Lock()
	c.running++
	c.mu.Unlock()
}

// Finish hands the caller's slot to a flusher of the queued requests, or
// frees it.
func (c *Coalescer[T]) Finish() {
	c.mu.Lock()
	batch := c.take()
	if batch == nil {
		c.running--
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if c.enter != nil {
		c.enter()
	}
	go c.flusher(batch)
}

// Do runs a request. When a slot is free it takes it and calls run on
// the caller's goroutine; otherwise it queues the item enqueue makes
// (called once, under the Coalescer's lock, so keep it short) and waits
// until a flusher has sent it, or ctx ends. Unless it returns Answered,
// the queued item belongs to the flusher that may hold it: its caller
// must not read it, and anything of the caller's it references may be
// read after Do returns. The check for a free slot and the queueing are
// one step: a request that finds none is queued before any other may
// finish and find the queue empty.
func (c *Coalescer[T]) Do(ctx context.Context, run func(), enqueue func() T) Result {
	c.mu.Lock()
	if c.running < c.slots {
		c.running++
		c.mu.Unlock()
		run()
		c.Finish()
		return Answered
	}
	if c.maxWait > 0 {
		limit := time.Now().Add(c.maxWait)
		if d, ok := ctx.Deadline(); !ok || d.After(limit) {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, limit)
			defer cancel()
		}
	}
	e := &Entry[T]{Ctx: ctx, Item: enqueue(), done: make(chan struct{})}
	c.queue = append(c.queue, e)
	c.mu.Unlock()
	select {
	case <-e.done:
		return Answered
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.taken {
		select {
		case <-e.done:
			return Answered
		default:
			return MaybeSent
		}
	}
	if i := slices.Index(c.queue, e); i >= 0 {
		c.queue = slices.Delete(c.queue, i, i+1)
	}
	return Unsent
}

// take removes the first queued requests, up to maxWeight (at least
// one), from the queue; nil when it is empty. The caller holds mu.
func (c *Coalescer[T]) take() []*Entry[T] {
	if len(c.queue) == 0 {
		return nil
	}
	n, w := 0, 0
	for n < len(c.queue) && (n == 0 || w+c.weight(c.queue[n].Item) <= c.maxWeight) {
		w += c.weight(c.queue[n].Item)
		c.queue[n].taken = true
		n++
	}
	batch := slices.Clone(c.queue[:n])
	c.queue = slices.Delete(c.queue, 0, n)
	c.stats.Batches++
	c.stats.Requests += uint64(n)
	return batch
}

// flusher sends batches of queued requests until none waits, then frees
// its slot.
func (c *Coalescer[T]) flusher(batch []*Entry[T]) {
	for batch != nil {
		ctx, cancel := batchContext(batch)
		c.flush(ctx, batch)
		cancel()
		for _, e := range batch {
			close(e.done)
		}
		c.mu.Lock()
		if batch = c.take(); batch == nil {
			c.running--
		}
		c.mu.Unlock()
	}
	if c.leave != nil {
		c.leave()
	}
}

// batchContext is the context of a batch: not cancelled by any one
// caller (a caller that gives up is answered without it), with the
// latest deadline of the batch, or none if one caller has none.
func batchContext[T any](batch []*Entry[T]) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, e := range batch {
		d, ok := e.Ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(batch[0].Ctx))
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].Ctx), latest)
}

// Slots is how many requests run at once outside the queue.
func (c *Coalescer[T]) Slots() int { return c.slots }

// Running is how many slots are taken now.
func (c *Coalescer[T]) Running() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// Queued is how many requests wait now.
func (c *Coalescer[T]) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Stats returns the counts so far.
func (c *Coalescer[T]) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}
