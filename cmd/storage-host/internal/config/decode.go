package config

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
)

// The file as gohcl decodes it. Attributes are expressions, so that a
// value's checks report its own range; gohcl still rejects unknown
// attributes and blocks, and gives an absent attribute a null expression
// at the block's MissingItemRange.
type (
	rawFile struct {
		Listen          hcl.Expression `hcl:"listen,optional"`
		MaxEventStreams hcl.Expression `hcl:"max_event_streams,optional"`
		MaxConnections  hcl.Expression `hcl:"max_connections,optional"`
		Log             *rawLog        `hcl:"log,block"`
		Backends        []*rawBackend  `hcl:"backend,block"`
		Routes          *rawRoutes     `hcl:"routes,block"`
		Auth            *rawAuth       `hcl:"auth,block"`
	}
	rawLog struct {
		Level  hcl.Expression `hcl:"level,optional"`
		Format hcl.Expression `hcl:"format,optional"`
	}
	rawBackend struct {
		Name         string         `hcl:"name,label"`
		Plugin       hcl.Expression `hcl:"plugin,optional"`
		SHA256       hcl.Expression `hcl:"sha256,optional"`
		Trusted      hcl.Expression `hcl:"trusted,optional"`
		Instances    hcl.Expression `hcl:"instances,optional"`
		Capabilities hcl.Expression `hcl:"capabilities,optional"`
		Options      hcl.Expression `hcl:"options,optional"`
		Limits       *rawLimits     `hcl:"limits,block"`
		Redis        *rawRedis      `hcl:"redis,block"`
		Postgres     *rawPostgres   `hcl:"postgres,block"`
		Events       *rawEvents     `hcl:"events,block"`
		Cache        *rawCache      `hcl:"cache,block"`
		Backup       *rawBackup     `hcl:"backup,block"`
		DataDir      hcl.Expression `hcl:"data_dir,optional"`
		DefRange     hcl.Range      `hcl:",def_range"`
	}
	rawBackup struct {
		Interval       hcl.Expression `hcl:"interval,optional"`
		Directory      hcl.Expression `hcl:"directory,optional"`
		Keep           hcl.Expression `hcl:"keep,optional"`
		RestoreOnStart hcl.Expression `hcl:"restore_on_start,optional"`
		DefRange       hcl.Range      `hcl:",def_range"`
	}
	rawEvents struct {
		Enabled   hcl.Expression `hcl:"enabled,optional"`
		Retention hcl.Expression `hcl:"retention,optional"`
		Buffer    hcl.Expression `hcl:"buffer,optional"`
		Queue     hcl.Expression `hcl:"queue,optional"`
		DefRange  hcl.Range      `hcl:",def_range"`
	}
	rawCache struct {
		Entries  hcl.Expression `hcl:"entries,optional"`
		MaxAge   hcl.Expression `hcl:"max_age,optional"`
		MaxBytes hcl.Expression `hcl:"max_bytes,optional"`
		DefRange hcl.Range      `hcl:",def_range"`
	}
	rawLimits struct {
		MemoryPages       hcl.Expression `hcl:"memory_pages,optional"`
		CallTimeout       hcl.Expression `hcl:"call_timeout,optional"`
		MaxResponseBytes  hcl.Expression `hcl:"max_response_bytes,optional"`
		MaxHostCalls      hcl.Expression `hcl:"max_host_calls,optional"`
		LogLinesPerSecond hcl.Expression `hcl:"log_lines_per_second,optional"`
		MaxLogLineBytes   hcl.Expression `hcl:"max_log_line_bytes,optional"`

		MaxLogBytesPerCall hcl.Expression `hcl:"max_log_bytes_per_call,optional"`
		MaxKVBytes         hcl.Expression `hcl:"max_kv_bytes,optional"`
		MaxKVEntries       hcl.Expression `hcl:"max_kv_entries,optional"`
		MaxKVScanBytes     hcl.Expression `hcl:"max_kv_scan_bytes,optional"`
		MaxEventsPerCall   hcl.Expression `hcl:"max_events_per_call,optional"`
	}
	rawRedis struct {
		URL           hcl.Expression `hcl:"url,optional"`
		Addrs         hcl.Expression `hcl:"addrs,optional"`
		Cluster       hcl.Expression `hcl:"cluster,optional"`
		MasterName    hcl.Expression `hcl:"master_name,optional"`
		Username      hcl.Expression `hcl:"username,optional"`
		Password      hcl.Expression `hcl:"password,optional"`
		PasswordEnv   hcl.Expression `hcl:"password_env,optional"`
		PasswordFile  hcl.Expression `hcl:"password_file,optional"`
		DB            hcl.Expression `hcl:"db,optional"`
		TLS           hcl.Expression `hcl:"tls,optional"`
		PoolSize      hcl.Expression `hcl:"pool_size,optional"`
		MinIdleConns  hcl.Expression `hcl:"min_idle_conns,optional"`
		DialTimeout   hcl.Expression `hcl:"dial_timeout,optional"`
		ReadTimeout   hcl.Expression `hcl:"read_timeout,optional"`
		WriteTimeout  hcl.Expression `hcl:"write_timeout,optional"`
		PoolTimeout   hcl.Expression `hcl:"pool_timeout,optional"`
		MaxRetries    hcl.Expression `hcl:"max_retries,optional"`
		KeyPrefix     hcl.Expression `hcl:"key_prefix,optional"`
		AllowCommands hcl.Expression `hcl:"allow_commands,optional"`
		Scripts       hcl.Expression `hcl:"scripts,optional"`
		DefRange      hcl.Range      `hcl:",def_range"`
	}
	rawPostgres struct {
		URL              hcl.Expression `hcl:"url,optional"`
		URLEnv           hcl.Expression `hcl:"url_env,optional"`
		URLFile          hcl.Expression `hcl:"url_file,optional"`
		Schema           hcl.Expression `hcl:"schema,optional"`
		MaxConns         hcl.Expression `hcl:"max_conns,optional"`
		StatementTimeout hcl.Expression `hcl:"statement_timeout,optional"`
		TempFileLimitMB  hcl.Expression `hcl:"temp_file_limit_mb,optional"`
		DefRange         hcl.Range      `hcl:",def_range"`
	}
	rawRoutes struct {
		Metrics     hcl.Expression `hcl:"metrics,optional"`
		Alerts      hcl.Expression `hcl:"alerts,optional"`
		AgentStates hcl.Expression `hcl:"agent_states,optional"`
		DefRange    hcl.Range      `hcl:",def_range"`
	}
	rawAuth struct {
		AllowUnauthenticated hcl.Expression `hcl:"allow_unauthenticated,optional"`
		Tokens               []*rawToken    `hcl:"token,block"`
	}
	rawToken struct {
		Name       string         `hcl:"name,label"`
		SecretEnv  hcl.Expression `hcl:"secret_env,optional"`
		SecretFile hcl.Expression `hcl:"secret_file,optional"`
		Secret     hcl.Expression `hcl:"secret,optional"`
		Scopes     hcl.Expression `hcl:"scopes,optional"`
		DefRange   hcl.Range      `hcl:",def_range"`
	}
)

