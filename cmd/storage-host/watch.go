package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/go-hclog"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// debounce is how long the watcher waits after the last change before it
// reports: editors write a file in several steps.
const debounce = 200 * time.Millisecond

// maxLinks bounds the symbolic links followed resolving one path.
const maxLinks = 40

// watcher reports changes to the files a configuration reads
// (config.File.Files): the file itself, the plugin files and the secret
// files it names. It watches their directories, not the files, so that a
// file replaced by rename (as editors and deploy tools do) is still seen,
// but it heeds only the events of the names that decide those files'
// contents: each file's own name, every symbolic link met resolving it
// and the file it ends at. A Kubernetes ConfigMap or Secret, which swaps a
// "..data" symlink and never touches the file's own name, is seen; a log
// written beside the configuration every few milliseconds is not, and
// cannot hold the debounce off for ever. After the debounce it compares
// the files' contents: an event that changed nothing reloads nothing.
type watcher struct {
	fsw     *fsnotify.Watcher
	log     hclog.Logger
	changed chan struct{}

	mu      sync.Mutex
	files   []string                     // absolute paths of interest
	names   map[string]bool              // the paths whose events count (resolve)
	dirs    map[string]bool              // the directories watched
	last    map[string][sha256.Size]byte // fingerprint of each file's contents
	pending map[string]bool              // the files changed since the last takeChanged
}

// newWatcher watches the files f reads. before, when set, is what the
// configuration file held before f was read from it (startSnapshot): an
// edit made while the daemon loaded it is reported as changed.
func newWatcher(log hclog.Logger, f *config.File, before *snapshot) (*watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{fsw: fsw, log: log, changed: make(chan struct{}, 1), dirs: map[string]bool{}, pending: map[string]bool{}}
	w.follow(f, before)
	go w.loop()
	return w, nil
}

// snapshot is what the tracked files held when a reload began reading
// them: their fingerprints, and the time.
type snapshot struct {
	sums map[string][sha256.Size]byte
	at   time.Time
	// only: files it holds no fingerprint of are taken as read unchanged,
	// at is not used (startSnapshot, which knows the configuration file
	// alone).
	only bool
}

// startSnapshot fingerprints the configuration file at path before the
// daemon first reads it: an edit made while it loads (seconds, its
// plugins compiled and run) is then seen by the watcher, created after,
// and reloaded, not taken for what was loaded.
func startSnapshot(path string) *snapshot {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil
	}
	return &snapshot{sums: fingerprints([]string{abs}), only: true}
}

// snapshot fingerprints the files the watcher tracks, for a reload to take
// before it reads them (see follow).
func (w *watcher) snapshot() *snapshot {
	at := time.Now()
	w.mu.Lock()
	files := w.files
	w.mu.Unlock()
	return &snapshot{sums: fingerprints(files), at: at}
}

// follow makes the watcher track the files f reads. before is a snapshot
// taken before the reading of f (nil: none): a file that holds something
// else now was changed while, or after, f was read, and is reported
// changed, so that a reload follows; so is a file f names for the first
// time that was modified since the snapshot (what it held when read is
// not known). Without it, an edit made during a reload was taken for the
// contents that reload had applied, and never served.
func (w *watcher) follow(f *config.File, before *snapshot) {
	files := map[string]bool{}
	for _, p := range f.Files {
		if abs, err := filepath.Abs(p); err == nil {
			files[abs] = true
		}
	}
	sorted := slices.Sorted(maps.Keys(files))
	sums := fingerprints(sorted)
	w.mu.Lock()
	w.files, w.last = sorted, sums
	changed := false
	for _, p := range w.files {
		if before == nil {
			break
		}
		if sum, known := before.sums[p]; known && sum != w.last[p] || !known && !before.only && modifiedSince(p, before.at) {
			w.pending[p], changed = true, true
		}
	}
	w.watchNames()
	w.mu.Unlock()
	if changed {
		select {
		case w.changed <- struct{}{}:
		default: // a reload is already pending
		}
	}
}

// takeChanged returns the files changed since it was last called, for a
// reload's log: the configuration file, or a plugin or secret file it
// names, which an operator would otherwise look for in vain.
func (w *watcher) takeChanged() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := slices.Sorted(maps.Keys(w.pending))
	clear(w.pending)
	return strings.Join(names, ", ")
}

