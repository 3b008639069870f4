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

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/config"
)

// debounce is how long the watcher waits after the last change before it
// reports: editors write a file in several steps.
const debounce = 200 * time.Millisecond

// watcher reports changes to the configuration file and to the plugin
// files it names. It watches their directories, not the files, so that a
// file replaced by rename (as editors and deploy tools do) is still seen,
// and after any event in one of them it compares the files' contents: a
// Kubernetes ConfigMap, which swaps a "..data" symlink and never touches
// the file's own name, is seen too, and an event that changed nothing of
// interest reloads nothing.
type watcher struct {
	fsw     *fsnotify.Watcher
	log     hclog.Logger
	changed chan struct{}

	mu    sync.Mutex
	files []string // absolute paths of interest
	dirs  map[string]bool
	last  [sha256.Size]byte // fingerprint of the files' contents
}

func newWatcher(log hclog.Logger, f *config.File) (*watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{fsw: fsw, log: log, changed: make(chan struct{}, 1), dirs: map[string]bool{}}
	w.follow(f)
	go w.loop()
	return w, nil
}

// follow makes the watcher track the files f refers to.
func (w *watcher) follow(f *config.File) {
	files := map[string]bool{}
	if p, err := filepath.Abs(f.Path); err == nil {
		files[p] = true
	}
	for _, b := range f.Backends {
		if p := b.Config.Plugin; p != "" && !strings.HasPrefix(p, host.BuiltinPrefix) {
			if abs, err := filepath.Abs(p); err == nil {
				files[abs] = true
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.files = slices.Sorted(maps.Keys(files))
	w.last = fingerprint(w.files)
	for _, p := range w.files {
		dir := filepath.Dir(p)
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

func (w *watcher) loop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if ev.Op != fsnotify.Chmod {
				timer.Reset(debounce)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching files", "error", err)
		case <-timer.C:
			w.mu.Lock()
			now := fingerprint(w.files)
			same := now == w.last
			w.last = now
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

// fingerprint hashes the contents of files, following symlinks; a missing
// or unreadable file counts as its error text (a reload will report it).
func fingerprint(files []string) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range files {
		fmt.Fprintf(h, "%s\x00", p)
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(h, "error: %v\x00", err)
			continue
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			fmt.Fprintf(h, "error: %v\x00", err)
		}
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// Close stops watching.
func (w *watcher) Close() error { return w.fsw.Close() }
