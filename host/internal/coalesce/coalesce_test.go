package coalesce

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// flushes records what each flush got.
type flushes struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{} // when not nil, each flush waits for it
	started chan struct{} // when not nil, each flush signals its start
}

func (f *flushes) flush(ctx context.Context, batch []*Entry[int]) {
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.hold != nil {
		<-f.hold
	}
	items := make([]int, len(batch))
	for i, e := range batch {
		items[i] = e.Item
	}
	f.mu.Lock()
	f.batches = append(f.batches, items)
	f.mu.Unlock()
}

// occupy takes every slot of c with requests that run until release is
// called.
func occupy[T any](t *testing.T, c *Coalescer[T], zero T) (release func()) {
	t.Helper()
	hold := make(chan struct{})
	var wg sync.WaitGroup
	for range c.Slots() {
		wg.Go(func() {
			c.Do(context.Background(), func() { <-hold }, func() T { return zero })
		})
	}
	waitFor(t, func() bool { return c.Running() == c.Slots() })
	return func() { close(hold); wg.Wait() }
}

// wait queues item behind occupied slots; it returns how Do ended.
func wait[T any](ctx context.Context, c *Coalescer[T], item T) Result {
	return c.Do(ctx, func() { panic("ran alone though every slot was taken") }, func() T { return item })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, time.Millisecond)
}

// Requests that find every slot taken wait, and go in one batch, in
// queue order, once a slot is handed on; batches keep to the weight.
func TestQueuedRequestsGoTogether(t *testing.T) {
	var f flushes
	c := New(1, 5, func(n int) int { return n }, f.flush)
	release := occupy(t, c, 0)

	results := make([]Result, 4)
	var wg sync.WaitGroup
	for i, w := range []int{2, 2, 3, 1} {
		wg.Go(func() { results[i] = wait(context.Background(), c, w) })
		waitFor(t, func() bool { return c.Queued() == i+1 })
	}
	release()
	wg.Wait()
	require.Equal(t, []Result{Answered, Answered, Answered, Answered}, results)
	require.Equal(t, [][]int{{2, 2}, {3, 1}}, f.batches, "at most a weight of 5 a batch")
	require.Equal(t, Stats{Batches: 2, Requests: 4}, c.Stats())
	waitFor(t, func() bool { return c.Running() == 0 })
}

// A request heavier than the weight still goes, alone.
func TestHeavyRequestGoesAlone(t *testing.T) {
	var f flushes
	c := New(1, 5, func(n int) int { return n }, f.flush)
	release := occupy(t, c, 0)
	done := make(chan Result)
	go func() { done <- wait(context.Background(), c, 9) }()
	waitFor(t, func() bool { return c.Queued() == 1 })
	release()
	require.Equal(t, Answered, <-done)
	require.Equal(t, [][]int{{9}}, f.batches)
}

// Start takes a slot past the count, and Finish gives it back; a request
// finding a slot free runs alone, on the caller's goroutine.
func TestStartPastTheCount(t *testing.T) {
	var f flushes
	c := New(1, 5, func(n int) int { return n }, f.flush)
	release := occupy(t, c, 0)
	c.Start()
	require.Equal(t, 2, c.Running())
	c.Finish()
	release()
	waitFor(t, func() bool { return c.Running() == 0 })
	ran := false
	require.Equal(t, Answered, c.Do(context.Background(), func() { ran = true }, func() int { panic("queued though a slot was free") }))
	require.True(t, ran)
	require.Zero(t, c.Running())
	require.Empty(t, f.batches)
}

// A queued request whose context ends before a flusher takes it leaves
// the queue unsent; one that ends while a flusher holds it is maybe sent,
// and its batch goes on.
func TestAbandonedRequests(t *testing.T) {
	f := flushes{hold: make(chan struct{}), started: make(chan struct{}, 1)}
	c := New(1, 10, func(int) int { return 1 }, f.flush)
	release := occupy(t, c, 0)

	early, cancelEarly := context.WithCancel(context.Background())
	unsent := make(chan Result)
	go func() { unsent <- wait(early, c, 1) }()
	waitFor(t, func() bool { return c.Queued() == 1 })
	cancelEarly()
	require.Equal(t, Unsent, <-unsent)
	require.Zero(t, c.Queued())

	late, cancelLate := context.WithCancel(context.Background())
	maybe := make(chan Result)
	other := make(chan Result)
	go func() { maybe <- wait(late, c, 2) }()
	waitFor(t, func() bool { return c.Queued() == 1 })
	go func() { other <- wait(context.Background(), c, 3) }()
	waitFor(t, func() bool { return c.Queued() == 2 })
	go release()
	<-f.started
	cancelLate()
	require.Equal(t, MaybeSent, <-maybe)
	close(f.hold)
	require.Equal(t, Answered, <-other)
	require.Equal(t, [][]int{{2, 3}}, f.batches)
	waitFor(t, func() bool { return c.Running() == 0 })
}

