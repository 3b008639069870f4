package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// Every backend but builtin:memory keeps its data under the data
// directory, in a directory of its own, unless it names one; relative
// data_dir is relative to the file.
func TestDataDirDefaults(t *testing.T) {
	data := t.TempDir()
	src := `
backend "local" { plugin = "builtin:local" }
backend "mem"   { plugin = "builtin:memory" }
backend "red" {
  plugin = "builtin:redis"
  redis {
    addrs      = ["127.0.0.1:6379"]
    key_prefix = "dd:"
  }
}
backend "own" {
  plugin   = "builtin:local"
  data_dir = "state/own"
}
routes {
  metrics      = "mem"
  alerts       = "red"
  agent_states = "local"
}
`
	f, err := parseChecked([]byte(src), "/etc/storage-host/daemon.hcl", config.WithDataDir(data))
	require.NoError(t, err)
	require.Equal(t, data, f.DataDir)
	dirs := map[string]string{}
	for _, b := range f.Backends {
		dirs[b.Name] = b.Config.DataDir
	}
	require.Equal(t, map[string]string{
		"local": filepath.Join(data, "backends", "local"),
		"mem":   "",
		"red":   filepath.Join(data, "backends", "red"),
		"own":   "/etc/storage-host/state/own",
	}, dirs)

	// Without a data directory: builtin:local must name one; the others
	// keep their kv store in memory.
	_, err = parseChecked([]byte(src), "/etc/storage-host/daemon.hcl")
	require.Error(t, err)
	require.Contains(t, err.Error(), "daemon.hcl:2:28: Missing data directory")
	f, err = parseChecked([]byte(`backend "r" { 
  plugin = "builtin:local"
  data_dir = "/var/lib/r"
}`), "x.hcl")
	require.NoError(t, err)
	require.Equal(t, "/var/lib/r", f.Backends[0].Config.DataDir)
	require.Empty(t, f.DataDir)
}

// The refusals, each at the attribute (or block) that causes it.
func TestDataDirRefused(t *testing.T) {
	data := t.TempDir()
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	routes := "routes {\n  metrics = \"a\"\n  alerts = \"a\"\n  agent_states = \"a\"\n}\n"
	for _, tc := range []struct{ name, src, want string }{
		{"memory takes none", `backend "a" {
  plugin   = "builtin:memory"
  data_dir = "/tmp/x"
}`, `bad.hcl:3:14: Invalid value for "data_dir"; builtin:memory keeps its records in memory only`},
		{"empty", `backend "a" {
  plugin   = "builtin:local"
  data_dir = ""
}`, `bad.hcl:3:14: Invalid value for "data_dir"`},
		{"not a directory", `backend "a" {
  plugin   = "builtin:local"
  data_dir = "` + file + `"
}`, "is not a directory"},
		{"holds the data directory", `backend "a" {
  plugin   = "builtin:local"
  data_dir = "` + filepath.Dir(data) + `"
}`, "holds the daemon's data directory"},
		{"same as another's default", `backend "a" { plugin = "builtin:local" }
backend "b" {
  plugin   = "builtin:local"
  data_dir = "` + filepath.Join(data, "backends", "a") + `"
}
` + routes, `bad.hcl:4:14: Shared data directory; Backend "b"'s data directory ` + filepath.Join(data, "backends", "a") + ` is backend "a"'s`},
		{"inside another's", `backend "a" {
  plugin   = "builtin:local"
  data_dir = "/srv/a"
}
backend "b" {
  plugin   = "builtin:redis"
  data_dir = "/srv/a/b"
  redis {
    addrs      = ["127.0.0.1:6379"]
    key_prefix = "b:"
  }
}
` + routes, `bad.hcl:7:14: Shared data directory; Backend "b"'s data directory /srv/a/b lies inside backend "a"'s, /srv/a (at bad.hcl:3,14-22)`},
		{"restore_on_start over records on disk", `backend "a" {
  plugin = "builtin:local"
  backup {
    interval         = "1h"
    directory        = "/srv/backups"
    restore_on_start = true
  }
}`, `bad.hcl:6:24: Invalid value for "restore_on_start"; restore_on_start is for a backend that keeps its records in the daemon's memory (builtin:memory); this one keeps them on disk`},
		{"holding another's default", `backend "a" { plugin = "builtin:local" }
backend "b" {
  plugin   = "builtin:local"
  data_dir = "` + filepath.Join(data, "backends") + `"
}
` + routes, `bad.hcl:4:14: Shared data directory; Backend "b"'s data directory ` + filepath.Join(data, "backends") + ` holds backend "a"'s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseChecked([]byte(tc.src), "bad.hcl", config.WithDataDir(data))
			require.Error(t, err)
			var cerr *config.Error
			require.ErrorAs(t, err, &cerr)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Checking touches nothing on disk: no directory was created.
	entries, err := os.ReadDir(data)
	require.NoError(t, err)
	require.Empty(t, entries)
}

// The data directory is part of a backend's definition: a reload that
// moves it rebuilds the backend.
func TestDataDirInDigest(t *testing.T) {
	src := []byte(`backend "a" { plugin = "builtin:local" }`)
	one, err := parseChecked(src, "a.hcl", config.WithDataDir(t.TempDir()))
	require.NoError(t, err)
	two, err := parseChecked(src, "a.hcl", config.WithDataDir(t.TempDir()))
	require.NoError(t, err)
	again, err := parseChecked(src, "a.hcl", config.WithDataDir(one.DataDir))
	require.NoError(t, err)
	require.NotEqual(t, one.Backends[0].Digest, two.Backends[0].Digest)
	require.Equal(t, one.Backends[0].Digest, again.Backends[0].Digest)
}

// With a data directory, the configuration without a file is builtin:local
// kept in it, the same backend as the smallest file saying so.
func TestDefaultWithDataDir(t *testing.T) {
	data := t.TempDir()
	d := config.Default(config.WithDataDir(data))
	require.Equal(t, data, d.DataDir)
	require.Equal(t, config.Routes{Metrics: "local", Alerts: "local", AgentStates: "local"}, d.Routes)
	b, ok := d.Backend("local")
	require.True(t, ok)
	require.Equal(t, "builtin:local", b.Config.Plugin)
	require.Equal(t, filepath.Join(data, "backends", "local"), b.Config.DataDir)

	f, err := parseChecked([]byte(`backend "local" { plugin = "builtin:local" }`), "min.hcl", config.WithDataDir(data))
	require.NoError(t, err)
	require.Equal(t, d.Backends, f.Backends)
}
