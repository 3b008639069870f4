package host

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/internal/localstore"
	"github.com/storage-host/storage-host/host/internal/pgbridge"
	"github.com/storage-host/storage-host/host/internal/wasmcheck"
	"github.com/storage-host/storage-host/host/internal/wirepath"
	"github.com/storage-host/storage-host/host/redisbridge"
)

// builtins holds the plugins shipped with the host, built from plugins/
// by `make plugins`; TestBuiltinsMatchSource keeps them in step.
//
//go:embed builtin/*.wasm
var builtins embed.FS

// BuiltinWASM returns the module of the embedded plugin name ("memory",
// "local", "redis", "postgres"). "local" is the memory plugin's module: what makes it
// durable is the data directory it requires (Config.DataDir).
func BuiltinWASM(name string) ([]byte, error) {
	if name == "local" {
		name = "memory"
	}
	b, err := builtins.ReadFile("builtin/" + name + ".wasm")
	if err != nil {
		return nil, fmt.Errorf("host: no built-in plugin %q", name)
	}
	return b, nil
}

// readModuleFile reads the module at path: a regular file of at most
// limit bytes, refused unread otherwise (what the opened file is, not
// what the path named before: the open does not wait for a pipe's
// writer, and a device such as /dev/zero never ends).
func readModuleFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
	case fi.Size() > limit:
		return nil, fmt.Errorf("%s: a module of %d bytes, more than %d", path, fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s: a module of more than %d bytes", path, limit)
	}
	return b, err
}

// readPlugin returns the module cfg names, checked against its pin.
func readPlugin(cfg *Config) (wasm []byte, err error) {
	switch {
	case cfg.WASM != nil:
		wasm = cfg.WASM
	case strings.HasPrefix(cfg.Plugin, BuiltinPrefix):
		if wasm, err = BuiltinWASM(strings.TrimPrefix(cfg.Plugin, BuiltinPrefix)); err != nil {
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	default:
		wasm, err = readModuleFile(cfg.Plugin, int64(wasmcheck.Default.ModuleBytes))
		if err != nil {
			err = fmt.Errorf("%w: reading the plugin: %w", ErrInvalid, err)
		}
	}
	if err != nil || cfg.SHA256 == "" {
		return wasm, err
	}
	sum := sha256.Sum256(wasm)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, cfg.SHA256) {
		return nil, fmt.Errorf("%w: plugin %s has sha256 %s, the configuration pins %s", ErrIncompatible, cfg.Plugin, got, cfg.SHA256)
	}
	return wasm, nil
}

// plugin is one loaded backend: a compiled module in its own runtime, the
// host capabilities granted to it, and a pool of instances.
type plugin struct {
	name     string
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	modCfg   wazero.ModuleConfig
	meta     abi.Metadata
	options  []byte // encoded abi.Options, sent to every new instance
	log      hclog.Logger
	limits   Limits
	kv       *localstore.Store
	dataDir  string // where kv keeps its data; "" for memory
	redis    *redisbridge.Bridge
	pg       *pgbridge.Bridge
	events   atomic.Pointer[events.Bus] // the store's, once open
	pool     pool
	observer Observer
	traps    atomic.Uint64
	// discards rate-limits the log of failed calls (logFailure).
	discards refusalLog

	// kvReads are the gets served from kv without entering the plugin
	// (kvreads.go); kvServed counts them, kvReadFaults the values found
	// not to be the record, logged as readFaultLog says.
	kvReads      kvReads
	kvServed     atomic.Uint64
	kvReadFaults atomic.Uint64
	// redisReads are the gets served with a Redis read of the host's own
	// (redisreads.go), counted as the kv reads are.
	redisReads      redisReads
	redisServed     atomic.Uint64
	redisReadFaults atomic.Uint64
	// pgReads are the gets served with a statement the host runs itself
	// (pgreads.go), counted as the kv reads are.
	pgReads      pgReads
	pgServed     atomic.Uint64
	pgReadFaults atomic.Uint64
	// readFaultLog rate-limits the log of declared read faults (kv, redis
	// and postgres): at most one a second.
	readFaultLog refusalLog

	// redisScripts: the backend's Redis configuration grants scripts
	// (abi.CapabilityRedisScripts).
	redisScripts bool
	// writesEvents: the plugin inserts the event of each write into the
	// backend's PostgreSQL event table itself (abi.FeatureWriteEvents).
	writesEvents bool
	// migrations is how many schema migrations the plugin ships, read
	// when it is inspected.
	migrations int
	// trusted plugins have no interruption checks: their calls run on a
	// worker goroutine per instance so the caller can be released at the
	// deadline, abandoning the instance (instance.guest). An untrusted
	// plugin's module is instrumented instead (wasmcheck.Instrument): its
	// guest calls refuel, which stops the call once it is overdue.
	trusted bool
	// refill is the fuel refuel grants an untrusted guest (fuelRefill,
	// or builtinFuelRefill for a built-in plugin).
	refill int32
	// abandoned counts instances whose caller was released while their
	// guest call still runs; each is closed when its call returns.
	abandoned atomic.Int64
	// running counts trusted guest calls under way; closing is set by
	// close, and whichever of close and the last guest to return sees
	// both settled releases the runtime (release).
	running  atomic.Int64
	closing  atomic.Bool
	released sync.Once

	// instances maps each live instance's module to it, so that host
	// functions (which see only the calling module) reach its call state.
	instances sync.Map // api.Module → *instance
	stop      chan struct{}
	// cutAll is set when the plugin closes; every trusted instance's cut
	// channel is closed then, or at its creation after.
	cutMu  sync.Mutex
	cutAll bool
}

// wazeroReady makes wazero look up its own version once, before any two
// stores are opened at once: wazero v1.12 caches it in a variable it
// writes unguarded on first use (in NewCompilationCacheWithDir and every
// new runtime), a data race when two runtimes are made concurrently the
// first time (the race detector found it in CI).
var wazeroReady = sync.OnceFunc(func() {
	ctx := context.Background()
	_ = wazero.NewRuntime(ctx).Close(ctx)
})

