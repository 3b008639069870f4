package coalesce

import (
	"context"
	"sync"
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

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, time.Millisecond)
}

// Requests that find every slot taken wait, and go in one batch, in
// queue order, once a slot is handed on; batches keep to the weight.
func TestQueuedRequestsGoTogether(t *testing.T) {
	var f flushes
	c := New(1, 5, func(n int) int { return n }, f.flush)
	require.True(t, c.TryStart())
	require.False(t, c.TryStart(), "one slot")

	results := make([]Result, 4)
	var wg sync.WaitGroup
	for i, w := range []int{2, 2, 3, 1} {
		wg.Go(func() { results[i] = c.Wait(context.Background(), w) })
		waitFor(t, func() bool { return c.Queued() == i+1 })
	}
	c.Finish()
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
	require.True(t, c.TryStart())
	done := make(chan Result)
	go func() { done <- c.Wait(context.Background(), 9) }()
	waitFor(t, func() bool { return c.Queued() == 1 })
	c.Finish()
	require.Equal(t, Answered, <-done)
	require.Equal(t, [][]int{{9}}, f.batches)
}

// Start takes a slot past the count, and Finish gives it back.
func TestStartPastTheCount(t *testing.T) {
	var f flushes
	c := New(1, 5, func(n int) int { return n }, f.flush)
	require.True(t, c.TryStart())
	c.Start()
	require.Equal(t, 2, c.Running())
	c.Finish()
	c.Finish()
	require.Zero(t, c.Running())
	require.True(t, c.TryStart())
	c.Finish()
}

// A queued request whose context ends before a flusher takes it leaves
// the queue unsent; one that ends while a flusher holds it is maybe sent,
// and its batch goes on.
func TestAbandonedRequests(t *testing.T) {
	f := flushes{hold: make(chan struct{}), started: make(chan struct{}, 1)}
	c := New(1, 10, func(int) int { return 1 }, f.flush)
	require.True(t, c.TryStart())

	early, cancelEarly := context.WithCancel(context.Background())
	unsent := make(chan Result)
	go func() { unsent <- c.Wait(early, 1) }()
	waitFor(t, func() bool { return c.Queued() == 1 })
	cancelEarly()
	require.Equal(t, Unsent, <-unsent)
	require.Zero(t, c.Queued())

	late, cancelLate := context.WithCancel(context.Background())
	maybe := make(chan Result)
	other := make(chan Result)
	go func() { maybe <- c.Wait(late, 2) }()
	waitFor(t, func() bool { return c.Queued() == 1 })
	go func() { other <- c.Wait(context.Background(), 3) }()
	waitFor(t, func() bool { return c.Queued() == 2 })
	c.Finish()
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
