package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Responses that find the room full wait for it while they weigh less
// than maxWaiting together; past that, a response is refused at once
// (errNoRoom) rather than held with what it answers, and waiting is
// possible again as those waiting leave.
func TestRoomBoundsTheResponsesWaiting(t *testing.T) {
	const big = 4 * smallResponse
	r := newRoom(big, 2*big)
	held, err := r.take(context.Background(), big)
	require.NoError(t, err)
	require.EqualValues(t, big, held)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	took := make(chan error, 2)
	for range 2 {
		go func() {
			n, err := r.take(ctx, big)
			r.give(n)
			took <- err
		}()
	}
	require.Eventually(t, func() bool { return r.waiting.Load() == 2*big }, 5*time.Second, time.Millisecond)
	_, err = r.take(ctx, big)
	require.ErrorIs(t, err, errNoRoom, "a third would wait past maxWaiting")
	n, err := r.take(ctx, smallResponse)
	require.NoError(t, err, "small responses take no room")
	require.Zero(t, n)

	r.give(held)
	for range 2 {
		require.NoError(t, <-took, "those waiting get the room in turn")
	}
	require.Zero(t, r.waiting.Load())
	n, err = r.take(ctx, big)
	require.NoError(t, err)
	r.give(n)
}
