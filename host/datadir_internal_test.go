package host

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
)

// Every answered write is on disk when its call returns: nothing it wrote
// is left waiting for a commit.
func TestWritesAreOnDiskWhenAnswered(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{Plugin: "builtin:local", DataDir: t.TempDir()}, WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	defer st.Close(ctx)
	require.True(t, st.p.kv.Durable())
	for i := range 50 {
		_, err := st.PutAgentState(ctx, AgentState{AgentID: "a" + strconv.Itoa(i%5), State: []byte(`{}`)})
		require.NoError(t, err)
		require.Zero(t, st.p.kv.Unsynced(), "put %d answered before its write was on disk", i)
		require.NoError(t, st.DeleteAgentState(ctx, "a"+strconv.Itoa(i%5)))
		require.Zero(t, st.p.kv.Unsynced(), "delete %d answered before its write was on disk", i)
	}
}

// A call whose commit fails (a full disk) is answered by what it did: one
// that wrote, a batch as a single put, may have written (its writes stay,
// to be committed with the next); one that wrote nothing, such as a
// write the failing store refused before it applied it, or an alert put
// that read first, was not applied.
func TestFailedCommitAnsweredByWhatTheCallWrote(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{Plugin: "builtin:local", DataDir: t.TempDir()}, WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	defer st.Close(ctx)
	_, err = st.PutAlert(ctx, Alert{ID: "al", AgentID: "a", Status: abi.AlertFiring, Severity: abi.SeverityWarning, Message: "m"})
	require.NoError(t, err)
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	require.NoError(t, err)
	defer sub.Close()

	full := fillDisk(st)
	// The first write after the disk filled is applied, then its commit
	// fails: each of these writes was applied before the store learnt.
	_, err = st.PutAgentStates(ctx, []AgentState{{AgentID: "b1", State: []byte(`{}`)}, {AgentID: "b2", State: []byte(`{}`)}})
	require.ErrorIs(t, err, ErrOutcomeUnknown, "a batch that wrote")
	// Now the store refuses writes before applying them.
	rs, err := st.PutAgentStates(ctx, []AgentState{{AgentID: "b3", State: []byte(`{}`)}})
	if err == nil { // refused item by item
		require.Len(t, rs, 1)
		err = rs[0].Err
	}
	require.ErrorIs(t, err, ErrUnavailable, "a batch refused before it wrote")
	require.NotErrorIs(t, err, ErrOutcomeUnknown)
	_, err = st.PutAlert(ctx, Alert{ID: "al", AgentID: "a", Status: abi.AlertResolved, Severity: abi.SeverityWarning, Message: "m"})
	require.ErrorIs(t, err, ErrUnavailable, "an alert put that read, then was refused")
	require.NotErrorIs(t, err, ErrOutcomeUnknown)

	// The writes of unknown outcome are told to subscribers, which read
	// them again; those refused are not.
	for _, want := range []string{"b1", "b2"} {
		select {
		case ev := <-sub.Events():
			require.Equal(t, events.OpUnknown, ev.Op)
			require.Equal(t, abi.KindAgentState.Name(), ev.Kind)
			require.Equal(t, want, ev.Key)
			require.Equal(t, want, ev.AgentID)
			require.Zero(t, ev.Version)
		case <-time.After(5 * time.Second):
			t.Fatalf("no event for %s, answered outcome unknown", want)
		}
	}

	full.Store(false)
	require.Eventually(t, func() bool {
		_, err := st.PutAgentState(ctx, AgentState{AgentID: "after", State: []byte(`{}`)})
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "writes are taken again once the disk has room")
	for id, want := range map[string]bool{"b1": true, "b2": true, "b3": false} {
		_, err := st.GetAgentState(ctx, id)
		if want {
			require.NoError(t, err, "%s, answered outcome unknown, was applied", id)
		} else {
			require.ErrorIs(t, err, ErrNotFound, "%s, answered unavailable, was not applied", id)
		}
	}
	al, err := st.GetAlert(ctx, "al")
	require.NoError(t, err)
	require.Equal(t, abi.AlertFiring, al.Status)
	// Until the put that succeeded: nothing of the refused writes (a try
	// of "after" may have been answered outcome unknown too).
	for {
		select {
		case ev := <-sub.Events():
			require.Equal(t, "after", ev.Key, "an event of a write refused before it wrote")
			if ev.Op == events.OpPut {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event for the put that succeeded")
		}
	}
}
