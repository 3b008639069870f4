package redisbridge

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redistest"
)

func withScripts(c *Config) { c.Scripts = true }

func sc(ks []string, args ...string) abi.ScriptCall {
	return abi.ScriptCall{Keys: keys(ks...), Args: cmd(args...)}
}

func TestScriptsNotGranted(t *testing.T) {
	f := newFixture(t, nil, nil)
	_, err := script(t, f.b, "return 1", sc(nil))
	require.ErrorIs(t, err, abi.StatusInvalid)
	assert.Contains(t, err.Error(), "not granted")

	// Do tells its caller the refusal is the configuration's.
	var e abi.Encoder
	err = f.b.Do(context.Background(), &abi.RedisRequest{Mode: abi.RedisScript, Script: []byte("return 1"), Calls: []abi.ScriptCall{sc(nil)}}, &e)
	require.ErrorIs(t, err, ErrNotGranted)
	assert.Equal(t, byte(abi.StatusInvalid), e.Bytes()[0], "the plugin is answered INVALID")
	e.Reset()
	require.ErrorIs(t, f.b.Do(context.Background(), &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("GEOADD", "g", "0", "0", "m")}}, &e), ErrNotGranted,
		"a command outside AllowCommands")
	e.Reset()
	require.NoError(t, f.b.Do(context.Background(), &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("NOSUCHCOMMAND")}}, &e),
		"a command of no table is not a grant's")
	assert.Equal(t, byte(abi.StatusInvalid), e.Bytes()[0])
}

func TestScripts(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, withScripts)
	b := f.b

	const set = "return redis.call('SET', KEYS[1], ARGV[1])"
	rs, err := script(t, b, set, sc([]string{"k1"}, "a"), sc([]string{"{tag}k2"}, "b"), sc([]string{"k3"}, "c"))
	require.NoError(t, err)
	assert.Equal(t, []abi.Reply{status("OK"), status("OK"), status("OK")}, rs, "one reply per call")
	assert.Equal(t, "a", f.direct.Get(ctx, f.prefix+"k1").Val(), "KEYS are prefixed")
	assert.Equal(t, "b", f.direct.Get(ctx, f.prefix+"{tag}k2").Val())

	rs, err = script(t, b, "return {1, 'two', {3, false}, ''}", sc(nil))
	require.NoError(t, err)
	assert.Equal(t, []abi.Reply{array(integer(1), bulkR("two"), array(integer(3), nilReply), bulkR(""))}, rs)

	rs, err = script(t, b, "return redis.error_reply('MINE went wrong')", sc(nil))
	require.NoError(t, err)
	assert.Equal(t, abi.ReplyError, rs[0].Kind)
	assert.Equal(t, "MINE went wrong", string(rs[0].Str))

	rs, err = script(t, b, "return redis.status_reply('FINE')", sc(nil))
	require.NoError(t, err)
	assert.Equal(t, status("FINE"), rs[0])

	// Twenty nested tables: the ABI takes sixteen levels of arrays.
	rs, err = script(t, b, "local t = 1 for i = 1, 20 do t = {t} end return t", sc(nil))
	require.NoError(t, err)
	r := rs[0]
	for range maxDepth {
		require.Equal(t, abi.ReplyArray, r.Kind)
		r = r.Array[0]
	}
	assert.Equal(t, abi.ReplyError, r.Kind)
	assert.Contains(t, string(r.Str), "deeper than 16")
}

func TestScriptsFallBackToEVAL(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, withScripts)
	src := "return 'v" + f.prefix + "'" // a script no other test loaded
	sha := sha1hex(src)
	assert.False(t, f.direct.ScriptExists(ctx, sha).Val()[0])

	rs, err := script(t, f.b, src, sc(nil), sc(nil))
	require.NoError(t, err)
	assert.Equal(t, []abi.Reply{bulkR("v" + f.prefix), bulkR("v" + f.prefix)}, rs, "NOSCRIPT, then EVAL")
	assert.True(t, f.direct.ScriptExists(ctx, sha).Val()[0], "EVAL loaded it")

	rs, err = script(t, f.b, src, sc(nil))
	require.NoError(t, err)
	assert.Equal(t, bulkR("v"+f.prefix), rs[0], "EVALSHA")

	require.NoError(t, f.direct.ScriptFlush(ctx).Err())
	rs, err = script(t, f.b, src, sc(nil))
	require.NoError(t, err)
	assert.Equal(t, bulkR("v"+f.prefix), rs[0], "after SCRIPT FLUSH, EVAL again")
}

