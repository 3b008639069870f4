package storetest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/pgtest"
	"github.com/storage-host/storage-host/host/storetest"
)

// openPostgres opens the postgres plugin on the PostgreSQL pgtest finds,
// in a schema of its own that is dropped when t ends.
func openPostgres(t *testing.T, options map[string]string) *host.Store {
	t.Helper()
	st, err := host.Open(t.Context(), host.Config{
		Plugin:   "builtin:postgres", // embedded; TestBuiltinsMatchSource keeps it current
		Options:  options,
		Postgres: &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")},
	}, host.WithCompilationCache(cacheDir))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

func TestPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real PostgreSQL; skipped with -short")
	}
	storetest.Run(t, func(t *testing.T) *host.Store { return openPostgres(t, nil) })
}

func TestPostgresDefaultTTLs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real PostgreSQL; skipped with -short")
	}
	storetest.RunDefaultTTLs(t, func(t *testing.T, options map[string]string) *host.Store {
		return openPostgres(t, options)
	})
}
