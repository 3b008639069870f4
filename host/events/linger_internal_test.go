package events

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// batchLog is an in-process log that goes through the append queue, as a
// Redis or PostgreSQL one does, and keeps the size of each append.
type batchLog struct {
	*memLog
	mu      sync.Mutex
	batches []int
}

func (l *batchLog) async() bool { return true }

func (l *batchLog) append(ctx context.Context, evs []Event) error {
	l.mu.Lock()
	l.batches = append(l.batches, len(evs))
	l.mu.Unlock()
	return l.memLog.append(ctx, evs)
}

func (l *batchLog) sizes() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.batches...)
}

func lingeringBus(t *testing.T, linger time.Duration) (*Bus, *batchLog) {
	opts := Options{linger: linger}.withDefaults(true)
	l := &batchLog{memLog: newMemLog(opts.Retention)}
	b := newBus(l, opts, nil)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b, l
}

// An event that finds the queue empty waits for the events of the next
// writes and goes in one append with them.
func TestLoneEventSharesItsAppend(t *testing.T) {
	b, l := lingeringBus(t, 300*time.Millisecond)
	b.Publish(Event{Kind: "metrics", Op: OpPut, Key: "m0"})
	redistest.WaitFor(t, 5*time.Second, time.Millisecond, func() bool { return len(b.queue) == 0 }, "the appender takes the first event")
	for i := 1; i < 5; i++ {
		b.Publish(Event{Kind: "metrics", Op: OpPut, Key: "m"})
	}
	redistest.WaitFor(t, 5*time.Second, time.Millisecond, func() bool { return b.Stats().Published == 5 }, "five events appended")
	assert.Equal(t, []int{5}, l.sizes(), "the events held for the first one's append")
}

// Close does not wait out the linger: what is queued is appended at once.
func TestCloseDoesNotWaitForTheLinger(t *testing.T) {
	b, l := lingeringBus(t, time.Hour)
	b.Publish(Event{Kind: "metrics", Op: OpPut, Key: "m"})
	redistest.WaitFor(t, 5*time.Second, time.Millisecond, func() bool { return len(b.queue) == 0 }, "the appender takes the event")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, b.Close(ctx), "Close appended what was queued before its deadline")
	assert.Equal(t, []int{1}, l.sizes())
	assert.Equal(t, uint64(1), b.Stats().Published)
}
