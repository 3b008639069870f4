package backup_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
	"github.com/storage-host/storage-host/host/pgtest"
)

func openPostgres(t testing.TB, name string) *host.Store {
	t.Helper()
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Name: name, Plugin: "builtin:postgres", Postgres: &host.PostgresConfig{
		URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_"),
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })
	return st
}

// TestMigrateThroughPostgres copies mixed records from memory to
// PostgreSQL, from there to Redis, and back to another PostgreSQL
// schema: every backend on the way holds what the first did, versions
// and all, expiries within a second.
func TestMigrateThroughPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs against a real PostgreSQL and Redis")
	}
	ctx := context.Background()
	mem := openNamed(t, "mem")
	pg := openPostgres(t, "pg")
	rds := openRedis(t, "rds")
	back := openPostgres(t, "back")
	fill(t, mem, 6_000, 1_000, 3_000)
	want := backup.Counts{Metrics: 6_000, Alerts: 1_000, AgentStates: 3_000}
	for _, hop := range []struct{ from, to *host.Store }{{mem, pg}, {pg, rds}, {rds, back}} {
		sum, err := backup.Migrate(ctx, hop.from, hop.to, backup.MigrateOptions{State: filepath.Join(t.TempDir(), "state.json")})
		require.NoError(t, err, "%s → %s", hop.from.Name(), hop.to.Name())
		require.Equal(t, want, sum.Copied, "%s → %s", hop.from.Name(), hop.to.Name())
		require.Equal(t, sum.Source, sum.Target)
		t.Logf("%s → %s: %d records in %s", hop.from.Name(), hop.to.Name(), sum.Copied.Total(), sum.Took.Round(time.Millisecond))
		requireSameContent(t, mem, hop.to, time.Second)
	}

	// Versions are intact: a CAS with the first backend's version works
	// on the last, and the next write's version is above it.
	s, err := mem.GetAgentState(ctx, "agent-01234")
	require.NoError(t, err)
	got, err := back.PutAgentState(ctx, host.AgentState{AgentID: "agent-01234", State: []byte(`{}`)}, host.IfVersion(s.Version))
	require.NoError(t, err)
	require.Greater(t, got.Version, s.Version)
}
