package host_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/pgtest"
)

// A plugin that imports the postgres capability can be inspected without
// a PostgreSQL, as validate does: its imports and metadata are listed.
func TestInspectPostgresPlugin(t *testing.T) {
	info := host.Inspect(context.Background(), postgresWASM(t))
	require.NoError(t, info.Err)
	require.Contains(t, info.Imports, abi.CapabilityPostgres)
	require.Contains(t, info.Metadata.Capabilities, abi.CapabilityPostgres)
}

// postgresWASM returns the module of postgresPlugin.
func postgresWASM(t *testing.T) []byte {
	cfg := postgresPlugin(t)
	if cfg.WASM != nil {
		return cfg.WASM
	}
	wasm, err := host.BuiltinWASM("postgres")
	require.NoError(t, err)
	return wasm
}

// Migrations past their bounds (abi.MaxMigrations of them, or
// abi.MaxMigrationsBytes encoded) are the plugin's fault, refused before
// they are decoded: when the plugin is inspected, and when it is opened,
// before anything is sent to PostgreSQL.
func TestMigrationsPastTheirBoundsAreRefused(t *testing.T) {
	for fixture, want := range map[string]string{
		"migmany": "storage_migrations returned 100000 migrations, more than the 4096 Migrations may hold (section 16.4)",
		"migbig":  "storage_migrations returned 5242886 bytes, more than the 4194304 Migrations may hold (section 16.4)",
	} {
		t.Run(fixture, func(t *testing.T) {
			wasm, err := os.ReadFile("../testdata/plugins/hostile/" + fixture + ".wasm")
			require.NoError(t, err)
			info := host.Inspect(context.Background(), wasm, host.WithCompilationCache(""))
			require.ErrorIs(t, info.Err, host.ErrIncompatible)
			require.ErrorContains(t, info.Err, want)

			cfg := &host.PostgresConfig{URL: pgtest.URL(t), Schema: pgtest.Schema(t, "storagehost_")}
			_, err = host.Open(context.Background(), host.Config{Name: fixture, WASM: wasm, Postgres: cfg}, host.WithCompilationCache(""))
			require.ErrorIs(t, err, host.ErrIncompatible)
			require.ErrorContains(t, err, want)
			admin, err := pgx.Connect(t.Context(), cfg.URL)
			require.NoError(t, err)
			defer admin.Close(context.Background())
			var migrated bool
			require.NoError(t, admin.QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", cfg.Schema+".storagehost_migrations").Scan(&migrated))
			require.False(t, migrated, "no migration was run")
		})
	}
}
