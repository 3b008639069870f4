package config_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// checkedFile names, outside its own text, a plugin file that does not
// exist, one that is not a plugin this host loads, a built-in plugin it
// has not, a pin its module does not match, options its plugin refuses,
// secrets that are not there, a Redis block the bridge refuses, two key
// prefixes that overlap, and directories that are files. Each comment is
// the position and summary Check reports.
const checkedFile = `backend "missing" {
  plugin = "missing.wasm"                             # 2:12 Unreadable plugin
}
backend "broken" {
  plugin = "broken.wasm"                              # 5:12 Plugin cannot be loaded
}
backend "nope" {
  plugin = "builtin:nope"                             # 8:12 Unknown built-in plugin
}
backend "pinned" {
  plugin = "builtin:memory"
  sha256 = "0000000000000000000000000000000000000000000000000000000000000000" # 12:12 Plugin does not match its pin
}
backend "opts" {
  plugin  = "builtin:memory"
  options = { colour = "blue" }                       # 16:13 Options refused by the plugin
}
backend "r1" {
  plugin   = "builtin:redis"
  data_dir = "a-file"                                 # 20:14 Invalid value for "data_dir"
  redis {
    addrs         = ["127.0.0.1:6379"]
    key_prefix    = "app:"
    password_file = "no/such/password"                # 24:21 Unreadable secret file
  }
  backup {
    interval  = "1h"
    directory = "a-file"                              # 28:17 Invalid value for "directory"
  }
}
backend "r2" {
  plugin = "builtin:redis"
  redis {
    addrs      = ["127.0.0.1:6379"]
    key_prefix = "app:billing:"                       # 35:18 Overlapping key prefixes
  }
}
backend "r3" {
  plugin = "builtin:redis"
  redis {                                             # 40:3 Invalid redis block
    addrs          = ["127.0.0.1:6379"]
    key_prefix     = "r3:"
    allow_commands = ["NOSUCHCOMMAND"]
  }
}
routes {
  metrics      = "opts"
  alerts       = "opts"
  agent_states = "opts"
}
auth {
  token "env" {
    secret_env = "CONFIG_TEST_UNSET_TOKEN"             # 53:18 Unset secret
    scopes     = ["*:read"]
  }
}
`

// TestParseReadsOnlyTheText: Parse accepts a file whose every plugin,
// secret and directory is missing or wrong, since it reads none of them;
// Check reads them and reports each at the attribute naming it, all at
// once, and leaves the File as it was.
func TestParseReadsOnlyTheText(t *testing.T) {
	t.Setenv("CONFIG_TEST_UNSET_TOKEN", "")
	dir := t.TempDir()
	name := filepath.Join(dir, "daemon.hcl")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.wasm"), []byte("\x00asm\x01\x00\x00\x00garbage"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a-file"), nil, 0o600))

	f, err := config.Parse([]byte(checkedFile), name)
	require.NoError(t, err, "Parse reads nothing but the text")
	require.False(t, f.Checked())
	require.Contains(t, f.Files, filepath.Join(dir, "missing.wasm"), "a plugin file is followed, though not read")
	parsed := *f
	parsed.Backends = append([]config.Backend(nil), f.Backends...)

	err = f.Check(t.Context(), config.WithPluginCache(&pluginCache))
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	var got []string
	for _, d := range cerr.Diagnostics {
		require.Equal(t, name, d.Subject.Filename)
		got = append(got, fmt.Sprintf("%d:%d %s", d.Subject.Start.Line, d.Subject.Start.Column, d.Summary))
	}
	var want []string
	for _, line := range strings.Split(checkedFile, "\n") {
		if _, c, ok := strings.Cut(line, "# "); ok {
			want = append(want, c)
		}
	}
	require.Equal(t, want, got)
	require.Equal(t, parsed.Backends, f.Backends, "a failed Check leaves the File as it was")
	require.False(t, f.Checked())
}