// The ACL user holds a script to the namespace, whatever key names it
// builds.
func TestScriptsCannotLeaveTheNamespace(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, withScripts)
	other := newFixture(t, nil, nil)
	one(t, other.b, "SET", "secret", "theirs")
	outside := f.prefix[:len(f.prefix)-1] + "x:absolute" // shares the prefix's text, not its namespace
	require.NoError(t, f.direct.Set(ctx, outside, "no", 0).Err())
	t.Cleanup(func() { f.direct.Del(ctx, outside) })

	escapes := map[string]struct {
		src  string
		args []string
	}{
		"GET by name":         {"return redis.call('GET', ARGV[1])", []string{other.prefix + "secret"}},
		"SET by name":         {"return redis.call('SET', ARGV[1], 'x')", []string{other.prefix + "secret"}},
		"DEL by name":         {"return redis.call('DEL', ARGV[1])", []string{outside}},
		"RENAME out":          {"redis.call('SET', KEYS[1], 'x') return redis.call('RENAME', KEYS[1], ARGV[1])", []string{"elsewhere"}},
		"FLUSHALL":            {"return redis.call('FLUSHALL')", nil},
		"FLUSHDB":             {"return redis.call('FLUSHDB')", nil},
		"KEYS":                {"return redis.call('KEYS', '*')", nil},
		"SCAN":                {"return redis.call('SCAN', '0')", nil},
		"RANDOMKEY":           {"return redis.call('RANDOMKEY')", nil},
		"DBSIZE":              {"return redis.call('DBSIZE')", nil},
		"CONFIG":              {"return redis.call('CONFIG', 'GET', '*')", nil},
		"SELECT":              {"return redis.call('SELECT', '1')", nil},
		"MOVE":                {"return redis.call('MOVE', KEYS[1], '1')", nil},
		"COPY":                {"return redis.call('COPY', KEYS[1], KEYS[1] .. 'c', 'DB', '1')", nil},
		"PUBLISH":             {"return redis.call('PUBLISH', 'c', 'm')", nil},
		"ACL":                 {"return redis.call('ACL', 'SETUSER', 'x', 'on')", nil},
		"SORT BY":             {"return redis.call('SORT', KEYS[1], 'BY', ARGV[1])", []string{"*"}},
		"INFO":                {"return redis.call('INFO')", nil},
		"SCRIPT FLUSH":        {"return redis.call('SCRIPT', 'FLUSH')", nil},
		"OBJECT other key":    {"return redis.call('OBJECT', 'ENCODING', ARGV[1])", []string{outside}},
		"EXISTS other key":    {"return redis.call('EXISTS', ARGV[1])", []string{outside}},
		"TOUCH via pcall too": {"local r = redis.pcall('TOUCH', ARGV[1]) if type(r) == 'table' and r.err then return redis.error_reply(r.err) end return r", []string{outside}},
	}
	for name, e := range escapes {
		rs, err := script(t, f.b, e.src, sc([]string{"mine"}, e.args...))
		require.NoError(t, err, name)
		require.Len(t, rs, 1)
		assert.Equal(t, abi.ReplyError, rs[0].Kind, "%s: %v", name, rs[0])
		assert.True(t, refusedByRedis(string(rs[0].Str)), "%s: %s", name, rs[0].Str)
	}
	assert.Equal(t, bulkR("theirs"), one(t, other.b, "GET", "secret"), "the other backend's key is intact")
	assert.Equal(t, "no", f.direct.Get(ctx, outside).Val())
}

// refusedByRedis reports whether msg is Redis refusing a script's call:
// the ACL (NOPERM; Redis 7.0 words it "can't run" or "can't access") or a
// command never allowed in scripts.
func refusedByRedis(msg string) bool {
	for _, s := range []string{"NOPERM", "can't run this command", "can't access at least one of the keys", "not allowed from script"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func TestScriptsUserIsConfined(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, withScripts)
	u, err := f.direct.Do(ctx, "acl", "getuser", userPrefix+f.prefix).Result()
	require.NoError(t, err)
	desc := strings.ReplaceAll(strings.Join(flatten(u), " "), "\r\n", " ")
	assert.Contains(t, desc, "~"+f.prefix+"*")
	assert.Contains(t, desc, "-@all")
	assert.NotContains(t, desc, "~*")
	// The bridge's connections log in as that user.
	one(t, f.b, "PING")
	clients, err := f.direct.ClientList(ctx).Result()
	require.NoError(t, err)
	assert.Contains(t, clients, " user="+userPrefix+f.prefix+" ")
}

func mustScript(t *testing.T, b *Bridge, src string) abi.Reply {
	rs, err := script(t, b, src, sc(nil))
	require.NoError(t, err)
	return rs[0]
}

func flatten(v any) []string {
	switch v := v.(type) {
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, flatten(e)...)
		}
		return out
	case map[any]any:
		var out []string
		for k, e := range v {
			out = append(out, flatten(k)...)
			out = append(out, flatten(e)...)
		}
		return out
	case string:
		return []string{v}
	}
	return nil
}