// watchNames recomputes the names whose events count and watches their
// directories, dropping the directories no longer needed (a ConfigMap's
// previous version, say). w.mu is held.
func (w *watcher) watchNames() {
	w.names = map[string]bool{}
	for _, p := range w.files {
		for _, n := range resolve(p) {
			w.names[n] = true
		}
	}
	want := map[string]bool{}
	for n := range w.names {
		want[filepath.Dir(n)] = true
	}
	for dir := range w.dirs {
		if !want[dir] {
			_ = w.fsw.Remove(dir) // gone with the directory, maybe
			delete(w.dirs, dir)
		}
	}
	for dir := range want {
		if w.dirs[dir] {
			continue
		}
		if err := w.fsw.Add(dir); err != nil {
			w.log.Warn("cannot watch directory", "dir", dir, "error", err)
			continue
		}
		w.dirs[dir] = true
	}
}

// resolve returns p and the paths that decide what p's contents are: each
// symbolic link met resolving it, component by component, and the path it
// ends at. A component that does not exist (yet) ends the resolution: its
// creation is an event of the last path returned, or of its directory's
// own link.
func resolve(p string) []string {
	out := []string{p}
	rest := filepath.Clean(p)
	for range maxLinks {
		link, target, ok := firstLink(rest)
		if !ok {
			break
		}
		out = append(out, link)
		rest = target
		if !slices.Contains(out, rest) {
			out = append(out, rest)
		}
	}
	return out
}

// firstLink finds the first component of the absolute path p that is a
// symbolic link, and returns it and p with that component replaced by the
// link's target.
func firstLink(p string) (link, resolved string, ok bool) {
	vol := filepath.VolumeName(p)
	parts := splitPath(p[len(vol):])
	cur := vol + string(filepath.Separator)
	for i, part := range parts {
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", "", false
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(next)
			if err != nil {
				return "", "", false
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			return next, filepath.Join(append([]string{target}, parts[i+1:]...)...), true
		}
		cur = next
	}
	return "", "", false
}

// splitPath returns the non-empty components of p.
func splitPath(p string) []string {
	var parts []string
	for _, s := range strings.Split(filepath.ToSlash(p), "/") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return parts
}

func (w *watcher) loop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			w.mu.Lock()
			ours := w.names[filepath.Clean(ev.Name)]
			w.mu.Unlock()
			if ours {
				timer.Reset(debounce)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching files", "error", err)
		case <-timer.C:
			w.mu.Lock()
			files := w.files
			w.mu.Unlock()
			now := fingerprints(files) // not under w.mu: a reload's snapshot need not wait
			w.mu.Lock()
			if !slices.Equal(files, w.files) {
				// A reload followed a new configuration meanwhile, with
				// fingerprints of its own (and the edits it missed).
				w.mu.Unlock()
				continue
			}
			same := true
			for _, f := range w.files {
				if now[f] != w.last[f] {
					w.pending[f], same = true, false
				}
			}
			w.last = now
			// A swapped link points elsewhere now: follow it there.
			w.watchNames()
			w.mu.Unlock()
			if same {
				continue
			}
			select {
			case w.changed <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}
}

// modifiedSince reports whether the file at p, following symlinks, may
// have been modified at t or after, or cannot be read (a reload will
// report it). A file's time comes from a coarser clock than time.Now, up
// to seconds on some file systems: a file modified up to mtimeSlack
// before t counts (at worst, one more reload that changes nothing).
func modifiedSince(p string, t time.Time) bool {
	fi, err := os.Stat(p)
	return err != nil || fi.ModTime().After(t.Add(-mtimeSlack))
}

// mtimeSlack is how much earlier than the clock a file's modification
// time may read.
const mtimeSlack = 2 * time.Second

// fingerprints hashes the contents of each of files, following
// symlinks; a missing or unreadable file counts as its error text (a
// reload will report it). Only a regular file is read (a device or a
// pipe put in a file's place is its error, config.OpenRegular: reading
// /dev/zero never ends, opening a pipe waits for a writer), and only one
// no longer than a plugin may be (config.MaxPluginSize); a longer one,
// which a reload refuses unread, counts as its size and time.
func fingerprints(files []string) map[string][sha256.Size]byte {
	sums := make(map[string][sha256.Size]byte, len(files))
	for _, p := range files {
		h := sha256.New()
		if f, fi, err := config.OpenRegular(p); err != nil {
			fmt.Fprintf(h, "error: %v", err)
		} else {
			if fi.Size() > config.MaxPluginSize {
				fmt.Fprintf(h, "too long: %d bytes, modified %v", fi.Size(), fi.ModTime().UnixNano())
			} else if _, err := io.Copy(h, io.LimitReader(f, config.MaxPluginSize+1)); err != nil {
				fmt.Fprintf(h, "\x00error: %v", err)
			}
			f.Close()
		}
		sums[p] = [sha256.Size]byte(h.Sum(nil))
	}
	return sums
}

// Close stops watching.
func (w *watcher) Close() error { return w.fsw.Close() }