// maxEventStreams and maxConnections are the largest max_event_streams
// and max_connections accepted: far more than a process's file
// descriptors allow, and small enough that a typo of a few digits too
// many is caught.
const (
	maxEventStreams = 1 << 20
	maxConnections  = 1 << 20
)

// minTokenSecret is the shortest token secret accepted, in bytes.
const minTokenSecret = 16

// validName is the form of backend and token names.
var validName = regexp.MustCompile(`^[a-z0-9_-]+$`)

// checker turns one file into a File (Parse), or checks a parsed File
// (Check), collecting diagnostics.
type checker struct {
	filename string
	dir      string // absolute directory relative paths start from
	dataDir  string // the data directory (Options), absolute; "" for none
	diags    hcl.Diagnostics
	files    []string // File.Files
	// deferred, set under DeferPluginRuns, holds by backend the errors
	// its plugin's run found, which fail that backend only.
	deferred map[string]hcl.Diagnostics
}

// source is what Check needs of the file a File was parsed from: the
// decoded blocks, whose ranges its errors point to.
type source struct {
	filename, dir string
	backends      []*rawBackend // one per File.Backends, in the same order
	routes        *rawRoutes    // nil without a routes block
	tokens        []*rawToken   // one per File.Auth.Tokens, in the same order
}

func newChecker(filename string, o options) *checker {
	dir := filepath.Dir(filename)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	c := &checker{filename: filename, dir: dir}
	c.read(absPath(filename))
	if o.dataDir != "" {
		c.dataDir = absPath(o.dataDir)
	}
	return c
}

// read records that the configuration reads the file at path (absolute).
func (c *checker) read(path string) {
	if !slices.Contains(c.files, path) {
		c.files = append(c.files, path)
	}
}

// absPath returns p absolute and clean (as is when the working directory
// is unknown).
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

