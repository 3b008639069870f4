package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// localsBomb is a module of 47 bytes whose one function declares 2^32-1
// locals: compiled as is, it has wazero ask for tens of gigabytes, and the
// Go runtime ends the process.
var localsBomb = []byte("\x00asm\x01\x00\x00\x00" +
	"\x01\x04\x01\x60\x00\x00" + // types: () -> ()
	"\x03\x02\x01\x00" + // functions: one of type 0
	"\x0a\x0a\x01\x08\x01\xff\xff\xff\xff\x0f\x7f\x0b") // code: 4294967295 i32 locals; end

const localsBombRefused = "function 0 declares 4294967295 locals, more than 10000"

// badModules are plugin files each refused by a bound of the module check,
// with the words naming it.
func badModules(t *testing.T) map[string]string {
	t.Helper()
	bomb := filepath.Join(t.TempDir(), "bomb.wasm")
	require.NoError(t, os.WriteFile(bomb, localsBomb, 0o600))
	abs := func(p string) string {
		p, err := filepath.Abs(p)
		require.NoError(t, err)
		return p
	}
	return map[string]string{
		bomb: localsBombRefused,
		abs(repoFile("testdata", "plugins", "hostile", "deepnest.wasm")):  "function 0 has 1000 locals at nesting depth 1001",
		abs(repoFile("testdata", "plugins", "hostile", "hugetable.wasm")): "table 0 declares 134217728 elements, more than 262144",
	}
}

func pluginConfig(plugin string) []byte {
	return []byte("backend \"memory\" {\n  plugin = " + strconv.Quote(plugin) + "\n}\n")
}

// TestValidateBadModule: validate, serve and plugin inspect, given a
// module past a bound, report it by the bound and exit 1; none crashes.
func TestValidateBadModule(t *testing.T) {
	t.Parallel()
	for plugin, want := range badModules(t) {
		cfg := filepath.Join(t.TempDir(), "storage-host.hcl")
		require.NoError(t, os.WriteFile(cfg, pluginConfig(plugin), 0o600))

		stdout, stderr, code := runCommand(t, nil, "validate", cfg)
		require.Equal(t, 1, code, "stderr: %s", stderr)
		require.Empty(t, stdout)
		require.Contains(t, stderr, "Plugin cannot be loaded")
		require.Contains(t, stderr, want)

		stdout, stderr, code = runCommand(t, nil, "serve", "-config", cfg, "-listen", "127.0.0.1:0")
		require.Equal(t, 1, code, "stderr: %s", stderr)
		require.Empty(t, stdout, "no serving line")
		require.Contains(t, stderr, want)

		got := inspectJSON(t, plugin, 1)
		require.False(t, got.Loadable)
		require.Contains(t, got.Problem, want)
	}
}

// TestReloadBadModule: a running daemon asked to load a module past a
// bound, by an edited configuration or by the plugin file replaced under
// it, rejects the reload and keeps serving the backend it had, data and
// all.
func TestReloadBadModule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	plugin := filepath.Join(dir, "memory.wasm")
	good, err := host.BuiltinWASM("memory")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(plugin, good, 0o600))
	require.NoError(t, os.WriteFile(cfg, pluginConfig(plugin), 0o600))
	d := startDaemon(t, nil, "-config", cfg)
	d.waitWatching(1)

	url := d.url + "/v1/agents/a1/state"
	r := call(t, "PUT", url, `{"v":1}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	stored := r.object(t)
	serves := func(after string) {
		t.Helper()
		r := call(t, "GET", url, "")
		require.Equal(t, http.StatusOK, r.code, "after %s: %s", after, r.body)
		require.Equal(t, stored, r.object(t), "after %s, the same backend serves", after)
	}

	// The configuration names another plugin, past a bound.
	rejections := 0
	for bad, want := range badModules(t) {
		replaceFile(t, cfg, pluginConfig(bad))
		rejections++
		line := d.waitLog(rejected, rejections)[rejections-1]
		require.Contains(t, line, `trigger="file change"`)
		require.Contains(t, line, want)
		serves("a configuration naming " + filepath.Base(bad))
	}

	// Back to the good plugin, unchanged: the running backend is kept.
	replaceFile(t, cfg, pluginConfig(plugin))
	require.Regexp(t, `kept=\["memory"\]$`, d.waitLog(reloaded, 1)[0])
	serves("the configuration restored")

	// The plugin file itself replaced by a bad module.
	replaceFile(t, plugin, localsBomb)
	rejections++
	require.Contains(t, d.waitLog(rejected, rejections)[rejections-1], localsBombRefused)
	// The reload names the file that changed, which is not the
	// configuration file it reloads.
	require.Contains(t, d.waitLog(reloading, rejections+1)[rejections],
		`trigger="file change" file=`+cfg+` changed=`+plugin)
	serves("the plugin file replaced by a bad module")
	require.Equal(t, float64(rejections), d.metric(`storage_host_reloads_total{result="failed"}`))
	d.stop()
}
