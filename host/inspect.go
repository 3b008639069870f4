package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/storage-host/storage-host/abi"
)

// PluginInfo is what Inspect learns about a plugin module.
type PluginInfo struct {
	// SHA256 is the hex digest of the module, the value Config.SHA256 pins.
	SHA256 string
	// Metadata is what the plugin declares about itself; zero when the
	// module could not be loaded far enough to ask.
	Metadata Metadata
	// Imports are the capabilities whose host modules the module imports.
	Imports []abi.Capability
	// WASI reports whether the module imports WASI (as Go plugins do).
	WASI bool
	// Migrations is how many PostgreSQL schema migrations the plugin
	// ships: the schema version they bring a backend's schema to. They
	// are checked as a load checks them (versions 1, 2, 3 … with no gap,
	// no name of the host's), though no schema is reached.
	Migrations int
	// Err says why this host cannot load the module; nil if it can, given
	// the capabilities its metadata declares.
	Err error
	// Ran reports whether the module decoded and compiled, so that it was
	// run (its start, its metadata): an Err then says what running it
	// found, which the plugin's code decides, and another run may not
	// find; without Ran, Err is the module's bytes' own.
	Ran bool
}

// Inspect loads wasm only as far as its metadata and one call, with every
// capability this host knows stubbed in and no Redis connection, and
// reports what it is and whether this host can load it. The call is the
// configure every instance gets first, with no options: one the plugin
// cannot take (its storage_reserve, memory or response broken, a trap) is
// a plugin this host cannot load; its own refusal (an option it needs, a
// store it cannot reach) is not. The plugin's code runs (its
// initialisation, metadata export and configure) under the default limits.
func Inspect(ctx context.Context, wasm []byte, opts ...Option) PluginInfo {
	return inspect(ctx, wasm, nil, false, opts)
}

// CheckOptions loads wasm as Inspect does and configures it with options,
// returning the plugin's verdict: nil, or its error (an option it refuses
// matches ErrInvalid). Like Inspect it needs no Redis, and runs the
// plugin's code.
func CheckOptions(ctx context.Context, wasm []byte, options map[string]string, opts ...Option) error {
	info := inspect(ctx, wasm, options, true, opts)
	return info.Err
}

// everyCapability is the grant of an inspection: every capability this
// host knows.
var everyCapability = []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV, abi.CapabilityRedis,
	abi.CapabilityEvents, abi.CapabilityRedisScripts, abi.CapabilityPostgres}

func inspect(ctx context.Context, wasm []byte, options map[string]string, configure bool, opts []Option) PluginInfo {
	sum := sha256.Sum256(wasm)
	info := PluginInfo{SHA256: hex.EncodeToString(sum[:])}
	s := defaultSettings()
	for _, o := range opts {
		o(&s)
	}
	s.inspect, s.checkOptions = true, configure
	if err := checkModule(wasm); err != nil {
		info.Err = err
		return info
	}
	cfg := Config{
		WASM:         wasm,
		Options:      options,
		Capabilities: everyCapability,
		Instances:    1,
	}
	var cm wazero.CompiledModule
	if !configure {
		// The imports are listed from a module that only decodes (the
		// interpreter compiles nothing worth caching), so that they are known
		// even for one that cannot be loaded.
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithDebugInfoEnabled(false))
		defer rt.Close(ctx)
		var err error
		cm, err = rt.CompileModule(ctx, wasm)
		if err != nil {
			info.Err = fmt.Errorf("%w: compile: %v", ErrIncompatible, err)
			return info
		}
		for _, f := range cm.ImportedFunctions() {
			mod, _, _ := f.Import()
			if mod == wasi_snapshot_preview1.ModuleName {
				info.WASI = true
			} else if c, ok := strings.CutPrefix(mod, abi.ModulePrefix); ok && !slices.Contains(info.Imports, abi.Capability(c)) {
				info.Imports = append(info.Imports, abi.Capability(c))
			}
		}
	}
	if cm != nil {
		// What the module imports and exports is its bytes': found before
		// it runs.
		err := checkImports(cm, everyCapability, false)
		if err == nil {
			err = checkExports(cm)
		}
		if missing := missingExport(cm.ExportedFunctions()); err == nil && missing != "" {
			err = fmt.Errorf("%w: %s", ErrIncompatible, missing)
		}
		if err != nil {
			info.Err = err
			return info
		}
	}
	info.Ran = true
	p, err := load(ctx, cfg.withDefaults(), &s)
	if p != nil { // read as far as its metadata; err says what failed after
		info.Metadata, info.Migrations = p.meta, p.migrations
		p.close(ctx)
	}
	info.Err = err
	return info
}