func (c *checker) file(src []byte) *File {
	p := hclparse.NewParser()
	var hf *hcl.File
	var diags hcl.Diagnostics
	if strings.EqualFold(filepath.Ext(c.filename), ".json") {
		hf, diags = p.ParseJSON(src, c.filename)
	} else {
		hf, diags = p.ParseHCL(src, c.filename)
	}
	c.diags = append(c.diags, diags...)
	if diags.HasErrors() || hf == nil {
		// A body that does not parse would only add confused errors.
		return nil
	}
	var raw rawFile
	c.diags = append(c.diags, gohcl.DecodeBody(hf.Body, nil, &raw)...)
	f := &File{Path: c.filename, DataDir: c.dataDir, source: &source{filename: c.filename, dir: c.dir, routes: raw.Routes}}
	defer func() { f.Files = c.files }()
	if listen, ok := c.str(raw.Listen, "listen"); ok {
		if _, port, err := net.SplitHostPort(listen); err != nil {
			c.errorf(raw.Listen.Range(), `Invalid value for "listen"`, "listen must be host:port: %v.", err)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil && !isServiceName(port) {
			c.errorf(raw.Listen.Range(), `Invalid value for "listen"`, "port %q is not a number from 0 to 65535 (or a service name).", port)
		}
		f.Listen = listen
	}
	if v, ok := c.integer(raw.MaxEventStreams, "max_event_streams", 1, maxEventStreams); ok {
		f.MaxEventStreams = int(v)
	}
	if v, ok := c.integer(raw.MaxConnections, "max_connections", 1, maxConnections); ok {
		f.MaxConnections = int(v)
	}
	if f.MaxEventStreams > 0 && f.MaxConnections > 0 && f.MaxEventStreams >= f.MaxConnections {
		c.errorf(raw.MaxEventStreams.Range(), `Invalid value for "max_event_streams"`,
			"max_event_streams (%d) must be less than max_connections (%d): each stream holds a connection, and streams at the bound would leave none for other requests.",
			f.MaxEventStreams, f.MaxConnections)
	}
	f.Log = c.log(raw.Log)
	f.Backends, f.source.backends = c.backends(raw.Backends, hf.Body.MissingItemRange())
	f.Routes = c.routes(raw.Routes, raw.Backends)
	f.Auth, f.source.tokens = c.auth(raw.Auth)
	return f
}

// err returns the errors found, or nil.
func (c *checker) err() error {
	if !c.diags.HasErrors() {
		return nil
	}
	var out hcl.Diagnostics
	for _, d := range c.diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if d.Subject == nil {
			d.Subject = &hcl.Range{Filename: c.filename, Start: hcl.InitialPos, End: hcl.InitialPos}
		}
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b *hcl.Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Subject.Start.Line, b.Subject.Start.Line), cmp.Compare(a.Subject.Start.Column, b.Subject.Start.Column))
	})
	return &Error{Diagnostics: out}
}

