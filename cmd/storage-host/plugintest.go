package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/storetest"
)

const pluginTestUsage = `usage: storage-host plugin test [flags] FILE.wasm|builtin:NAME
       storage-host plugin test [flags] -config FILE -backend NAME

Runs the conformance suite (package host/storetest) against a plugin: every
rule of the contract for each feature the plugin advertises, that every
feature it does not advertise is refused, and the Protocol rules: malformed
requests, invalid fields, unknown ops and ops of features not advertised,
sent to the plugin as given, are refused with the status the ABI names.
A plugin with a legitimate policy that changes what the suite may expect
declares it with a flag (-max-samples-per-series: a retention policy), and
the suite checks the policy instead of failing the plugin for it. The
rules expect no default TTLs: a default TTL option given (-option
agent_state_ttl_seconds=N, and the metric and alert ones) is left out of
them, and the DefaultTTLs rules check the defaults instead. It prints
one line per failed rule with what went wrong (-v: every rule), and exits 1
if any rule failed.

Flags:
`

// pluginTestFlags are the flags of plugin test.
type pluginTestFlags struct {
	options    map[string]string
	redisAddr  string
	scripts    bool
	pgURL      string
	configPath string
	backend    string
	run        string
	skip       string
	asJSON     bool
	verbose    bool
	timeout    time.Duration
	policy     storetest.Policy
	plugin     string // FILE.wasm or builtin:NAME; empty with -config
}

// optionFlags collects repeated -option key=value flags.
type optionFlags map[string]string

func (o optionFlags) String() string { return "" }

func (o optionFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	o[k] = val
	return nil
}

func parsePluginTestFlags(args []string, stderr io.Writer) (*pluginTestFlags, error) {
	f := &pluginTestFlags{options: map[string]string{}}
	fs := flag.NewFlagSet("plugin test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, pluginTestUsage); fs.PrintDefaults() }
	fs.Var(optionFlags(f.options), "option", "a plugin option, key=value (repeatable)")
	fs.StringVar(&f.redisAddr, "redis", "", "grant the redis capability on the Redis at this host:port; each store the suite opens gets a key prefix of its own, removed afterwards")
	fs.BoolVar(&f.scripts, "scripts", false, "with -redis, grant Lua scripts too (redis_scripts; builtin:redis always has them): a script runs inside Redis, and one that loops after a write stops that Redis for every client until it is shut down, so grant them only to a plugin you trust and on a Redis of its own")
	fs.StringVar(&f.pgURL, "postgres", "", "grant the postgres capability on the PostgreSQL at this postgres:// URL, of a role that may create roles and schemas; each store the suite opens gets a schema and a role of its own, dropped afterwards")
	fs.StringVar(&f.configPath, "config", "", "take the plugin, its options and capabilities from a backend block of this configuration file")
	fs.StringVar(&f.backend, "backend", "", "the backend block to take (with -config; not needed when the file has one)")
	fs.StringVar(&f.run, "run", "", "run only the rules matching this regular expression (as go test -run, below the suite: Protocol, AgentStates/Versions)")
	fs.StringVar(&f.skip, "skip", "", "skip the rules matching this regular expression (as go test -skip, below the suite): those a policy of the plugin's own makes fail, say Alerts/Transitions")
	fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&f.verbose, "v", false, "list every rule, not only those that failed")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "fail the run if it takes longer than this")
	fs.IntVar(&f.policy.MaxSamplesPerSeries, "max-samples-per-series", 0, fmt.Sprintf("the plugin's retention policy: it keeps the newest N samples of each series (N at least %d); the suite checks it and keeps within it", storetest.MinSamplesPerSeries))
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	switch {
	case f.configPath != "" && (fs.NArg() != 0 || len(f.options) > 0 || f.redisAddr != "" || f.scripts || f.pgURL != ""):
		return nil, usagef("plugin test: -config takes -backend (which a file of one backend may leave out), and no plugin file, -option, -redis, -scripts or -postgres (the backend block has them)")
	case f.scripts && f.redisAddr == "":
		return nil, usagef("plugin test: -scripts grants Lua scripts on the Redis of -redis, which is missing")
	case f.configPath == "" && fs.NArg() != 1:
		fs.Usage()
		return nil, errUsage
	}
	f.plugin = fs.Arg(0)
	if n := f.policy.MaxSamplesPerSeries; n != 0 && n < storetest.MinSamplesPerSeries {
		return nil, usagef("plugin test: -max-samples-per-series %d is below %d, the most samples one series of the suite holds", n, storetest.MinSamplesPerSeries)
	}
	for name, re := range map[string]string{"run": f.run, "skip": f.skip} {
		if _, err := regexp.Compile(re); re != "" && err != nil {
			return nil, usagef("plugin test: -%s: %v", name, err)
		}
	}
	return f, nil
}

