package host

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// newTestPool returns a pool of size whose instances are bare structs,
// counting how many it made.
func newTestPool(size int) (*pool, *int) {
	var p pool
	made := new(int)
	p.init(size, 0, func(context.Context) (*instance, error) {
		*made++
		return &instance{}, nil
	})
	return &p, made
}

// TestPoolIsLIFO: the instance put back last is handed out first, so one
// hot instance serves a lone caller while the others stay idle.
func TestPoolIsLIFO(t *testing.T) {
	ctx := t.Context()
	p, _ := newTestPool(3)
	a, err := p.get(ctx)
	require.NoError(t, err)
	b, err := p.get(ctx)
	require.NoError(t, err)
	p.put(a, false)
	p.put(b, false)
	for range 3 {
		got, err := p.get(ctx)
		require.NoError(t, err)
		require.Same(t, b, got, "the instance put back last comes out first")
		p.put(got, false)
	}
}

// TestPoolHandsOffToWaiters: with every slot taken, callers wait in
// arrival order and a put hands its instance to the first of them; a freed
// slot lets a waiter create an instance; a waiter whose context ends leaves
// the queue without taking a slot; close releases the rest.
func TestPoolHandsOffToWaiters(t *testing.T) {
	ctx := t.Context()
	p, made := newTestPool(1)
	held, err := p.get(ctx)
	require.NoError(t, err)

	type result struct {
		in  *instance
		err error
	}
	wait := func(ctx context.Context) chan result {
		r := make(chan result, 1)
		go func() {
			in, err := p.get(ctx)
			r <- result{in, err}
		}()
		return r
	}
	waiting := func(n int) {
		require.Eventually(t, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.waiters) == n
		}, 5*time.Second, time.Millisecond)
	}

	first := wait(ctx)
	waiting(1)
	cancelled, cancel := context.WithCancel(ctx)
	second := wait(cancelled)
	waiting(2)
	third := wait(ctx)
	waiting(3)

	p.put(held, false)
	r := <-first
	require.NoError(t, r.err)
	require.Same(t, held, r.in, "the first waiter gets the instance put back")

	cancel()
	require.ErrorIs(t, (<-second).err, context.Canceled)
	waiting(1)

	p.freeSlot() // the first waiter's instance is discarded
	r = <-third
	require.NoError(t, r.err)
	require.NotSame(t, held, r.in, "a freed slot lets the waiter create its own")
	require.Equal(t, 2, *made)

	fourth := wait(ctx)
	waiting(1)
	p.close(ctx)
	require.ErrorIs(t, (<-fourth).err, ErrClosed)
	live, idle, size := p.counts()
	require.Equal(t, 1, live, "the instance still out holds the only slot")
	require.Zero(t, idle)
	require.Equal(t, 1, size)
}

// TestDecodeAgentStateMatchesABI: the store's decoder of answered agent
// states reads what abi.AgentState.Decode reads, reusing the asked ID.
func TestDecodeAgentStateMatchesABI(t *testing.T) {
	in := abi.AgentState{AgentID: "agent-7", State: []byte(`{"a":1}`), Version: 9, UpdatedAt: time.Unix(5, 6).UTC(), ExpiresAt: time.Unix(7, 8).UTC()}
	var e abi.Encoder
	in.Encode(&e)
	for _, asked := range []string{"agent-7", "other"} {
		var want, got AgentState
		d := abi.NewDecoder(e.Bytes())
		want.Decode(d)
		require.NoError(t, d.Finish())
		d = abi.NewDecoder(e.Bytes())
		decodeAgentState(d, &got, asked)
		require.NoError(t, d.Finish())
		require.Equal(t, want, got)
	}
	allocs := math.Inf(1) // the fewest of five rounds: every goroutine's allocations count
	for range 5 {
		allocs = min(allocs, testing.AllocsPerRun(100, func() {
			var got AgentState
			decodeAgentState(abi.NewDecoder(e.Bytes()), &got, "agent-7")
		}))
	}
	require.Equal(t, 1.0, allocs, "only the state document is copied")
}