// A batch's context is no caller's: a caller's cancellation does not end
// it, and its deadline is the latest of the batch, or none.
func TestBatchContext(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	soon, c1 := context.WithTimeout(context.Background(), time.Minute)
	defer c1()
	later, c2 := context.WithTimeout(context.Background(), time.Hour)
	defer c2()

	ctx, done := batchContext([]*Entry[int]{{Ctx: soon}, {Ctx: later}})
	d, ok := ctx.Deadline()
	require.True(t, ok)
	want, _ := later.Deadline()
	require.Equal(t, want, d)
	done()

	ctx, done = batchContext([]*Entry[int]{{Ctx: cancelled}, {Ctx: soon}, {Ctx: context.Background()}})
	defer done()
	_, ok = ctx.Deadline()
	require.False(t, ok, "one caller without a deadline")
	require.NoError(t, ctx.Err(), "not ended by the first caller's cancellation")
}

// Bursts of callers on few slots: every request is answered, none is left
// in the queue with no one to send it once the burst is over (the check
// for a free slot and the queueing are one step).
func TestNoRequestIsStranded(t *testing.T) {
	var sent sync.Map
	c := New(2, 8, func(int) int { return 1 }, func(_ context.Context, batch []*Entry[int]) {
		for _, e := range batch {
			sent.Store(e.Item, true)
		}
	})
	const bursts, callers = 500, 8
	for b := range bursts {
		done := make(chan struct{})
		go func() {
			defer close(done)
			var wg sync.WaitGroup
			for g := range callers {
				wg.Go(func() {
					n := b*callers + g
					run := func() { time.Sleep(100 * time.Microsecond); sent.Store(n, true) } // a round trip
					if r := c.Do(context.Background(), run, func() int { return n }); r != Answered {
						t.Errorf("request %d: %v", n, r)
					}
				})
			}
			wg.Wait()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("burst %d: requests stranded: %d queued, %d slots running", b, c.Queued(), c.Running())
		}
	}
	count := 0
	sent.Range(func(any, any) bool { count++; return true })
	require.Equal(t, bursts*callers, count)
	waitFor(t, func() bool { return c.Running() == 0 })
}

// TestTrackedFlusherCountsFromFinish: a tracked flusher is counted before
// the Finish that starts it returns, and until it has freed its slot, so
// that work in flight never looks drained between a caller leaving and
// its flusher starting.
func TestTrackedFlusherCountsFromFinish(t *testing.T) {
	f := &flushes{hold: make(chan struct{})}
	c := New(1, 5, func(n int) int { return n }, f.flush)
	var inFlight atomic.Int64
	c.Track(func() { inFlight.Add(1) }, func() { inFlight.Add(-1) })
	c.Start() // the slot, as a request running alone holds it
	answered := make(chan Result)
	go func() {
		answered <- c.Do(context.Background(), func() { t.Error("ran alone") }, func() int { return 1 })
	}()
	waitFor(t, func() bool { return c.Queued() == 1 })
	c.Finish() // hands the slot to a flusher, which waits in its flush
	require.Equal(t, int64(1), inFlight.Load(), "the flusher is counted once Finish returns")
	close(f.hold)
	require.Equal(t, Answered, <-answered)
	waitFor(t, func() bool { return inFlight.Load() == 0 && c.Running() == 0 })
}

// Bound: a request whose context has no deadline waits no longer than the
// bound behind busy slots (Unsent, its context still alive), and its
// batch gets the bound as its deadline.
func TestBoundedWait(t *testing.T) {
	var f flushes
	var deadline atomic.Bool
	c := New(1, 10, func(int) int { return 1 }, func(ctx context.Context, b []*Entry[int]) {
		_, ok := ctx.Deadline()
		deadline.Store(ok)
		f.flush(ctx, b)
	})
	c.Bound(100 * time.Millisecond)
	release := occupy(t, c, 0)
	start := time.Now()
	require.Equal(t, Unsent, wait(context.Background(), c, 1))
	require.Less(t, time.Since(start), 5*time.Second)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	// A request taken before its bound ends is answered, with a deadline.
	done := make(chan Result, 1)
	go func() { done <- wait(context.Background(), c, 2) }()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.queue) == 1 })
	release()
	require.Equal(t, Answered, <-done)
	require.True(t, deadline.Load(), "the batch of a request without a deadline has the bound's")
}
