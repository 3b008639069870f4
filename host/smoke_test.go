package host_test

import (
	"context"
	"os"
	"testing"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redistest"
	"github.com/stretchr/testify/require"
)

// TestMain stops the Redis servers the tests started, removes their
// compilation cache, and fails the binary if a goroutine outlives them.
func TestMain(m *testing.M) {
	code := redistest.Run(m)
	_ = os.RemoveAll(benchCache) // tens of megabytes of compiled modules
	os.Exit(code)
}

// benchCache is one compilation cache for the tests and benchmarks
// that do not measure compilation.
var benchCache = func() string {
	dir, err := os.MkdirTemp("", "storage-host-bench-")
	if err != nil {
		panic(err)
	}
	return dir
}()

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{}, host.WithCompilationCache(t.TempDir()))
	require.NoError(t, err)
	defer st.Close(ctx)
	t.Log(st.Metadata())
	s, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{"x":1}`)})
	require.NoError(t, err)
	t.Log(s)
	g, err := st.GetAgentState(ctx, "a1")
	require.NoError(t, err)
	require.Equal(t, s, g)
	_, err = st.GetAgentState(ctx, "nope")
	require.ErrorIs(t, err, host.ErrNotFound)
	t.Log(err)
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "a1"}, host.IfVersion(s.Version+5))
	require.ErrorIs(t, err, host.ErrConflict)
	t.Log(err)
}
