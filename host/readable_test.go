package host_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// A record that no answer could hold (Limits.MaxResponseBytes) is refused
// before the plugin stores it, in every write that carries one: stored,
// it would fail every get, page and backup that reached it.
func TestRecordsPastTheResponseLimitAreRefused(t *testing.T) {
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Limits: host.Limits{MaxResponseBytes: 64 << 10}}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })

	big := host.AgentState{AgentID: "big", State: bytes.Repeat([]byte("x"), 64<<10)}
	_, err = st.PutAgentState(ctx, big)
	require.ErrorIs(t, err, host.ErrLimit)
	require.ErrorContains(t, err, `agent state "big" of 65539 bytes could not be read back`)
	_, err = st.PutAgentStates(ctx, []host.AgentState{{AgentID: "small", State: []byte(`{}`)}, big})
	require.ErrorIs(t, err, host.ErrLimit)
	require.ErrorContains(t, err, "item 1:")
	_, err = st.PutAlert(ctx, host.Alert{ID: "al", AgentID: "a", Message: string(big.State)})
	require.ErrorIs(t, err, host.ErrLimit)
	rs, err := st.Restore(ctx, []host.Restore{{Kind: host.KindAgentState, State: big}})
	require.NoError(t, err)
	require.ErrorIs(t, rs[0].Err, host.ErrLimit)

	// Nothing was stored: listings and gets go on working.
	_, err = st.GetAgentState(ctx, "big")
	require.ErrorIs(t, err, host.ErrNotFound)
	_, err = st.GetAgentState(ctx, "small")
	require.ErrorIs(t, err, host.ErrNotFound, "a batch with one record past the limit is refused whole")
	page, err := st.QueryAgentStates(ctx, host.AgentStateQuery{})
	require.NoError(t, err)
	require.Empty(t, page.Items)

	// A record that fits is stored and read back.
	fits := host.AgentState{AgentID: "fits", State: bytes.Repeat([]byte("x"), 60<<10)}
	_, err = st.PutAgentState(ctx, fits)
	require.NoError(t, err)
	got, err := st.GetAgentState(ctx, "fits")
	require.NoError(t, err)
	require.Equal(t, fits.State, got.State)
}

// A caller's panic inside a call (a nil context) leaves no call counted
// in flight, and a closed store refuses a restore of nothing as it
// refuses everything else.
func TestStoreAfterAPanickedCallAndClose(t *testing.T) {
	st, err := host.Open(context.Background(), host.Config{}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	func() {
		defer func() { require.NotNil(t, recover(), "a nil context panics") }()
		//lint:ignore SA1012 the nil context is the point
		_, _ = st.GetAgentState(nil, "a")
	}()
	start := time.Now()
	require.NoError(t, st.Close(context.Background()))
	require.Less(t, time.Since(start), time.Second, "Close does not wait for a call that never ran")
	_, err = st.Restore(context.Background(), nil)
	require.ErrorIs(t, err, host.ErrClosed)
}

// Writes acknowledged into a fallback buffer kept in memory (no DataDir)
// that never reached Redis are lost when the store closes: Close says so
// (ErrBufferLost) rather than nil. With a DataDir they stay on disk, and
// Close is nil.
func TestCloseReportsBufferedWritesItLoses(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	srv.Stop() // Redis away from the start
	for _, dir := range []string{"", t.TempDir()} {
		st, err := host.Open(ctx, host.Config{Plugin: "builtin:redis", Options: map[string]string{"fallback": "buffer"},
			Redis: &redisbridge.Config{Addrs: []string{srv.Addr()}, KeyPrefix: "lost:", Scripts: true}, DataDir: dir},
			host.WithCompilationCache(benchCache))
		require.NoError(t, err)
		_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{}`)})
		require.NoError(t, err, "acknowledged into the buffer")
		require.EqualValues(t, 1, st.Stats().BufferedWrites)
		err = st.Close(ctx)
		if dir == "" {
			require.ErrorIs(t, err, host.ErrBufferLost)
			require.ErrorContains(t, err, "1 writes acknowledged into its buffer had not reached its store")
		} else {
			require.NoError(t, err, "kept on disk for the next store")
		}
	}
}

// A plugin reading Redis is held to its reply bound (an eighth of its
// memory), below the response limit: a record past it is refused too,
// where it was stored and then failed every read.
func TestRecordsPastTheReplyBoundAreRefused(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	st, err := host.Open(ctx, host.Config{Plugin: "builtin:redis", Limits: host.Limits{MemoryPages: 512}, // 32 MiB: replies of 4 MiB
		Redis: &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr), Scripts: true}},
		host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close(context.Background())) })
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "big", State: bytes.Repeat([]byte("x"), 4<<20)})
	require.ErrorIs(t, err, host.ErrLimit)
	require.ErrorContains(t, err, "the reply bound of a plugin reading Redis or PostgreSQL")
	fits := host.AgentState{AgentID: "fits", State: bytes.Repeat([]byte("x"), 3<<20)}
	_, err = st.PutAgentState(ctx, fits)
	require.NoError(t, err)
	got, err := st.GetAgentState(ctx, "fits")
	require.NoError(t, err)
	require.Equal(t, fits.State, got.State)
}
