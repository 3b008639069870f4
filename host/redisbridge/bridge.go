// Package redisbridge is the host side of the redis capability
// (abi.CapabilityRedis): it runs a plugin's Redis commands, pipelines,
// transactions and Lua scripts on the backend's go-redis UniversalClient
// (single node, Sentinel or Cluster), confined to the backend's key
// namespace and command allowlist, and encodes the replies for the ABI.
//
// The walls, in the order a request meets them:
//
//  1. The command table (commands.go): a command not in it, or not
//     allowed for this backend, is refused before anything is sent
//     (StatusInvalid, naming the command). So are arguments that do not
//     fit the command's arity or key layout.
//  2. Key prefixing: every key argument, at the positions the table gives,
//     and every KEYS entry of a script, is prefixed with Config.KeyPrefix,
//     so a plugin sees a keyspace of its own.
//  3. When scripts are granted, a Redis ACL user per backend (acl.go),
//     limited to ~KeyPrefix* and data commands, so that even redis.call
//     in a script, which may build key names from ARGV, cannot reach a key
//     outside the namespace (Redis answers NOPERM). The host's own keys
//     (Key) are outside every namespace.
//  4. Cost bounds (bounds.go): counts, ranges and allocating offsets are
//     bounded, a request holds at most Config.MaxCommands commands, and
//     replies are read through a budget of Config.MaxReplyBytes (do.go),
//     so neither Redis's time nor the host's memory follows a plugin's
//     whim. A script call that overruns its deadline has its script
//     killed (kill.go).
//  5. One Redis, disjoint prefixes: Open refuses a prefix that overlaps
//     one of a bridge open in this process on the same Redis (registry.go).
//
// Replies are passed on as Redis gives them (see reply.go for the kinds);
// the bridge rewrites none, so the few that name keys (XREAD,
// XREADGROUP, LMPOP, ZMPOP) name them with the prefix.
//
// Mechanism only: the bridge never retries a command that may have run
// (Config.MaxRetries is 0 by default), never blocks (no blocking command
// is in the table), and answers as soon as go-redis gives up, within the
// caller's deadline: UNAVAILABLE when none of the request's writes ran,
// UNKNOWN when one was sent, or may have been, and its reply was lost
// (outcome.go). What to do then is the plugin's policy.
package redisbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/storage-host/storage-host/abi"
)