// baseConfig is the host.Config of the plugin under test, from the flags
// or the configuration file's backend block.
func (f *pluginTestFlags) baseConfig() (host.Config, error) {
	if f.configPath == "" {
		c := host.Config{Plugin: f.plugin, Options: f.options} // named by the plugin's own name
		if f.redisAddr != "" {
			scripts := f.scripts || f.plugin == host.BuiltinPrefix+"redis"
			c.Redis = &redisbridge.Config{Addrs: []string{f.redisAddr}, KeyPrefix: "storage-host-plugin-test:", Scripts: scripts}
		}
		if f.pgURL != "" {
			c.Postgres = &host.PostgresConfig{URL: f.pgURL, Schema: "plugin_test"}
		}
		return c, nil
	}
	file, err := config.Load(f.configPath)
	if err == nil {
		err = file.Check(context.Background())
	}
	if err != nil {
		return host.Config{}, err
	}
	name := f.backend
	if name == "" {
		if len(file.Backends) != 1 {
			names := make([]string, len(file.Backends))
			for i, b := range file.Backends {
				names[i] = b.Name
			}
			return host.Config{}, usagef("plugin test: %s has %d backends (%s): name one with -backend", f.configPath, len(names), strings.Join(names, ", "))
		}
		name = file.Backends[0].Name
	}
	def, ok := file.Backend(name)
	if !ok {
		return host.Config{}, fmt.Errorf("%s has no backend %q", f.configPath, name)
	}
	c := def.Config
	// The suite's stores keep nothing beyond the run: no data directory,
	// no fallback buffer on disk, no schedule.
	c.DataDir = ""
	return c, nil
}

// pluginTestChild marks the process that runs the suite: the command
// re-runs itself with it set, and reads the suite's report from it.
const pluginTestChild = "STORAGE_HOST_PLUGIN_TEST_CHILD"