func (c *checker) errorf(rng hcl.Range, summary, format string, args ...any) {
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

func (c *checker) log(r *rawLog) Log {
	l := Log{Level: "info", Format: "text"}
	if r == nil {
		return l
	}
	if v, ok := c.oneOf(r.Level, "level", "trace", "debug", "info", "warn", "error"); ok {
		l.Level = v
	}
	if v, ok := c.oneOf(r.Format, "format", "text", "json"); ok {
		l.Format = v
	}
	return l
}

// backends returns the backends of the file and the block of each.
func (c *checker) backends(raws []*rawBackend, file hcl.Range) ([]Backend, []*rawBackend) {
	if len(raws) == 0 {
		c.errorf(file, "Missing backend block", `A configuration needs at least one backend "NAME" block.`)
		return nil, nil
	}
	seen := make(map[string]hcl.Range, len(raws))
	out := make([]Backend, 0, len(raws))
	blocks := make([]*rawBackend, 0, len(raws))
	var dirs []dataDir
	for _, rb := range raws {
		// A misnamed backend is checked all the same, for its other errors.
		named := c.name(rb.Name, "backend", rb.DefRange, seen)
		b := c.backend(rb)
		if named {
			out = append(out, b)
			blocks = append(blocks, rb)
			if b.Config.DataDir != "" {
				rng := rb.DefRange
				if _, set, _ := c.peek(rb.DataDir); set {
					rng = rb.DataDir.Range()
				}
				dirs = c.distinctDataDir(dirs, dataDir{rb.Name, b.Config.DataDir, rng})
			}
		}
	}
	return out, blocks
}

// keyPrefix is where a backend keeps its keys: the Redis and the prefix.
type keyPrefix struct {
	backend, prefix, target string
	rng                     hcl.Range
}

// distinctPrefix refuses kp when its prefix overlaps (equals, starts, or
// is the start of) the prefix of a backend before it on the same Redis:
// the two would read, delete and forge each other's records and events.
func (c *checker) distinctPrefix(seen []keyPrefix, kp keyPrefix) []keyPrefix {
	for _, o := range seen {
		if o.target == kp.target && redisbridge.Overlap(o.prefix, kp.prefix) {
			c.errorf(kp.rng, "Overlapping key prefixes",
				"Backend %q's key_prefix %q overlaps %q, backend %q's on the same Redis (at %s): each could read, delete and forge the other's records and events. Give each backend a prefix that does not start with another's, or a Redis of its own (another db of the same Redis does not separate them: a backend's scripts reach its prefix in every db).",
				kp.backend, kp.prefix, o.prefix, o.backend, o.rng)
			return seen
		}
	}
	return append(seen, kp)
}

// name checks the label of a backend or token block against validName
// and the names seen before it.
func (c *checker) name(name, what string, def hcl.Range, seen map[string]hcl.Range) bool {
	if !validName.MatchString(name) {
		c.errorf(def, fmt.Sprintf("Invalid %s name", what), "%q: a %s name is lower-case letters, digits, _ and -.", name, what)
		return false
	}
	if first, dup := seen[name]; dup {
		c.errorf(def, fmt.Sprintf("Duplicate %s", what), "A %s named %q is already defined at %s.", what, name, first)
		return false
	}
	seen[name] = def
	return true
}

func (c *checker) backend(rb *rawBackend) Backend {
	cfg := host.Config{Name: rb.Name, Limits: host.DefaultLimits}
	c.plugin(rb, &cfg)
	cfg.DataDir = c.backendDataDir(rb, cfg.Plugin)
	if v, ok := c.boolean(rb.Trusted, "trusted"); ok {
		cfg.Trusted = v
	}
	if v, ok := c.integer(rb.Instances, "instances", 1, math.MaxInt32); ok {
		cfg.Instances = int(v)
	}
	caps := c.capabilities(rb.Capabilities, rb.Redis != nil, rb.Postgres != nil)
	cfg.Capabilities = caps
	cfg.Options = c.options(rb.Options)
	if rb.Limits != nil {
		c.limits(rb.Limits, &cfg.Limits)
	}
	if rb.Redis != nil {
		cfg.Redis = c.redis(rb.Redis)
	}
	if rb.Postgres != nil {
		cfg.Postgres = c.postgres(rb.Postgres)
	}
	if rb.Events != nil {
		c.events(rb.Events, &cfg)
	}
	if rb.Cache != nil {
		if c.require(rb.Cache.Entries, "entries", rb.Cache.DefRange) {
			if v, ok := c.integer(rb.Cache.Entries, "entries", 1, math.MaxInt32); ok {
				cfg.Cache.Entries = int(v)
			}
		}
		cfg.Cache.MaxAge, _ = c.duration(rb.Cache.MaxAge, "max_age")
		if v, ok := c.integer(rb.Cache.MaxBytes, "max_bytes", 1<<20, math.MaxInt64); ok {
			cfg.Cache.MaxBytes = v
		}
		if cfg.DisableEvents {
			c.errorf(rb.Cache.DefRange, "Cache without events", "The read cache is kept correct by the backend's events, which this backend disables.")
		}
	}
	if cfg.DisableEvents && slices.Contains(caps, abi.CapabilityEvents) {
		c.errorf(rb.Capabilities.Range(), "Capability without events", `Capability "events" lets the plugin publish events, which this backend disables.`)
	}
	b := Backend{Name: rb.Name, Config: cfg}
	if rb.Backup != nil {
		b.Backup = c.backup(rb.Backup, rb.Redis != nil, rb.Postgres != nil)
		if b.Backup.RestoreOnStart && rb.Redis == nil && rb.Postgres == nil && cfg.DataDir != "" {
			// Restoring over records kept on disk would undo every write
			// made since the backup.
			c.errorf(rb.Backup.RestoreOnStart.Range(), `Invalid value for "restore_on_start"`,
				"restore_on_start is for a backend that keeps its records in the daemon's memory (builtin:memory); this one keeps them on disk in %s, where they outlive the daemon, and restoring the newest backup at every start would undo the writes made since.", cfg.DataDir)
		}
	}
	return b
}

// capabilities returns the grant: the default one when expr is absent,
// without redis and postgres, which a redis and a postgres block grant.
func (c *checker) capabilities(expr hcl.Expression, hasRedis, hasPostgres bool) []abi.Capability {
	names, ranges, set, _ := c.list(expr, "capabilities")
	if !set {
		return slices.Clone(host.DefaultCapabilities)
	}
	caps := []abi.Capability{}
	for i, n := range names {
		switch cp := abi.Capability(n); {
		case cp == abi.CapabilityRedis && hasRedis:
			// Granted by the redis block (host.Config.Redis).
		case cp == abi.CapabilityRedis:
			c.errorf(ranges[i], "Capability without its configuration", `Capability "redis" is granted by a redis block, which this backend has not.`)
		case cp == abi.CapabilityRedisScripts:
			c.errorf(ranges[i], "Capability without its configuration", `Capability "redis_scripts" is granted by scripts = true in the backend's redis block, not in capabilities.`)
		case cp == abi.CapabilityPostgres && hasPostgres:
			// Granted by the postgres block (host.Config.Postgres).
		case cp == abi.CapabilityPostgres:
			c.errorf(ranges[i], "Capability without its configuration", `Capability "postgres" is granted by a postgres block, which this backend has not.`)
		case cp != abi.CapabilityLog && cp != abi.CapabilityClock && cp != abi.CapabilityKV && cp != abi.CapabilityEvents:
			c.errorf(ranges[i], "Unknown capability", "%q is not a capability; the capabilities are log, clock, kv, redis, redis_scripts, postgres and events.", n)
		case slices.Contains(caps, cp):
			c.errorf(ranges[i], "Duplicate capability", "%q is listed twice.", n)
		default:
			caps = append(caps, cp)
		}
	}
	return caps
}

// options returns the options as the plugin receives them, nil when
// expr is absent.
func (c *checker) options(expr hcl.Expression) map[string]string {
	v, set, ok := c.value(expr, "options", cty.DynamicPseudoType)
	if !set || !ok {
		return nil
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		c.errorf(expr.Range(), "Incorrect attribute value type", `Inappropriate value for attribute "options": a map of strings, numbers or bools is required.`)
		return nil
	}
	type item struct {
		key        cty.Value
		val        cty.Value
		keyR, valR hcl.Range
	}
	var items []item
	if pairs, diags := hcl.ExprMap(expr); !diags.HasErrors() {
		for _, p := range pairs {
			k, kd := p.Key.Value(nil)
			v, vd := p.Value.Value(nil)
			c.diags = append(append(c.diags, kd...), vd...)
			if kd.HasErrors() || vd.HasErrors() {
				continue
			}
			items = append(items, item{k, v, p.Key.Range(), p.Value.Range()})
		}
	} else {
		// Not an object constructor (a conditional, say): no ranges
		// finer than the attribute's.
		for k, v := range v.Elements() {
			items = append(items, item{k, v, expr.Range(), expr.Range()})
		}
	}
	opts := make(map[string]string, len(items))
	for _, it := range items {
		k, err := convert.Convert(it.key, cty.String)
		if err != nil || k.IsNull() || !k.IsKnown() {
			c.errorf(it.keyR, "Invalid option name", "An option name must be a string.")
			continue
		}
		name := k.AsString()
		if _, dup := opts[name]; dup {
			c.errorf(it.keyR, "Duplicate option", "Option %q is set twice.", name)
			continue
		}
		s, ok := optionValue(it.val)
		if !ok {
			c.errorf(it.valR, "Invalid option value", "Option %q: a string, a bool or a number within float64's range is required.", name)
			continue
		}
		opts[name] = s
	}
	return opts
}

// optionValue formats v as the plugin receives it: numbers in plain
// decimal, without exponent.
func optionValue(v cty.Value) (string, bool) {
	if v.IsNull() || !v.IsKnown() {
		return "", false
	}
	switch v.Type() {
	case cty.String:
		return v.AsString(), true
	case cty.Bool:
		return strconv.FormatBool(v.True()), true
	case cty.Number:
		return formatNumber(v.AsBigFloat())
	}
	return "", false
}

func formatNumber(f *big.Float) (string, bool) {
	if f.IsInf() {
		return "", false
	}
	if f.IsInt() {
		if i, acc := f.Int64(); acc == big.Exact {
			return strconv.FormatInt(i, 10), true
		}
		if f.MantExp(nil) > 1024 { // past float64's range: too many digits
			return "", false
		}
		return f.Text('f', 0), true
	}
	x, _ := f.Float64()
	if math.IsInf(x, 0) || x == 0 {
		return "", false
	}
	return strconv.FormatFloat(x, 'f', -1, 64), true
}

// events reads an events block: whether the backend publishes events and
// the sizes of its log, subscriber buffers and append queue.
func (c *checker) events(r *rawEvents, cfg *host.Config) {
	if v, ok := c.boolean(r.Enabled, "enabled"); ok {
		cfg.DisableEvents = !v
	}
	if v, ok := c.integer(r.Retention, "retention", 1, math.MaxInt32); ok {
		cfg.Events.Retention = int(v)
	}
	if v, ok := c.integer(r.Buffer, "buffer", 1, math.MaxInt32); ok {
		cfg.Events.Buffer = int(v)
	}
	if v, ok := c.integer(r.Queue, "queue", 1, math.MaxInt32); ok {
		cfg.Events.Queue = int(v)
	}
}

func (c *checker) limits(r *rawLimits, l *host.Limits) {
	if v, ok := c.integer(r.MemoryPages, "memory_pages", 1, 65536); ok {
		l.MemoryPages = uint32(v)
	}
	if v, ok := c.duration(r.CallTimeout, "call_timeout"); ok {
		l.CallTimeout = v
	}
	if v, ok := c.integer(r.MaxResponseBytes, "max_response_bytes", 1, math.MaxUint32); ok {
		l.MaxResponseBytes = uint32(v)
	}
	if v, ok := c.integer(r.MaxHostCalls, "max_host_calls", 1, math.MaxUint32); ok {
		l.MaxHostCalls = uint32(v)
	}
	if v, ok := c.float(r.LogLinesPerSecond, "log_lines_per_second"); ok {
		l.LogLinesPerSecond = v
	}
	if v, ok := c.integer(r.MaxLogLineBytes, "max_log_line_bytes", 1, math.MaxUint32); ok {
		l.MaxLogLineBytes = uint32(v)
	}
	c.budgets(r, l)
}

// budgets decodes the limits of what one call may make the host do and
// hold through the capabilities.
func (c *checker) budgets(r *rawLimits, l *host.Limits) {
	if v, ok := c.integer(r.MaxLogBytesPerCall, "max_log_bytes_per_call", 1, math.MaxUint32); ok {
		l.MaxLogBytesPerCall = uint32(v)
	}
	if v, ok := c.integer(r.MaxKVBytes, "max_kv_bytes", 1, math.MaxInt64); ok {
		l.MaxKVBytes = uint64(v)
	}
	if v, ok := c.integer(r.MaxKVEntries, "max_kv_entries", 1, math.MaxUint32); ok {
		l.MaxKVEntries = uint32(v)
	}
	if v, ok := c.integer(r.MaxKVScanBytes, "max_kv_scan_bytes", 1, math.MaxUint32); ok {
		l.MaxKVScanBytes = uint32(v)
	}
	if v, ok := c.integer(r.MaxEventsPerCall, "max_events_per_call", 1, math.MaxUint32); ok {
		l.MaxEventsPerCall = uint32(v)
	}
}

// redis decodes a redis block. The password is set when the file holds
// it (password); Check reads it from the environment or a file. Whether
// the bridge accepts the block is also Check's to ask.
func (c *checker) redis(r *rawRedis) *redisbridge.Config {
	rc := &redisbridge.Config{}
	rc.URL, _ = c.str(r.URL, "url")
	rc.Addrs, _, _, _ = c.list(r.Addrs, "addrs")
	rc.Cluster, _ = c.boolean(r.Cluster, "cluster")
	rc.MasterName, _ = c.str(r.MasterName, "master_name")
	rc.Username, _ = c.str(r.Username, "username")
	if ref, ok := c.secretRef(r.password()); ok && ref.source == secretInline {
		rc.Password = ref.value
	}
	db, _ := c.integer(r.DB, "db", 0, math.MaxInt32)
	rc.DB = int(db)
	rc.TLS, _ = c.boolean(r.TLS, "tls")
	n, _ := c.integer(r.PoolSize, "pool_size", 0, math.MaxInt32)
	rc.PoolSize = int(n)
	n, _ = c.integer(r.MinIdleConns, "min_idle_conns", 0, math.MaxInt32)
	rc.MinIdleConns = int(n)
	rc.DialTimeout, _ = c.duration(r.DialTimeout, "dial_timeout")
	rc.ReadTimeout, _ = c.duration(r.ReadTimeout, "read_timeout")
	rc.WriteTimeout, _ = c.duration(r.WriteTimeout, "write_timeout")
	rc.PoolTimeout, _ = c.duration(r.PoolTimeout, "pool_timeout")
	n, _ = c.integer(r.MaxRetries, "max_retries", 0, math.MaxInt32)
	rc.MaxRetries = int(n)
	if c.require(r.KeyPrefix, "key_prefix", r.DefRange) {
		rc.KeyPrefix, _ = c.str(r.KeyPrefix, "key_prefix")
	}
	rc.AllowCommands, _, _, _ = c.list(r.AllowCommands, "allow_commands")
	rc.Scripts, _ = c.boolean(r.Scripts, "scripts")
	if len(rc.Addrs) == 0 {
		rc.Addrs = nil // as absent: one Digest for both
	}
	if len(rc.AllowCommands) == 0 {
		rc.AllowCommands = nil
	}
	return rc
}

// postgres decodes a postgres block. The URL is set when the file holds
// it (url); Check reads it from the environment or a file (url_env,
// url_file), and has it parsed: a URL may carry a password, and pgx
// reads password and service files to parse one.
func (c *checker) postgres(r *rawPostgres) *host.PostgresConfig {
	pc := &host.PostgresConfig{}
	ref, ok := c.secretRef(r.url())
	switch {
	case ok && ref.rng == nil:
		c.errorf(r.DefRange, "Missing required argument", "One of url, url_env and url_file is required: the postgres:// URL of a role that may create roles and schemas.")
	case ok && ref.source == secretInline:
		pc.URL = ref.value
	}
	if c.require(r.Schema, "schema", r.DefRange) {
		if s, ok := c.str(r.Schema, "schema"); ok {
			if err := host.CheckPostgresSchema(s); err != nil {
				c.errorf(r.Schema.Range(), `Invalid value for "schema"`, "%v.", err)
			}
			pc.Schema = s
		}
	}
	if n, ok := c.integer(r.MaxConns, "max_conns", 1, math.MaxInt32); ok {
		pc.MaxConns = int32(n)
	}
	pc.StatementTimeout, _ = c.duration(r.StatementTimeout, "statement_timeout")
	if n, ok := c.integer(r.TempFileLimitMB, "temp_file_limit_mb", -1, math.MaxInt32/1024); ok && n != 0 {
		pc.TempFileLimitMB = n
	} else if ok {
		c.errorf(r.TempFileLimitMB.Range(), `Invalid value for "temp_file_limit_mb"`, "0 would forbid every temporary file: give a size in MiB, or -1 to leave the role's setting as it is.")
	}
	return pc
}

// isServiceName reports whether port is a service name (such as "http"),
// which the listener looks up: a letter, then letters, digits and dashes.
func isServiceName(port string) bool {
	for i, r := range port {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '-'):
		default:
			return false
		}
	}
	return port != ""
}

