package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
)

// A CheckOption changes how Check checks a File.
type CheckOption func(*checkOptions)

type checkOptions struct {
	offline   bool
	plugins   *PluginCache
	deferRuns bool
	only      string
}

// pluginRun is what running a backend's plugin found: its inspection and
// its verdict on its options.
type pluginRun struct {
	info    host.PluginInfo
	options error
}

// Only checks backend name alone: the other backends, their plugins and
// secrets, and the tokens are neither read nor checked (they keep what
// the File held), and only routes to name are checked against what it
// serves. For checking one backend again (a daemon's backend whose plugin
// failed its check): the File is not for serving as a whole.
func Only(name string) CheckOption {
	return func(o *checkOptions) { o.only = name }
}

// DeferPluginRuns makes what a plugin file decides when it is run fail
// its backend rather than the File: a module that compiles but
// whose start traps, whose metadata declares a capability not granted or
// leaves a routed kind unserved, or that refuses its options. Such a
// backend's Unchecked says why, and Check succeeds if nothing else fails.
// A plugin's code may decide that differently from one run to the next
// (a date, a random number), so that a file that checked yesterday would
// keep a daemon from starting today: serve starts without that backend
// and checks it again as it tries to open it. A built-in plugin's run is
// this binary's and decides the same every time: what it finds is the
// file's.
func DeferPluginRuns() CheckOption {
	return func(o *checkOptions) { o.deferRuns = true }
}

// Offline checks a file without resolving its secrets: secret_env and
// password_env name a variable, secret_file and password_file a file, but
// neither is read, so a file checks on a machine that has none of its
// secrets (a CI job). Everything else is checked as without it: plugins
// read, pinned, inspected and granted, options judged by their plugin,
// Redis blocks judged by the bridge. The File keeps no secret but those
// written in it, and is not Checked: it is a report, not a configuration
// to serve.
func Offline() CheckOption {
	return func(o *checkOptions) { o.offline = true }
}

// WithPluginCache makes Check remember what it learns by running plugins
// in pc, and use what pc remembers.
func WithPluginCache(pc *PluginCache) CheckOption {
	return func(o *checkOptions) { o.plugins = pc }
}