func TestScriptsNeedACLRights(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	direct := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	t.Cleanup(func() { _ = direct.Close() })
	var r [8]byte
	_, _ = rand.Read(r[:])
	name, pw := "sht-limited-"+hex.EncodeToString(r[:]), hex.EncodeToString(r[:])
	require.NoError(t, direct.Do(ctx, "acl", "setuser", name, "on", ">"+pw, "~*", "&*", "+@all", "-acl").Err())
	t.Cleanup(func() { direct.Do(ctx, "acl", "deluser", name) })

	cfg := Config{Addrs: []string{addr}, KeyPrefix: redistest.Prefix(t), Username: name, Password: pw, Scripts: true}
	_, err := Open(ctx, cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "scripts need a Redis user allowed to run ACL SETUSER")

	cfg.Scripts = false
	b := openBridge(t, cfg)
	assert.Equal(t, status("OK"), one(t, b, "SET", "k", "v"), "without scripts that user is enough")
}

// A bridge with scripts opens while Redis is down (a daemon restarting
// during an outage, a backend rebuilt by a reload); its user is made once
// Redis answers, at the first login that fails.
func TestScriptsOpenWhileRedisIsDown(t *testing.T) {
	s := redistest.NewServer(t)
	s.Stop()
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "sht:down:", Scripts: true, DialTimeout: 200 * time.Millisecond})
	_, err := script(t, b, "return 1", sc(nil))
	require.ErrorIs(t, err, abi.StatusUnavailable)
	s.Start()
	redistest.WaitFor(t, 5*time.Second, 20*time.Millisecond, func() bool {
		_, err := script(t, b, "return 1", sc(nil))
		return err == nil
	}, "the bridge makes its user and logs in once Redis is up")
	rs, err := script(t, b, "return redis.call('INCR', KEYS[1])", sc([]string{"n"}))
	require.NoError(t, err)
	assert.Equal(t, integer(1), rs[0])
	// The user is still confined to the prefix.
	rs, err = script(t, b, "return redis.call('GET', 'elsewhere')", sc(nil))
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, abi.ReplyError, rs[0].Kind, "%v", rs[0])
	assert.True(t, refusedByRedis(string(rs[0].Str)), "%s", rs[0].Str)
}

// Redis restarted without an ACL file forgets the user: the bridge makes
// it again on its next login failure.
func TestScriptsUserSurvivesARestart(t *testing.T) {
	s := redistest.NewServer(t)
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "sht:restart:", Scripts: true})
	rs, err := script(t, b, "return redis.call('INCR', KEYS[1])", sc([]string{"n"}))
	require.NoError(t, err)
	assert.Equal(t, integer(1), rs[0])
	s.Stop()
	_, err = script(t, b, "return 1", sc(nil))
	require.ErrorIs(t, err, abi.StatusUnavailable)
	s.Start()
	redistest.WaitFor(t, 5*time.Second, 20*time.Millisecond, func() bool {
		_, err := pipeline(t, b, cmd("PING"))
		return err == nil
	}, "the bridge logs in again")
	rs, err = script(t, b, "return redis.call('INCR', KEYS[1])", sc([]string{"n"}))
	require.NoError(t, err)
	assert.Equal(t, integer(1), rs[0], "the restart lost n")
}

func TestScriptsCloseRemovesItsPassword(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t)
	cfg := Config{Addrs: []string{addr}, KeyPrefix: prefix, Scripts: true, Owner: "backend"}
	a := openBridge(t, cfg)
	b, err := Open(ctx, cfg) // a second bridge of the same prefix and owner: a hot swap
	require.NoError(t, err)
	direct := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer direct.Close()
	passwords := func() int {
		u, err := direct.Do(ctx, "acl", "getuser", userPrefix+prefix).Result()
		require.NoError(t, err)
		l := u.([]any)
		for i := 0; i+1 < len(l); i += 2 {
			if l[i] == "passwords" {
				return len(l[i+1].([]any))
			}
		}
		t.Fatal("no passwords field")
		return 0
	}
	assert.Equal(t, 2, passwords())
	require.NoError(t, b.Close())
	assert.Equal(t, 1, passwords())
	assert.Equal(t, integer(1), mustScript(t, a, "return 1"), "the other bridge still logs in")
}