func load(ctx context.Context, cfg Config, s *settings) (_ *plugin, err error) {
	wasm, err := readPlugin(&cfg)
	if err != nil {
		return nil, fmt.Errorf("host: backend %s: %w", cmp.Or(cfg.Name, cfg.Plugin), err)
	}
	// The bounds are checked before wazero sizes anything by what the
	// module declares (SECURITY.md, "Module loading"). An untrusted module
	// is instrumented with fuel checks in the same walk: they are what
	// stops its runaway calls (refuel; RATIONALE.md, "Why instrument
	// untrusted modules instead of wazero's close-on-context-done?").
	refill := int32(fuelRefill)
	switch {
	case cfg.Trusted:
		err = checkModule(wasm)
	case cfg.WASM == nil && strings.HasPrefix(cfg.Plugin, BuiltinPrefix):
		wasm, err = instrumentBuiltin(strings.TrimPrefix(cfg.Plugin, BuiltinPrefix), wasm)
		refill = builtinFuelRefill
	default:
		wasm, err = instrumentModule(wasm)
	}
	if err != nil {
		return nil, err
	}
	// An untrusted module's DWARF sections (.debug_*) are not read: wazero
	// looks up a trap's source lines by walking them whole, frame by frame,
	// with no deadline (SECURITY.md, "Module loading"). Its traps still
	// name their functions, from the name section.
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(cfg.Limits.MemoryPages).
		WithDebugInfoEnabled(cfg.Trusted)
	wazeroReady()
	if s.cacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(s.cacheDir)
		if err != nil {
			return nil, fmt.Errorf("host: compilation cache: %w", err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	// Compiled first, and given up on when ctx ends or the compilation runs
	// too long: compile closes the runtime then, once wazero is done with
	// it, so the plugin closes it only once it has it.
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	compiled, err := compile(ctx, rt, wasm)
	if err != nil {
		return nil, err
	}
	if s.cacheDir != "" {
		if n, freed := trimCompilationCache(s.cacheDir, compilationCacheBytes); n > 0 {
			s.logger.Info("compilation cache trimmed: least recently used modules removed", "dir", s.cacheDir, "modules", n, "bytes", freed)
		}
	}
	// Named by the configuration, else by what it loads until the module
	// names itself (its metadata).
	p := &plugin{name: cmp.Or(cfg.Name, cfg.Plugin), runtime: rt, compiled: compiled, limits: cfg.Limits, observer: s.observer, stop: make(chan struct{}), trusted: cfg.Trusted, refill: refill,
		discards: refusalLog{perSecond: discardsLoggedPerSecond}, readFaultLog: refusalLog{perSecond: 1}}
	if !s.inspect {
		// An inspected plugin gets an in-memory kv store: inspecting
		// leaves the data directory alone.
		p.dataDir = cfg.DataDir
	}
	defer func() {
		if err != nil {
			p.close(ctx)
		}
	}()
	if cfg.Redis != nil {
		rc := *cfg.Redis
		// The bridge stops reading replies past what the plugin may be
		// answered (a configured bound only lowers it), and claims its
		// prefix on that Redis for this backend.
		if bound := cfg.Limits.replyBytes(); rc.MaxReplyBytes == 0 || rc.MaxReplyBytes > bound {
			rc.MaxReplyBytes = bound
		}
		if rc.Logger == nil {
			rc.Logger = s.logger.Named("redis").With("backend", cmp.Or(cfg.Name, cfg.Plugin))
		}
		if rc.Owner == "" {
			// One name (or, unnamed, one plugin) on one prefix is one
			// backend: two hosts in a process may share it.
			rc.Owner = cmp.Or(cfg.Name, cfg.Plugin)
		}
		if p.redis, err = redisbridge.Open(ctx, rc); err != nil {
			return nil, fmt.Errorf("host: backend %s: %w", cmp.Or(cfg.Name, cfg.Plugin), err)
		}
		cfg.Capabilities = grant(cfg.Capabilities, abi.CapabilityRedis)
		if rc.Scripts {
			p.redisScripts = true
			cfg.Capabilities = grant(cfg.Capabilities, abi.CapabilityRedisScripts)
		}
	}
	if cfg.Postgres != nil && !s.inspect {
		if p.pg, err = openPostgres(ctx, cfg.Postgres, cfg.Limits, !cfg.DisableEvents); err != nil {
			return nil, fmt.Errorf("host: backend %s: %w", cmp.Or(cfg.Name, cfg.Plugin), err)
		}
	}
	if cfg.Postgres != nil {
		cfg.Capabilities = grant(cfg.Capabilities, abi.CapabilityPostgres)
	}
	if err := checkImports(p.compiled, cfg.Capabilities, !cfg.Trusted); err != nil {
		return nil, err
	}
	if err := checkExports(p.compiled); err != nil {
		return nil, err
	}
	if !cfg.Trusted {
		if err := p.instantiateFuel(ctx); err != nil {
			return nil, err
		}
	}
	p.log = s.logger.Named("plugin").Named(cfg.Name)
	if p.redis != nil {
		// The first reading of the servers, before the first write; the
		// bridge logs a Redis set to evict (Config.Logger).
		p.redis.Evicting(ctx)
		lazyCtx, cancel := context.WithTimeout(ctx, time.Second)
		if reason := p.redis.FreesInline(lazyCtx); reason != "" {
			s.logger.Warn("the backend's Redis frees what a plugin overwrites or lets expire in the thread every client waits on: a plugin that keeps collections of millions of members can stall the server for a second each (SECURITY.md, \"Sharing a Redis between backends\"); set these to yes: "+reason, "backend", cfg.Name)
		}
		if reason := p.redis.RepliesUnbounded(lazyCtx); reason != "" {
			s.logger.Warn("the backend's Redis bounds no client's replies: a plugin's read can make it build a reply many times what it stores, past maxmemory (SECURITY.md, \"Sharing a Redis between backends\"); set client-output-buffer-limit normal to a hard limit, say 64mb 32mb 10, or maxmemory-clients: "+reason, "backend", cfg.Name)
		}
		cancel()
	}
	if p.pg != nil && p.pg.TempFileLimitKB() < 0 {
		s.logger.Warn("the backend's PostgreSQL role may fill the server's disk with temporary files: its temp_file_limit is unbounded and only a superuser may set it (SECURITY.md, \"Sharing a PostgreSQL between backends\")",
			"backend", cfg.Name, "role", PostgresRole(cfg.Postgres.Schema))
	}
	limiter := newLogLimiter(p.log, cfg.Limits.LogLinesPerSecond, int(cfg.Limits.MaxLogLineBytes))
	if err := p.instantiateWASI(ctx, limiter); err != nil {
		return nil, err
	}
	if err := p.instantiateCapabilities(ctx, cfg.Capabilities, s, limiter); err != nil {
		return nil, err
	}
	p.modCfg = wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _initialize is called by newInstance, so its failure is reported
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader) // stdout and stderr: instantiateWASI

	// The first instance performs the handshake and reads the metadata.
	first, err := p.instantiate(ctx)
	if err != nil {
		return nil, err
	}
	if p.meta, err = first.metadata(ctx); err != nil {
		first.close(ctx)
		if s.inspect && validPluginName(p.meta.Name) && validPluginVersion(p.meta.Version) {
			// Inspect shows what the metadata says beside why it is
			// refused; a name or version out of form is not shown.
			return p, err
		}
		return nil, err
	}
	if err := checkCapabilities(p.compiled, p.meta.Capabilities, cfg.Capabilities, !cfg.Trusted); err != nil {
		first.close(ctx)
		return nil, err
	}
	p.writesEvents = p.meta.Features.Has(abi.FeatureWriteEvents)
	p.setKVReads()
	p.setRedisReads()
	p.setPGReads()
	if cfg.Name == "" {
		p.name = p.meta.Name
		if cfg.WASM == nil && cfg.Plugin == BuiltinPrefix+"local" {
			p.name = "local" // the memory module, on disk
		}
		p.log = s.logger.Named("plugin").Named(p.name)
		limiter.log = p.log
	}
	if s.inspect && slices.Contains(p.meta.Capabilities, abi.CapabilityPostgres) {
		// Migrations a load would refuse make the plugin unloadable here
		// too, though no schema is reached.
		ms, err := first.migrations(ctx)
		if err != nil {
			first.close(ctx)
			return p, err
		}
		p.migrations = len(ms)
	}
	if s.inspect && !s.checkOptions {
		// One call through the protocol (the configure every instance
		// gets, with no options): a plugin whose reserve, memory or
		// response cannot carry a call is not loadable, whatever its
		// metadata says. Its own refusal (an option it needs, a store it
		// cannot reach while inspected) is its answer, not a fault.
		// The plugin is returned with the error: its metadata was read.
		err := p.configure(ctx, first)
		first.close(ctx)
		if errors.As(err, new(errTrap)) {
			return p, fmt.Errorf("%w: %v", ErrIncompatible, err)
		}
		return p, nil
	}
	if p.pg != nil && slices.Contains(p.meta.Capabilities, abi.CapabilityPostgres) {
		if err := first.migrate(ctx); err != nil {
			first.close(ctx)
			return nil, err
		}
	}
	if p.pg != nil {
		// What the plugin's migrations took from its own role is not
		// a reason to be unready.
		if err := p.pg.NoteLacking(ctx); err != nil {
			first.close(ctx)
			return nil, fmt.Errorf("%w: host: backend %s: %w", ErrUnavailable, cfg.Name, err)
		}
	}
	var e abi.Encoder
	abi.Options(cfg.Options).Encode(&e)
	p.options = e.Bytes()
	if err := p.configure(ctx, first); err != nil {
		first.close(ctx)
		return nil, err
	}
	if s.inspect {
		first.close(ctx)
		return p, nil
	}
	p.pool.init(cfg.Instances, retireAt(cfg.Limits, first.mem.Size()), p.newInstance)
	p.pool.put(first, true)
	return p, nil
}

// retireAt is the size past which an instance's memory, after a call,
// retires it: half way from what a new instance has (start) to what it
// may grow to (RATIONALE.md, "Why are instances whose memory grew half
// way to the limit closed after their call?").
func retireAt(l Limits, start uint32) uint32 {
	limit := min(uint64(l.MemoryPages)*65536, math.MaxUint32)
	return uint32(max(limit, uint64(start))/2 + uint64(start)/2)
}

// fuelRefill is the fuel refuel grants: about the loop iterations and
// calls (one unit, plus one per 64 bytes of their code) and 64-byte units
// of bulk memory an untrusted guest runs between two checks of its call's
// deadline, context and plugin (RATIONALE.md,
// "Why instrument untrusted modules instead of wazero's
// close-on-context-done?").
const fuelRefill = 10_000

// builtinFuelRefill is the refill of the built-in plugins. Their code is
// this repository's, with no loop of instructions that cost far more than
// their bytes, so what bounds the time between two checks is their
// ordinary code, whose Go-compiled functions are charged by their size:
// about 20 µs of it at this refill, where fuelRefill is about 2 µs and
// its refuels took about 4 % of a Redis bulk put's host CPU
// (RATIONALE.md, "Why do the built-in plugins get a larger refill of
// fuel?").
const builtinFuelRefill = 100_000

// errTimedOut is the panic with which refuel ends a call past
// Limits.CallTimeout; wazero unwinds the guest and returns it wrapped.
var errTimedOut = errors.New("host: call timeout")

// instantiateFuel provides the import wasmcheck.Instrument adds to an
// untrusted module.
func (p *plugin) instantiateFuel(ctx context.Context) error {
	_, err := p.runtime.NewHostModuleBuilder(wasmcheck.FuelModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.refuel), nil, []api.ValueType{api.ValueTypeI32}).
		Export(wasmcheck.FuelFunc).Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("host: fuel module: %w", err)
	}
	return nil
}

