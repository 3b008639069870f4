package config

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/redisbridge"
)

// plugin resolves the plugin attribute of rb into cfg.Plugin ("builtin:NAME"
// or an absolute path) and its sha256 pin into cfg.SHA256. It reads
// nothing: Check reads the module (module) and compares it with the pin.
func (c *checker) plugin(rb *rawBackend, cfg *host.Config) {
	if !c.require(rb.Plugin, "plugin", rb.DefRange) {
		return
	}
	p, ok := c.str(rb.Plugin, "plugin")
	if !ok {
		return
	}
	switch {
	case strings.HasPrefix(p, host.BuiltinPrefix):
		cfg.Plugin = p
	case p == "":
		c.errorf(rb.Plugin.Range(), "Invalid plugin", `plugin is "builtin:NAME" or the path of a .wasm file.`)
		return
	default:
		cfg.Plugin = c.path(p)
		c.read(cfg.Plugin)
	}
	pin, ok := c.str(rb.SHA256, "sha256")
	if !ok {
		return
	}
	if _, err := hex.DecodeString(pin); err != nil || len(pin) != 2*sha256.Size {
		c.errorf(rb.SHA256.Range(), `Invalid value for "sha256"`, "sha256 is the 64 hexadecimal digits of the plugin module's SHA-256.")
		return
	}
	cfg.SHA256 = strings.ToLower(pin)
}

// module returns the plugin module of the backend rb, cfg as Parse left
// it: a built-in plugin's, or the file's, which it keeps in cfg.WASM
// so that the bytes checked here (pin, capabilities, digest) are the
// bytes host.Open loads, and not a file replaced since. nil after an
// error.
func (c *checker) module(rb *rawBackend, cfg *host.Config) []byte {
	rng := rb.Plugin.Range()
	var wasm []byte
	if name, builtin := strings.CutPrefix(cfg.Plugin, host.BuiltinPrefix); builtin {
		var err error
		if wasm, err = host.BuiltinWASM(name); err != nil {
			c.errorf(rng, "Unknown built-in plugin", "This host has no built-in plugin %q.", name)
			return nil
		}
	} else {
		var err error
		if wasm, err = ReadPlugin(cfg.Plugin); err != nil {
			c.errorf(rng, "Unreadable plugin", "%v.", err)
			return nil
		}
		cfg.WASM = wasm
	}
	if cfg.SHA256 == "" {
		return wasm
	}
	if sum := sha256.Sum256(wasm); hex.EncodeToString(sum[:]) != cfg.SHA256 {
		c.errorf(rb.SHA256.Range(), "Plugin does not match its pin", "%s has sha256 %x; the configuration pins %s.", cfg.Plugin, sum, cfg.SHA256)
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
	MaxPluginSize = 256 << 20
	maxSecretFile = 64 << 10
)

// ReadPlugin reads the plugin module at path as a configuration's plugin
// is read: a regular file of at most MaxPluginSize bytes.
func ReadPlugin(path string) ([]byte, error) { return readRegular(path, MaxPluginSize) }

// OpenRegular opens the file at path for reading, following symbolic
// links, and returns it with its information if it is a regular file.
// Devices, pipes, sockets and directories are refused without being read:
// the open does not wait (for a pipe's writer), and what is refused is what
// the opened file is, not what the path named a moment before.
func OpenRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// readRegular reads the regular file at path, refusing one longer than limit
// bytes. Devices and pipes are refused, as reading one may block or never
// end.
func readRegular(path string, limit int64) ([]byte, error) {
	f, fi, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is longer than %d bytes", path, limit)
	}
	// The size may have changed since it was read, and /proc files report none.
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

// Where a secret is: in the file, in an environment variable, in a file
// of its own.
const (
	secretInline = iota
	secretEnv
	secretFile
)

// secretRef is where a secret is.
type secretRef struct {
	source int        // secretInline, secretEnv or secretFile
	value  string     // the secret (inline), the variable's name, the file's absolute path
	rng    *hcl.Range // of the attribute naming it; nil when no source is set
}

// password returns the sources of the Redis password.
func (r *rawRedis) password() (inline, env, file secretSource) {
	return secretSource{"password", r.Password}, secretSource{"password_env", r.PasswordEnv}, secretSource{"password_file", r.PasswordFile}
}

// url returns the sources of the PostgreSQL URL, which may hold a
// password.
func (r *rawPostgres) url() (inline, env, file secretSource) {
	return secretSource{"url", r.URL}, secretSource{"url_env", r.URLEnv}, secretSource{"url_file", r.URLFile}
}

// secret returns the sources of a token's secret.
func (r *rawToken) secret() (inline, env, file secretSource) {
	return secretSource{"secret", r.Secret}, secretSource{"secret_env", r.SecretEnv}, secretSource{"secret_file", r.SecretFile}
}

// secretRef returns where a secret given by at most one of its sources
// is: inline, the name of an environment variable, the path of a file.
// It reads neither (resolve does). ref.rng is nil when no source is set;
// ok is false after an error.
func (c *checker) secretRef(inline, env, file secretSource) (ref secretRef, ok bool) {
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
		return secretRef{}, true
	}
	for _, s := range given[1:] {
		c.errorf(s.expr.Range(), "Conflicting secret sources", "%s and %s are both set; set only one of %s, %s and %s.",
			given[0].name, s.name, inline.name, env.name, file.name)
	}
	s := given[0]
	r := s.expr.Range()
	ref.rng = &r
	v, ok := c.str(s.expr, s.name)
	if !ok || len(given) > 1 {
		return ref, false
	}
	switch s.name {
	case env.name:
		if v == "" {
			c.errorf(r, "Invalid environment variable name", "%s names no variable.", s.name)
			return ref, false
		}
		ref.source, ref.value = secretEnv, v
	case file.name:
		if v == "" {
			c.errorf(r, "Invalid secret file name", "%s names no file.", s.name)
			return ref, false
		}
		ref.source, ref.value = secretFile, c.path(v)
		c.read(ref.value)
	default:
		ref.source, ref.value = secretInline, v
	}
	return ref, true
}

