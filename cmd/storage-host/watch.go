package main

import (
	"path/filepath"
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
// file replaced by rename (as editors and deploy tools do) is still seen.
type watcher struct {
	fsw     *fsnotify.Watcher
	log     hclog.Logger
	changed chan struct{}

	mu    sync.Mutex
	files map[string]bool // absolute paths of interest
	dirs  map[string]bool
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
	w.files = files
	for p := range files {
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
			if ev.Op == fsnotify.Chmod {
				continue
			}
			w.mu.Lock()
			interesting := w.files[filepath.Clean(ev.Name)]
			w.mu.Unlock()
			if interesting {
				timer.Reset(debounce)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching files", "error", err)
		case <-timer.C:
			select {
			case w.changed <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}
}

// Close stops watching.
func (w *watcher) Close() error { return w.fsw.Close() }