// processStart is what monoNow counts from.
var processStart = time.Now()

// monoNow is the monotonic time in nanoseconds since the process started,
// never 0: what a call's start and its timeout are measured in, so that a
// change of the wall clock neither ends a call early nor lets it run on.
func monoNow() int64 { return int64(time.Since(processStart)) + 1 }

// refuel is called by an instrumented guest whose fuel ran out. It ends the
// call, by panicking, once the call has run past Limits.CallTimeout (which
// sets timedOut), its context has ended, or the plugin is closing;
// instance.failed turns each into the call's error and the instance is
// discarded. Otherwise it refills the fuel.
func (p *plugin) refuel(ctx context.Context, mod api.Module, stack []uint64) {
	p.interrupt(ctx, p.instanceOf(mod))
	stack[0] = uint64(p.refill)
}

// interrupt ends the call the calling instance in (nil during
// initialisation) is making, by panicking, once it has run past
// Limits.CallTimeout (which sets timedOut), its caller was released from
// it (a trusted call abandoned), its context has ended, or the plugin is
// closing. refuel and every capability host function (hostCall) call it.
func (p *plugin) interrupt(ctx context.Context, in *instance) {
	if in != nil {
		if started := in.started.Load(); started != 0 && monoNow()-started > int64(p.limits.CallTimeout) {
			in.timedOut.Store(true)
			panic(errTimedOut)
		}
		if in.state.Load() == guestAbandoned {
			panic(errTimedOut)
		}
	}
	if err := ctx.Err(); err != nil {
		panic(err)
	}
	select {
	case <-p.stop:
		panic(ErrClosed)
	default:
	}
}

