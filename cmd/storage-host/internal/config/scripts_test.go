package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestRedisScriptsGrant: builtin:redis runs every request as a Lua script
// and says so in its metadata (capability redis_scripts). A redis block
// that leaves scripts unset grants them to it; one that refuses them, or a
// plugin named by path that declares them without being granted them, is
// refused here, at its file:line:col, rather than answering every write
// with an error once the daemon serves.
func TestRedisScriptsGrant(t *testing.T) {
	const redisBlock = "  redis {\n    addrs      = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n%s  }\n"
	backend := func(plugin, scripts string) string {
		return "backend \"r\" {\n  plugin = \"" + plugin + "\"\n" + fmtBlock(redisBlock, scripts) + "}\n"
	}

	f, err := parseChecked([]byte(backend("builtin:redis", "")), "scripts.hcl")
	require.NoError(t, err)
	require.True(t, f.Backends[0].Config.Redis.Scripts, "builtin:redis is granted the scripts it needs")

	f, err = parseChecked([]byte(backend("builtin:redis", "    scripts    = true\n")), "scripts.hcl")
	require.NoError(t, err)
	require.True(t, f.Backends[0].Config.Redis.Scripts)

	_, err = parseChecked([]byte(backend("builtin:redis", "    scripts    = false\n")), "scripts.hcl")
	require.EqualError(t, err, `scripts.hcl:6:18: Capability not granted; plugin declares capability "redis_scripts", which this backend does not grant (set scripts = true in its redis block: the plugin runs Lua scripts on Redis, and would fail every request that does)`)

	// The same module, named by path: nothing is granted by default.
	dir := t.TempDir()
	wasm, err := host.BuiltinWASM("redis")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "thirdparty.wasm"), wasm, 0o600))
	file := filepath.Join(dir, "scripts.hcl")
	_, err = parseChecked([]byte(backend("thirdparty.wasm", "")), file)
	require.EqualError(t, err, file+`:2:12: Capability not granted; plugin declares capability "redis_scripts", which this backend does not grant (set scripts = true in its redis block: the plugin runs Lua scripts on Redis, and would fail every request that does)`)
	f, err = parseChecked([]byte(backend("thirdparty.wasm", "    scripts    = true\n")), file)
	require.NoError(t, err)
	require.True(t, f.Backends[0].Config.Redis.Scripts)

	// The grant is scripts = true, not a capability name.
	_, err = parseChecked([]byte("backend \"r\" {\n  plugin = \"builtin:redis\"\n  capabilities = [\"log\", \"clock\", \"kv\", \"redis_scripts\"]\n"+fmtBlock(redisBlock, "")+"}\n"), "scripts.hcl")
	require.ErrorContains(t, err, `scripts.hcl:3:41: Capability without its configuration; Capability "redis_scripts" is granted by scripts = true in the backend's redis block`)
}

func fmtBlock(block, scripts string) string {
	return fmt.Sprintf(block, scripts)
}