// Check checks what a parsed File names outside its own text, and
// completes the File for serving. For each backend it reads the plugin
// module (a file's, or the built-in one), compares it with its sha256
// pin, inspects it (host.Inspect, which compiles and runs it) for the
// capabilities it imports or declares and the record kinds it serves, and
// has it judge its options (host.CheckOptions); it has the Redis bridge
// judge the redis block and refuses key prefixes that overlap on one
// Redis; it resolves the secrets (unless Offline) and refuses short or
// shared token secrets; it refuses a data_dir or backup directory that
// exists and is not a directory. It connects to nothing and creates
// nothing. The errors, all of them, are an *Error whose diagnostics point
// to the attributes concerned, as Parse's do.
//
// On success the backends' Config carry their plugin module (WASM, for a
// plugin file) and resolved secrets, Redis.Scripts its default, and each
// Backend its Digest; on error f is unchanged. Check reads the files
// again each time: after a secret or plugin file changed, a new Check
// sees the change.
func (f *File) Check(ctx context.Context, opts ...CheckOption) error {
	if f.source == nil {
		return nil // Default: nothing outside the binary to check
	}
	var o checkOptions
	for _, fn := range opts {
		fn(&o)
	}
	src := f.source
	c := &checker{filename: src.filename, dir: src.dir}
	if o.deferRuns {
		c.deferred = map[string]hcl.Diagnostics{}
	}
	backends := slices.Clone(f.Backends)
	plugins := make(map[string]served, len(backends))
	var prefixes []keyPrefix
	var schemas []pgSchema
	wasms := make([][]byte, len(backends))
	for i := range backends {
		b, rb := &backends[i], src.backends[i]
		b.Unchecked = nil // a File checked before says what its check found
		if o.only != "" && b.Name != o.only {
			continue // neither read nor run: only o.only is checked
		}
		cfg := &b.Config
		cfg.WASM = nil
		if cfg.Redis != nil {
			rc := *cfg.Redis
			cfg.Redis = &rc
		}
		if cfg.Postgres != nil {
			pc := *cfg.Postgres
			cfg.Postgres = &pc
			schemas = c.checkPostgres(rb, cfg.Postgres, o.offline, schemas)
		}
		wasm := c.module(rb, cfg)
		c.directory(rb.DataDir, cfg.DataDir, "data_dir")
		if b.Backup != nil {
			c.directory(rb.Backup.Directory, b.Backup.Directory, "directory")
		}
		if cfg.Redis != nil {
			prefixes = c.checkRedis(rb, cfg.Redis, o.offline, prefixes)
		}
		wasms[i] = wasm
	}
	// The plugins run at once: one slow to start (up to its call
	// timeout, twice) delays the check by its own time only.
	runs := make([]pluginRun, len(backends))
	var wg sync.WaitGroup
	for i := range backends {
		if wasms[i] == nil || (o.only != "" && backends[i].Name != o.only) {
			continue
		}
		wg.Go(func() {
			r := &runs[i]
			r.info = o.plugins.inspect(ctx, wasms[i])
			if r.info.Err == nil {
				r.options = o.plugins.checkOptions(ctx, wasms[i], backends[i].Config.Options)
			}
		})
	}
	wg.Wait()
	for i := range backends {
		b, rb, wasm := &backends[i], src.backends[i], wasms[i]
		cfg := &b.Config
		if o.only != "" && b.Name != o.only {
			continue // not checked, its Digest as it was
		}
		if wasm == nil {
			b.Digest = ""
			continue
		}
		info := runs[i].info
		ran := len(c.diags) // what follows depends on the plugin's run
		c.defaultScripts(rb, cfg, info)
		g := grantRange{rb.Plugin.Range(), rb.Redis, cfg.Redis, cfg.Postgres != nil}
		c.grant(info, cfg.Capabilities, g)
		// A capability the module imports and the file does not grant is
		// the bytes' and the file's to decide, not the run's.
		importsUngranted := slices.ContainsFunc(info.Imports, func(cp abi.Capability) bool { return !g.grants(cfg.Capabilities, cp) })
		if info.Err == nil {
			plugins[b.Name] = served{info.Metadata.Name + " " + info.Metadata.Version, info.Metadata.Features, strings.HasPrefix(cfg.Plugin, host.BuiltinPrefix)}
			f := info.Metadata.Features
			if rb.Backup != nil && !f.Has(abi.FeatureQuery) && f&(abi.FeatureMetrics|abi.FeatureAlerts|abi.FeatureAgentStates) != 0 {
				// A backup lists every record: it would fail at every interval.
				c.errorf(rb.Backup.DefRange, "Backup of a plugin that cannot list its records",
					"plugin %s %s serves no queries, which a backup lists its records with; remove the backup block, or give the backend a plugin that serves them.", info.Metadata.Name, info.Metadata.Version)
			}
			// The plugin judges its own options, none included (serve
			// configures it all the same), so that validate catches what
			// serve would refuse.
			if err := runs[i].options; err != nil {
				if !errors.Is(err, host.ErrInvalid) {
					// Not the plugin's verdict on its options: the module
					// failed its configuration call (a trap, an export
					// of the wrong type, a malformed answer).
					c.errorf(rb.Plugin.Range(), "Plugin fails when configured", "%v.", err)
				} else if len(cfg.Options) > 0 {
					c.errorf(rb.Options.Range(), "Options refused by the plugin", "%v.", err)
				} else {
					c.errorf(rb.Plugin.Range(), "Plugin refuses to run without options", "%v; give it an options block.", err)
				}
			}
		}
		if c.deferred != nil && !strings.HasPrefix(cfg.Plugin, host.BuiltinPrefix) && (info.Err == nil || info.Ran) && !importsUngranted && len(c.diags) > ran {
			c.deferred[b.Name] = append(c.deferred[b.Name], c.diags[ran:]...)
			c.diags = c.diags[:ran]
			delete(plugins, b.Name)
		}
		b.Digest = digest(cfg, wasm)
	}
	c.servedRoutes(src.routes, plugins)
	tokens := f.Auth.Tokens
	if o.only == "" {
		tokens = c.checkTokens(f.Auth, src.tokens, o.offline)
	}
	if err := c.err(); err != nil {
		return err
	}
	for i := range backends {
		if d := c.deferred[backends[i].Name]; len(d) > 0 {
			backends[i].Unchecked = (&checker{filename: c.filename, diags: d}).err()
		}
	}
	f.Backends, f.Auth.Tokens = backends, tokens
	f.checked = !o.offline
	f.features = make(map[string]abi.Feature, len(plugins))
	for name, sv := range plugins {
		f.features[name] = sv.features
	}
	return nil
}

// served is what a backend's plugin serves, as its metadata says.
type served struct {
	plugin   string // name and version
	features abi.Feature
	builtin  bool
}

// directory refuses the directory dir, named by the attribute expr, when
// it exists and is not a directory.
func (c *checker) directory(expr hcl.Expression, dir, name string) {
	if dir == "" {
		return
	}
	if _, set, _ := c.peek(expr); !set {
		return // the daemon's own directory for the backend
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		c.errorf(expr.Range(), `Invalid value for "`+name+`"`, "%s is not a directory.", dir)
	}
}

