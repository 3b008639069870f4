package host

import (
	"context"
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
