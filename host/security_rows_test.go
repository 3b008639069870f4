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

// TestImportedMemoryIsRefused: a module that imports its memory instead of
// defining it, from a module the host provides or not, fails to load with
// ErrIncompatible naming the import (SECURITY.md, "What a plugin is
// given"): the host gives each instance a memory of its own, bounded by
// Limits.MemoryPages, and shares none.
func TestImportedMemoryIsRefused(t *testing.T) {
	for _, from := range []string{"env", "storagehost_kv", "wasi_snapshot_preview1"} {
		t.Run(from, func(t *testing.T) {
			// (module (import from "memory" (memory 1)))
			imp := []byte{1, byte(len(from))}
			imp = append(imp, from...)
			imp = append(imp, 6, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, 1)
			wasm := append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, 2, byte(len(imp))}, imp...)
			st, err := host.Open(context.Background(), host.Config{WASM: wasm}, host.WithCompilationCache(""))
			require.Nil(t, st)
			require.ErrorIs(t, err, host.ErrIncompatible)
			require.ErrorContains(t, err, "imports memory "+from+".memory")
		})
	}
}