// pluginTest is `storage-host plugin test`.
func pluginTest(args []string, stdout, stderr io.Writer) error {
	f, err := parsePluginTestFlags(args, stderr)
	if err != nil {
		return err
	}
	base, err := f.baseConfig()
	if err != nil {
		return err
	}
	if os.Getenv(pluginTestChild) != "" {
		runSuite(f, base) // exits
	}

	// Open the plugin once here, so that one that cannot load says why
	// in one line instead of as a failure of every rule.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	probe := namespaced(base, "probe")
	probe.Name = base.Name // what a failure to load names: the backend block, or the plugin's own name
	var probeLog lockedBuffer
	st, err := host.Open(ctx, probe, host.WithLogger(suiteLogger(&probeLog)))
	cancel()
	if probe.Redis != nil {
		defer removePrefix(probe.Redis)
	}
	if probe.Postgres != nil {
		defer dropSchema(probe.Postgres)
	}
	if err != nil {
		hint := ""
		needs := func(c abi.Capability) bool { return strings.Contains(err.Error(), fmt.Sprintf("capability %q", c)) }
		switch {
		case probe.Redis == nil && needs(abi.CapabilityRedis):
			hint = " (-redis HOST:PORT gives the suite a Redis: it writes under a key prefix of its own and removes it afterwards)"
		case probe.Postgres == nil && needs(abi.CapabilityPostgres):
			hint = " (-postgres URL gives the suite a PostgreSQL database: it works in a schema of its own and drops it afterwards)"
		case probe.Redis != nil && !probe.Redis.Scripts && strings.Contains(err.Error(), string(abi.CapabilityRedisScripts)):
			hint = " (-scripts grants them, to a plugin you trust: a script that loops after a write stops its Redis until it is shut down)"
		}
		return fmt.Errorf("plugin test: the plugin does not load: %w%s%s", err, hint, probeLog.tail())
	}
	meta := st.Metadata()
	// A store the suite cannot reach would fail every rule, one by one.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	ready := st.Ready(ctx)
	cancel()
	_ = st.Close(context.Background())
	if ready != nil {
		return fmt.Errorf("plugin test: the backend is not ready, so no rule could pass: %w%s", ready, probeLog.tail())
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(exe, append([]string{"plugin", "test"}, args...)...)
	child.Env = append(os.Environ(), pluginTestChild+"=1")
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	var childErr strings.Builder
	child.Stderr = &childErr
	if err := child.Start(); err != nil {
		return err
	}
	rep := readSuite(out)
	waitErr := child.Wait()
	rep.Plugin = fmt.Sprintf("%s %s", meta.Name, meta.Version)
	rep.Features = meta.Features.String()
	if waitErr != nil && rep.Failed == 0 {
		// The suite stopped without a failed rule to show: a panic, or
		// the timeout. Its last words say which.
		rep.Failed++
		rep.Rules = append(rep.Rules, ruleResult{Name: "(suite)", Result: "fail",
			Output: lastLines(rep.Unattributed+childErr.String(), 30)})
	}
	rep.Unattributed = ""
	if len(rep.Rules) == 0 {
		if f.skip != "" {
			return fmt.Errorf("plugin test: no rule matches -run %q and not -skip %q", f.run, f.skip)
		}
		return fmt.Errorf("plugin test: no rule matches -run %q", f.run)
	}
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.print(stdout, f.verbose)
	}
	if rep.Failed > 0 {
		return errReported
	}
	return nil
}

// namespaced returns c on a namespace of its own: a Redis key prefix, a
// PostgreSQL schema and a backend name with a random part, so that the
// suite's stores neither see each other nor anything else on a shared
// Redis or PostgreSQL.
func namespaced(c host.Config, tag string) host.Config {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c.Name = "plugin-test-" + tag + "-" + id
	if c.Redis != nil {
		r := *c.Redis
		r.KeyPrefix += id + ":"
		c.Redis = &r
	}
	if c.Postgres != nil {
		pg := *c.Postgres
		pg.Schema = pg.Schema[:min(len(pg.Schema), maxSchemaBytes-1-len(id))] + "_" + id
		c.Postgres = &pg
	}
	return c
}

// suiteLogger is the logger of the stores the suite opens: the plugin's
// own lines (storagehost_log, WASI stdout and stderr) and the host's, at
// Info and above, to w.
func suiteLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "log", Output: w, Level: hclog.Info, DisableTime: true})
}

// lockedBuffer keeps what a store logs while the plugin is probed, for
// the error that says it does not load or is not ready.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tail is the last lines logged, after a line feed, or "".
func (l *lockedBuffer) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() == 0 {
		return ""
	}
	return "\nthe log meanwhile:\n  " + strings.Join(lastLines(l.b.String(), 20), "\n  ")
}

// maxSchemaBytes is the longest schema name host.PostgresConfig takes.
const maxSchemaBytes = 40