// TestCheckReadsAgain: a File that failed Check passes once what it names
// is fixed, without being parsed again; and Check's results (the module
// read, the digest) are there only after it.
func TestCheckReadsAgain(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "daemon.hcl")
	f, err := config.Parse([]byte("backend \"p\" {\n  plugin = \"agentstate.wasm\"\n}\n"), name)
	require.NoError(t, err)
	require.Empty(t, f.Backends[0].Digest)
	require.Nil(t, f.Backends[0].Config.WASM)
	require.ErrorContains(t, f.Check(t.Context()), name+":2:12: Unreadable plugin")

	wasm, err := os.ReadFile(filepath.Join(plugins, "agentstate.wasm"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "agentstate.wasm"), wasm, 0o600))
	require.NoError(t, f.Check(t.Context()))
	require.True(t, f.Checked())
	require.Len(t, f.Backends[0].Digest, 64)
	require.Equal(t, wasm, f.Backends[0].Config.WASM)
}

// A plugin is configured when it is served even without an options
// block, so Check configures it without options too: a plugin that
// refuses to run without them is refused at its plugin attribute.
func TestPluginRefusingNoOptions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin; skipped with -short")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "needs.wasm"), "./testdata/plugins/gohostile/needsoptions")
	build.Dir = "../../../.."
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	_, err = loadChecked(writeFile(t, dir, "bare.hcl", []byte("backend \"n\" {\n  plugin = \"needs.wasm\"\n}\n")))
	require.ErrorContains(t, err, `bare.hcl:2:12: Plugin refuses to run without options; host: configure plugin needsoptions: invalid: option "dir" is required; give it an options block.`)

	_, err = loadChecked(writeFile(t, dir, "given.hcl", []byte("backend \"n\" {\n  plugin = \"needs.wasm\"\n  options = { dir = \"/x\" }\n}\n")))
	require.NoError(t, err)
}

// A backup lists the backend's records: a backup block on a backend whose
// plugin serves no queries would fail at every interval, so Check refuses
// it where it is written.
func TestBackupOfAPluginWithoutQueries(t *testing.T) {
	dir := t.TempDir()
	wasm, err := os.ReadFile(filepath.Join(plugins, "agentstate.wasm"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "agentstate.wasm"), wasm, 0o600))
	_, err = loadChecked(writeFile(t, dir, "b.hcl", []byte("backend \"p\" {\n  plugin = \"agentstate.wasm\"\n  backup {\n    interval  = \"1h\"\n    directory = \"bk\"\n  }\n}\n")))
	require.ErrorContains(t, err, "b.hcl:3:3: Backup of a plugin that cannot list its records; plugin agentstate")
	_, err = loadChecked(writeFile(t, dir, "m.hcl", []byte("backend \"m\" {\n  plugin = \"builtin:memory\"\n  backup {\n    interval  = \"1h\"\n    directory = \"bk\"\n  }\n}\n")))
	require.NoError(t, err, "the built-in memory plugin serves queries")
}

// A module of the wrong shape is said to be so, not to refuse its options:
// giving it options would not help. One exports storage_call with three
// parameters (refused at load, naming the type); one traps when it is
// configured.
func TestPluginOfTheWrongShape(t *testing.T) {
	dir := t.TempDir()
	for fixture, want := range map[string]string{
		"badcall": "Plugin cannot be loaded; host: incompatible plugin: export storage_call has type (i32, i32, i32) -> i64; the ABI gives it (i32, i32) -> i64",
		// Inspecting sends the configure call too: a plugin that traps there
		// cannot be loaded, with or without options.
		"trapconfig": "Plugin cannot be loaded; host: incompatible plugin: host: configure plugin trapconfig: storage_call(configure): wasm error: unreachable",
	} {
		wasm, err := os.ReadFile(filepath.Join(plugins, "hostile", fixture+".wasm"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, fixture+".wasm"), wasm, 0o600))
		for name, src := range map[string]string{
			"bare.hcl":  "backend \"b\" {\n  plugin = \"" + fixture + ".wasm\"\n}\n",
			"given.hcl": "backend \"b\" {\n  plugin = \"" + fixture + ".wasm\"\n  options = { a = \"1\" }\n}\n",
		} {
			_, err = loadChecked(writeFile(t, dir, name, []byte(src)))
			require.ErrorContains(t, err, name+":2:12: "+want, fixture+" "+name)
			require.NotContains(t, err.Error(), "options", fixture+" "+name)
		}
	}
}