// exportTypes are the function types the ABI gives its exports (abi/README.md,
// section 4), as parameters and results.
var exportTypes = map[string][2][]api.ValueType{
	abi.ExportInitialize: {nil, nil},
	abi.ExportABIVersion: {nil, {api.ValueTypeI32}},
	abi.ExportMetadata:   {nil, {api.ValueTypeI64}},
	abi.ExportReserve:    {{api.ValueTypeI32}, {api.ValueTypeI32}},
	abi.ExportCall:       {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
	abi.ExportMigrations: {nil, {api.ValueTypeI64}},
}

// checkExports refuses a module exporting one of the ABI's functions with
// another type: the host would find out only when it first called it, as
// a trap ("need 3 params, but stack size is 2") or a value it misreads.
func checkExports(cm wazero.CompiledModule) error {
	for name, def := range cm.ExportedFunctions() {
		want, ok := exportTypes[name]
		if !ok {
			continue
		}
		if !slices.Equal(def.ParamTypes(), want[0]) || !slices.Equal(def.ResultTypes(), want[1]) {
			return fmt.Errorf("%w: export %s has type %s; the ABI gives it %s (abi/README.md, section 4)",
				ErrIncompatible, name, funcType(def.ParamTypes(), def.ResultTypes()), funcType(want[0], want[1]))
		}
	}
	return nil
}

// missingExport names the first of the functions every plugin exports
// that exports lacks, or returns "": the module's bytes' fault, found
// before anything of it runs (Inspect before the module runs, an
// instance before its _initialize).
func missingExport(exports map[string]api.FunctionDefinition) string {
	if exports[abi.ExportABIVersion] == nil {
		return "no " + abi.ExportABIVersion + " export: not a storage-host plugin"
	}
	for _, name := range []string{abi.ExportMetadata, abi.ExportReserve, abi.ExportCall} {
		if exports[name] == nil {
			return "missing export " + name + " (abi/README.md, section 4)"
		}
	}
	return ""
}

// wazeroMismatch is wazero's refusal of an import whose type is not the
// host function's: the module's type, then the host's, in wazero's
// notation (i32i32_i64; v for none).
var wazeroMismatch = regexp.MustCompile(`import func\[([^\]]+)\]: signature mismatch: (\w+) != (\w+)`)

// importMismatch words wazero's refusal of an import's type as the export
// check words an export's: both types as the ABI's text writes them.
func importMismatch(err error) string {
	m := wazeroMismatch.FindStringSubmatch(err.Error())
	if m == nil {
		return err.Error()
	}
	return fmt.Sprintf("imports %s with type %s; the host's %s has type %s (abi/README.md, section 6)",
		m[1], wazeroType(m[2]), m[1], wazeroType(m[3]))
}

// wazeroType rewrites wazero's notation of a function type (i32i32_i64,
// v for none) as the ABI's text does: (i32, i32) -> i64.
func wazeroType(t string) string {
	params, results, ok := strings.Cut(t, "_")
	if !ok {
		return t
	}
	list := func(s string) []api.ValueType {
		var ts []api.ValueType
		for len(s) >= 3 {
			switch s[:3] {
			case "i32":
				ts = append(ts, api.ValueTypeI32)
			case "i64":
				ts = append(ts, api.ValueTypeI64)
			case "f32":
				ts = append(ts, api.ValueTypeF32)
			case "f64":
				ts = append(ts, api.ValueTypeF64)
			}
			s = s[3:]
		}
		return ts
	}
	return funcType(list(params), list(results))
}

// funcType writes a function type as the ABI's text does: (i32, i32) -> i64.
func funcType(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	out := "(" + names(params) + ") -> "
	if len(results) == 1 {
		return out + names(results)
	}
	return out + "(" + names(results) + ")"
}

// checkImports refuses a module importing anything but WASI and the
// granted capability modules.
// instrumented is true for a module wasmcheck.Instrument rewrote, whose
// fuel import the host provides.
func checkImports(cm wazero.CompiledModule, granted []abi.Capability, instrumented bool) error {
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		return fmt.Errorf("%w: imports memory %s.%s; a plugin must define its own memory", ErrIncompatible, mod, name)
	}
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod == wasi_snapshot_preview1.ModuleName || (instrumented && mod == wasmcheck.FuelModule) {
			continue
		}
		c, ok := strings.CutPrefix(mod, abi.ModulePrefix)
		if !ok || !moduleCapability(abi.Capability(c)) {
			hint := ""
			if mod == "env" && name == "abort" {
				// AssemblyScript's default abort handler.
				hint = " (AssemblyScript: build with --use abort=… naming a handler of the module's own, as sdk/assemblyscript/README.md shows)"
			}
			return fmt.Errorf("%w: imports %s.%s, which this host does not provide%s", ErrIncompatible, mod, name, hint)
		}
		if !slices.Contains(granted, abi.Capability(c)) {
			return fmt.Errorf("%w: needs capability %q (imports %s.%s), which the configuration does not grant", ErrIncompatible, c, mod, name)
		}
	}
	return nil
}

// capabilityGoName is the name of c's constant in package abi (KV, Redis,
// Postgres …), for a hint to the Go SDK's authors.
func capabilityGoName(c string) string {
	if c == string(abi.CapabilityKV) {
		return "KV"
	}
	if c == "" {
		return c
	}
	return strings.ToUpper(c[:1]) + c[1:]
}

// checkCapabilities checks the metadata against the grant and the imports.
func checkCapabilities(cm wazero.CompiledModule, declared, granted []abi.Capability, instrumented bool) error {
	for _, c := range declared {
		if !knownCapability(c) {
			return fmt.Errorf("%w: declares capability %q, which this host does not provide", ErrIncompatible, c)
		}
		if !slices.Contains(granted, c) {
			return fmt.Errorf("%w: needs capability %q, which the configuration does not grant", ErrIncompatible, c)
		}
	}
	for _, f := range cm.ImportedFunctions() {
		mod, _, _ := f.Import()
		if instrumented && mod == wasmcheck.FuelModule {
			continue
		}
		if c, ok := strings.CutPrefix(mod, abi.ModulePrefix); ok && !slices.Contains(declared, abi.Capability(c)) {
			return fmt.Errorf("%w: imports %s but does not declare capability %q in its metadata (with the Go SDK: add abi.Capability%s to sdk.Plugin.Capabilities)", ErrIncompatible, mod, c, capabilityGoName(c))
		}
	}
	return nil
}

func (p *plugin) configure(ctx context.Context, in *instance) error {
	body, err := in.call(ctx, abi.OpConfigure, p.options, 1)
	if err == nil {
		if berr := emptyBody(abi.OpConfigure, body); berr != nil {
			err = abi.Errorf(abi.StatusInternal, "%s response: %v", abi.OpConfigure, berr)
		}
	}
	if err == nil {
		err = p.syncKV(ctx, in.usedKV, true)
	}
	if err != nil {
		return fmt.Errorf("host: configure plugin %s: %w", p.name, err)
	}
	return nil
}

// newInstance is the pool's constructor: instantiate and configure.
func (p *plugin) newInstance(ctx context.Context) (*instance, error) {
	if n := p.abandoned.Load(); n >= p.maxAbandoned() {
		return nil, abi.Errorf(abi.StatusLimit, "backend %s: %d abandoned calls are still running (at most %d); no new instance until they return", p.name, n, p.maxAbandoned())
	}
	in, err := p.instantiate(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.configure(ctx, in); err != nil {
		in.close(ctx)
		return nil, err
	}
	return in, nil
}

func (p *plugin) close(ctx context.Context) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.cutTrusted()
	p.pool.close(ctx)
	// A trusted guest still running (abandoned, or about to be) uses the
	// runtime, the kv store and the Redis bridge until it returns; the
	// last one to return releases them.
	p.closing.Store(true)
	if p.running.Load() == 0 {
		p.release(ctx)
	}
}

// cutTrusted releases every caller waiting for a trusted guest call: the
// plugin is closing.
func (p *plugin) cutTrusted() {
	if !p.trusted {
		return
	}
	p.cutMu.Lock()
	defer p.cutMu.Unlock()
	p.cutAll = true
	p.instances.Range(func(_, v any) bool {
		v.(*instance).cutOnce()
		return true
	})
}

// cutOnce closes the instance's cut channel; plugin.cutMu is held.
func (in *instance) cutOnce() {
	if !in.cutClosed {
		in.cutClosed = true
		close(in.cut)
	}
}

// release frees what the plugin's guests use, once.
func (p *plugin) release(ctx context.Context) {
	p.released.Do(func() {
		if p.kv != nil {
			if err := p.kv.Close(); err != nil {
				p.log.Error("kv store: closing its data directory failed; writes answered before this were on disk", "error", err)
			}
		}
		if p.redis != nil {
			_ = p.redis.Close()
		}
		if p.pg != nil {
			p.pg.Close()
		}
		_ = p.runtime.Close(ctx)
	})
}