// The bounds of a backup block.
const (
	minBackupInterval = time.Second
	defaultBackupKeep = 24
	maxBackupKeep     = 100_000
)

func (c *checker) backup(r *rawBackup, hasRedis, hasPostgres bool) *Backup {
	b := &Backup{Keep: defaultBackupKeep}
	if c.require(r.Interval, "interval", r.DefRange) {
		if d, ok := c.duration(r.Interval, "interval"); ok {
			if d < minBackupInterval {
				c.errorf(r.Interval.Range(), "Invalid duration", "interval must be at least %v.", minBackupInterval)
			}
			b.Interval = d
		}
	}
	if c.require(r.Directory, "directory", r.DefRange) {
		if dir, ok := c.str(r.Directory, "directory"); ok {
			if dir == "" {
				c.errorf(r.Directory.Range(), `Invalid value for "directory"`, "directory names the directory backups are written to.")
			} else {
				b.Directory = c.path(dir)
			}
		}
	}
	if v, ok := c.integer(r.Keep, "keep", 1, maxBackupKeep); ok {
		b.Keep = int(v)
	}
	if v, ok := c.boolean(r.RestoreOnStart, "restore_on_start"); ok {
		if v && hasPostgres {
			c.errorf(r.RestoreOnStart.Range(), `Invalid value for "restore_on_start"`,
				"restore_on_start is for a backend that keeps its records in the daemon's memory; this one keeps them in PostgreSQL, where they outlive the daemon.")
		}
		if v && hasRedis {
			c.errorf(r.RestoreOnStart.Range(), `Invalid value for "restore_on_start"`,
				"restore_on_start is for a backend that keeps its records in the daemon's memory; this one keeps them in Redis, where they outlive the daemon.")
		}
		b.RestoreOnStart = v
	}
	return b
}

