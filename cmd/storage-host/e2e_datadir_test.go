package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDataDirOneDaemon: a daemon warns about a data directory other users
// may enter; a second daemon on a data directory another one serves from
// refuses to start, saying which process holds it, and does
// not disturb the first; once the first has stopped the directory is free.
func TestDataDirOneDaemon(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	require.NoError(t, os.Chmod(data, 0o750))
	first := startDaemon(t, nil, "-data-dir", data)
	require.Contains(t, first.serving, "(data: "+data+")")
	// A directory others may enter is used, with a warning.
	first.waitLog(regexp.MustCompile(`\[WARN\]  storage-host: the data directory lets other users in; chmod 700 it: dir=`+regexp.QuoteMeta(data)+` mode=-rwxr-x---`), 1)
	putState(t, first.url, "a1")

	_, stderr, code := runCommand(t, nil, "serve", "-listen", "127.0.0.1:0", "-data-dir", data)
	require.Equal(t, 1, code, "stderr: %s", stderr)
	require.Equal(t, fmt.Sprintf("storage-host: data directory in use: %s is used by another storage-host (pid %d); give each daemon a -data-dir of its own\n",
		data, first.cmd.Process.Pid), stderr)

	// The first one still serves what it had.
	require.Equal(t, 200, call(t, "GET", first.url+"/v1/agents/a1/state", "").code)
	first.stop()
	again := startDaemon(t, nil, "-data-dir", data)
	again.stop()
}

// TestDataDirValidate: validate refuses backends that would share a data
// directory, and builtin:memory with one, at the attribute, and creates
// nothing on disk; serve refuses the same file before creating anything.
func TestDataDirValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data") // not created
	cfg := filepath.Join(dir, "shared.hcl")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `backend "a" { plugin = "builtin:local" }
backend "b" {
  plugin   = "builtin:local"
  data_dir = %q
}
backend "m" {
  plugin   = "builtin:memory"
  data_dir = "m"
}
routes {
  metrics      = "a"
  alerts       = "b"
  agent_states = "m"
}
`, filepath.Join(data, "backends", "a")), 0o600))

	for _, args := range [][]string{
		{"validate", "-data-dir", data, cfg},
		{"serve", "-listen", "127.0.0.1:0", "-data-dir", data, "-config", cfg},
	} {
		_, stderr, code := runCommand(t, nil, args...)
		require.Equal(t, 1, code, "%v: %s", args, stderr)
		require.Regexp(t, regexp.QuoteMeta(cfg)+`:4:14: Shared data directory; Backend "b"'s data directory \S+ is backend "a"'s`, stderr, args)
		require.Contains(t, stderr, cfg+`:8:14: Invalid value for "data_dir"; builtin:memory keeps its records in memory only`, args)
		_, err := os.Stat(data)
		require.ErrorIs(t, err, os.ErrNotExist, "%v created the data directory", args)
	}

	// Fixed, it validates, still without creating anything.
	require.NoError(t, os.WriteFile(cfg, []byte(`backend "a" { plugin = "builtin:local" }`), 0o600))
	stdout, stderr, code := runCommand(t, nil, "validate", "-data-dir", data, cfg)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, ": ok: backends a;")
	_, err := os.Stat(data)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestDataDirUnclaimedIsNamed: a backend renamed or removed from the
// configuration leaves its records (and any writes it buffered) in its
// directory, which nothing serves or replays: the daemon says so when it
// starts and when a reload removes the backend, naming the directory. An
// outside drill lost 20 of 20 buffered writes to a rename, silently.
func TestDataDirUnclaimedIsNamed(t *testing.T) {
	t.Parallel()
	dir, data := t.TempDir(), t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	local := func(names ...string) []byte {
		var b []byte
		for _, n := range names {
			b = fmt.Appendf(b, "backend %q {\n  plugin = \"builtin:local\"\n}\n", n)
		}
		return fmt.Appendf(b, "routes {\n  agent_states = %[1]q\n  metrics = %[1]q\n  alerts = %[1]q\n}\n", names[0])
	}
	unclaimed := func(name string) *regexp.Regexp {
		return regexp.MustCompile(`a data directory no configured backend opens: .* named "` + name + `" opens it again.*: dir=` +
			regexp.QuoteMeta(filepath.Join(data, "backends", name)) + `$`)
	}
	require.NoError(t, os.WriteFile(cfg, local("old"), 0o600))
	d := startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	putState(t, d.url, "a1")
	d.stop()

	// Renamed while stopped.
	require.NoError(t, os.WriteFile(cfg, local("new", "other"), 0o600))
	d = startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	d.waitLog(unclaimed("old"), 1)
	putState(t, d.url, "a2")
	require.Zero(t, d.logCount(unclaimed("new")), "a configured backend's directory is claimed")

	// Removed by a reload.
	require.NoError(t, os.WriteFile(cfg, local("other"), 0o600))
	d.signal(syscall.SIGHUP)
	d.waitLog(reloaded, 1)
	d.waitLog(unclaimed("new"), 1)
	require.Zero(t, d.logCount(unclaimed("other")))
}