// resolve reads the secret ref names: the variable's value, the file's
// content without its trailing newline. ok is false after an error.
func (c *checker) resolve(ref secretRef) (string, bool) {
	switch ref.source {
	case secretEnv:
		v := os.Getenv(ref.value)
		if v == "" {
			c.errorf(*ref.rng, "Unset secret", "The environment variable %s is unset or empty.", ref.value)
			return "", false
		}
		return v, true
	case secretFile:
		b, err := readRegular(ref.value, maxSecretFile)
		if err != nil {
			c.errorf(*ref.rng, "Unreadable secret file", "%v.", err)
			return "", false
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			c.errorf(*ref.rng, "Empty secret file", "%s is empty.", ref.value)
			return "", false
		}
		return v, true
	}
	return ref.value, true
}

// grantRange is where a backend's grants are, for grant's errors.
type grantRange struct {
	plugin   hcl.Range           // the plugin attribute
	raw      *rawRedis           // the redis block; nil without one
	redis    *redisbridge.Config // as decoded; nil without a redis block
	postgres bool                // the backend has a postgres block
}

// grants reports whether the backend grants cp: caps names it, or, for
// redis, a redis block, for redis_scripts its scripts, for postgres a
// postgres block.
func (g grantRange) grants(caps []abi.Capability, cp abi.Capability) bool {
	switch {
	case slices.Contains(caps, cp),
		cp == abi.CapabilityRedis && g.redis != nil,
		cp == abi.CapabilityPostgres && g.postgres,
		cp == abi.CapabilityRedisScripts && g.redis != nil && g.redis.Scripts:
		return true
	}
	return false
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
		if g.grants(caps, cp) {
			continue
		}
		verb, hint, rng := "declares", "add it to capabilities", g.plugin
		if slices.Contains(info.Imports, cp) {
			verb = "imports"
		}
		switch cp {
		case abi.CapabilityRedis:
			hint = "add a redis block"
		case abi.CapabilityPostgres:
			hint = "add a postgres block"
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
		Postgres     *host.PostgresConfig
		Events       events.Options
		NoEvents     bool
		Cache        host.CacheOptions
		DataDir      string
	}{cfg.Name, cfg.Plugin, module[:], cfg.Options, caps, cfg.Instances, cfg.SHA256, cfg.Trusted, cfg.Limits, cfg.Redis,
		cfg.Postgres, cfg.Events, cfg.DisableEvents, cfg.Cache, cfg.DataDir})
	if err != nil {
		panic("config: digest: " + err.Error()) // plain data: cannot fail
	}
	m := hmac.New(sha256.New, digestKey)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}
