package backup

import (
	"context"
	"hash/maphash"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

func newWalk(t *testing.T, k abi.RecordKind) (*cursorWalk, *host.Store) {
	st, err := host.Open(context.Background(), host.Config{Plugin: "builtin:memory"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	w := &cursorWalk{seed: maphash.MakeSeed()}
	w.start(k, nil)
	return w, st
}

func state(id string) Record {
	return Record{Kind: abi.KindAgentState, State: abi.AgentState{AgentID: id}}
}

func metric(agent, name string, ts int64) Record {
	return Record{Kind: abi.KindMetric, Metric: abi.Metric{AgentID: agent, Name: name, Timestamp: time.Unix(0, ts)}}
}

// A listing is in order (section 13.4): a record that does not sort after
// the one before it, on its page or an earlier one, ends the walk, since
// a backend that answers records it answered before under new cursors
// would keep a reader going for ever.
func TestWalkRefusesRecordsOutOfOrder(t *testing.T) {
	w, st := newWalk(t, abi.KindAgentState)
	require.NoError(t, w.ordered(st, []Record{state("a"), state("b")}))
	require.NoError(t, w.step(st, []byte("c1"), 2))
	require.NoError(t, w.ordered(st, []Record{state("c")}))
	require.NoError(t, w.step(st, []byte("c2"), 1))
	err := w.ordered(st, []Record{state("c")})
	require.ErrorIs(t, err, host.ErrInternal)
	require.ErrorContains(t, err, `page 3 of its agent_states with a record that does not sort after the one before it (agent_state "c", then agent_state "c")`)

	m, st := newWalk(t, abi.KindMetric)
	require.NoError(t, m.ordered(st, []Record{metric("a", "cpu", 1), metric("a", "cpu", 2), metric("a", "mem", 0), metric("b", "a", 0)}))
	require.ErrorContains(t, m.ordered(st, []Record{metric("a", "zzz", 9)}), "does not sort after")

	// A new kind starts again.
	w.start(abi.KindAlert, nil)
	require.NoError(t, w.ordered(st, []Record{{Kind: abi.KindAlert, Alert: abi.Alert{ID: "a"}}}))
}

// Empty pages with cursors to go on are followed, up to maxEmptyPages in
// a row; a page with a record starts the count again.
func TestWalkBoundsEmptyPagesInARow(t *testing.T) {
	w, st := newWalk(t, abi.KindAgentState)
	cursor := 0
	next := func() []byte { cursor++; return []byte(strconv.Itoa(cursor)) }
	for range maxEmptyPages - 1 {
		require.NoError(t, w.step(st, next(), 0))
	}
	require.NoError(t, w.step(st, next(), 1), "a record: progress")
	for range maxEmptyPages - 1 {
		require.NoError(t, w.step(st, next(), 0))
	}
	err := w.step(st, next(), 0)
	require.ErrorIs(t, err, host.ErrInternal)
	require.ErrorContains(t, err, "answered 10000 empty pages of its agent_states in a row")
}
