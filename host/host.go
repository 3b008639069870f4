// Package host loads storage backends compiled to WebAssembly and serves
// typed storage operations through them. It is the embedding API for Go
// agent runtimes:
//
//	st, err := host.Open(ctx, host.Config{
//		Plugin:  "builtin:memory",
//		Options: map[string]string{"agent_state_ttl_seconds": "3600"},
//	})
//	if err != nil { ... }
//	defer st.Close(ctx)
//	saved, err := st.PutAgentState(ctx, host.AgentState{AgentID: "a1", State: []byte(`{}`)})
//
// A Store compiles its plugin once, keeps a pool of instances so concurrent
// callers never share one, replaces an instance that traps, and gives the
// plugin only the host capabilities its Config grants.
package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
)

// Record and query types, defined once in package abi.
type (
	// Metric is one sample of a named value reported by an agent.
	Metric = abi.Metric
	// MetricKey identifies one metric sample.
	MetricKey = abi.MetricKey
	// Alert is a condition raised about an agent.
	Alert = abi.Alert
	// AgentState is the opaque state document of one agent.
	AgentState = abi.AgentState
	// MetricQuery selects metrics.
	MetricQuery = abi.MetricQuery
	// AlertQuery selects alerts.
	AlertQuery = abi.AlertQuery
	// AgentStateQuery selects agent states.
	AgentStateQuery = abi.AgentStateQuery
	// Matcher selects records by one label.
	Matcher = abi.Matcher
	// Metadata describes a plugin.
	Metadata = abi.Metadata
)

// Page is one page of query results; pass Next as the next query's Cursor.
type Page[T any] = abi.Page[T]

// Errors a Store returns. Every failure a plugin reports matches one of the
// status errors with errors.Is; its message is the plugin's.
var (
	ErrNotFound    error = abi.StatusNotFound
	ErrConflict    error = abi.StatusConflict
	ErrInvalid     error = abi.StatusInvalid
	ErrUnavailable error = abi.StatusUnavailable
	ErrUnsupported error = abi.StatusUnsupported
	ErrInternal    error = abi.StatusInternal
	ErrLimit       error = abi.StatusLimit
	// ErrStale comes with a read's result: the value returned is valid but
	// may be behind, served from a backend's fallback buffer (Redis
	// unreachable). A write is never answered ErrStale: one the backend
	// acknowledged into its buffer succeeds (nil error), counts in
	// Stats.BufferedWrites, and publishes its event once it has reached
	// the backend's store.
	ErrStale error = abi.StatusStale

	// ErrClosed is returned by every method of a closed Store.
	ErrClosed = errors.New("host: store is closed")
	// ErrIncompatible is returned by Open for a module that is not a
	// storage plugin this host can load: wrong ABI version, missing
	// exports, unknown imports, ungranted capabilities.
	ErrIncompatible = errors.New("host: incompatible plugin")
	// ErrBufferLost is returned by Close when writes it acknowledged into
	// a fallback buffer kept in memory (no Config.DataDir) had not reached
	// the backend's store: they are lost. With a DataDir they stay on
	// disk for the next Store opened on it.
	ErrBufferLost = errors.New("host: acknowledged writes lost with the in-memory buffer")
)

// BuiltinPrefix marks Config.Plugin values naming an embedded plugin, as in
// "builtin:memory".
const BuiltinPrefix = "builtin:"

// redisInstancesPerCPU sizes the default instance pool of a backend with
// Redis or PostgreSQL, whose calls hold their instance for a network
// round trip (RATIONALE.md, "Why eight instances per CPU for Redis
// backends?").
const redisInstancesPerCPU = 8

