package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
)

// File is a configuration: parsed (Parse, Load), then checked (Check)
// before it is served.
type File struct {
	// Path is the file it was read from; "" for Default.
	Path string
	// DataDir is the data directory it was read with (WithDataDir),
	// absolute; "" for none.
	DataDir string
	// Listen is the host:port the daemon serves; "" when unset.
	Listen string
	// MaxEventStreams bounds the event streams the daemon serves at once
	// (httpapi.Options.MaxEventStreams); 0 when unset, for the default.
	// A reload applies it to new streams.
	MaxEventStreams int
	// MaxConnections bounds the connections the daemon holds open
	// (httpapi.NewConnLimit); 0 when unset, for the default. A reload
	// applies it.
	MaxConnections int
	// Log configures the daemon's log.
	Log Log
	// Backends are the backends, in file order.
	Backends []Backend
	// Routes name the backend serving each record kind.
	Routes Routes
	// Auth says who may call the daemon.
	Auth Auth
	// Files are the files the configuration is read from: the file
	// itself (read by Load), the plugin modules it names by path and the
	// secret files of its tokens and Redis passwords (read by Check),
	// absolute, each once. A change to any of them may change the
	// configuration; nothing else does.
	Files []string

	source  *source // what Check needs of the text; nil for Default
	checked bool    // Check succeeded, secrets read
	// features is what each backend's plugin advertises, by backend
	// name, once Check has inspected it.
	features map[string]abi.Feature
}

// Checked reports whether f may be served: Check succeeded on it, with
// its secrets read (not Offline), or f is Default's. Only then do its
// backends carry their Digest and secrets.
func (f *File) Checked() bool { return f.checked }

// Serves reports whether the plugin of the backend named backend stores
// records of kind, and whether that is known: Check inspects each
// plugin, and a File not checked, or a plugin that could not be
// inspected, leaves it unknown.
func (f *File) Serves(backend string, kind abi.RecordKind) (serves, known bool) {
	features, known := f.features[backend]
	return features.Has(kind.Feature()), known
}

// Log configures the daemon's log.
type Log struct {
	// Level is trace, debug, info, warn or error.
	// Default: info.
	Level string
	// Format is text or json.
	// Default: text.
	Format string
}

// Routes name the backend serving each record kind. Every name is one of
// File.Backends.
type Routes struct {
	Metrics, Alerts, AgentStates string
}

// Backend is one backend of a File.
type Backend struct {
	// Name is the backend's name, the label of its block.
	Name string
	// Config is ready for host.Open once the File is checked: Name is the
	// backend's name, Plugin an absolute path or "builtin:NAME",
	// Capabilities the grant (without redis, which Redis grants), Limits
	// complete (unset fields are host.DefaultLimits). Check adds the
	// plugin file's module (WASM), the secrets read from the environment
	// or files, and Redis.Scripts's default for a built-in plugin.
	Config host.Config
	// Digest is the hex HMAC-SHA256 of everything that defines the backend
	// ("" until Check):
	// its Config, the plugin module's bytes and resolved secrets included.
	// Two Files' backends with the same Digest are the same backend, so a
	// reload keeps it running. Digests are keyed per process, so that one
	// discloses nothing about a password it covers: compare them only
	// within one process.
	Digest string
	// Backup schedules backups of the backend in the daemon; nil when the
	// backend's block has no backup block. It is not part of Digest:
	// changing a schedule does not rebuild the backend (which would empty
	// a memory one).
	Backup *Backup
	// Unchecked, set by a Check with DeferPluginRuns, says what running
	// the backend's plugin found wrong (an *Error): the backend is not
	// opened as it is, but checked again first.
	Unchecked error
}

