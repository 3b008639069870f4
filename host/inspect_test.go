package host_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

func TestInspect(t *testing.T) {
	ctx := context.Background()
	t.Run("builtin redis", func(t *testing.T) {
		wasm, err := host.BuiltinWASM("redis")
		require.NoError(t, err)
		info := host.Inspect(ctx, wasm)
		require.NoError(t, info.Err, "inspecting needs no Redis")
		require.Equal(t, "redis", info.Metadata.Name)
		require.Equal(t, abi.Current.Major, info.Metadata.ABI.Major)
		require.Contains(t, info.Imports, abi.CapabilityRedis)
		require.Contains(t, info.Metadata.Capabilities, abi.CapabilityRedis)
		require.True(t, info.WASI)
		require.Len(t, info.SHA256, 64)
	})
	t.Run("WAT plugin", func(t *testing.T) {
		wasm, err := os.ReadFile("../testdata/plugins/agentstate.wasm")
		require.NoError(t, err)
		info := host.Inspect(ctx, wasm)
		require.NoError(t, info.Err)
		require.True(t, info.Metadata.Features.Has(abi.FeatureAgentStates))
		require.False(t, info.WASI)
	})
	t.Run("old ABI", func(t *testing.T) {
		wasm, err := os.ReadFile("../testdata/plugins/oldabi.wasm")
		require.NoError(t, err)
		info := host.Inspect(ctx, wasm)
		require.ErrorIs(t, info.Err, host.ErrIncompatible)
		require.Contains(t, info.Err.Error(), "version")
	})
	t.Run("unknown import", func(t *testing.T) {
		wasm, err := os.ReadFile("../testdata/plugins/badimport.wasm")
		require.NoError(t, err)
		info := host.Inspect(ctx, wasm)
		require.ErrorIs(t, info.Err, host.ErrIncompatible)
	})
	t.Run("builtin postgres", func(t *testing.T) {
		wasm, err := host.BuiltinWASM("postgres")
		require.NoError(t, err)
		info := host.Inspect(ctx, wasm)
		require.NoError(t, info.Err, "inspecting needs no PostgreSQL")
		require.Positive(t, info.Migrations, "its migrations are read and counted")
	})
	t.Run("migrations with a gap", func(t *testing.T) {
		// A load refuses them before it reaches a schema; an inspection
		// and a check of options, which reach none, refuse them too.
		wasm := goHostilePlugin(t, "badmigrations")
		info := host.Inspect(ctx, wasm)
		require.ErrorIs(t, info.Err, host.ErrIncompatible)
		require.ErrorContains(t, info.Err, "migration 2 has version 4, want 3")
		require.Equal(t, "badmigrations", info.Metadata.Name, "the metadata is still shown")
		err := host.CheckOptions(ctx, wasm, nil)
		require.ErrorIs(t, err, host.ErrIncompatible)
		require.ErrorContains(t, err, "without a gap")
	})
	t.Run("garbage", func(t *testing.T) {
		info := host.Inspect(ctx, []byte("not wasm"))
		require.ErrorIs(t, info.Err, host.ErrIncompatible)
		require.Empty(t, info.Metadata.Name)
	})
}

func TestCheckOptions(t *testing.T) {
	ctx := context.Background()
	wasm, err := host.BuiltinWASM("redis")
	require.NoError(t, err)
	require.NoError(t, host.CheckOptions(ctx, wasm, map[string]string{"fallback": "buffer", "agent_state_ttl_seconds": "60"}), "needs no Redis")
	err = host.CheckOptions(ctx, wasm, map[string]string{"fallback": "sometimes"})
	require.ErrorIs(t, err, host.ErrInvalid)
	require.Contains(t, err.Error(), "sometimes")
}