// Config describes one backend: the plugin that implements it, what it is
// granted, its options and its limits.
type Config struct {
	// Name names the backend in logs and errors.
	// Default: the plugin's own name.
	Name string
	// Plugin is "builtin:<name>" for an embedded plugin or the path of a
	// .wasm file. The embedded plugins are "builtin:memory" (records in
	// the kv capability, in memory unless DataDir is set), "builtin:local"
	// (the same module, which requires DataDir: records on disk),
	// "builtin:redis" (needs Redis) and "builtin:postgres" (needs
	// Postgres).
	// Default: "builtin:memory".
	Plugin string
	// WASM, when set, is the plugin module itself and Plugin is ignored.
	WASM []byte
	// Options are passed to the plugin before any request; see the
	// plugin's documentation (metric_ttl_seconds, alert_ttl_seconds,
	// agent_state_ttl_seconds for the built-in ones).
	Options map[string]string
	// Capabilities are the host modules the plugin may import.
	// Default: log, clock, kv.
	Capabilities []abi.Capability
	// Instances is the most plugin instances serving calls at once. An
	// instance is held for a whole call, Redis round trip included, so a
	// backend with Redis gets more of them: the calls in flight are what
	// the bridge can pipeline together. The pool grows on demand.
	// Default: runtime.GOMAXPROCS(0); eight times that with Redis or Postgres set.
	Instances int
	// SHA256, when set, pins the plugin module: the hex SHA-256 of the
	// .wasm file. A module with another digest is refused.
	SHA256 string
	// Trusted runs the plugin's module as it is, without the fuel checks
	// the host writes into every other module, built-in ones included, so
	// Limits.CallTimeout and a cancelled context can no longer stop a call
	// that never returns: each call runs on a worker goroutine of its
	// instance and its caller is released at the deadline instead. That
	// does not make a module that never returns harmless: Go cannot
	// preempt compiled guest code and a garbage collection waits for every
	// goroutine, so such a call stops the whole process at the next
	// collection, released callers included (RATIONALE.md, "Why is a
	// trusted call run on a worker goroutine…"). The hand-off costs more
	// than the checks save on the built-in plugins (BENCHMARKS.md, "The
	// cost of interruptible calls"); it is for modules the checks would
	// slow down, that you build yourself and whose calls end.
	// Default: false.
	Trusted bool
	// Limits bound what the plugin may use.
	Limits Limits
	// DataDir, when set, keeps the backend's kv store (the kv capability)
	// on disk in this directory, created if missing: a write is fsynced
	// before the plugin call that made it returns, so what a call
	// acknowledged survives a crash, a restart and a rebuild of the
	// backend. Stores opened in one process on the same directory share
	// one kv store (a reload that rebuilds the backend keeps its data),
	// and a buffer of writes in it is replayed by one of them, the one
	// opened last and not held (WithReplayHeld): the others' Stats say
	// what they last saw of it. Another process using the directory
	// makes Open fail.
	// Default: none; the kv store is in memory and lives as long as the
	// Store.
	DataDir string
	// Redis connects the backend to Redis, for plugins that import the
	// redis capability (the built-in redis plugin does). Setting it grants
	// that capability; its KeyPrefix confines the backend.
	// Default: none.
	Redis *redisbridge.Config
	// Postgres connects the backend to PostgreSQL, for plugins that
	// import the postgres capability. Setting it grants that capability;
	// the backend's schema and role confine the plugin.
	// Default: none.
	Postgres *PostgresConfig
	// Events tunes the backend's change notifications (Store.Subscribe):
	// a Redis Stream in the backend's namespace with Redis, else a table
	// in the backend's schema with Postgres (events.PostgresTable), else
	// in this process.
	Events events.Options
	// DisableEvents turns events off: writes publish nothing, Subscribe
	// is ErrUnsupported, and with Redis no stream is written. It turns
	// the read cache off too.
	// Default: false.
	DisableEvents bool
	// Cache puts a read cache in front of GetAgentState and GetAlert,
	// kept correct by the backend's events: once the event of a write
	// (through any host sharing the backend) has arrived, no read returns
	// what it replaced; this host's own writes are seen at once.
	// Default: off.
	Cache CacheOptions
}