// instance is one instantiated plugin module. It is used by one caller at
// a time: the pool hands it out and takes it back.
type instance struct {
	p         *plugin
	gen       uint64 // the pool's generation it was made in
	mod       api.Module
	mem       api.Memory
	reserve   api.Function
	callFn    api.Function
	region    uint32 // pointer storage_reserve returned
	size      uint32 // the size asked for it
	hasRegion bool
	stack     [2]uint64
	enc       abi.Encoder // request scratch
	dec       abi.Decoder

	started   atomic.Int64 // monoNow when the current call began; 0 between calls
	timedOut  atomic.Bool  // set by refuel when it ended a call past its timeout
	hostCalls uint32       // host-function calls made by the current call
	// shares is the calls the current call carries (a shared batch's
	// items, else 1): the per-call budgets are that many times Limits'.
	// Set by call, before the guest runs.
	shares  uint32
	pending []byte // a kv result waiting for storagehost_kv.result
	// held is the encoder whose buffer pending is, kept by the instance
	// for the rest of its call instead of copying the result out of it.
	held     *abi.Encoder
	usedKV   bool   // the current call used a durable kv store
	startMem uint32 // the memory's size when the instance was made
	// growRefused is the instrumented module's flag of a memory.grow
	// answered -1 (wasmcheck.GrowRefused), cleared before each call; nil
	// for a trusted module, which is not instrumented.
	growRefused api.MutableGlobal
	// initOut holds what the guest writes to stderr while its
	// _initialize runs (a Go plugin's panic in init), for the error
	// that reports its failure; nil after.
	initOut *firstLine
	// notGranted is the first refusal, in the current call, of a redis
	// request the backend's configuration does not grant
	// (redisbridge.ErrNotGranted).
	notGranted error
	// sentRemote is set when a redis or postgres call of the current call
	// may have changed data: the bridge answered it otherwise than INVALID
	// or UNAVAILABLE, which both mean nothing of it was written.
	// remoteBusy is set while such a call runs: a caller released at its
	// deadline (a trusted call is abandoned, not stopped) may leave one
	// running.
	sentRemote, remoteBusy atomic.Bool
	// remoteLate is set when a redis or postgres call of the current call
	// ended at or past the call's deadline: its store did not answer in
	// time.
	remoteLate atomic.Bool
	// remoteWait is the time the current call spent in redis and postgres
	// calls answered UNAVAILABLE (nothing sent: a store away, a dial),
	// waiting rather than making it work (the ticker's pacing leaves it
	// out; a store's work is the plugin's time).
	remoteWait atomic.Int64 // nanoseconds
	// remoteLost is set when a redis or postgres call of the current
	// call answered UNKNOWN: sent, its answer and connection lost;
	// lostWait is the time such calls took, nanoseconds.
	remoteLost atomic.Bool
	lostWait   atomic.Int64
	// wroteKV is set when a kv put, delete or restore of the current call
	// was applied.
	wroteKV atomic.Bool
	budget  callBudget // per-call budgets of host functions (capabilities.go)

	// Trusted plugins only (instance.guest): the worker runs each guest
	// call; the caller waits for it, the deadline, its context or Close.
	work    chan api.Function // caller → worker
	done    chan error        // worker → caller
	workCtx context.Context   // the context of the call the worker runs
	state   atomic.Int32      // guestIdle, guestRunning or guestAbandoned
	// cut is closed when the plugin closes (plugin.cutTrusted): the
	// caller stops waiting. It is the instance's own, so that callers of
	// different instances do not contend for one channel's lock.
	cut       chan struct{}
	cutClosed bool      // guarded by plugin.cutMu
	deadline  time.Time // the current call's, from Limits.CallTimeout
	timer     *time.Timer
	timerAt   time.Time // when timer fires; zero when it is not armed
}

// The states of a trusted instance's worker.
const (
	guestIdle int32 = iota
	guestRunning
	guestAbandoned
)

// errAbandoned is what guest returns when it released its caller while
// the guest call still runs; why is the cause to report.
type errAbandoned struct{ why error }

func (e errAbandoned) Error() string { return e.why.Error() }
func (e errAbandoned) Unwrap() error { return e.why }

// maxAbandoned bounds the instances whose calls were abandoned but still
// run: past it, new instances are refused (ErrLimit) rather than piling up
// guests that each hold a CPU and up to Limits.MemoryPages of memory.
func (p *plugin) maxAbandoned() int64 { return int64(max(p.pool.size, 1)) }

// guest runs fn on the instance's stack. For an untrusted plugin it runs on
// the caller's goroutine, and refuel interrupts it. A trusted
// plugin has no interruption checks, so its worker goroutine runs fn and
// the caller waits for the result, the call's deadline, ctx or the plugin
// closing; on any of the last three the instance is abandoned: the caller
// gets errAbandoned at once, and the worker closes the instance when the
// guest finally returns. The guest keeps its CPU until then.
func (in *instance) guest(ctx context.Context, fn api.Function) error {
	if in.work == nil {
		return fn.CallWithStack(ctx, in.stack[:])
	}
	in.workCtx = ctx
	in.state.Store(guestRunning)
	in.p.running.Add(1)
	in.work <- fn
	// The timer is left armed between calls: deadlines only move later,
	// so it fires at or before this call's deadline, and is re-armed only
	// when it fires early (about once per CallTimeout), not on every call.
	if in.timerAt.IsZero() {
		in.timer.Reset(time.Until(in.deadline))
		in.timerAt = in.deadline
	}
	var why error
wait:
	for {
		select {
		case err := <-in.done:
			return err
		case <-in.timer.C:
			in.timerAt = time.Time{}
			if left := time.Until(in.deadline); left > 0 {
				in.timer.Reset(left)
				in.timerAt = in.deadline
				continue
			}
			why = abi.Errorf(abi.StatusLimit, "ran past the call timeout of %v", in.p.limits.CallTimeout)
		case <-ctx.Done():
			why = ctx.Err()
		case <-in.cut:
			why = ErrClosed
		}
		break wait
	}
	if !in.state.CompareAndSwap(guestRunning, guestAbandoned) {
		return <-in.done // it returned just now
	}
	in.p.abandoned.Add(1)
	in.p.log.Warn("trusted plugin call abandoned; its instance is closed when the call returns", "cause", why)
	return errAbandoned{why}
}

// worker runs a trusted instance's guest calls until the instance is
// closed or a call is abandoned; then it closes the instance itself, once
// the guest has returned.
func (in *instance) worker() {
	p := in.p
	for fn := range in.work {
		err := fn.CallWithStack(in.workCtx, in.stack[:])
		if in.state.CompareAndSwap(guestRunning, guestIdle) {
			p.guestReturned()
			in.done <- err
			continue
		}
		in.workCtx = nil
		p.instances.Delete(in.mod)
		_ = in.mod.Close(context.Background())
		p.abandoned.Add(-1)
		p.guestReturned()
		return
	}
}

// guestReturned ends a trusted guest call; the last to end after close
// releases the runtime.
func (p *plugin) guestReturned() {
	if p.running.Add(-1) == 0 && p.closing.Load() {
		p.release(context.Background())
	}
}