// Config is the connection and the confinement of one backend's bridge.
// The zero values of the durations and sizes mean their defaults.
type Config struct {
	// URL is a redis:// or rediss:// URL (go-redis ParseURL): address,
	// user, password, database and the query options go-redis knows
	// (dial_timeout, pool_size, ...). With addr= query parameters it names
	// the seed nodes of a cluster (ParseClusterURL). Fields set below win
	// over the URL's. Exclusive with Addrs.
	URL string

	// Addrs are host:port addresses. One: a single node; several: the seed
	// nodes of a Redis Cluster; with MasterName: the Sentinels.
	Addrs []string

	// Cluster makes a single address the seed of a Redis Cluster (a
	// cluster's configuration endpoint, say).
	// default: false
	Cluster bool

	// MasterName is the Sentinel master name; set, Addrs are Sentinels.
	MasterName string

	// Username and Password authenticate the connections (ACL user or
	// requirepass). With Scripts they must be allowed to run ACL SETUSER.
	Username, Password string

	// DB is the database of a single node or Sentinel master; a cluster
	// has only database 0.
	// default: 0
	DB int

	// TLS makes the connections use TLS 1.2 or later (rediss:// does too).
	// default: false
	TLS bool

	// PoolSize is the most connections per node.
	// default: 10 per CPU (go-redis)
	PoolSize int

	// MinIdleConns is the fewest idle connections kept per node.
	// default: 0
	MinIdleConns int

	// DialTimeout bounds connecting to a node, so a dead Redis answers
	// UNAVAILABLE quickly.
	// default: 1s
	DialTimeout time.Duration

	// ReadTimeout bounds waiting for a reply.
	// default: 2s
	ReadTimeout time.Duration

	// WriteTimeout bounds sending a request.
	// default: 2s
	WriteTimeout time.Duration

	// PoolTimeout bounds waiting for a free connection when all PoolSize
	// are busy.
	// default: 1s
	PoolTimeout time.Duration

	// MaxRetries is how often a command that failed on the network is
	// sent again. Retrying a command that may have run can apply it twice
	// (INCR, RPUSH), so none is the default: the plugin sees UNAVAILABLE
	// and decides.
	// default: 0 (no retries)
	MaxRetries int

	// KeyPrefix is required: every key a plugin names is prefixed with it.
	// Printable ASCII without spaces, braces (the plugin's {hash tags} must
	// decide the cluster slot) or glob characters (* ? [ ] \: it is also
	// the ACL key pattern).
	KeyPrefix string

	// AllowCommands adds commands to the default allowlist (data commands
	// on strings, keys' TTLs, hashes, sets, sorted sets, lists and
	// streams, non-blocking; PING; TIME). Each must be in the bridge's
	// command table; any case.
	AllowCommands []string

	// Scripts grants RedisScript mode (Lua through EVALSHA/EVAL). It needs
	// a configured user allowed to run ACL SETUSER: Open creates a Redis
	// user confined to KeyPrefix for the bridge's connections. A script
	// call that overruns its deadline has its script killed (SCRIPT KILL).
	// builtin:redis needs it (its logic is one Lua library), and Open
	// refuses it without. The daemon's configuration sets it for
	// builtin:redis; in Go, set it.
	// default: false
	Scripts bool

	// MaxCommands bounds the commands of a pipeline or transaction, and
	// the calls of a script request; past it the request is refused
	// (StatusLimit) and nothing is sent.
	// default: 10 000
	MaxCommands int

	// MaxReplyBytes bounds the raw replies of one request, read as they
	// arrive: past it the bridge stops reading, drops the connection and
	// answers StatusLimit. host.Open sets it, and lowers a larger one, to
	// the backend's reply bound: Limits.MaxResponseBytes, at most an
	// eighth of an instance's memory.
	// default: 16 MiB
	MaxReplyBytes int64

	// Logger is told what the bridge's once-a-second reading of the
	// servers finds that an operator must hear of at once: a server set to
	// evict keys, and set back; keys it evicted (host.Open: the store's
	// logger, naming the backend).
	// default: none
	Logger hclog.Logger

	// Owner names who opens the bridge (host.Open: the backend's name, or
	// its plugin when unnamed).
	// Two bridges open at once on one Redis (same addresses and database)
	// must have key prefixes that do not overlap (neither starts with the
	// other), except equal prefixes of one non-empty Owner: a backend
	// being replaced by a new generation of itself.
	Owner string
}

// Defaults of Config's zero fields.
const (
	DefaultDialTimeout  = time.Second
	DefaultReadTimeout  = 2 * time.Second
	DefaultWriteTimeout = 2 * time.Second
	DefaultPoolTimeout  = time.Second

	DefaultMaxCommands   = 10_000
	DefaultMaxReplyBytes = 16 << 20
)

// maxPrefixLen bounds KeyPrefix.
const maxPrefixLen = 128

// Bridge runs one backend's Redis requests. It is safe for concurrent use.
type Bridge struct {
	client    redis.UniversalClient
	host      redis.UniversalClient // the host's own keys: client, or one with the configured rights
	isCluster bool
	prefix    string
	allowed   map[string]*command
	scripts   *scriptCache // nil unless scripts are granted
	pipes     *pipes       // shared pipelines; nil on a cluster
	user      *aclUser     // nil unless scripts are granted

	maxCommands int
	maxReply    int64
	log         hclog.Logger // Config.Logger, or one that discards
	release     func()       // gives the prefix back to the registry
	// grows bounds, per second, the bytes the offsets of the backend's
	// commands may make Redis allocate (maxGrowthPerSecond).
	grows *rate.Limiter

	kills   killer
	closing chan struct{}

	masterName string                // of a Sentinel setup
	info       infoCache             // ServerInfo's last reading
	infoClient redis.UniversalClient // ServerInfo's: one connection a node
	watched    chan struct{}         // closed when watchEviction has returned
	// evicting is why the last reading found a master set to evict keys
	// (evicts); nil when none was. Do refuses writes meanwhile.
	evicting atomic.Pointer[string]
	// full is why the last reading found a master the backend writes to
	// past its maxmemory with noeviction (Redis refusing writes), or nil
	// (noteFull).
	full atomic.Pointer[string]
	// scriptsFull is why the last reading found a master's script cache
	// past scriptCacheBytes; nil when none was. A script Redis does not
	// hold already is refused meanwhile (do.go, scriptCache).
	scriptsFull      atomic.Pointer[string]
	scriptCacheBytes atomic.Int64 // scriptCacheBytes; a test sets it lower
}