func (c *checker) routes(r *rawRoutes, backends []*rawBackend) Routes {
	var names []string
	for _, b := range backends {
		if !slices.Contains(names, b.Name) {
			names = append(names, b.Name)
		}
	}
	if r == nil {
		switch len(names) {
		case 0: // reported already
		case 1:
			return Routes{Metrics: names[0], Alerts: names[0], AgentStates: names[0]}
		default:
			c.errorf(backends[1].DefRange, "Missing routes block",
				"With more than one backend, a routes block must name the backend serving metrics, alerts and agent_states.")
		}
		return Routes{}
	}
	route := func(expr hcl.Expression, k abi.RecordKind) string {
		kind := k.Name()
		if !c.require(expr, kind, r.DefRange) {
			return ""
		}
		name, ok := c.str(expr, kind)
		if ok && !slices.Contains(names, name) {
			c.errorf(expr.Range(), "Unknown backend", "No backend named %q is defined (defined: %s).", name, strings.Join(names, ", "))
			return ""
		}
		return name
	}
	return Routes{
		Metrics:     route(r.Metrics, abi.KindMetric),
		Alerts:      route(r.Alerts, abi.KindAlert),
		AgentStates: route(r.AgentStates, abi.KindAgentState),
	}
}

// auth returns the auth block and the block of each of its tokens. A
// token's secret is set when the file holds it (secret); Check reads the
// others and compares them all.
func (c *checker) auth(r *rawAuth) (Auth, []*rawToken) {
	var a Auth
	if r == nil {
		return a, nil
	}
	a.AllowUnauthenticated, _ = c.boolean(r.AllowUnauthenticated, "allow_unauthenticated")
	seen := make(map[string]hcl.Range, len(r.Tokens))
	var blocks []*rawToken
	for _, rt := range r.Tokens {
		named := c.name(rt.Name, "token", rt.DefRange, seen)
		t := httpapi.Token{Name: rt.Name}
		ref, ok := c.secretRef(rt.secret())
		switch {
		case !ok:
		case ref.rng == nil:
			c.errorf(rt.DefRange, "Missing token secret", "A token needs one of secret_env, secret_file or secret.")
		case ref.source == secretInline:
			if c.tokenSecret(rt.Name, ref) {
				t.Secret = ref.value
			}
		}
		if c.require(rt.Scopes, "scopes", rt.DefRange) {
			t.Scopes = c.scopes(rt.Scopes)
		}
		if named {
			a.Tokens = append(a.Tokens, t)
			blocks = append(blocks, rt)
		}
	}
	return a, blocks
}

