package host_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
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