// runSuite runs the conformance suite with package testing's runner and
// exits with its verdict. Its -v output goes to standard output, where the
// parent reads it.
func runSuite(f *pluginTestFlags, base host.Config) {
	// The rules expect stores without default TTLs; a plugin given some is
	// checked against them by the DefaultTTLs rules, which set their own.
	var defaultTTLs bool
	base.Options, defaultTTLs = withoutDefaultTTLs(base.Options)
	openWith := func(t *testing.T, options map[string]string) *host.Store {
		c := namespaced(base, "run")
		if len(options) > 0 {
			c.Options = maps.Clone(base.Options)
			if c.Options == nil {
				c.Options = map[string]string{}
			}
			maps.Copy(c.Options, options)
		}
		// The plugin's log lines and the host's go where the parent reads
		// the rules' output, each under the rule that ran when it was
		// written: a failing rule shows what the plugin said.
		st, err := host.Open(t.Context(), c, host.WithLogger(suiteLogger(os.Stdout)))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if c.Redis != nil {
			t.Cleanup(func() { removePrefix(c.Redis) })
		}
		if c.Postgres != nil {
			// Registered after the store's own clean-up, so it runs
			// before it: the role's sessions are ended first.
			t.Cleanup(func() { dropSchema(c.Postgres) })
		}
		return st
	}
	open := func(t *testing.T) *host.Store { return openWith(t, nil) }
	pattern := "^Conformance$"
	if f.run != "" {
		pattern = belowSuite(f.run)
	}
	os.Args = []string{os.Args[0], "-test.v", "-test.run", pattern, "-test.timeout", f.timeout.String()}
	if f.skip != "" {
		os.Args = append(os.Args, "-test.skip", belowSuite(f.skip))
	}
	testing.Main(func(pat, s string) (bool, error) { return regexp.MatchString(pat, s) },
		[]testing.InternalTest{{Name: "Conformance", F: func(t *testing.T) {
			storetest.RunWithPolicy(t, open, f.policy)
			if defaultTTLs {
				t.Run("DefaultTTLs", func(t *testing.T) { storetest.RunDefaultTTLs(t, openWith) })
			}
		}}},
		nil, nil)
}

// withoutDefaultTTLs returns options without the per-kind default TTL
// options, and whether one of them set a default (a value other than 0).
func withoutDefaultTTLs(options map[string]string) (map[string]string, bool) {
	var rest map[string]string
	set := false
	for k, v := range options {
		if storetest.IsDefaultTTLOption(k) {
			set = set || strings.TrimLeft(v, "0") != ""
			continue
		}
		if rest == nil {
			rest = map[string]string{}
		}
		rest[k] = v
	}
	return rest, set
}

// belowSuite returns the -test.run pattern that matches what run matches
// below the suite's top-level test. Package testing splits a pattern
// into alternatives at each "|" outside brackets and parentheses before
// it splits them at "/", so each alternative gets the prefix of its own:
// "Protocol|AgentStates" would otherwise match Protocol below the suite
// and AgentStates at the top, where no rule is.
func belowSuite(run string) string {
	var b strings.Builder
	depth, start := 0, 0
	alternative := func(end int) {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString("^Conformance$/")
		b.WriteString(run[start:end])
	}
	for i := 0; i < len(run); i++ {
		switch run[i] {
		case '\\':
			i++ // an escaped character is never structure
		case '(', '[':
			depth++
		case ')', ']':
			if depth > 0 {
				depth--
			}
		case '|':
			if depth == 0 {
				alternative(i)
				start = i + 1
			}
		}
	}
	alternative(len(run))
	return b.String()
}

// removePrefix deletes the keys a store of the suite left under its
// prefix, its event stream (kept outside the prefix) and the prefix's ACL
// user.
func removePrefix(c *redisbridge.Config) {
	opts, err := cleanupOptions(c)
	if err != nil {
		return // a URL go-redis does not read: its keys stay, under a prefix of their own
	}
	rc := redis.NewUniversalClient(opts)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, pattern := range []string{c.KeyPrefix + "*", "__host__:{" + c.KeyPrefix + "}*"} {
		iter := rc.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			rc.Del(ctx, iter.Val())
		}
	}
	rc.Do(ctx, "ACL", "DELUSER", redisbridge.ACLUser(c.KeyPrefix))
}