// Limits bound what one backend's plugin may use; a plugin that goes past
// one fails its own call and nothing else. Zero fields take the defaults.
type Limits struct {
	// MemoryPages caps each instance's linear memory, in 64 KiB pages; a
	// guest that grows past it fails to allocate (a Go guest then traps).
	// Default: 1024 (64 MiB).
	MemoryPages uint32
	// CallTimeout bounds one call into the plugin. An instance that
	// overruns it is interrupted, closed and replaced, and the caller gets
	// an error matching ErrLimit, or ErrUnavailable when the call was
	// waiting for its Redis or PostgreSQL (the store is what is late, not
	// the plugin). The caller's context can only shorten it: a call its
	// context ended answers that context's error (context.Canceled,
	// context.DeadlineExceeded), with ErrOutcomeUnknown when it may have
	// written. Not enforced for trusted plugins (Config.Trusted).
	// Default: 5s.
	CallTimeout time.Duration
	// MaxResponseBytes caps a response read from the plugin, and what
	// one call of the redis or postgres capability answers into it, which
	// is also at most an eighth of MemoryPages: past it that call answers
	// LIMIT.
	// Default: 16 MiB.
	MaxResponseBytes uint32
	// MaxHostCalls caps the host-function calls (log, clock, kv) one
	// request may make; the call past it traps. This budget, and the other
	// per-call ones below (MaxLogBytesPerCall, MaxEventsPerCall), are
	// multiplied by the callers' operations a shared batch carries.
	// Default: 100000.
	MaxHostCalls uint32
	// LogLinesPerSecond rate-limits plugin log lines, WASI stdout and
	// stderr included, with bursts of as many; lines past it are dropped
	// and counted in a later warning.
	// Default: 100.
	LogLinesPerSecond float64
	// MaxLogLineBytes truncates longer plugin log lines.
	// Default: 4096.
	MaxLogLineBytes uint32
	// MaxLogBytesPerCall caps the bytes one call may write to WASI stdout
	// and stderr together; past it, and past the call's timeout or its
	// context's end, fd_write takes nothing more and fails with EFBIG.
	// Default: 1 MiB.
	MaxLogBytesPerCall uint32
	// MaxKVBytes caps the backend's kv store (the kv capability): its keys
	// and values plus 144 bytes an entry (localstore.EntryOverhead), expired entries not yet
	// reclaimed included. A put past it is refused with LIMIT. With a
	// DataDir it also bounds the writes waiting for the disk (at least
	// 4 MiB): past it a write is refused with UNAVAILABLE until they are
	// committed.
	// Default: 256 MiB.
	MaxKVBytes uint64
	// MaxKVEntries caps the entries of the backend's kv store, expired
	// entries not yet reclaimed included. A put of a new key past it is
	// refused with LIMIT.
	// Default: 1048576.
	MaxKVEntries uint32
	// MaxKVScanBytes caps the entries one kv scan returns by their size: a
	// scan stops early and answers the key to resume from (it returns at
	// least one entry). A scan also stops at an eighth of MemoryPages,
	// and after stepping over 4096 expired entries not yet reclaimed
	// (even with no entry).
	// Default: 1 MiB.
	MaxKVScanBytes uint32
	// MaxEventsPerCall caps the events one call may publish through the
	// events capability; publish answers LIMIT past it, as it does past
	// the backend's rate of 1000 events a second.
	// Default: 100.
	MaxEventsPerCall uint32
}

// replyBytes bounds what one capability call answers into an instance
// (a redis call's replies, a postgres call's results, a kv scan): the
// response bound, and at most an eighth of the instance's memory. A guest
// holds the reply, the records it decodes from it and the response it
// encodes from them at once, besides what its garbage collector has not
// yet reclaimed; a Go guest of 64 MiB given replies of the whole 16 MiB
// response bound ran out of memory and trapped. Past the bound a call
// answers LIMIT, and a plugin reads fewer records at a time.
func (l Limits) replyBytes() int64 {
	return min(int64(l.MaxResponseBytes), int64(l.MemoryPages)*65536/8)
}

// DefaultLimits are the limits of a backend whose Config sets none.
var DefaultLimits = Limits{
	MemoryPages:       1024,
	CallTimeout:       5 * time.Second,
	MaxResponseBytes:  16 << 20,
	MaxHostCalls:      100_000,
	LogLinesPerSecond: 100,
	MaxLogLineBytes:   4096,

	MaxLogBytesPerCall: 1 << 20,
	MaxKVBytes:         256 << 20,
	MaxKVEntries:       1 << 20,
	MaxKVScanBytes:     1 << 20,
	MaxEventsPerCall:   100,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MemoryPages == 0 {
		l.MemoryPages = d.MemoryPages
	}
	if l.CallTimeout <= 0 {
		l.CallTimeout = d.CallTimeout
	}
	if l.MaxResponseBytes == 0 {
		l.MaxResponseBytes = d.MaxResponseBytes
	}
	if l.MaxHostCalls == 0 {
		l.MaxHostCalls = d.MaxHostCalls
	}
	if l.LogLinesPerSecond <= 0 {
		l.LogLinesPerSecond = d.LogLinesPerSecond
	}
	if l.MaxLogLineBytes == 0 {
		l.MaxLogLineBytes = d.MaxLogLineBytes
	}
	if l.MaxLogBytesPerCall == 0 {
		l.MaxLogBytesPerCall = d.MaxLogBytesPerCall
	}
	if l.MaxKVBytes == 0 {
		l.MaxKVBytes = d.MaxKVBytes
	}
	if l.MaxKVEntries == 0 {
		l.MaxKVEntries = d.MaxKVEntries
	}
	if l.MaxKVScanBytes == 0 {
		l.MaxKVScanBytes = d.MaxKVScanBytes
	}
	if l.MaxEventsPerCall == 0 {
		l.MaxEventsPerCall = d.MaxEventsPerCall
	}
	return l
}

// DefaultCapabilities are granted when Config.Capabilities is nil.
var DefaultCapabilities = []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV}

// Option changes how Open loads a plugin.
type Option func(*settings)

type settings struct {
	logger   hclog.Logger
	cacheDir string
	now      func() time.Time
	observer Observer
	// inspect loads a plugin only as far as its metadata, with every
	// capability stubbed in and no Redis (Inspect).
	inspect bool
	// checkOptions makes an inspecting load also configure the plugin.
	checkOptions bool
	// replayHeld: the store replays no buffer until TakeReplay.
	replayHeld bool
}

