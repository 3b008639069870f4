package storetest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
	"github.com/storage-host/storage-host/host/storetest"
)

// builtinModule returns a built-in plugin's module, to load with a
// Config of the test's own.
func builtinModule(t *testing.T, name string) []byte {
	t.Helper()
	wasm, err := host.BuiltinWASM(name)
	require.NoError(t, err)
	return wasm
}

// TestMemoryTrusted runs the conformance suite against the memory plugin
// loaded with Config.Trusted: compiled as it is, its calls on a worker
// goroutine per instance. (builtin:memory, run by the other tests, has
// fuel checks, as every module not trusted.)
func TestMemoryTrusted(t *testing.T) {
	wasm := builtinModule(t, "memory")
	storetest.Run(t, func(t *testing.T) *host.Store {
		st, err := host.Open(t.Context(), host.Config{WASM: wasm, Trusted: true}, host.WithCompilationCache(cacheDir))
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		return st
	})
}

// TestRedisTrusted is TestMemoryTrusted for the redis plugin.
func TestRedisTrusted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	wasm := builtinModule(t, "redis")
	addr := redistest.Addr(t)
	storetest.Run(t, func(t *testing.T) *host.Store {
		st, err := host.Open(t.Context(), host.Config{
			WASM:    wasm,
			Trusted: true,
			Redis:   &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr), Scripts: true},
		}, host.WithCompilationCache(cacheDir))
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		return st
	})
}