func (p *plugin) instantiate(ctx context.Context) (*instance, error) {
	// The call timeout bounds initialisation too: wazero closes the module
	// when this context ends, even inside a runaway _initialize.
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, p.limits.CallTimeout)
	defer cancel()
	mod, err := p.runtime.InstantiateModule(ctx, p.compiled, p.modCfg)
	if err != nil {
		if caller.Err() != nil {
			// The caller gave up: nothing is wrong with the plugin.
			return nil, fmt.Errorf("backend %s: creating an instance: %w", p.name, caller.Err())
		}
		return nil, fmt.Errorf("%w: instantiate: %v", ErrIncompatible, importMismatch(err))
	}
	in := &instance{p: p, mod: mod, mem: mod.ExportedMemory(abi.ExportMemory), shares: 1}
	if in.mem != nil {
		in.startMem = in.mem.Size()
	}
	if !p.trusted {
		in.growRefused, _ = mod.ExportedGlobal(wasmcheck.GrowRefused).(api.MutableGlobal)
	}
	if p.trusted {
		in.cut = make(chan struct{})
	}
	p.instances.Store(mod, in)
	if p.trusted {
		p.cutMu.Lock()
		if p.cutAll {
			in.cutOnce()
		}
		p.cutMu.Unlock()
	}
	fail := func(format string, args ...any) (*instance, error) {
		p.instances.Delete(mod)
		_ = mod.Close(ctx)
		if caller.Err() != nil {
			return nil, fmt.Errorf("backend %s: creating an instance: %w", p.name, caller.Err())
		}
		return nil, fmt.Errorf("%w: %s", ErrIncompatible, fmt.Sprintf(format, args...))
	}
	if in.mem == nil {
		return fail("plugin exports no memory: its linear memory must be exported as %q (abi/README.md, section 4)", abi.ExportMemory)
	}
	if missing := missingExport(p.compiled.ExportedFunctions()); missing != "" {
		return fail("%s", missing)
	}
	if init := mod.ExportedFunction(abi.ExportInitialize); init != nil {
		in.initOut = new(firstLine)
		_, err := init.Call(ctx)
		said := in.initOut.said()
		in.initOut = nil
		if err != nil {
			if ctx.Err() == context.DeadlineExceeded && caller.Err() == nil {
				p.instances.Delete(mod)
				_ = mod.Close(ctx)
				return nil, abi.Errorf(abi.StatusLimit, "%s ran past the call timeout of %v", abi.ExportInitialize, p.limits.CallTimeout)
			}
			if said != "" {
				return fail("%s failed, and wrote on stderr: %s; %v", abi.ExportInitialize, said, err)
			}
			return fail("%s: %v", abi.ExportInitialize, err)
		}
	}
	version := mod.ExportedFunction(abi.ExportABIVersion)
	res, err := version.Call(ctx)
	if err != nil || len(res) != 1 {
		if mod.ExportedFunction(abi.ExportInitialize) == nil && mod.ExportedFunction("_start") != nil {
			return fail("%s failed in a module built as a WASI command (it exports _start and no %s, so its runtime is never initialised): build it as a reactor, in Go with -buildmode=c-shared: %v", abi.ExportABIVersion, abi.ExportInitialize, err)
		}
		return fail("%s: %v", abi.ExportABIVersion, err)
	}
	if v := abi.UnpackVersion(uint32(res[0])); !abi.Current.CanLoad(v) {
		return fail("ABI version mismatch: host speaks %s, plugin needs %s", abi.Current, v)
	}
	in.reserve = mod.ExportedFunction(abi.ExportReserve)
	in.callFn = mod.ExportedFunction(abi.ExportCall)
	if p.trusted {
		in.work, in.done = make(chan api.Function), make(chan error, 1)
		in.timer = time.NewTimer(time.Hour)
		in.timer.Stop()
		go in.worker()
	}
	return in, nil
}

// close closes the instance; an abandoned one is left to its worker, which
// closes it when the guest returns.
func (in *instance) close(ctx context.Context) {
	in.p.instances.Delete(in.mod)
	if in.work != nil {
		if in.state.Load() == guestAbandoned {
			return
		}
		close(in.work)
	}
	_ = in.mod.Close(ctx)
}

// region reads a packed guest region, refusing one outside memory.
func (in *instance) read(packed uint64, what string) ([]byte, error) {
	ptr, n := abi.UnpackRegion(packed)
	b, ok := in.mem.Read(ptr, n)
	if !ok {
		return nil, outsideMemory(what, ptr, n, in.mem.Size())
	}
	return b, nil
}

func (in *instance) metadata(ctx context.Context) (abi.Metadata, error) {
	var m abi.Metadata
	in.started.Store(monoNow())
	res, err := in.mod.ExportedFunction(abi.ExportMetadata).Call(ctx)
	in.started.Store(0)
	if err != nil {
		if in.timedOut.Load() {
			return m, abi.Errorf(abi.StatusLimit, "%s ran past the call timeout of %v", abi.ExportMetadata, in.p.limits.CallTimeout)
		}
		return m, fmt.Errorf("%w: %s: %v", ErrIncompatible, abi.ExportMetadata, err)
	}
	b, err := in.read(res[0], "metadata")
	if err != nil {
		return m, fmt.Errorf("%w: %v", ErrIncompatible, err)
	}
	if len(b) > maxMetadataBytes {
		return m, fmt.Errorf("%w: metadata: %s returned %d bytes, more than the %d a Metadata may hold (section 10.9)", ErrIncompatible, abi.ExportMetadata, len(b), maxMetadataBytes)
	}
	if len(b) == 0 {
		ptr, _ := abi.UnpackRegion(res[0])
		return m, fmt.Errorf("%w: metadata: %s returned no bytes (pointer %d, length 0): the plugin describes nothing (a region is packed pointer<<32 | length, section 4: a length left out reads as this; Go SDK: call sdk.Register from an init function)", ErrIncompatible, abi.ExportMetadata, ptr)
	}
	d := abi.NewDecoder(b)
	m.Decode(d)
	if d.Finish() != nil {
		hint := ""
		if d.Len() > 0 && m.ABI.Major == 1 && m.ABI.Minor < 8 {
			// The decoder stopped at the field 1.8 added.
			hint = fmt.Sprintf(" (kv_reads, after the capabilities, needs abi_minor 8 or more; this plugin declares %s: section 2)", m.ABI)
		} else if d.Len() > 0 && m.ABI.Major == 1 && m.ABI.Minor == 8 {
			hint = fmt.Sprintf(" (redis_reads, after kv_reads, needs abi_minor 9 or more; this plugin declares %s: section 2)", m.ABI)
		}
		return m, fmt.Errorf("%w: metadata: %s%s", ErrIncompatible, wirepath.Fault("Metadata", b, d), hint)
	}
	if !abi.Current.CanLoad(m.ABI) {
		return m, fmt.Errorf("%w: ABI version mismatch: host speaks %s, plugin metadata says %s", ErrIncompatible, abi.Current, m.ABI)
	}
	// The features as sent: the decoder drops the bits it does not know,
	// which a plugin must not set.
	d = abi.NewDecoder(b)
	d.Uint16()
	d.Uint16()
	d.BytesField()
	d.BytesField()
	raw := d.Uint32()
	// storage_abi_version answered once already (instantiate checked it);
	// asked again, the metadata must agree with it.
	in.started.Store(monoNow())
	res, err = in.mod.ExportedFunction(abi.ExportABIVersion).Call(ctx)
	in.started.Store(0)
	if err != nil || len(res) != 1 {
		return m, fmt.Errorf("%w: %s: %v", ErrIncompatible, abi.ExportABIVersion, err)
	}
	if err := checkMetadata(&m, abi.UnpackVersion(uint32(res[0])), raw); err != nil {
		return m, err
	}
	return m, nil
}

// errTrap marks a call that failed inside the guest, broke the protocol or
// went past a limit; the instance that made it is discarded. status is what
// the caller is told: StatusInternal, or StatusLimit for a limit.
type errTrap struct {
	status abi.Status
	err    error
}

func (e errTrap) Error() string { return e.err.Error() }

// Unwrap makes errors.Is see both the status and the cause.
func (e errTrap) Unwrap() []error { return []error{e.status, e.err} }

func trapped(err error) errTrap { return errTrap{abi.StatusInternal, err} }

