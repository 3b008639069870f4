package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// dataDirEnv names the environment variable that sets the default data
// directory.
const dataDirEnv = "STORAGE_HOST_DATA_DIR"

// defaultDataDir is where the daemon keeps its data without -data-dir:
// $STORAGE_HOST_DATA_DIR, else $XDG_DATA_HOME/storage-host, else
// ~/.local/share/storage-host. "" when none can be found (no home).
func defaultDataDir() string {
	if d := os.Getenv(dataDirEnv); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "storage-host")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "storage-host")
	}
	return ""
}

// dataDirFlag defines -data-dir on fs.
func dataDirFlag(fs *flag.FlagSet) *string {
	return fs.String("data-dir", defaultDataDir(),
		"directory the backends keep their data in, each in backends/NAME, locked by one daemon at a time; by default $"+dataDirEnv+", else $XDG_DATA_HOME/storage-host, else ~/.local/share/storage-host")
}

// checkDataDir returns dir absolute, or an error when it is unset.
func checkDataDir(dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("no data directory: set -data-dir or $%s (no home directory to default to)", dataDirEnv)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("data directory %s: %w", dir, err)
	}
	return abs, nil
}

// lockFile is the file, in the data directory, a serving daemon holds
// locked.
const lockFile = "storage-host.lock"

// errDataDirInUse is returned by lockDataDir when another process holds
// the data directory.
var errDataDirInUse = errors.New("data directory in use")

// lockDataDir creates dir (0700) if missing and locks it for this
// process: a second daemon on the same directory gets errDataDirInUse.
// The lock holds until release, or until the process exits, however it
// exits. The file records the holder's pid, for the message.
func lockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if busy, err := tryLock(f); busy || err != nil {
		defer f.Close()
		if busy {
			holder := "another process"
			if b, _ := os.ReadFile(path); len(b) > 0 {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					holder = fmt.Sprintf("another storage-host (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("%w: %s is used by %s; give each daemon a -data-dir of its own", errDataDirInUse, dir, holder)
		}
		return nil, fmt.Errorf("data directory: locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// openDataDirMode reports whether dir lets users other than its owner in.
func openDataDirMode(dir string) (os.FileMode, bool) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, false
	}
	return fi.Mode().Perm(), fi.Mode().Perm()&0o077 != 0
}

// warnUnclaimed logs each data directory that no backend of f keeps its
// data in, and that holds any: a backend renamed or removed from the
// configuration, or given another data_dir, leaves its records there, and
// writes it buffered while its store was away, which nothing serves or
// replays until a backend opens the directory again. It looks under
// dataDir/backends, where backends keep their data by default, and at the
// directories named by data_dir that dataDirsFile records, which it
// brings up to date: the directories f's backends name, and those of
// earlier ones that still hold data or cannot be read now.
func warnUnclaimed(log hclog.Logger, dataDir string, f *config.File) {
	root := filepath.Join(dataDir, config.BackendsDir)
	claimed := map[string]bool{}
	for _, b := range f.Backends {
		claimed[filepath.Clean(b.Config.DataDir)] = true
	}
	entries, _ := os.ReadDir(root) // none yet: nothing to say
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if !e.IsDir() || claimed[dir] || emptyDir(dir) {
			continue
		}
		log.Warn("a data directory no configured backend opens: its records, and any writes it buffered while its store was away, are neither served nor replayed until a backend named "+
			strconv.Quote(e.Name())+" opens it again; restore that block (or its name), or remove the directory once it holds nothing needed", "dir", dir)
	}

	record := filepath.Join(dataDir, dataDirsFile)
	var kept []string
	old, _ := os.ReadFile(record) // none yet: nothing recorded
	for line := range strings.Lines(string(old)) {
		name, dir, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		if !ok || !filepath.IsAbs(dir) || claimed[dir] {
			continue
		}
		if _, err := os.Stat(dir); err != nil {
			// Not there now (a mount not up yet, a directory moved
			// away): kept, to be named when it is back.
			kept = append(kept, name+"\t"+dir+"\n")
			continue
		}
		if emptyDir(dir) {
			continue
		}
		log.Warn("a data directory no configured backend opens: backend "+strconv.Quote(name)+
			" kept its data there (data_dir), and its records, and any writes it buffered while its store was away, are neither served nor replayed until a backend's data_dir names it again; restore that data_dir, or remove the directory once it holds nothing needed", "dir", dir)
		kept = append(kept, name+"\t"+dir+"\n")
	}
	for _, b := range f.Backends {
		dir := filepath.Clean(b.Config.DataDir)
		if rel, err := filepath.Rel(root, dir); dir == "." || err == nil && filepath.IsLocal(rel) {
			continue // none, or under root: seen there
		}
		kept = append(kept, b.Name+"\t"+dir+"\n")
	}
	if err := writeFileAtomic(record, []byte(strings.Join(kept, ""))); err != nil {
		log.Warn("cannot record the backends' data directories", "file", record, "error", err)
	}
}

// dataDirsFile is the file, in the data directory, that records the
// directories backends named with data_dir, one "NAME\tDIR" line each, so
// that one a later configuration no longer names is still found
// (warnUnclaimed).
const dataDirsFile = "data_dirs"

// writeFileAtomic replaces path with b, synced: a crash or a power loss
// leaves the old file or the new one, never a part.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// emptyDir reports whether dir holds no file but empty ones.
func emptyDir(dir string) bool {
	empty := true
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() && info.Size() > 0 {
			empty = false
			return filepath.SkipAll
		}
		return nil
	})
	return empty
}