// tokenSecret checks the length of the secret of the token name.
func (c *checker) tokenSecret(name string, ref secretRef) bool {
	if len(ref.value) < minTokenSecret {
		// Never print the secret itself.
		c.errorf(*ref.rng, "Token secret too short", "Token %q has a secret of %d bytes; at least %d are required.", name, len(ref.value), minTokenSecret)
		return false
	}
	if strings.TrimSpace(ref.value) != ref.value {
		// HTTP trims a header value's spaces and tabs, so no client
		// could send such a secret as it is.
		c.errorf(*ref.rng, "Token secret with spaces", "Token %q has a secret that begins or ends with white space, which no Authorization header can carry.", name)
		return false
	}
	return true
}

func (c *checker) scopes(expr hcl.Expression) []httpapi.Scope {
	strs, ranges, set, ok := c.list(expr, "scopes")
	if set && ok && len(strs) == 0 {
		c.errorf(expr.Range(), "No scopes", "A token needs at least one scope.")
	}
	var out []httpapi.Scope
	for i, s := range strs {
		name, access, _ := strings.Cut(s, ":")
		kind, known := abi.ParseRecordKind(name)
		switch {
		case !known && name != anyKind, access != "read" && access != "write":
			c.errorf(ranges[i], "Invalid scope", "%q: a scope is KIND:read or KIND:write, KIND one of metrics, alerts, agent_states or *.", s)
		default:
			out = append(out, httpapi.Scope{Kind: kind, AllKinds: !known, Write: access == "write"})
		}
	}
	return out
}

