package host_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestBackendsDoNotShareData: two backends of the same plugin, in one
// process, each see only their own records. The built-in memory plugin
// keeps its records in the kv capability, so this holds only because each
// backend has a kv store of its own (SECURITY.md, "reading another
// backend's data").
func TestBackendsDoNotShareData(t *testing.T) {
	ctx := context.Background()
	open := func() *host.Store {
		st, err := host.Open(ctx, host.Config{}, host.WithCompilationCache(""))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, st.Close(ctx)) })
		return st
	}
	a, b := open(), open()

	_, err := a.PutAgentState(ctx, host.AgentState{AgentID: "secret-agent", State: []byte(`{"owner":"a"}`)})
	require.NoError(t, err)

	_, err = b.GetAgentState(ctx, "secret-agent")
	require.ErrorIs(t, err, host.ErrNotFound, "backend b reads backend a's record")
	page, err := b.QueryAgentStates(ctx, host.AgentStateQuery{})
	require.NoError(t, err)
	require.Empty(t, page.Items, "backend b lists backend a's records")

	// A write of the same key in b leaves a's record alone.
	_, err = b.PutAgentState(ctx, host.AgentState{AgentID: "secret-agent", State: []byte(`{"owner":"b"}`)})
	require.NoError(t, err)
	require.NoError(t, b.DeleteAgentState(ctx, "secret-agent"))
	got, err := a.GetAgentState(ctx, "secret-agent")
	require.NoError(t, err, "backend b's delete removed backend a's record")
	require.JSONEq(t, `{"owner":"a"}`, string(got.State))
}