// Open checks cfg and creates the bridge's client. It does not wait for
// Redis, so a backend can start while Redis is down. With Scripts it
// creates the backend's ACL user first; while Redis cannot be reached
// the user is created at the first command that fails to log in, and a
// Redis that refuses to create it (NOPERM) fails Open.
func Open(ctx context.Context, cfg Config) (*Bridge, error) {
	allowed, opts, err := cfg.check()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", abi.StatusInvalid, err)
	}
	release, err := claimPrefix(opts, cfg.KeyPrefix, cfg.Owner)
	if err != nil {
		return nil, err
	}
	b := &Bridge{prefix: cfg.KeyPrefix, allowed: allowed, release: release, closing: make(chan struct{}),
		maxCommands: cfg.MaxCommands, maxReply: cfg.MaxReplyBytes, grows: rate.NewLimiter(maxGrowthPerSecond, maxGrowth),
		log: cfg.Logger}
	if b.log == nil {
		b.log = hclog.NewNullLogger()
	}
	orDefault(&b.maxCommands, DefaultMaxCommands)
	orDefault(&b.maxReply, DefaultMaxReplyBytes)
	// The server's figures (ServerInfo: metrics, readiness, the eviction
	// watch) are read on a connection of their own, with the configured
	// rights, so that a reading never takes a connection from the
	// backend's pool, nor waits behind it.
	infoOpts := *opts
	infoOpts.PoolSize, infoOpts.MinIdleConns = 1, 0
	b.infoClient = redis.NewUniversalClient(&infoOpts)
	if cfg.Scripts {
		b.scripts = newScriptCache()
		b.scriptCacheBytes.Store(scriptCacheBytes)
		if b.user, err = createUser(ctx, opts, cfg.KeyPrefix, allowed); err != nil {
			_ = b.infoClient.Close()
			release()
			return nil, err
		}
		// The host's keys are outside the user's ~prefix* pattern: the
		// host reaches them with the configured rights.
		b.host = redis.NewUniversalClient(opts)
		opts.Username, opts.Password = b.user.name, b.user.password
		opts.CredentialsProvider, opts.CredentialsProviderContext = nil, nil
	}
	b.client = redis.NewUniversalClient(opts)
	if b.host == nil {
		b.host = b.client
	}
	if b.masterName = opts.MasterName; b.masterName != "" {
		b.client.AddHook(masterDials{&b.info})
		if b.host != b.client {
			b.host.AddHook(masterDials{&b.info})
		}
		b.infoClient.AddHook(masterDials{&b.info})
	}
	if _, ok := b.client.(*redis.ClusterClient); !ok {
		b.client.AddHook(trackSends{})
	}
	if b.user != nil {
		b.client.AddHook(relogin{b.user})
	}
	if cc, ok := b.client.(*redis.ClusterClient); ok {
		// Unavoidable branch: go-redis follows MOVED and ASK only for errors
		// it sees, and raw replies carry theirs as data; each node lifts a
		// top-level error reply into the command's error.
		b.isCluster = true
		cc.OnNewNode(func(node *redis.Client) {
			node.AddHook(trackSends{})
			node.AddHook(liftErrors{})
		})
	} else {
		b.pipes = newPipes(b.maxCommands, func(ctx context.Context, cmds []*rawCmd) { b.exec(ctx, cmds, false) })
	}
	b.watched = make(chan struct{})
	go b.watchEviction()
	return b, nil
}

// Check checks cfg as Open does, without creating a client or claiming
// the prefix: for validating a configuration while the bridges it would
// replace are open.
func Check(cfg Config) error {
	_, _, err := cfg.check()
	return err
}

