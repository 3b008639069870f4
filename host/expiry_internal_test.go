package host

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
)

// TestWriteEventWaitsForAnExpiryCheck: while the expiry watch checks a
// record (from the read that finds it gone to the expire event), a write
// of that record publishes its event only after the expire event. An
// outside drill saw "put v1, put v2, expire v1" for agents rewritten as
// their TTL passed: the rewrite's event landed between the check's read
// and its publication, and the last event said the live record expired.
func TestWriteEventWaitsForAnExpiryCheck(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{Plugin: "builtin:memory"})
	require.NoError(t, err)
	defer st.Close(ctx)
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	mu := st.expiry.lock(abi.KindAgentState, "a") // as check holds it
	written := make(chan error, 1)
	go func() {
		_, err := st.PutAgentState(ctx, AgentState{AgentID: "a", State: []byte("v2")})
		written <- err
	}()
	select {
	case err := <-written:
		t.Fatalf("the write's event was published during the check (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	st.bus.Publish(events.Event{Kind: abi.KindAgentState.Name(), Op: events.OpExpire, AgentID: "a", Key: "a", Version: 1, Time: st.now()})
	mu.Unlock()
	require.NoError(t, <-written)
	for _, op := range []string{events.OpExpire, events.OpPut} {
		select {
		case ev := <-sub.Events():
			require.Equal(t, op, ev.Op, "%+v", ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", op)
		}
	}
}

// TestExpiryWatchBoundedInBytes: the expiries watched are bounded by the
// bytes of their keys and agents, not only by their count. A plugin's
// ticks reporting writes of 512-byte IDs, with expiries in 2099, held
// 650–750 MB of a daemon's heap in the watch before.
func TestExpiryWatchBoundedInBytes(t *testing.T) {
	w := &expiryWatch{s: &Store{}, byKey: map[watchKey]*watched{}, wake: make(chan struct{}, 1)}
	id := string(make([]byte, 512))
	far := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 100_000 {
		key := fmt.Sprintf("%s%d", id, i)
		w.set(abi.KindAgentState, key, key, 1, far, nil)
	}
	require.LessOrEqual(t, w.bytes, maxWatchedBytes)
	require.Less(t, len(w.queue), 100_000)
	require.Equal(t, uint64(100_000-len(w.queue)), w.dropped.Load(), "the writes past the bound are counted")

	// Entries that leave give their room back.
	for len(w.queue) > 0 {
		x := w.queue[0]
		w.set(x.kind, x.key, x.agent, 0, time.Time{}, nil)
	}
	require.Zero(t, w.bytes)
}
