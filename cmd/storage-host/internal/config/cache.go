package config

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/storage-host/storage-host/host"
)

// PluginCache remembers what Check learned by running plugins: each
// module's inspection (host.Inspect) and each module's verdict on a set
// of options (host.CheckOptions), but a failure a run found, which the
// plugin's code may not find next time. What it keeps depends only on the
// module's bytes, the options and this host, and compiling a module takes up to seconds,
// so a daemon that checks its file again at every reload keeps one
// PluginCache for its life (WithPluginCache). The zero value is an empty
// cache; it is safe for concurrent use.
type PluginCache struct {
	mu          sync.Mutex
	inspections map[[sha256.Size]byte]*inspection
	options     map[[sha256.Size]byte]error
}

// The most entries of each kind a PluginCache holds; past it, the cache
// starts again empty. A daemon's reloads name a handful of modules.
const maxCacheEntries = 256

type inspection struct {
	once sync.Once
	info host.PluginInfo
}

// inspect returns host.Inspect's answer for wasm, remembered in pc (nil
// for none).
func (pc *PluginCache) inspect(ctx context.Context, wasm []byte) host.PluginInfo {
	if pc == nil {
		return host.Inspect(ctx, wasm)
	}
	key := sha256.Sum256(wasm)
	pc.mu.Lock()
	if pc.inspections == nil || len(pc.inspections) >= maxCacheEntries {
		pc.inspections = make(map[[sha256.Size]byte]*inspection)
	}
	in := pc.inspections[key]
	if in == nil {
		in = &inspection{}
		pc.inspections[key] = in
	}
	pc.mu.Unlock()
	in.once.Do(func() { in.info = host.Inspect(ctx, wasm) })
	if in.info.Err != nil && (!errors.Is(in.info.Err, host.ErrIncompatible) || in.info.Ran) {
		// Not the module's fault (a cancelled context, the compilation
		// cache), or what running it found, which its code may find
		// otherwise next time: ask again next time.
		pc.mu.Lock()
		if pc.inspections[key] == in {
			delete(pc.inspections, key)
		}
		pc.mu.Unlock()
	}
	return in.info
}

// checkOptions returns host.CheckOptions's verdict on options for wasm,
// remembered in pc (nil for none).
func (pc *PluginCache) checkOptions(ctx context.Context, wasm []byte, options map[string]string) error {
	if pc == nil {
		return host.CheckOptions(ctx, wasm, options)
	}
	h := sha256.New()
	h.Write(wasm)
	for _, k := range slices.Sorted(maps.Keys(options)) {
		fmt.Fprintf(h, "\x00%q=%q", k, options[k])
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	pc.mu.Lock()
	err, ok := pc.options[key]
	pc.mu.Unlock()
	if ok {
		return err
	}
	err = host.CheckOptions(ctx, wasm, options)
	if err != nil {
		// The caller gave up, or the plugin's code refused, which it may
		// not next time: no verdict to keep.
		return err
	}
	pc.mu.Lock()
	if pc.options == nil || len(pc.options) >= maxCacheEntries {
		pc.options = make(map[[sha256.Size]byte]error)
	}
	pc.options[key] = err
	pc.mu.Unlock()
	return err
}