// TestDataDirElsewhereIsNamed: the startup line names, after the data
// directory, each backend whose data_dir lies outside it, and only those:
// a reader looking for a backend's records in the data directory would
// not find them.
func TestDataDirElsewhereIsNamed(t *testing.T) {
	t.Parallel()
	dir, data := t.TempDir(), t.TempDir()
	elsewhere := filepath.Join(dir, "kv")
	cfg := filepath.Join(dir, "storage-host.hcl")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `backend "inside" { plugin = "builtin:local" }
backend "outside" {
  plugin   = "builtin:local"
  data_dir = %q
}
routes {
  metrics      = "inside"
  alerts       = "inside"
  agent_states = "outside"
}
`, elsewhere), 0o600))
	d := startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	require.Contains(t, d.serving, fmt.Sprintf(`(data: %s; backend "outside": %s) on `, data, elsewhere))
	d.stop()
}

// TestDataDirMovedIsNamed: a backend given another data_dir leaves its
// records, and any writes it buffered, in the old one, which nothing
// serves or replays: the daemon names it when a reload moves the backend
// and at every start after, as for a backend renamed. An outside drill
// lost 100 of 100 buffered writes of a Redis backend that way, with no
// word but the close warning.
func TestDataDirMovedIsNamed(t *testing.T) {
	t.Parallel()
	dir, data := t.TempDir(), t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	local := func(sub string) []byte {
		return fmt.Appendf(nil, "backend \"r\" {\n  plugin   = \"builtin:local\"\n  data_dir = %q\n}\n", sub)
	}
	moved := regexp.MustCompile(`a data directory no configured backend opens: backend "r" kept its data there \(data_dir\).*: dir=` +
		regexp.QuoteMeta(filepath.Join(dir, "one")) + `$`)
	require.NoError(t, os.WriteFile(cfg, local("one"), 0o600))
	d := startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	putState(t, d.url, "a1")

	require.NoError(t, os.WriteFile(cfg, local("two"), 0o600))
	d.signal(syscall.SIGHUP)
	d.waitLog(reloaded, 1)
	d.waitLog(moved, 1)
	d.stop()

	d = startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	d.waitLog(moved, 1)
	require.Zero(t, d.logCount(regexp.MustCompile(`dir=`+regexp.QuoteMeta(filepath.Join(dir, "two"))+`$`)), "the directory served is not named")
	d.stop()

	// Back to the old directory: its record is served, and nothing is
	// named.
	require.NoError(t, os.WriteFile(cfg, local("one"), 0o600))
	d = startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	require.Equal(t, 200, call(t, "GET", d.url+"/v1/agents/a1/state", "").code)
	require.Zero(t, d.logCount(moved))
	d.stop()
}

// TestDataDirOfAnAddedBackendIsNamed: a backend a reload adds has its
// data_dir recorded too, so that a later reload moving it names the old
// directory; one that is missing when the daemon starts (a mount not up
// yet) stays recorded, and is named once it is back.
func TestDataDirOfAnAddedBackendIsNamed(t *testing.T) {
	t.Parallel()
	dir, data := t.TempDir(), t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	base := "backend \"m\" { plugin = \"builtin:memory\" }\n"
	withLocal := func(sub string) []byte {
		return fmt.Appendf(nil, "%sbackend \"r\" {\n  plugin   = \"builtin:local\"\n  data_dir = %q\n}\nroutes {\n  agent_states = \"r\"\n  metrics = \"m\"\n  alerts = \"m\"\n}\n", base, sub)
	}
	old := filepath.Join(dir, "one")
	moved := regexp.MustCompile(`backend "r" kept its data there \(data_dir\).*: dir=` + regexp.QuoteMeta(old) + `$`)
	require.NoError(t, os.WriteFile(cfg, []byte(base), 0o600))
	d := startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	require.NoError(t, os.WriteFile(cfg, withLocal("one"), 0o600))
	d.signal(syscall.SIGHUP)
	d.waitLog(reloaded, 1)
	putState(t, d.url, "a1")
	require.NoError(t, os.WriteFile(cfg, withLocal("two"), 0o600))
	d.signal(syscall.SIGHUP)
	d.waitLog(reloaded, 2)
	d.waitLog(moved, 1)
	d.stop()

	away := old + ".away"
	require.NoError(t, os.Rename(old, away))
	d = startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	require.Zero(t, d.logCount(moved), "named while missing")
	d.stop()
	require.NoError(t, os.Rename(away, old))
	d = startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	d.waitLog(moved, 1)
	d.stop()
}
