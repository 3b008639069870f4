package config

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
)

// plugin resolves the plugin attribute of rb into cfg.Plugin and returns
// the module, checked against the sha256 pin; nil after an error.
func (c *checker) plugin(rb *rawBackend, cfg *host.Config) []byte {
	if !c.require(rb.Plugin, "plugin", rb.DefRange) {
		return nil
	}
	p, ok := c.str(rb.Plugin, "plugin")
	if !ok {
		return nil
	}
	rng := rb.Plugin.Range()
	var wasm []byte
	if name, builtin := strings.CutPrefix(p, host.BuiltinPrefix); builtin {
		cfg.Plugin = p
		var err error
		if wasm, err = host.BuiltinWASM(name); err != nil {
			c.errorf(rng, "Unknown built-in plugin", "This host has no built-in plugin %q.", name)
		}
	} else {
		if p == "" {
			c.errorf(rng, "Invalid plugin", `plugin is "builtin:NAME" or the path of a .wasm file.`)
			return nil
		}
		cfg.Plugin = c.path(p)
		c.read(cfg.Plugin)
		var err error
		if wasm, err = readRegular(cfg.Plugin, maxPluginSize); err != nil {
			c.errorf(rng, "Unreadable plugin", "%v.", err)
		}
		// The bytes checked here (pin, capabilities, digest) are the bytes
		// host.Open loads: the file is not read a second time, when it
		// may have been replaced.
		cfg.WASM = wasm
	}
	pin, ok := c.str(rb.SHA256, "sha256")
	if !ok {
		return wasm
	}
	if _, err := hex.DecodeString(pin); err != nil || len(pin) != 2*sha256.Size {
		c.errorf(rb.SHA256.Range(), `Invalid value for "sha256"`, "sha256 is the 64 hexadecimal digits of the plugin module's SHA-256.")
		return nil
	}
	cfg.SHA256 = strings.ToLower(pin)
	if wasm == nil {
		return nil
	}
	if sum := sha256.Sum256(wasm); hex.EncodeToString(sum[:]) != cfg.SHA256 {
		c.errorf(rb.SHA256.Range(), "Plugin does not match its pin", "%s has sha256 %x; the configuration pins %s.", p, sum, cfg.SHA256)
		return nil
	}
	return wasm
}

// path resolves a path of the file relative to its directory.
func (c *checker) path(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.dir, p)
}

// The largest plugin module and secret file read; nothing real comes
// close, and a path to the wrong file is refused before it fills memory.
const (
	maxPluginSize = 256 << 20
	maxSecretFile = 64 << 10
)

// readRegular reads the regular file at path, refusing one longer than limit
// bytes. Devices and pipes are refused, as reading one may block or never
// end.
func readRegular(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is longer than %d bytes", path, limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The size may have changed since Stat, and /proc files report none.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is longer than %d bytes", path, limit)
	}
	return b, err
}

// secretSource is one attribute a secret may come from.
type secretSource struct {
	name string
	expr hcl.Expression
}

// secret resolves a secret given by at most one of its sources: inline,
// the name of an environment variable, the path of a file. rng is the
// range of the source used, nil when none is set; resolved is false when
// the secret was not read (Offline, from the environment or a file); ok
// is false after an error.
func (c *checker) secret(inline, env, file secretSource) (value string, rng *hcl.Range, resolved, ok bool) {
	var given []secretSource
	for _, s := range []secretSource{inline, env, file} {
		if s.expr == nil {
			continue
		}
		if _, set, _ := c.peek(s.expr); set {
			given = append(given, s)
		}
	}
	if len(given) == 0 {
		return "", nil, true, true
	}
	for _, s := range given[1:] {
		c.errorf(s.expr.Range(), "Conflicting secret sources", "%s and %s are both set; set only one of %s, %s and %s.",
			given[0].name, s.name, inline.name, env.name, file.name)
	}
	s := given[0]
	r := s.expr.Range()
	v, ok := c.str(s.expr, s.name)
	if !ok || len(given) > 1 {
		return "", &r, false, false
	}
	switch s.name {
	case env.name:
		if v == "" {
			c.errorf(r, "Invalid environment variable name", "%s names no variable.", s.name)
			return "", &r, false, false
		}
		if c.offline {
			return "", &r, false, true
		}
		value = os.Getenv(v)
		if value == "" {
			c.errorf(r, "Unset secret", "The environment variable %s is unset or empty.", v)
			return "", &r, false, false
		}
	case file.name:
		if v == "" {
			c.errorf(r, "Invalid secret file name", "%s names no file.", s.name)
			return "", &r, false, false
		}
		c.read(c.path(v))
		if c.offline {
			return "", &r, false, true
		}
		b, err := readRegular(c.path(v), maxSecretFile)
		if err != nil {
			c.errorf(r, "Unreadable secret file", "%v.", err)
			return "", &r, false, false
		}
		value = strings.TrimRight(string(b), "\r\n")
		if value == "" {
			c.errorf(r, "Empty secret file", "%s is empty.", c.path(v))
			return "", &r, false, false
		}
	default:
		value = v
	}
	return value, &r, true, true
}

// checkRedis checks rc as redisbridge.Open does, without connecting or
// claiming the prefix (the bridges a reload replaces are still open).
func checkRedis(rc *redisbridge.Config) error {
	return redisbridge.Check(*rc)
}

// grantRange is where a backend's grants are, for grant's errors.
type grantRange struct {
	plugin hcl.Range           // the plugin attribute
	raw    *rawRedis           // the redis block; nil without one
	redis  *redisbridge.Config // as decoded; nil without a redis block
}

