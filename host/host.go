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
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/storage-host/storage-host/abi"
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

	// ErrClosed is returned by every method of a closed Store.
	ErrClosed = errors.New("host: store is closed")
	// ErrIncompatible is returned by Open for a module that is not a
	// storage plugin this host can load: wrong ABI version, missing
	// exports, unknown imports, ungranted capabilities.
	ErrIncompatible = errors.New("host: incompatible plugin")
)

// BuiltinPrefix marks Config.Plugin values naming an embedded plugin, as in
// "builtin:memory".
const BuiltinPrefix = "builtin:"

// Config describes one backend: the seed's StorageConfig, with a plugin in
// place of the backend type.
type Config struct {
	// Name names the backend in logs and errors.
	// Default: the plugin's own name.
	Name string
	// Plugin is "builtin:<name>" for an embedded plugin or the path of a
	// .wasm file.
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
	// Instances is the most plugin instances serving calls at once.
	// Default: runtime.GOMAXPROCS(0).
	Instances int
}

// DefaultCapabilities are granted when Config.Capabilities is nil.
var DefaultCapabilities = []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV}

// Option changes how Open loads a plugin.
type Option func(*settings)

type settings struct {
	logger    hclog.Logger
	cacheDir  string
	now       func() time.Time
	logPerSec float64
}

func defaultSettings() settings {
	s := settings{logger: hclog.NewNullLogger(), now: time.Now, logPerSec: 100}
	if dir, err := os.UserCacheDir(); err == nil {
		s.cacheDir = filepath.Join(dir, "storage-host", "wazero")
	}
	return s
}

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

// WithPluginLogRate limits plugin log lines (including WASI stdout and
// stderr) to perSecond, with bursts of as many; lines past it are dropped
// and counted in a later warning.
// Default: 100.
func WithPluginLogRate(perSecond float64) Option {
	return func(s *settings) { s.logPerSec = perSecond }
}

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
	}
	return out
}

// Open loads the backend cfg describes and returns a Store serving it.
// The context bounds loading only.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Store, error) {
	s := defaultSettings()
	for _, o := range opts {
		o(&s)
	}
	p, err := load(ctx, cfg.withDefaults(), &s)
	if err != nil {
		return nil, err
	}
	return &Store{p: p}, nil
}