// value evaluates the attribute expr, named name, as a value of type ty.
// set is false when the attribute is absent (or null); ok is false when
// it is invalid, which value reports.
func (c *checker) value(expr hcl.Expression, name string, ty cty.Type) (v cty.Value, set, ok bool) {
	if expr == nil {
		return cty.NilVal, false, true
	}
	v, diags := expr.Value(nil)
	c.diags = append(c.diags, diags...)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, true, false
	}
	if v.IsNull() {
		return cty.NilVal, false, true
	}
	v, err := convert.Convert(v, ty)
	if err != nil {
		c.errorf(expr.Range(), "Incorrect attribute value type", "Inappropriate value for attribute %q: %s.", name, err)
		return cty.NilVal, true, false
	}
	return v, true, true
}

// peek evaluates expr without reporting anything.
func (c *checker) peek(expr hcl.Expression) (v cty.Value, set, ok bool) {
	v, diags := expr.Value(nil)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, true, false
	}
	return v, !v.IsNull(), true
}

// require reports an absent attribute name of the block at def.
func (c *checker) require(expr hcl.Expression, name string, def hcl.Range) bool {
	if expr != nil {
		if _, set, _ := c.peek(expr); set {
			return true
		}
	}
	c.errorf(def, "Missing required argument", "The argument %q is required.", name)
	return false
}

// str returns a string attribute; ok is false when absent or invalid.
func (c *checker) str(expr hcl.Expression, name string) (string, bool) {
	v, set, ok := c.value(expr, name, cty.String)
	if !set || !ok {
		return "", false
	}
	return v.AsString(), true
}

func (c *checker) oneOf(expr hcl.Expression, name string, allowed ...string) (string, bool) {
	s, ok := c.str(expr, name)
	if ok && !slices.Contains(allowed, s) {
		c.errorf(expr.Range(), fmt.Sprintf("Invalid value for %q", name), "%q is not one of %s.", s, strings.Join(allowed, ", "))
		return "", false
	}
	return s, ok
}

func (c *checker) boolean(expr hcl.Expression, name string) (bool, bool) {
	v, set, ok := c.value(expr, name, cty.Bool)
	if !set || !ok {
		return false, false
	}
	return v.True(), true
}

// integer returns a whole-number attribute within [lo, hi].
func (c *checker) integer(expr hcl.Expression, name string, lo, hi int64) (int64, bool) {
	v, set, ok := c.value(expr, name, cty.Number)
	if !set || !ok {
		return 0, false
	}
	f := v.AsBigFloat()
	i, acc := f.Int64()
	if !f.IsInt() || acc != big.Exact || i < lo || i > hi {
		c.errorf(expr.Range(), fmt.Sprintf("Invalid value for %q", name), "%s must be a whole number from %d to %d.", name, lo, hi)
		return 0, false
	}
	return i, true
}

// float returns a positive number attribute.
func (c *checker) float(expr hcl.Expression, name string) (float64, bool) {
	v, set, ok := c.value(expr, name, cty.Number)
	if !set || !ok {
		return 0, false
	}
	x, _ := v.AsBigFloat().Float64()
	if !(x > 0) || math.IsInf(x, 0) {
		c.errorf(expr.Range(), fmt.Sprintf("Invalid value for %q", name), "%s must be a positive number.", name)
		return 0, false
	}
	return x, true
}

// duration returns a positive Go duration attribute ("5s").
func (c *checker) duration(expr hcl.Expression, name string) (time.Duration, bool) {
	s, ok := c.str(expr, name)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		c.errorf(expr.Range(), "Invalid duration", `%s: %q is not a duration such as "1.5s" or "300ms".`, name, s)
		return 0, false
	case d <= 0:
		c.errorf(expr.Range(), "Invalid duration", "%s must be positive.", name)
		return 0, false
	}
	return d, true
}

// list returns a list-of-strings attribute and the range of each
// element (the attribute's when the list is not a literal).
func (c *checker) list(expr hcl.Expression, name string) (strs []string, ranges []hcl.Range, set, ok bool) {
	v, set, ok := c.value(expr, name, cty.List(cty.String))
	if !set || !ok {
		return nil, nil, set, ok
	}
	elems, diags := hcl.ExprList(expr)
	if diags.HasErrors() || len(elems) != v.LengthInt() {
		elems = nil
	}
	strs = []string{}
	for i, e := range v.AsValueSlice() {
		rng := expr.Range()
		if elems != nil {
			rng = elems[i].Range()
		}
		if e.IsNull() {
			c.errorf(rng, "Incorrect attribute value type", "Inappropriate value for attribute %q: element %d is null.", name, i)
			ok = false
			continue
		}
		strs = append(strs, e.AsString())
		ranges = append(ranges, rng)
	}
	return strs, ranges, true, ok
}
