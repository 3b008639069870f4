package host_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// TestRedisScriptsNeedTheirGrant: builtin:redis declares that it runs
// scripts (abi.CapabilityRedisScripts), so a Redis configuration without
// Scripts is refused at load instead of failing every request.
func TestRedisScriptsNeedTheirGrant(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	_, err := host.Open(ctx, host.Config{
		Plugin: "builtin:redis", Instances: 1,
		Redis: &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr)},
	})
	require.ErrorIs(t, err, host.ErrIncompatible)
	require.ErrorContains(t, err, `needs capability "redis_scripts", which the configuration does not grant`)

	info := host.Inspect(ctx, mustBuiltin(t, "redis"))
	require.NoError(t, info.Err)
	require.Contains(t, info.Metadata.Capabilities, abi.CapabilityRedisScripts)
	require.NotContains(t, info.Imports, abi.CapabilityRedisScripts, "a grant, not a module")
}

// TestNotGrantedIsInternal: a plugin that does not declare that it runs
// scripts (redishog) is refused its script by the bridge, INVALID to the
// plugin, which passes it on. The caller did nothing wrong: the failure
// is the backend's configuration, ErrInternal (HTTP 500), never
// ErrInvalid (400), for a call and for a batch's items. A refusal that is
// not a grant's (a bound) stays ErrInvalid.
func TestNotGrantedIsInternal(t *testing.T) {
	wasm := goHostilePlugin(t, "redishog")
	addr := redistest.Addr(t)
	ctx := context.Background()
	st, _ := openGoHostile(t, host.Config{
		Name: "hog", WASM: wasm, Instances: 1,
		Redis: &redisbridge.Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t, addr)},
	}, t.TempDir())

	_, err := st.GetAgentState(ctx, "loop") // a script, not granted
	require.ErrorIs(t, err, host.ErrInternal)
	require.NotErrorIs(t, err, host.ErrInvalid)
	require.ErrorContains(t, err, "scripts are not granted to this backend")

	_, err = st.GetAgentState(ctx, "setrange") // a command past its bounds
	require.ErrorIs(t, err, host.ErrInvalid)

	res, err := st.GetAgentStates(ctx, []string{"loop"})
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, host.ErrInternal)
	require.NotErrorIs(t, res[0].Err, host.ErrInvalid)
	res, err = st.GetAgentStates(ctx, []string{"setrange"})
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, host.ErrInvalid)
}

func mustBuiltin(t *testing.T, name string) []byte {
	t.Helper()
	wasm, err := host.BuiltinWASM(name)
	require.NoError(t, err)
	return wasm
}