// reachedStore reports whether the current call may have changed its
// backend's store: it wrote to the kv store, or sent Redis or PostgreSQL
// requests (or is still waiting for one).
func (in *instance) reachedStore() bool {
	return in.wroteKV.Load() || in.sentRemote.Load() || in.remoteBusy.Load()
}

// boundedByCall returns ctx ending at the current call's deadline too,
// when ctx ends later or never. A Redis or PostgreSQL request the call
// waits on ends with the call: a server that stopped answering (a process
// stopped, a network dropping every packet) answers neither the request
// nor the cancellation its own timeout would need, and the guest, waiting
// in the host function, reaches no fuel check until the request returns.
func (in *instance) boundedByCall(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); in.deadline.IsZero() || ok && !d.After(in.deadline) {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, in.deadline)
}

// call sends one request and returns the response body, which aliases guest
// memory until the next call into this instance. A non-OK status is
// returned as an *abi.Error; a trap or protocol violation as errTrap.
// shares is the calls the request carries (instance.shares).
func (in *instance) call(ctx context.Context, op abi.Op, req []byte, shares uint32) ([]byte, error) {
	in.hostCalls, in.pending, in.held, in.usedKV, in.notGranted = 0, nil, nil, false, nil
	in.shares = max(shares, 1)
	in.sentRemote.Store(false)
	in.remoteBusy.Store(false)
	in.remoteLate.Store(false)
	in.remoteWait.Store(0)
	in.remoteLost.Store(false)
	in.lostWait.Store(0)
	in.wroteKV.Store(false)
	in.budget = callBudget{}
	if in.growRefused != nil && in.growRefused.Get() != 0 {
		in.growRefused.Set(0) // refused in an earlier call, which went on
	}
	now := time.Now()
	in.started.Store(monoNow())
	defer in.started.Store(0)
	in.deadline = now.Add(in.p.limits.CallTimeout)
	n := uint32(len(req))
	if n > in.size || !in.hasRegion {
		in.stack[0] = uint64(n)
		if err := in.guest(ctx, in.reserve); err != nil {
			return nil, in.failed(ctx, abi.ExportReserve, err)
		}
		in.region, in.size, in.hasRegion = uint32(in.stack[0]), n, true
	}
	if !in.mem.Write(in.region, req) {
		return nil, trapped(fmt.Errorf("%s returned region [%d, +%d) outside memory", abi.ExportReserve, in.region, n))
	}
	in.stack[0], in.stack[1] = uint64(op), uint64(n)
	if err := in.guest(ctx, in.callFn); err != nil || in.timedOut.Load() {
		// A call refuel ended is discarded even if the error was lost: the
		// instance must not serve again.
		return nil, in.failed(ctx, abi.ExportCall+"("+op.String()+")", err)
	}
	// A region outside memory is a broken plugin, whatever its length
	// says (most often a pointer and a length packed the wrong way round,
	// or never set): only a region that is there can be too large.
	resp, err := in.read(in.stack[0], "response")
	if err != nil {
		return nil, trapped(err)
	}
	if size := uint32(len(resp)); size > in.p.limits.MaxResponseBytes {
		return nil, errTrap{abi.StatusLimit, fmt.Errorf("response of %d bytes is over the limit of %d", size, in.p.limits.MaxResponseBytes)}
	}
	body, err := abi.ParseResponse(resp)
	if ae, ok := err.(*abi.Error); ok {
		// The plugin's error message reaches callers and logs.
		ae.Message = pluginMessage(ae.Message)
	}
	return body, err
}

// discardsLoggedPerSecond bounds the log of a backend's discarded
// instances: each line may hold 16 KiB of the trap's stack, and a plugin
// that traps in every call would otherwise write as fast as it is called
// (an outside check: 0.6 MB of log a second from ticks alone). Stats
// counts every trap.
const discardsLoggedPerSecond = 2

// logFailure logs an error line about a failed call of the plugin (its
// instance discarded, its memory exhausted), within
// discardsLoggedPerSecond.
func (p *plugin) logFailure(msg string, args ...any) {
	ok, dropped := p.discards.allow(time.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		p.log.Warn("plugin failures not logged, past the rate limit", "dropped", dropped)
	}
	p.log.Error(msg, args...)
}

// syncKV waits, when the instance's last call used a durable kv store,
// until what it wrote, or read of other calls' writes, is on disk: only
// then may the call be answered. The caller may have returned the
// instance to the pool already; usedKV is read before that. A call that
// wrote (wrote: a put, delete or restore of its own in the kv store, in a
// batch as in a single write, or a write that reached its Redis or
// PostgreSQL) and could not be made durable has an unknown outcome, since
// its kv writes stay in the store to be committed with the next, and its
// store may have applied the rest; one that only read, a write refused
// before it wrote included, is unavailable.
func (p *plugin) syncKV(ctx context.Context, usedKV, wrote bool) error {
	if !usedKV {
		return nil
	}
	if err := p.kv.Sync(ctx); err != nil {
		if !wrote {
			return fmt.Errorf("backend %s: %w: %w", p.name, ErrUnavailable, err)
		}
		return fmt.Errorf("backend %s: %w: %w", p.name, ErrOutcomeUnknown, err)
	}
	return nil
}

// failed explains a call into the guest that returned an error: the
// call timeout, the caller's context, the plugin closing (refuel, or the
// caller released from a trusted call), or a trap.
func (in *instance) failed(ctx context.Context, what string, err error) error {
	var ab errAbandoned
	switch {
	case errors.As(err, &ab) && errors.Is(ab.why, abi.StatusLimit):
		return errTrap{abi.StatusLimit, fmt.Errorf("%s %w", what, ab.why)}
	case errors.As(err, &ab) && errors.Is(ab.why, ErrClosed):
		return errTrap{abi.StatusUnavailable, fmt.Errorf("%s cut short: %w", what, ab.why)}
	case in.timedOut.Load() && in.remoteLate.Load():
		// Its Redis or PostgreSQL did not answer within the call: the
		// store is what is missing, not the plugin's time.
		return errTrap{abi.StatusUnavailable, fmt.Errorf("%s ran past the call timeout of %v: its store did not answer in time", what, in.p.limits.CallTimeout)}
	case in.timedOut.Load():
		return errTrap{abi.StatusLimit, fmt.Errorf("%s ran past the call timeout of %v", what, in.p.limits.CallTimeout)}
	case ctx.Err() != nil:
		return errTrap{abi.StatusUnavailable, fmt.Errorf("%s interrupted: %w", what, ctx.Err())}
	case errors.Is(err, ErrClosed):
		return errTrap{abi.StatusUnavailable, fmt.Errorf("%s cut short: %w", what, ErrClosed)}
	case in.outOfMemory():
		// A guest whose memory cannot grow any more traps where it
		// asked (Go's runtime: "out of memory", then unreachable): the
		// request was too large for the plugin's memory, which the same
		// request repeated would be again. The answer says so and no
		// more: the trap's text (a stack of the plugin's functions) is
		// for the log, as an internal error's is.
		in.p.logFailure("plugin ran out of memory", "call", what, "error", trapText(err))
		return errTrap{abi.StatusLimit, fmt.Errorf("%s failed with its memory at %d of its %d MiB (Limits.MemoryPages), as a plugin does that ran out of memory",
			what, in.mem.Size()>>20, uint64(in.p.limits.MemoryPages)*65536>>20)}
	}
	return trapped(fmt.Errorf("%s: %w", what, err))
}