// cleanupOptions returns go-redis options reaching the Redis and
// database c names, with its credentials, as the bridge reads c: a URL
// through go-redis's own parser (ParseClusterURL for a cluster), then the
// block's fields over it.
func cleanupOptions(c *redisbridge.Config) (*redis.UniversalOptions, error) {
	o := &redis.UniversalOptions{Addrs: c.Addrs, MasterName: c.MasterName, IsClusterMode: c.Cluster}
	switch {
	case c.URL != "" && c.Cluster:
		u, err := redis.ParseClusterURL(c.URL)
		if err != nil {
			return nil, err
		}
		o.Addrs, o.Username, o.Password, o.TLSConfig = u.Addrs, u.Username, u.Password, u.TLSConfig
	case c.URL != "":
		u, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, err
		}
		o.Addrs, o.Username, o.Password, o.DB, o.TLSConfig = []string{u.Addr}, u.Username, u.Password, u.DB, u.TLSConfig
	}
	if c.Username != "" {
		o.Username = c.Username
	}
	if c.Password != "" {
		o.Password = c.Password
	}
	if c.DB != 0 {
		o.DB = c.DB
	}
	if c.TLS && o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// dropSchema drops the schema a store of the suite used, with what it
// holds, and its role, through the admin URL.
func dropSchema(c *host.PostgresConfig) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		return // the run's schemas stay, under names of their own
	}
	defer conn.Close(ctx)
	role := host.PostgresRole(c.Schema)
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role); err != nil {
		return
	}
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{c.Schema}.Sanitize()+" CASCADE"); err != nil {
		return
	}
	var exists bool
	if conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists) != nil || !exists {
		return
	}
	_, _ = conn.Exec(ctx, "DROP OWNED BY "+pgx.Identifier{role}.Sanitize())
	_, _ = conn.Exec(ctx, "DROP ROLE "+pgx.Identifier{role}.Sanitize())
}

// suiteReport is what plugin test prints (as JSON with -json).
type suiteReport struct {
	Plugin   string       `json:"plugin"`
	Features string       `json:"features"`
	Passed   int          `json:"passed"`
	Failed   int          `json:"failed"`
	Skipped  int          `json:"skipped"`
	Rules    []ruleResult `json:"rules"`
	// Unattributed is output of the suite outside any rule.
	Unattributed string `json:"-"`
}

// ruleResult is one rule: a subtest of the suite with no subtests.
type ruleResult struct {
	Name   string   `json:"name"`
	Result string   `json:"result"` // pass, fail or skip
	Output []string `json:"output,omitempty"`
}

// Limits of what a report shows of a failed rule: a check that printed
// a whole record set, or a diff of two, is cut to what a reader can use.
const (
	maxRuleLines = 24
	maxLineBytes = 600
)

var (
	runLine    = regexp.MustCompile(`^=== (?:RUN|CONT|NAME|PAUSE)\s+(\S+)`)
	resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
)