// After a restart that forgot the ACL user, the first request may be a
// pipeline: the login failure must reach it (and the user be made again),
// not vanish into replies that were never read.
func TestScriptsUserSurvivesARestartPipelined(t *testing.T) {
	s := redistest.NewServer(t)
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "sht:restart2:", Scripts: true})
	_, err := pipeline(t, b, cmd("SET", "a", "1"), cmd("SET", "b", "2"))
	require.NoError(t, err)
	s.Stop()
	s.Start()
	redistest.WaitFor(t, 5*time.Second, 20*time.Millisecond, func() bool {
		_, err := pipeline(t, b, cmd("SET", "a", "1"), cmd("GET", "a"))
		return err == nil
	}, "a pipeline as the first request after the restart logs in again")
	rs, err := pipeline(t, b, cmd("SET", "c", "3"), cmd("GET", "c"))
	require.NoError(t, err)
	assert.Equal(t, abi.ReplyBulk, rs[1].Kind)
	assert.Equal(t, "3", string(rs[1].Str))
}

func TestScriptsCannotNameHostKeys(t *testing.T) {
	f := newFixture(t, nil, withScripts)
	_, err := script(t, f.b, "return redis.call('GET', KEYS[1])", sc([]string{"k"}), sc([]string{"__host__:events"}))
	require.ErrorIs(t, err, abi.StatusInvalid)
	assert.Contains(t, err.Error(), "are the host's")
}

// Redis keeps every script it is sent until SCRIPT FLUSH, even past
// maxmemory, so a backend may send maxScripts distinct scripts of
// maxScriptBytes at most: 65 000 distinct ones filled a shared Redis
// with 808 MB. Past the bounds a script is refused LIMIT without reaching
// Redis; the ones already sent run on.
func TestScriptsAreBounded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, withScripts)
	b := f.b
	distinct := func(i int) string { return fmt.Sprintf("return %d -- hostile script", i) }
	for i := range maxScripts {
		rs, err := script(t, b, distinct(i), sc(nil))
		require.NoError(t, err, "script %d", i)
		require.Equal(t, integer(int64(i)), rs[0])
	}
	before, err := f.direct.Do(ctx, "SCRIPT", "EXISTS", sha1hex(distinct(maxScripts))).Result()
	require.NoError(t, err)
	_, err = script(t, b, distinct(maxScripts), sc(nil))
	require.ErrorIs(t, err, abi.StatusLimit)
	require.ErrorContains(t, err, "distinct scripts")
	after, err := f.direct.Do(ctx, "SCRIPT", "EXISTS", sha1hex(distinct(maxScripts))).Result()
	require.NoError(t, err)
	require.Equal(t, before, after, "the refused script reached Redis")

	rs, err := script(t, b, distinct(3), sc(nil))
	require.NoError(t, err, "a script sent before runs on")
	require.Equal(t, integer(3), rs[0])

	big := "return 1 --" + strings.Repeat("x", maxScriptBytes)
	_, err = script(t, b, big, sc(nil))
	require.ErrorIs(t, err, abi.StatusLimit)
	require.ErrorContains(t, err, "bytes, more than")
}

func sha1hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Each bridge's bound starts afresh with the process, so Redis's own
// figure bounds its cache across them: while a master's script cache is
// past scriptCacheBytes, a script Redis does not hold already is refused
// (an outside check's plugin reached 264 scripts in four daemon
// lifetimes); one it holds, as the built-in library after a restart,
// runs.
func TestScriptsRefusedWhileRedisCacheIsFull(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, withScripts)
	b := f.b
	sent := "return 'sent before' -- " + redistest.Prefix(t)
	_, err := script(t, b, sent, sc(nil))
	require.NoError(t, err)

	b.scriptCacheBytes.Store(1) // any cache at all is past it
	require.Eventually(t, func() bool { return b.scriptsFull.Load() != nil }, 10*time.Second, 50*time.Millisecond,
		"the bridge did not read Redis's script cache")

	fresh := "return 'fresh' -- " + redistest.Prefix(t)
	_, err = script(t, b, fresh, sc(nil))
	require.ErrorIs(t, err, abi.StatusLimit)
	require.ErrorContains(t, err, "script cache holds")
	exists, err := f.direct.ScriptExists(ctx, sha1hex(fresh)).Result()
	require.NoError(t, err)
	require.Equal(t, []bool{false}, exists, "the refused script reached Redis")

	held := "return 'held by Redis' -- " + redistest.Prefix(t)
	require.NoError(t, f.direct.ScriptLoad(ctx, held).Err())
	rs, err := script(t, b, held, sc(nil))
	require.NoError(t, err, "a script Redis holds adds nothing to its cache")
	require.Equal(t, bulkR("held by Redis"), rs[0])
	rs, err = script(t, b, sent, sc(nil))
	require.NoError(t, err)
	require.Equal(t, bulkR("sent before"), rs[0])
}