// check checks cfg and returns the backend's allowlist and the go-redis
// options.
func (cfg *Config) check() (map[string]*command, *redis.UniversalOptions, error) {
	if err := checkPrefix(cfg.KeyPrefix); err != nil {
		return nil, nil, err
	}
	if cfg.MaxCommands < 0 || cfg.MaxReplyBytes < 0 || cfg.DB < 0 || cfg.PoolSize < 0 || cfg.MinIdleConns < 0 || cfg.MaxRetries < 0 ||
		cfg.DialTimeout < 0 || cfg.ReadTimeout < 0 || cfg.WriteTimeout < 0 || cfg.PoolTimeout < 0 {
		return nil, nil, errors.New("redisbridge: no count, size or timeout may be negative (0 takes the default)")
	}
	allowed := make(map[string]*command, len(commandTable))
	for i := range commandTable {
		if c := &commandTable[i]; c.data {
			allowed[c.name] = c
		}
	}
	for _, name := range cfg.AllowCommands {
		c := lookup(commands, []byte(name))
		if c == nil {
			return nil, nil, fmt.Errorf("redisbridge: AllowCommands: %q is not in the bridge's command table", name)
		}
		allowed[c.name] = c
	}
	opts, err := cfg.options()
	if err != nil {
		return nil, nil, err
	}
	return allowed, opts, nil
}

// checkPrefix enforces the rules of Config.KeyPrefix.
func checkPrefix(p string) error {
	if p == "" {
		return errors.New("redisbridge: KeyPrefix is required")
	}
	if len(p) > maxPrefixLen {
		return fmt.Errorf("redisbridge: KeyPrefix is longer than %d bytes", maxPrefixLen)
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c <= ' ' || c >= 0x7f:
			return fmt.Errorf("redisbridge: KeyPrefix %q: only printable ASCII without spaces", p)
		case c == '{' || c == '}':
			return fmt.Errorf("redisbridge: KeyPrefix %q: no braces, the plugin's hash tags must choose the slot", p)
		case c == '*' || c == '?' || c == '[' || c == ']' || c == '\\':
			return fmt.Errorf("redisbridge: KeyPrefix %q: no glob characters, it is the ACL key pattern", p)
		}
	}
	if strings.HasPrefix(HostKeyPrefix, p) || strings.HasPrefix(p, HostKeyPrefix) {
		// Such a prefix's ~prefix* pattern would cover the host's keys.
		return fmt.Errorf("redisbridge: KeyPrefix %q: keys starting with %q are the host's", p, HostKeyPrefix)
	}
	return nil
}

// Servers returns the addresses cfg reaches, from Addrs or the URL (its
// host, with no credentials), for logs; nil if the URL does not parse.
func (cfg *Config) Servers() []string {
	if cfg.URL == "" {
		return cfg.Addrs
	}
	o := &redis.UniversalOptions{}
	if fromURL(o, cfg.URL) != nil {
		return nil
	}
	return o.Addrs
}