func defaultSettings() settings {
	s := settings{logger: hclog.NewNullLogger(), now: time.Now}
	if dir, err := os.UserCacheDir(); err == nil {
		s.cacheDir = filepath.Join(dir, "storage-host", "wazero")
	}
	return s
}

// WithReplayHeld opens a store that replays nothing of the buffer in its
// data directory (Config.DataDir) until its TakeReplay is called: a
// store opened to replace another on the same directory, which goes on
// replaying meanwhile, and takes over only once the replacement is
// certain. Only one store open on a directory replays its buffer: the
// one opened last, of those not held (TakeReplay).
func WithReplayHeld() Option { return func(s *settings) { s.replayHeld = true } }

// WithLogger sends host and plugin logs to l; plugin logs go to the
// sub-logger l.Named("plugin").Named(backend).
// Default: a null logger.
func WithLogger(l hclog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithCompilationCache keeps compiled plugins in dir, so that a second
// start loads them without compiling. An empty dir disables the cache.
// Default: $XDG_CACHE_HOME/storage-host/wazero (os.UserCacheDir).
func WithCompilationCache(dir string) Option { return func(s *settings) { s.cacheDir = dir } }

// WithClock makes now the clock plugins see, which sets every TTL.
// Default: time.Now.
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

func (c *Config) withDefaults() Config {
	out := *c
	if out.Plugin == "" && out.WASM == nil {
		out.Plugin = BuiltinPrefix + "memory"
	}
	if out.Capabilities == nil {
		out.Capabilities = DefaultCapabilities
	}
	if out.Instances <= 0 {
		out.Instances = runtime.GOMAXPROCS(0)
		if out.Redis != nil || out.Postgres != nil {
			out.Instances *= redisInstancesPerCPU
		}
	}
	out.Limits = out.Limits.withDefaults()
	if out.DataDir != "" {
		out.DataDir = filepath.Clean(out.DataDir)
	}
	return out
}

// check refuses the values no default stands for: a negative count, size
// or duration, a rate that is not a number. Zero fields take their
// defaults. (redisbridge checks its own Config.)
func (c *Config) check() error {
	var bad []string
	negative := func(name string, v int64) {
		if v < 0 {
			bad = append(bad, fmt.Sprintf("%s is %d", name, v))
		}
	}
	negative("Instances", int64(c.Instances))
	negative("Limits.CallTimeout", int64(c.Limits.CallTimeout))
	if r := c.Limits.LogLinesPerSecond; r < 0 || math.IsNaN(r) {
		bad = append(bad, fmt.Sprintf("Limits.LogLinesPerSecond is %v", r))
	}
	negative("Cache.Entries", int64(c.Cache.Entries))
	negative("Cache.MaxAge", int64(c.Cache.MaxAge))
	negative("Cache.MaxBytes", c.Cache.MaxBytes)
	negative("Events.Retention", int64(c.Events.Retention))
	negative("Events.Buffer", int64(c.Events.Buffer))
	negative("Events.Queue", int64(c.Events.Queue))
	if pg := c.Postgres; pg != nil {
		negative("Postgres.MaxConns", int64(pg.MaxConns))
		negative("Postgres.StatementTimeout", int64(pg.StatementTimeout))
		if pg.TempFileLimitMB < -1 {
			bad = append(bad, fmt.Sprintf("Postgres.TempFileLimitMB is %d (-1 leaves the role's own)", pg.TempFileLimitMB))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: host: backend %s: %s: must not be negative (0 takes the default)", ErrInvalid, cmp.Or(c.Name, c.Plugin, BuiltinPrefix+"memory"), strings.Join(bad, ", "))
}

// Open loads the backend cfg describes and returns a Store serving it.
// The context bounds loading only.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Store, error) {
	s := defaultSettings()
	for _, o := range opts {
		o(&s)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Plugin == BuiltinPrefix+"local" && cfg.WASM == nil && cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: builtin:local keeps its records on disk: set Config.DataDir", ErrInvalid)
	}
	if cfg.DisableEvents && slices.Contains(cfg.Capabilities, abi.CapabilityEvents) {
		return nil, fmt.Errorf("%w: host: capability events is granted but events are disabled (DisableEvents)", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("host: backend %s not opened: %w", cmp.Or(cfg.Name, cfg.Plugin), err)
	}
	p, err := load(ctx, cfg, &s)
	if err != nil {
		return nil, err
	}
	st := &Store{p: p, now: s.now}
	st.shared = st.newSharing()
	if err := st.openEvents(ctx, &cfg, &s); err != nil {
		p.close(context.WithoutCancel(ctx))
		return nil, err
	}
	st.startTicker(&cfg, s.replayHeld)
	return st, nil
}