// readSuite reads the -test.v output of runSuite: which rules ran, how
// each ended, and what each printed.
func readSuite(r io.Reader) suiteReport {
	var rep suiteReport
	output := map[string][]string{}
	parents := map[string]bool{}
	results := map[string]string{}
	var order []string
	current := ""
	var un strings.Builder
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if m := runLine.FindStringSubmatch(line); m != nil {
			current = m[1]
			if _, seen := results[current]; !seen {
				results[current] = ""
				order = append(order, current)
			}
			if i := strings.LastIndexByte(current, '/'); i > 0 {
				parents[current[:i]] = true
			}
			continue
		}
		if m := resultLine.FindStringSubmatch(line); m != nil {
			results[m[2]] = strings.ToLower(m[1])
			continue
		}
		if line == "PASS" || line == "FAIL" || strings.HasPrefix(line, "ok ") || current == "" {
			un.WriteString(line + "\n")
			continue
		}
		output[current] = append(output[current], line)
	}
	for _, name := range order {
		if parents[name] || name == "Conformance" {
			continue // a group: its rules report for it
		}
		res := results[name]
		if res == "" {
			res = "fail" // started and never ended: the suite stopped in it
		}
		rr := ruleResult{Name: strings.TrimPrefix(name, "Conformance/"), Result: res}
		switch res {
		case "pass":
			rep.Passed++
		case "skip":
			rep.Skipped++
			rr.Output = cutLines(output[name])
		default:
			rep.Failed++
			rr.Output = cutLines(output[name])
		}
		rep.Rules = append(rep.Rules, rr)
	}
	// Output of the suite itself (its opening line: what the plugin
	// advertises, the run's ID prefix) is kept for the case where no rule
	// explains a failure.
	for _, l := range output["Conformance"] {
		un.WriteString(l + "\n")
	}
	rep.Unattributed = un.String()
	return rep
}

// cutLines trims the indentation of a rule's output, and cuts long lines
// and long outputs.
func cutLines(lines []string) []string {
	lines = withoutTrace(lines)
	var out []string
	for i, l := range lines {
		if i == maxRuleLines {
			out = append(out, fmt.Sprintf("… %d more lines", len(lines)-i))
			break
		}
		out = append(out, cutMiddle(strings.TrimPrefix(l, "    "), maxLineBytes))
	}
	return out
}

// cutMiddle cuts a line longer than n bytes in its middle, at rune
// boundaries, saying how much: a failure's line ends in the reason, and
// starts with where, and what is long is the plugin's text between.
func cutMiddle(l string, n int) string {
	if len(l) <= n {
		return l
	}
	head, tail := n/2, len(l)-n/2
	for head > 0 && !utf8.RuneStart(l[head]) {
		head--
	}
	for tail < len(l) && !utf8.RuneStart(l[tail]) {
		tail++
	}
	return l[:head] + fmt.Sprintf(" … (%d of %d bytes cut) … ", tail-head, len(l)) + l[tail:]
}

// withoutTrace drops what testify's failure messages say of the suite's
// own source, which tells a plugin's author nothing: the "Error Trace"
// entry (paths in this repository, one per line) and the "Test" entry
// (the rule's name, printed already).
func withoutTrace(lines []string) []string {
	var out []string
	inTrace := false
	for _, l := range lines {
		field := strings.TrimLeft(l, " \t")
		switch {
		case strings.HasPrefix(field, "Error Trace:"):
			inTrace = true
			continue
		case inTrace && !strings.Contains(field, ":\t") && strings.Contains(field, ".go:"):
			continue // a further frame of the trace
		case strings.HasPrefix(field, "Test:"):
			inTrace = false
			continue
		}
		inTrace = false
		out = append(out, l)
	}
	return out
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return cutLines(lines)
}

func (rep *suiteReport) print(w io.Writer, verbose bool) {
	fmt.Fprintf(w, "plugin %s, advertising [%s]\n", rep.Plugin, rep.Features)
	if !slices.Contains(strings.Split(rep.Features, ","), abi.FeatureBatch.String()) {
		fmt.Fprintln(w, "note: without batch the host serves no bulk call (ErrUnsupported; the daemon's batch-* endpoints answer 501)")
	}
	for _, r := range rep.Rules {
		if r.Result == "pass" && !verbose {
			continue
		}
		fmt.Fprintf(w, "%-4s %s\n", strings.ToUpper(r.Result), r.Name)
		for _, l := range r.Output {
			fmt.Fprintf(w, "       %s\n", l)
		}
	}
	verdict := "ok"
	if rep.Failed > 0 {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "%s: %d rules passed, %d failed, %d skipped\n", verdict, rep.Passed, rep.Failed, rep.Skipped)
}