// options translates cfg into go-redis's UniversalOptions.
func (cfg *Config) options() (*redis.UniversalOptions, error) {
	o := &redis.UniversalOptions{}
	if cfg.URL != "" {
		if len(cfg.Addrs) > 0 {
			return nil, errors.New("redisbridge: URL and Addrs are exclusive")
		}
		if err := fromURL(o, cfg.URL); err != nil {
			return nil, err
		}
	} else {
		if len(cfg.Addrs) == 0 {
			return nil, errors.New("redisbridge: URL or Addrs is required")
		}
		o.Addrs = append([]string(nil), cfg.Addrs...)
	}
	o.MasterName = cfg.MasterName
	if cfg.Cluster {
		o.IsClusterMode = true
	}
	override(&o.Username, cfg.Username)
	override(&o.Password, cfg.Password)
	override(&o.DB, cfg.DB)
	override(&o.PoolSize, cfg.PoolSize)
	override(&o.MinIdleConns, cfg.MinIdleConns)
	override(&o.DialTimeout, cfg.DialTimeout)
	override(&o.ReadTimeout, cfg.ReadTimeout)
	override(&o.WriteTimeout, cfg.WriteTimeout)
	override(&o.PoolTimeout, cfg.PoolTimeout)
	override(&o.MaxRetries, cfg.MaxRetries)
	if cfg.TLS && o.TLSConfig == nil {
		// No ServerName: crypto/tls takes it from each node's address.
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if o.DB != 0 && (len(o.Addrs) > 1 || o.IsClusterMode) && o.MasterName == "" {
		return nil, errors.New("redisbridge: a cluster has only database 0")
	}

	orDefault(&o.DialTimeout, DefaultDialTimeout)
	orDefault(&o.ReadTimeout, DefaultReadTimeout)
	orDefault(&o.WriteTimeout, DefaultWriteTimeout)
	orDefault(&o.PoolTimeout, DefaultPoolTimeout)
	if o.MaxRetries <= 0 {
		o.MaxRetries = -1 // go-redis: none
	}
	o.Protocol = 2           // see reply.go
	o.DisableIdentity = true // no CLIENT SETINFO: one round trip less, and the ACL user may not run it
	o.ContextTimeoutEnabled = true
	o.DialerRetries = 1 // one dial per attempt: refused means unavailable now
	return o, nil
}

// override sets *dst to v unless v is zero.
func override[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// orDefault sets *dst to v when *dst is zero.
func orDefault[T comparable](dst *T, v T) {
	var zero T
	if *dst == zero {
		*dst = v
	}
}

// fromURL fills o from a redis:// or rediss:// URL.
func fromURL(o *redis.UniversalOptions, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("redisbridge: URL: %w", err)
	}
	if u.Query().Has("addr") {
		c, err := redis.ParseClusterURL(raw)
		if err != nil {
			return fmt.Errorf("redisbridge: URL: %w", err)
		}
		o.Addrs, o.Username, o.Password, o.TLSConfig = c.Addrs, c.Username, c.Password, c.TLSConfig
		o.PoolSize, o.MinIdleConns, o.MaxRetries = c.PoolSize, c.MinIdleConns, c.MaxRetries
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = c.DialTimeout, c.ReadTimeout, c.WriteTimeout, c.PoolTimeout
		o.IsClusterMode = true
		return nil
	}
	s, err := redis.ParseURL(raw)
	if err != nil {
		return fmt.Errorf("redisbridge: URL: %w", err)
	}
	if s.Network != "tcp" {
		return fmt.Errorf("redisbridge: URL: %s sockets are not supported", s.Network)
	}
	o.Addrs, o.Username, o.Password, o.DB, o.TLSConfig = []string{s.Addr}, s.Username, s.Password, s.DB, s.TLSConfig
	o.PoolSize, o.MinIdleConns, o.MaxRetries = s.PoolSize, s.MinIdleConns, s.MaxRetries
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = s.DialTimeout, s.ReadTimeout, s.WriteTimeout, s.PoolTimeout
	return nil
}

// PoolStats returns the connection pool's counters (all nodes summed on a
// cluster).
func (b *Bridge) PoolStats() *redis.PoolStats { return b.client.PoolStats() }

// Close closes the connections and, with scripts, removes the bridge's
// password from its ACL user (best effort: Redis may be down).
func (b *Bridge) Close() error {
	select {
	case <-b.closing:
		return nil
	default:
		close(b.closing)
	}
	// The password's removal and the round of kills under way go at once:
	// with Redis not answering, each waits its own bound (2 s).
	var userErr error
	removed := make(chan struct{})
	go func() {
		defer close(removed)
		if b.user != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			userErr = b.user.removePassword(ctx)
		}
	}()
	b.kills.wait(b.user)
	<-removed
	<-b.watched // its reading ends with closing
	err := b.client.Close()
	if b.host != b.client {
		err = errors.Join(err, b.host.Close())
	}
	err = errors.Join(err, b.infoClient.Close())
	b.release()
	if b.user != nil {
		err = errors.Join(err, userErr, b.user.close())
	}
	return err
}

// liftErrors is the cluster nodes' hook: after a command, an error reply
// in its raw value becomes its error, so ClusterClient follows MOVED and
// ASK, retries TRYAGAIN and CLUSTERDOWN, and reloads its slot map.
type liftErrors struct{}

func (liftErrors) DialHook(next redis.DialHook) redis.DialHook { return next }

func (liftErrors) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil {
			if rc, ok := cmd.(*rawCmd); ok {
				if msg, ok := topError(rc.buf); ok {
					err := replyError(string(msg))
					rc.reset()
					rc.SetErr(err)
					return err
				}
			}
		}
		return err
	}
}

func (liftErrors) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

var _ redis.Hook = liftErrors{}

// replyError is a Redis error reply carried as a Go error; go-redis knows
// it as one by its RedisError method.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

var _ redis.Error = replyError("")

// isReply reports whether err is an error reply of Redis to a command (or
// one go-redis made up in its place, like CROSSSLOT), not a failure to
// talk to Redis. go-redis unwraps the errors of a connection's set-up, so
// those are told by their text: no command the bridge sends can be
// answered WRONGPASS or NOAUTH.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !hasPrefix(err.Error(), setupErrors)
}

