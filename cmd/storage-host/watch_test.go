package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// TestWatcherFollowsConfigMapSwap mounts a config the way Kubernetes does
// (dir/app.hcl → ..data/app.hcl, ..data → a timestamped directory, updated
// by swapping the ..data symlink) and checks that the swap is reported,
// while an event that changes nothing of interest is not.
func TestWatcherFollowsConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	writeVersion := func(name, body string) {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name, "app.hcl"), []byte(body), 0o644))
	}
	writeVersion("..v1", `backend "memory" { plugin = "builtin:memory" }`)
	require.NoError(t, os.Symlink("..v1", filepath.Join(dir, "..data")))
	require.NoError(t, os.Symlink("..data/app.hcl", filepath.Join(dir, "app.hcl")))

	path := filepath.Join(dir, "app.hcl")
	f, err := config.Load(path)
	require.NoError(t, err)
	w, err := newWatcher(hclog.NewNullLogger(), f, nil)
	require.NoError(t, err)
	defer w.Close()

	// Noise: a file nobody follows.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unrelated"), []byte("x"), 0o644))
	select {
	case <-w.changed:
		t.Fatal("an unrelated file reported a change")
	case <-time.After(5 * debounce):
	}

	// The swap, as kubelet does it: a new version, a new symlink renamed
	// over ..data.
	writeVersion("..v2", `backend "memory" {
  plugin  = "builtin:memory"
  options = { agent_state_ttl_seconds = 60 }
}`)
	require.NoError(t, os.Symlink("..v2", filepath.Join(dir, "..data_tmp")))
	require.NoError(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	select {
	case <-w.changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the ..data swap was not reported")
	}
}

// An edit made while a reload reads the files (after the snapshot the
// reload takes first) is reported once the reload has applied what it
// read: the watcher's debounce may end only after the reload, by which
// time the file already held the edit, and it took that for the contents
// the reload had applied.
func TestWatcherReportsAnEditMadeDuringAReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.hcl")
	write := func(ttl string) {
		require.NoError(t, os.WriteFile(path, []byte(`backend "memory" {
  plugin  = "builtin:memory"
  options = { metric_ttl_seconds = `+ttl+` }
}`), 0o644))
	}
	write("200")
	f, err := config.Load(path)
	require.NoError(t, err)
	w, err := newWatcher(hclog.NewNullLogger(), f, nil)
	require.NoError(t, err)
	defer w.Close()

	// A reload that finds the files as they were reports nothing.
	w.follow(f, w.snapshot())
	select {
	case <-w.changed:
		t.Fatal("a reload of unchanged files reported a change")
	default:
	}

	// A reload whose files were edited after its snapshot: the edit and
	// its debounce are over before follow, as when a reload takes longer
	// than the debounce.
	before := w.snapshot()
	write("300")
	select {
	case <-w.changed: // the debounce came first this time; take it
		require.Equal(t, path, w.takeChanged())
	case <-time.After(5 * debounce):
	}
	w.follow(f, before)
	select {
	case <-w.changed:
	case <-time.After(time.Second):
		t.Fatal("an edit made during a reload was not reported")
	}
	require.Equal(t, path, w.takeChanged())

	// A file the reloaded configuration names for the first time (a
	// secret file), edited during the reload: what the reload read of it
	// is not known, so a change since the snapshot is reported too.
	secret := filepath.Join(filepath.Dir(path), "token")
	require.NoError(t, os.WriteFile(secret, []byte("one"), 0o600))
	before = w.snapshot()
	require.NoError(t, os.WriteFile(secret, []byte("two"), 0o600))
	withSecret := *f
	withSecret.Files = append(slices.Clone(f.Files), secret)
	w.follow(&withSecret, before)
	select {
	case <-w.changed:
	case <-time.After(time.Second):
		t.Fatal("an edit of a newly named file made during a reload was not reported")
	}
	require.Equal(t, secret, w.takeChanged())
}

// An edit made while the daemon loads its configuration at start (after
// startSnapshot, before the watcher is made) is reported as a change, so
// that a reload applies it; a file the start read as it was, and a file
// it knows nothing of from before (a plugin), are not.
func TestWatcherSeesAnEditMadeWhileTheDaemonStarts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.hcl")
	require.NoError(t, os.WriteFile(path, []byte(`backend "a" { plugin = "builtin:memory" }`), 0o644))
	unchanged := startSnapshot(path)
	f, err := config.Load(path)
	require.NoError(t, err)
	w, err := newWatcher(hclog.NewNullLogger(), f, unchanged)
	require.NoError(t, err)
	select {
	case <-w.changed:
		t.Fatal("a file read as it was reported a change")
	case <-time.After(5 * debounce):
	}
	require.NoError(t, w.Close())

	edited := startSnapshot(path)
	f, err = config.Load(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(`backend "b" { plugin = "builtin:memory" }`), 0o644))
	w, err = newWatcher(hclog.NewNullLogger(), f, edited)
	require.NoError(t, err)
	defer w.Close()
	select {
	case <-w.changed:
		require.Contains(t, w.takeChanged(), "app.hcl")
	case <-time.After(10 * time.Second):
		t.Fatal("an edit made while the daemon loaded was not reported")
	}
}
