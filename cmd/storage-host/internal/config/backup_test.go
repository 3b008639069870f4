package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

func TestBackupBlock(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "b.hcl")
	f, err := parseChecked([]byte(`
backend "mem" {
  plugin = "builtin:memory"
  backup {
    interval         = "1h30m"
    directory        = "backups/mem"
    keep             = 3
    restore_on_start = true
  }
}
backend "other" {
  plugin = "builtin:memory"
  backup {
    interval  = "1s"
    directory = "/var/backups/storage-host"
  }
}
backend "none" { plugin = "builtin:memory" }
routes {
  metrics      = "mem"
  alerts       = "other"
  agent_states = "none"
}
`), name)
	require.NoError(t, err)
	mem, _ := f.Backend("mem")
	require.Equal(t, &config.Backup{Interval: 90 * time.Minute, Directory: filepath.Join(dir, "backups", "mem"), Keep: 3, RestoreOnStart: true}, mem.Backup)
	other, _ := f.Backend("other")
	require.Equal(t, &config.Backup{Interval: time.Second, Directory: "/var/backups/storage-host", Keep: 24}, other.Backup, "keep defaults to 24")
	none, _ := f.Backend("none")
	require.Nil(t, none.Backup)

	// A schedule does not define the backend: changing it keeps the
	// backend (and a memory backend's records) across a reload.
	without, err := parseChecked([]byte(`backend "mem" { plugin = "builtin:memory" }`), name)
	require.NoError(t, err)
	require.Equal(t, without.Backends[0].Digest, mem.Digest)

	// JSON, too.
	j, err := parseChecked([]byte(`{"backend": {"m": {"plugin": "builtin:memory", "backup": {"interval": "2m", "directory": "bk"}}}}`), filepath.Join(dir, "b.json"))
	require.NoError(t, err)
	require.Equal(t, &config.Backup{Interval: 2 * time.Minute, Directory: filepath.Join(dir, "bk"), Keep: 24}, j.Backends[0].Backup)
}

// TestBadBackupBlocks checks the position and message of each mistake in
// a backup block.
func TestBadBackupBlocks(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o600))
	mem := func(block string) string {
		return "backend \"m\" {\n  plugin = \"builtin:memory\"\n  backup {\n" + block + "  }\n}\n"
	}
	for _, tc := range []struct {
		name, src, pos, want string
	}{
		{"missing interval", mem("    directory = \"b\"\n"), "3:3", `Missing required argument; The argument "interval" is required.`},
		{"missing directory", mem("    interval = \"1h\"\n"), "3:3", `Missing required argument; The argument "directory" is required.`},
		{"bad interval", mem("    interval = \"hourly\"\n    directory = \"b\"\n"), "4:16", `Invalid duration; interval: "hourly" is not a duration`},
		{"short interval", mem("    interval = \"500ms\"\n    directory = \"b\"\n"), "4:16", "Invalid duration; interval must be at least 1s."},
		{"empty directory", mem("    interval = \"1h\"\n    directory = \"\"\n"), "5:17", `Invalid value for "directory"; directory names the directory`},
		{"directory is a file", mem("    interval = \"1h\"\n    directory = \"file\"\n"), "5:17", "file is not a directory."},
		{"keep zero", mem("    interval = \"1h\"\n    directory = \"b\"\n    keep = 0\n"), "6:12", "keep must be a whole number from 1 to 100000."},
		{"keep type", mem("    interval = \"1h\"\n    directory = \"b\"\n    keep = \"all\"\n"), "6:12", `Inappropriate value for attribute "keep": a number is required.`},
		{"unknown attribute", mem("    interval = \"1h\"\n    directory = \"b\"\n    compress = true\n"), "6:5", `An argument named "compress" is not expected here.`},
		{"two blocks", "backend \"m\" {\n  plugin = \"builtin:memory\"\n  backup {\n    interval = \"1h\"\n    directory = \"b\"\n  }\n  backup {\n    interval = \"1h\"\n    directory = \"b\"\n  }\n}\n", "7:3", "Duplicate backup block"},
		{"restore_on_start with redis", "backend \"r\" {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [\"127.0.0.1:6379\"]\n    key_prefix = \"r:\"\n  }\n  backup {\n    interval = \"1h\"\n    directory = \"b\"\n    restore_on_start = true\n  }\n}\n", "10:24", `Invalid value for "restore_on_start"; restore_on_start is for a backend that keeps its records in the daemon's memory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			filename := filepath.Join(dir, "bad.hcl")
			_, err := parseChecked([]byte(tc.src), filename)
			var cerr *config.Error
			require.ErrorAs(t, err, &cerr)
			prefix := filename + ":" + tc.pos + ": "
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, prefix) && strings.Contains(line, tc.want) {
					return
				}
			}
			t.Fatalf("no error at %s containing %q; got:\n%s", prefix, tc.want, err)
		})
	}
}

// TestReadmeBackupExample keeps README.md's backup block valid.
func TestReadmeBackupExample(t *testing.T) {
	readme, err := os.ReadFile("../../../../README.md")
	require.NoError(t, err)
	var example string
	for _, block := range strings.Split(string(readme), "```hcl\n")[1:] {
		if b, _, _ := strings.Cut(block, "```"); strings.Contains(b, "backup {") {
			example = b
		}
	}
	require.NotEmpty(t, example, "README.md has an hcl example with a backup block")
	dir := t.TempDir()
	f, err := parseChecked([]byte(example), filepath.Join(dir, "readme.hcl"))
	require.NoError(t, err)
	require.Equal(t, &config.Backup{Interval: time.Hour, Directory: filepath.Join(dir, "backups"), Keep: 24, RestoreOnStart: true}, f.Backends[0].Backup)
}