// outOfMemory reports whether a trap of the instance's current call is
// most likely the guest failing to grow its memory: an instrumented
// module was refused a memory.grow in this call; for a trusted one,
// which the host cannot watch, its memory has grown past three quarters
// of Limits.MemoryPages.
func (in *instance) outOfMemory() bool {
	if in.growRefused != nil {
		return in.growRefused.Get() != 0
	}
	limit := uint64(in.p.limits.MemoryPages) * 65536
	return in.mem != nil && limit > 0 && in.mem.Size() > in.startMem && uint64(in.mem.Size()) > limit/4*3
}

// pool hands out instances so that calls into one never overlap. It grows
// on demand up to its size; instances that trap are discarded and their
// slot freed, so the next caller creates a fresh one.
//
// Idle instances are a stack: the instance put back last is handed out
// first, so a hot instance keeps serving with its caches warm while the
// others stay idle (RATIONALE.md, "Why a LIFO pool?"). Callers that find
// no idle instance and no room wait in arrival order; put hands an
// instance straight to the first of them. One mutex guards it all: the
// channels it replaces were locked by every caller at once.
type pool struct {
	create func(context.Context) (*instance, error)
	done   chan struct{} // closed by close
	size   int
	// retireAt: an instance whose memory is larger after a call is closed
	// rather than reused (0: never). Retired counts them.
	retireAt uint32
	retired  atomic.Uint64
	// gen counts recycle calls: an instance of an earlier generation is
	// closed when its call ends rather than reused.
	gen atomic.Uint64

	mu      sync.Mutex
	idle    []*instance // LIFO
	live    int         // instances alive or being created, at most size
	waiters []chan *instance
	closed  bool
}

// grantSlot is what a waiter receives when it is given room to create an
// instance of its own rather than an idle one; grantClosed, when the pool
// closed while it waited.
var (
	grantSlot   = (*instance)(nil)
	grantClosed = new(instance)
)

// waiterChans recycles the one-shot channels of waiting callers.
var waiterChans = sync.Pool{New: func() any { return make(chan *instance, 1) }}

func (p *pool) init(size int, retireAt uint32, create func(context.Context) (*instance, error)) {
	p.size = max(size, 1)
	p.retireAt = retireAt
	p.idle = make([]*instance, 0, p.size)
	p.create = create
	p.done = make(chan struct{})
}

// get returns an idle instance, a new one if the pool has room, or waits.
func (p *pool) get(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		in := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return in, nil
	}
	if p.live < p.size {
		p.live++
		p.mu.Unlock()
		return p.createInSlot(ctx)
	}
	w := waiterChans.Get().(chan *instance)
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	// Everything a waiter waits for arrives on w, close's grantClosed
	// too, so a caller whose context cannot end waits with a plain
	// receive rather than a select (RATIONALE.md, "Why a LIFO pool under
	// one mutex…").
	var in *instance
	if done := ctx.Done(); done == nil {
		in = <-w
	} else {
		select {
		case in = <-w:
		case <-done:
			p.leave(w)
			return nil, ctx.Err()
		}
	}
	waiterChans.Put(w)
	switch in {
	case grantSlot:
		return p.createInSlot(ctx)
	case grantClosed:
		return nil, ErrClosed
	}
	return in, nil
}

// createInSlot creates an instance in a slot already counted in live.
func (p *pool) createInSlot(ctx context.Context) (*instance, error) {
	if p.isClosed() {
		p.freeSlot()
		return nil, ErrClosed
	}
	gen := p.gen.Load()
	in, err := p.create(ctx)
	if err != nil {
		p.freeSlot()
		return nil, err
	}
	in.gen = gen
	return in, nil
}

// leave takes a waiter that gave up out of the queue; if it was granted
// something meanwhile, that goes back to the pool.
func (p *pool) leave(w chan *instance) {
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			waiterChans.Put(w)
			return
		}
	}
	p.mu.Unlock()
	// Already granted: the grant is in w (sent under the lock).
	in := <-w
	waiterChans.Put(w)
	switch in {
	case grantSlot:
		p.freeSlot()
	case grantClosed:
	default:
		p.put(in, false)
	}
}

// put returns an instance to the pool; fresh is true for an instance that
// has not taken a slot yet.
func (p *pool) put(in *instance, fresh bool) {
	if !fresh && in.gen != p.gen.Load() {
		p.discard(context.Background(), in)
		return
	}
	if !fresh && p.retireAt > 0 && in.mem.Size() > p.retireAt {
		// A linear memory never shrinks: a guest whose heap grew this
		// far (large pages, or a heap that fragments, as Go's does) would
		// run out of it a few calls later. A new instance starts small.
		p.retired.Add(1)
		p.discard(context.Background(), in)
		return
	}
	p.mu.Lock()
	if fresh {
		p.live++
	}
	if p.closed {
		p.mu.Unlock()
		p.discard(context.Background(), in)
		return
	}
	if w := p.firstWaiter(); w != nil {
		w <- in // never blocks: each waiter's channel holds one grant
		p.mu.Unlock()
		return
	}
	p.idle = append(p.idle, in)
	p.mu.Unlock()
}

// recycle closes the idle instances and has the busy ones closed when
// their calls end, so that the calls after it run on new instances.
func (p *pool) recycle(ctx context.Context) {
	p.mu.Lock()
	p.gen.Add(1)
	idle := p.idle
	p.idle = make([]*instance, 0, p.size)
	p.mu.Unlock()
	for _, in := range idle {
		p.discard(ctx, in)
	}
}

// discard closes an instance and frees its slot.
func (p *pool) discard(ctx context.Context, in *instance) {
	in.close(ctx)
	p.freeSlot()
}

// freeSlot gives up a slot: to the first waiter, which creates an
// instance in it, or back to the pool.
func (p *pool) freeSlot() {
	p.mu.Lock()
	var w chan *instance
	if !p.closed {
		w = p.firstWaiter()
	}
	if w != nil {
		w <- grantSlot
	} else {
		p.live--
	}
	p.mu.Unlock()
}

// firstWaiter takes the longest-waiting caller out of the queue, or
// returns nil; p.mu is held. The queue is shifted in place, so that it
// keeps its backing array rather than allocating as it moves.
func (p *pool) firstWaiter() chan *instance {
	if len(p.waiters) == 0 {
		return nil
	}
	w := p.waiters[0]
	n := copy(p.waiters, p.waiters[1:])
	p.waiters[n] = nil
	p.waiters = p.waiters[:n]
	return w
}

func (p *pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// counts returns the live and idle instances and the pool's size.
func (p *pool) counts() (live, idle, size int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live, len(p.idle), p.size
}

// close discards idle instances; busy ones are discarded when put back.
func (p *pool) close(ctx context.Context) {
	if p.done == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	idle := p.idle
	p.idle = nil
	for _, w := range p.waiters {
		w <- grantClosed // never blocks: each waiter's channel holds one grant
	}
	p.waiters = nil
	p.mu.Unlock()
	for _, in := range idle {
		p.discard(ctx, in)
	}
}

// grant adds c to the capabilities granted, once: a configuration may
// list a capability its Redis or PostgreSQL configuration grants too.
func grant(granted []abi.Capability, c abi.Capability) []abi.Capability {
	if slices.Contains(granted, c) {
		return granted
	}
	return append(slices.Clip(granted), c)
}