// checkRedis resolves the password of the redis block of rb into rc, has
// the bridge judge rc as redisbridge.Open would (without connecting or
// claiming the prefix: the bridges a reload replaces are still open),
// and refuses a key prefix overlapping one of seen on the same Redis.
func (c *checker) checkRedis(rb *rawBackend, rc *redisbridge.Config, offline bool, seen []keyPrefix) []keyPrefix {
	ref, _ := c.secretRef(rb.Redis.password())
	if ref.source != secretInline && !offline {
		// An unresolved password is reported; the rest is checked all
		// the same.
		rc.Password, _ = c.resolve(ref)
	}
	if err := redisbridge.Check(*rc); err != nil {
		c.errorf(rb.Redis.DefRange, "Invalid redis block", "%v.", err)
		return seen
	}
	target, err := redisbridge.Target(*rc)
	if err != nil {
		c.errorf(rb.Redis.DefRange, "Invalid redis block", "%v.", err)
		return seen
	}
	return c.distinctPrefix(seen, keyPrefix{rb.Name, rc.KeyPrefix, target, rb.Redis.KeyPrefix.Range()})
}

// pgSchema is where a backend keeps its tables: the database and the
// schema.
type pgSchema struct {
	backend, schema, target string
	rng                     hcl.Range
}

// checkPostgres resolves the URL of the postgres block of rb into pc
// (unless offline), has it judged as the bridge would read it, and
// refuses a schema another backend of seen has on the same database:
// the two would share one role and every table. It connects to nothing:
// the host connects, and creates the backend's role and schema, when it
// opens the backend.
func (c *checker) checkPostgres(rb *rawBackend, pc *host.PostgresConfig, offline bool, seen []pgSchema) []pgSchema {
	ref, _ := c.secretRef(rb.Postgres.url())
	if ref.rng == nil {
		return seen // reported by Parse
	}
	if ref.source != secretInline {
		if offline {
			pc.URL = ""
			return seen
		}
		v, ok := c.resolve(ref)
		if !ok {
			return seen
		}
		pc.URL = v
	}
	if err := host.CheckPostgres(*pc); err != nil {
		c.errorf(*ref.rng, "Invalid postgres block", "%v.", err)
		return seen
	}
	pg, err := pgx.ParseConfig(pc.URL)
	if err != nil {
		return seen // refused by CheckPostgres
	}
	// One server written two ways (localhost, 127.0.0.1) is one target.
	s := pgSchema{rb.Name, pc.Schema, fmt.Sprintf("%s:%d/%s", redisbridge.HostKey(pg.Host), pg.Port, pg.Database), rb.Postgres.Schema.Range()}
	for _, o := range seen {
		if o.target == s.target && o.schema == s.schema {
			c.errorf(s.rng, "Shared schema",
				"Backend %q's schema %q is backend %q's on the same database (%s, at %s): the two would share one role and every table, each reading, deleting and forging the other's records and events. Give each backend a schema of its own.",
				s.backend, s.schema, o.backend, s.target, o.rng)
			return seen
		}
	}
	return append(seen, s)
}

// servedRoutes refuses a route to a backend whose plugin does not serve
// the kind: it would answer every request of it 501.
func (c *checker) servedRoutes(r *rawRoutes, served map[string]served) {
	if r == nil {
		return
	}
	for _, route := range []struct {
		expr hcl.Expression
		kind abi.RecordKind
	}{{r.Metrics, abi.KindMetric}, {r.Alerts, abi.KindAlert}, {r.AgentStates, abi.KindAgentState}} {
		name, _ := c.str(route.expr, route.kind.Name())
		sv, known := served[name]
		if !known || sv.features.Has(route.kind.Feature()) {
			continue
		}
		kind := route.kind.Name()
		if c.deferred != nil && !sv.builtin {
			// What the plugin serves is what its run declared.
			c.deferred[name] = append(c.deferred[name], &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Backend does not serve " + kind,
				Detail:  fmt.Sprintf("Backend %q runs plugin %s, which does not serve %s (it advertises [%s]).", name, sv.plugin, kind, sv.features),
				Subject: route.expr.Range().Ptr()})
			continue
		}
		c.errorf(route.expr.Range(), "Backend does not serve "+kind,
			"Backend %q runs plugin %s, which does not serve %s (it advertises [%s]); every %s request would be refused. Route %s to a backend that serves them.",
			name, sv.plugin, kind, sv.features, kind, kind)
	}
}

// checkTokens returns the tokens of a with their secrets resolved
// (unless offline), refusing a secret too short or the same as another
// token's.
func (c *checker) checkTokens(a Auth, blocks []*rawToken, offline bool) []httpapi.Token {
	tokens := slices.Clone(a.Tokens)
	owners := make(map[string]string, len(tokens)) // secret → token name
	for i := range tokens {
		t, rt := &tokens[i], blocks[i]
		ref, _ := c.secretRef(rt.secret())
		if ref.source != secretInline {
			t.Secret = ""
			if offline {
				continue
			}
			v, ok := c.resolve(ref)
			if !ok {
				continue
			}
			ref.value = v
			if !c.tokenSecret(t.Name, ref) {
				continue
			}
			t.Secret = v
		}
		if owner := owners[t.Secret]; owner != "" {
			c.errorf(*ref.rng, "Duplicate token secret", "Token %q has the same secret as token %q.", t.Name, owner)
			continue
		}
		owners[t.Secret] = t.Name
	}
	return tokens
}
