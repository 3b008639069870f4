package host_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// An instance whose memory grew half way to its limit is closed after
// its call, before its heap — which a linear memory never gives back —
// runs out: pages of 1 MiB agent states read again and again through a
// 32 MiB redis plugin ran the same instance out of memory on the
// eighteenth page.
func TestGrownInstancesAreRetired(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	ctx := context.Background()
	st := openBounded(t, 512)
	const n = 40
	for i := range n {
		_, err := st.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("big-%03d", i), State: bigDoc(i, 1<<20)})
		require.NoError(t, err)
	}
	for pass := range 6 {
		var cur []byte
		pages, seen := 0, 0
		for {
			p, err := st.QueryAgentStates(ctx, host.AgentStateQuery{Limit: 64, Cursor: cur})
			require.NoError(t, err, "pass %d, page %d", pass, pages)
			seen += len(p.Items)
			pages++
			if cur = p.Next; cur == nil {
				break
			}
		}
		require.Equal(t, n, seen, "pass %d", pass)
	}
	stats := st.Stats()
	require.Positive(t, stats.Retired)
	require.Zero(t, stats.Traps)
}