// setupErrors are the error replies of logging in.
var setupErrors = []string{"WRONGPASS ", "NOAUTH ", "ERR max number of clients reached"}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// unavailablePrefixes are error replies that mean Redis cannot serve now:
// the request as a whole is UNAVAILABLE.
var unavailablePrefixes = []string{"CLUSTERDOWN ", "LOADING ", "MASTERDOWN ", "TRYAGAIN "}

func unavailableReply(msg string) bool { return hasPrefix(msg, unavailablePrefixes) }

// ErrNotGranted is the error Do and Serve return for a request they
// refused for lack of a grant of the backend's configuration: a script
// without Config.Scripts, a command outside Config.AllowCommands. The
// plugin is answered StatusInvalid, as for any refused request; the error
// tells the host that the configuration is at fault, not the request the
// plugin was serving.
var ErrNotGranted = errors.New("redisbridge: not granted to this backend")

// notGranted appends the StatusInvalid response of a request refused for
// lack of a grant and returns its error, wrapping ErrNotGranted.
func notGranted(e *abi.Encoder, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	invalid(e, "%s", msg)
	return fmt.Errorf("%w: %s", ErrNotGranted, msg)
}

// invalid appends a StatusInvalid response.
func invalid(e *abi.Encoder, format string, args ...any) {
	abi.AppendError(e, abi.StatusInvalid, "redisbridge: "+fmt.Sprintf(format, args...))
}

// unavailable appends a StatusUnavailable response for err.
func unavailable(e *abi.Encoder, err error) {
	msg := err.Error()
	switch {
	case errors.Is(err, redis.ErrClosed):
		msg = "bridge closed"
	case errors.Is(err, context.Canceled):
		msg = "call cancelled: " + msg
	case errors.Is(err, context.DeadlineExceeded):
		msg = "call deadline exceeded: " + msg
	}
	abi.AppendError(e, abi.StatusUnavailable, "redisbridge: redis unavailable: "+strings.TrimPrefix(msg, "redis: "))
}

// unknown appends a StatusUnknown response for err: a request holding a
// write failed after it was, or may have been, sent.
func unknown(e *abi.Encoder, err error) {
	msg := strings.TrimPrefix(err.Error(), "redis: ")
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		msg = "no reply in time: " + msg
	}
	abi.AppendError(e, abi.StatusUnknown, "redisbridge: outcome unknown, the request may have run: "+msg)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// HostKeyPrefix starts the keys the host keeps for itself, outside every
// backend's namespace: a backend's are HostKeyPrefix + "{" + its key
// prefix + "}:" + name (Key), which no ~prefix* ACL pattern covers, as a
// prefix never contains "{" nor is a prefix of HostKeyPrefix. Plugins
// cannot name keys starting with it either (the host kept its event stream
// at prefix + HostKeyPrefix + "events" before): a command or script call
// that does is refused.
const HostKeyPrefix = "__host__:"

// hostKeyPrefix is HostKeyPrefix for the checks of every key argument.
var hostKeyPrefix = []byte(HostKeyPrefix)

// Client returns the go-redis client for the host's own use of the
// backend's Redis (its event stream), with the configured rights: the
// confined scripts user cannot reach the host's keys. Keys it names are
// Key's results.
func (b *Bridge) Client() redis.UniversalClient { return b.host }

// Key returns the full Redis key of the host's own key name for this
// backend: HostKeyPrefix, the key prefix in braces, ":", then name, as in
// "__host__:{app:}:events". It is outside the backend's namespace, so
// neither the plugin's commands nor its scripts can reach it.
func (b *Bridge) Key(name string) string { return HostKeyPrefix + "{" + b.prefix + "}:" + name }

// relogin makes the scripts user again when a command fails to log in
// (Redis restarted without it), for every user of the client: the host's
// own commands (Client) heal as the plugin's do (Do retries at once;
// others on their next attempt).
type relogin struct{ u *aclUser }

func (relogin) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h relogin) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && authFailure(err) {
			_ = h.u.recreate(ctx)
		}
		return err
	}
}

func (h relogin) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil && authFailure(err) {
			_ = h.u.recreate(ctx)
		}
		return err
	}
}
