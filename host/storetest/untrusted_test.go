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

// builtinUntrusted returns a built-in plugin's module to pass as
// Config.WASM: loaded so, it is untrusted, and so instrumented with fuel
// checks (wasmcheck.Instrument).
func builtinUntrusted(t *testing.T, name string) []byte {
	t.Helper()
	wasm, err := host.BuiltinWASM(name)
	require.NoError(t, err)
	return wasm
}

// TestMemoryUntrusted runs the conformance suite against the memory plugin
// instrumented as an untrusted plugin is.
func TestMemoryUntrusted(t *testing.T) {
	wasm := builtinUntrusted(t, "memory")
	storetest.Run(t, func(t *testing.T) *host.Store {
		st, err := host.Open(t.Context(), host.Config{WASM: wasm}, host.WithCompilationCache(cacheDir))
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		return st
	})
}

// TestRedisUntrusted runs the conformance suite against the redis plugin
// instrumented as an untrusted plugin is.
func TestRedisUntrusted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against a real Redis; skipped with -short")
	}
	wasm := builtinUntrusted(t, "redis")
	addr := redistest.Addr(t)
	storetest.Run(t, func(t *testing.T) *host.Store {
		st, err := host.Open(t.Context(), host.Config{
			WASM:  wasm,
			Redis: &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr), Scripts: true},
		}, host.WithCompilationCache(cacheDir))
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		return st
	})
}