// Backup schedules backups of a backend in the daemon: one every
// Interval, written to Directory as BACKEND-TIMESTAMP.shbk (the format of
// package host/backup), the newest Keep kept.
type Backup struct {
	// Interval is the time between the start of one backup and the next;
	// at least a second.
	Interval time.Duration
	// Directory holds the backups: an absolute path (a relative one in the
	// file is relative to the file's directory). The daemon creates it.
	Directory string
	// Keep is how many backups of the backend are kept; older ones are
	// removed after each backup.
	// Default: 24.
	Keep int
	// RestoreOnStart restores the newest backup that verifies into the
	// backend when the daemon starts, before it serves. Only for backends
	// without Redis, whose records live in the daemon's memory.
	// Default: false.
	RestoreOnStart bool
}

// Backend returns the backend named name.
func (f *File) Backend(name string) (Backend, bool) {
	i := slices.IndexFunc(f.Backends, func(b Backend) bool { return b.Name == name })
	if i < 0 {
		return Backend{}, false
	}
	return f.Backends[i], true
}

// Auth says who may call the daemon.
type Auth struct {
	// Tokens are the bearer tokens accepted, in file order, as the HTTP
	// API takes them.
	Tokens []httpapi.Token
	// AllowUnauthenticated permits serving a non-loopback address with no
	// tokens.
	// Default: false.
	AllowUnauthenticated bool
}

// anyKind is the KIND of a scope allowing every record kind.
const anyKind = "*"

// Error is returned for an invalid file. Diagnostics holds every error
// found, in file order, each with its source range.
type Error struct {
	Diagnostics hcl.Diagnostics
}

// Error prints each diagnostic on a line of its own, as
// "file:line:col: summary; detail".
func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diagnostics {
		if i > 0 {
			b.WriteByte('\n')
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		b.WriteString(d.Summary)
		if d.Detail != "" {
			b.WriteString("; ")
			b.WriteString(d.Detail)
		}
	}
	return b.String()
}

// Unwrap returns the diagnostics, which are an error themselves.
func (e *Error) Unwrap() error { return e.Diagnostics }

// Load reads the configuration file at path and parses it (Parse). An
// invalid file is an *Error; a file that cannot be read is the error
// reading it. The File is not checked: see Check.
func Load(path string, opts ...Option) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(src, path, opts...)
}

// Parse parses src as the configuration file named filename: relative
// paths in it are relative to filename's directory, and a filename ending
// in .json selects HCL's JSON syntax. It checks syntax, schema, types and
// values, the references between blocks (routes, names, data
// directories) and the secrets written in the file, and reads nothing
// else: no plugin, no secret file, no environment variable, no directory.
// An invalid src is an *Error. The File is not checked: Check reads and
// runs what it names, and completes it for serving.
func Parse(src []byte, filename string, opts ...Option) (*File, error) {
	c := newChecker(filename, collect(opts))
	f := c.file(src)
	if err := c.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// Default is the configuration used without a file: one backend serving
// every kind, with default capabilities and limits, no listen address and
// no auth. With a data directory (WithDataDir) the backend is "local",
// builtin:local keeping its records in DIR/backends/local; without one it
// is "memory", builtin:memory.
func Default(opts ...Option) *File {
	o := collect(opts)
	name, dataDir := "memory", ""
	if o.dataDir != "" {
		name = "local"
		o.dataDir = absPath(o.dataDir)
		dataDir = filepath.Join(o.dataDir, BackendsDir, name)
	}
	cfg := host.Config{
		Name:         name,
		Plugin:       host.BuiltinPrefix + name,
		Capabilities: slices.Clone(host.DefaultCapabilities),
		Limits:       host.DefaultLimits,
		DataDir:      dataDir,
	}
	// The memory plugin (builtin:local is the same module) is embedded in
	// every host binary.
	wasm, _ := host.BuiltinWASM(name)
	return &File{
		DataDir:  o.dataDir,
		Log:      Log{Level: "info", Format: "text"},
		Backends: []Backend{{Name: name, Config: cfg, Digest: digest(&cfg, wasm)}},
		Routes:   Routes{Metrics: name, Alerts: name, AgentStates: name},
		checked:  true,
	}
}