// With DeferPluginRuns, what a plugin's run decides (its configure call
// trapping, a routed kind its metadata does not serve) fails that backend,
// not the file: the other backends are served, and the backend's
// Unchecked says why, where. What the module's bytes decide (an export of
// the wrong type, a bound of the module check) still fails the file.
func TestDeferPluginRuns(t *testing.T) {
	dir := t.TempDir()
	for _, fixture := range []string{"trapconfig", "badcall"} {
		wasm, err := os.ReadFile(filepath.Join(plugins, "hostile", fixture+".wasm"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, fixture+".wasm"), wasm, 0o600))
	}
	agentOnly, err := os.ReadFile(filepath.Join(plugins, "agentstate.wasm"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "agentstate.wasm"), agentOnly, 0o600))
	src := "backend \"good\" {\n  plugin = \"builtin:memory\"\n}\n" +
		"backend \"trap\" {\n  plugin = \"trapconfig.wasm\"\n}\n" +
		"backend \"call\" {\n  plugin = \"badcall.wasm\"\n}\n" +
		"backend \"states\" {\n  plugin = \"agentstate.wasm\"\n}\n" +
		"routes {\n  metrics      = \"states\"\n  alerts       = \"good\"\n  agent_states = \"trap\"\n}\n"
	path := writeFile(t, dir, "d.hcl", []byte(src))
	_, err = loadChecked(path)
	require.ErrorContains(t, err, "d.hcl:5:12: Plugin cannot be loaded", "without the option, the file fails")

	f, err := config.Load(path)
	require.NoError(t, err)
	require.ErrorContains(t, f.Check(context.Background(), config.DeferPluginRuns()), "d.hcl:8:12: Plugin cannot be loaded; host: incompatible plugin: export storage_call has type",
		"an export of the wrong type is the module's bytes', found before it runs: the file's")
	src = strings.Replace(src, "backend \"call\" {\n  plugin = \"badcall.wasm\"\n}\n", "", 1)
	path = writeFile(t, dir, "d.hcl", []byte(src))
	f, err = config.Load(path)
	require.NoError(t, err)
	require.NoError(t, f.Check(context.Background(), config.DeferPluginRuns()))
	unchecked := map[string]string{}
	for _, b := range f.Backends {
		require.NotEmpty(t, b.Digest, b.Name)
		if b.Unchecked != nil {
			unchecked[b.Name] = b.Unchecked.Error()
		}
	}
	require.Len(t, unchecked, 2, "%v", unchecked)
	require.Contains(t, unchecked["trap"], "d.hcl:5:12: Plugin cannot be loaded; host: incompatible plugin: host: configure plugin trapconfig: storage_call(configure): wasm error: unreachable")
	require.Contains(t, unchecked["states"], "d.hcl:11:18: Backend does not serve metrics; Backend \"states\" runs plugin agentstate")

	// Only one backend checked: the others are neither read nor run, and
	// keep what the File held (here, a File not checked: no Digest).
	f, err = config.Load(path)
	require.NoError(t, err)
	require.NoError(t, f.Check(context.Background(), config.DeferPluginRuns(), config.Only("trap")))
	for _, b := range f.Backends {
		if b.Name == "trap" {
			require.NotEmpty(t, b.Digest)
			require.ErrorContains(t, b.Unchecked, "d.hcl:5:12: Plugin cannot be loaded")
		} else {
			require.Empty(t, b.Digest, "%s is not checked", b.Name)
			require.NoError(t, b.Unchecked, "%s's plugin is not run", b.Name)
		}
	}

	// A module without an export every plugin has is refused for its
	// bytes too, before its _initialize (which traps) runs.
	nocall, err := os.ReadFile(filepath.Join(plugins, "hostile", "nocall.wasm"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nocall.wasm"), nocall, 0o600))
	f, err = config.Load(writeFile(t, dir, "n.hcl", []byte("backend \"b\" {\n  plugin = \"nocall.wasm\"\n}\n")))
	require.NoError(t, err)
	require.ErrorContains(t, f.Check(context.Background(), config.DeferPluginRuns()), "n.hcl:2:12: Plugin cannot be loaded; host: incompatible plugin: missing export storage_call")

	bomb := filepath.Join(plugins, "hostile", "deepnest.wasm")
	wasm, err := os.ReadFile(bomb)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "deepnest.wasm"), wasm, 0o600))
	f, err = config.Load(writeFile(t, dir, "s.hcl", []byte("backend \"b\" {\n  plugin = \"deepnest.wasm\"\n}\n")))
	require.NoError(t, err)
	require.ErrorContains(t, f.Check(context.Background(), config.DeferPluginRuns()), "s.hcl:2:12: Plugin cannot be loaded", "the module's bytes fail the file")
}