// grant checks that the backend grants every capability the plugin
// imports or declares, and that this host can load the plugin at all.
// redis is granted by a redis block, redis_scripts by its scripts.
func (c *checker) grant(info host.PluginInfo, caps []abi.Capability, g grantRange) {
	if info.Err != nil {
		c.errorf(g.plugin, "Plugin cannot be loaded", "%v.", info.Err)
		return
	}
	needed := slices.Clone(info.Imports)
	for _, cp := range info.Metadata.Capabilities {
		if !slices.Contains(needed, cp) {
			needed = append(needed, cp)
		}
	}
	for _, cp := range needed {
		switch {
		case slices.Contains(caps, cp),
			cp == abi.CapabilityRedis && g.redis != nil,
			cp == abi.CapabilityRedisScripts && g.redis != nil && g.redis.Scripts:
			continue
		}
		verb, hint, rng := "declares", "add it to capabilities", g.plugin
		if slices.Contains(info.Imports, cp) {
			verb = "imports"
		}
		switch cp {
		case abi.CapabilityRedis:
			hint = "add a redis block"
		case abi.CapabilityRedisScripts:
			hint = "set scripts = true in its redis block: the plugin runs Lua scripts on Redis, and would fail every request that does"
			if g.raw == nil {
				hint = "add a redis block with scripts = true: the plugin runs Lua scripts on Redis"
			} else if _, set, _ := c.peek(g.raw.Scripts); set {
				rng = g.raw.Scripts.Range()
			}
		}
		c.errorf(rng, "Capability not granted", "plugin %s capability %q, which this backend does not grant (%s)", verb, cp, hint)
	}
}

// defaultScripts grants scripts to a built-in plugin that declares it
// runs them (builtin:redis) when its redis block leaves scripts unset: it
// cannot serve a request without them. Any other plugin is granted
// scripts only by scripts = true, so that a module a configuration names
// by path runs no Lua on Redis unless its operator said so.
func (c *checker) defaultScripts(rb *rawBackend, cfg *host.Config, info host.PluginInfo) {
	if rb.Redis == nil || cfg.Redis == nil || !strings.HasPrefix(cfg.Plugin, host.BuiltinPrefix) ||
		!slices.Contains(info.Metadata.Capabilities, abi.CapabilityRedisScripts) {
		return
	}
	if _, set, _ := c.peek(rb.Redis.Scripts); !set {
		cfg.Redis.Scripts = true
	}
}

// inspections remembers host.Inspect's answer per module digest for the
// life of the process: it depends only on the module and this host, and
// compiling a module takes up to seconds.
var inspections struct {
	sync.Mutex
	m map[[sha256.Size]byte]*inspection
}

type inspection struct {
	once sync.Once
	info host.PluginInfo
}

func inspect(wasm []byte) host.PluginInfo {
	key := sha256.Sum256(wasm)
	inspections.Lock()
	if inspections.m == nil {
		inspections.m = make(map[[sha256.Size]byte]*inspection)
	}
	in := inspections.m[key]
	if in == nil {
		in = &inspection{}
		inspections.m[key] = in
	}
	inspections.Unlock()
	in.once.Do(func() { in.info = host.Inspect(context.Background(), wasm) })
	if in.info.Err != nil && !errors.Is(in.info.Err, host.ErrIncompatible) {
		// Not the module's fault (the compilation cache, say): ask again
		// next time.
		inspections.Lock()
		if inspections.m[key] == in {
			delete(inspections.m, key)
		}
		inspections.Unlock()
	}
	return in.info
}

// optionChecks remembers host.CheckOptions's verdicts per module and
// options, as inspections does; it is bounded, since options vary more.
var optionChecks struct {
	sync.Mutex
	m map[[sha256.Size]byte]error
}

func checkOptions(wasm []byte, options map[string]string) error {
	h := sha256.New()
	h.Write(wasm)
	for _, k := range slices.Sorted(maps.Keys(options)) {
		fmt.Fprintf(h, "\x00%q=%q", k, options[k])
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	optionChecks.Lock()
	err, ok := optionChecks.m[key]
	optionChecks.Unlock()
	if ok {
		return err
	}
	err = host.CheckOptions(context.Background(), wasm, options)
	optionChecks.Lock()
	if optionChecks.m == nil || len(optionChecks.m) >= 256 {
		optionChecks.m = make(map[[sha256.Size]byte]error)
	}
	optionChecks.m[key] = err
	optionChecks.Unlock()
	return err
}

// digestKey keys Backend.Digest, so that a digest covering a password
// cannot be used to guess it.
var digestKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}()

// digest returns Backend.Digest for cfg and its plugin module.
func digest(cfg *host.Config, wasm []byte) string {
	var caps []string
	if cfg.Capabilities != nil {
		caps = make([]string, 0, len(cfg.Capabilities))
		for _, cp := range cfg.Capabilities {
			caps = append(caps, string(cp))
		}
		slices.Sort(caps) // the order of a grant means nothing
	}
	module := sha256.Sum256(wasm)
	// JSON is canonical enough here: fields in declaration order, map keys
	// sorted.
	b, err := json.Marshal(struct {
		Name, Plugin string
		Module       []byte
		Options      map[string]string
		Capabilities []string
		Instances    int
		SHA256       string
		Trusted      bool
		Limits       host.Limits
		Redis        *redisbridge.Config
		Events       events.Options
		NoEvents     bool
		Cache        host.CacheOptions
		DataDir      string
	}{cfg.Name, cfg.Plugin, module[:], cfg.Options, caps, cfg.Instances, cfg.SHA256, cfg.Trusted, cfg.Limits, cfg.Redis,
		cfg.Events, cfg.DisableEvents, cfg.Cache, cfg.DataDir})
	if err != nil {
		panic("config: digest: " + err.Error()) // plain data: cannot fail
	}
	m := hmac.New(sha256.New, digestKey)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}
