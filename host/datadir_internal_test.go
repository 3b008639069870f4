package host

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
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
