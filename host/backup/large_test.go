package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
)

// TestMigrateLargeRecords backs up and migrates a Redis backend of large
// records, with the default limits, into memory and back into another
// Redis backend: 8 agent states of 1 MiB and 20 alerts of 1 MiB
// messages. A page of 1000 such alerts would be 20 MiB, past the reply
// bound of a 64 MiB instance (8 MiB) and its response bound (16 MiB), and
// a restore batch of 250 such records would not fit in the instance: the
// plugin reads fewer records a page, the migration writes fewer a batch,
// and every record arrives.
func TestMigrateLargeRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs against a real Redis")
	}
	ctx := context.Background()
	rds := openRedis(t, "rds")
	const states, alerts, size = 8, 20, 1 << 20
	doc := func(i int) []byte {
		d := bytes.Repeat([]byte{'a' + byte(i%26)}, size)
		copy(d, fmt.Sprintf("%05d", i))
		return d
	}
	for i := range states {
		_, err := rds.PutAgentState(ctx, host.AgentState{AgentID: fmt.Sprintf("agent-%03d", i), State: doc(i)})
		require.NoError(t, err)
	}
	for i := range alerts {
		_, err := rds.PutAlert(ctx, host.Alert{ID: fmt.Sprintf("alert-%03d", i), AgentID: "agent-000",
			Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: string(doc(i))}, host.WithPersist())
		require.NoError(t, err)
	}
	want := backup.Counts{Alerts: alerts, AgentStates: states}
	// The writes' events reach the Redis stream after the writes are
	// answered; one still queued when a migration starts would come back
	// in its replay of the log as a write made during the copy, and its
	// record be copied (and counted) twice.
	require.Eventually(t, func() bool { return rds.Stats().Events.Published >= states+alerts }, 30*time.Second, 10*time.Millisecond)

	sum, err := backup.Backup(ctx, rds, io.Discard)
	require.NoError(t, err)
	require.Equal(t, want, sum.Counts)

	mem := openNamed(t, "mem")
	back := openRedis(t, "back")
	for _, hop := range []struct{ from, to *host.Store }{{rds, mem}, {mem, back}} {
		sum, err := backup.Migrate(ctx, hop.from, hop.to, backup.MigrateOptions{State: filepath.Join(t.TempDir(), "state.json")})
		require.NoError(t, err, "%s → %s", hop.from.Name(), hop.to.Name())
		require.Equal(t, want, sum.Copied, "%s → %s", hop.from.Name(), hop.to.Name())
		require.Equal(t, sum.Source, sum.Target)
	}
	s, err := back.GetAgentState(ctx, "agent-007")
	require.NoError(t, err)
	require.Equal(t, doc(7), s.State)
	a, err := back.GetAlert(ctx, "alert-019")
	require.NoError(t, err)
	require.Equal(t, string(doc(19)), a.Message)
}
