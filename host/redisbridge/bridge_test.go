package redisbridge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redistest"
)

func TestReplyKinds(t *testing.T) {
	f := newFixture(t, nil, nil)
	b := f.b
	assert.Equal(t, status("OK"), one(t, b, "SET", "s", "v"))
	assert.Equal(t, bulkR("v"), one(t, b, "GET", "s"))
	assert.Equal(t, nilReply, one(t, b, "GET", "missing"), "a missing key is nil")
	assert.Equal(t, status("OK"), one(t, b, "SET", "empty", ""))
	assert.Equal(t, bulkR(""), one(t, b, "GET", "empty"), "an empty string is an empty bulk, not nil")
	assert.Equal(t, integer(1), one(t, b, "INCR", "n"))
	assert.Equal(t, integer(-2), one(t, b, "TTL", "missing"))
	assert.Equal(t, status("string"), one(t, b, "TYPE", "s"))
	assert.Equal(t, status("PONG"), one(t, b, "PING"))
	assert.Equal(t, bulkR("hello"), one(t, b, "PING", "hello"))
	assert.Equal(t, nilReply, one(t, b, "SET", "s", "w", "NX"), "SET NX that does not set is nil")

	wrong := one(t, b, "LPUSH", "s", "x")
	assert.Equal(t, abi.ReplyError, wrong.Kind)
	assert.True(t, strings.HasPrefix(string(wrong.Str), "WRONGTYPE "), "%s", wrong.Str)
	require.Error(t, wrong.Err())

	assert.Equal(t, array(bulkR("v"), nilReply, bulkR("")), one(t, b, "MGET", "s", "missing", "empty"),
		"nil inside an array")
	assert.Equal(t, array(), one(t, b, "LRANGE", "missing", "0", "9"), "an empty array is not nil")
	assert.Equal(t, nilReply, one(t, b, "LPOP", "missing", "2"), "a nil array is nil")

	one(t, b, "ZADD", "z", "1.5", "a", "2", "b")
	assert.Equal(t, array(bulkR("a"), bulkR("1.5"), bulkR("b"), bulkR("2")), one(t, b, "ZRANGE", "z", "0", "99", "WITHSCORES"))

	one(t, b, "XADD", "x", "1-1", "f", "v")
	assert.Equal(t, array(array(bulkR("1-1"), array(bulkR("f"), bulkR("v")))), one(t, b, "XRANGE", "x", "-", "+", "COUNT", "10"),
		"nested arrays")

	tm := one(t, b, "TIME")
	require.Equal(t, abi.ReplyArray, tm.Kind)
	assert.Len(t, tm.Array, 2)
}

func TestPipelineKeepsEachReply(t *testing.T) {
	f := newFixture(t, nil, nil)
	rs, err := pipeline(t, f.b,
		cmd("SET", "a", "1"),
		cmd("HSET", "a", "f", "v"), // WRONGTYPE: an error at its own position
		cmd("INCR", "a"),
		cmd("GET", "a"),
		cmd("LRANGE", "h", "0", "9"),
	)
	require.NoError(t, err)
	require.Len(t, rs, 5)
	assert.Equal(t, status("OK"), rs[0])
	assert.Equal(t, abi.ReplyError, rs[1].Kind)
	assert.Contains(t, string(rs[1].Str), "WRONGTYPE")
	assert.Equal(t, integer(2), rs[2], "commands after an error run")
	assert.Equal(t, bulkR("2"), rs[3])
	assert.Equal(t, array(), rs[4])
}

func TestTransaction(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, nil)
	rs, err := transaction(t, f.b,
		cmd("SET", "k", "1"),
		cmd("INCRBY", "k", "41"),
		cmd("EXPIRE", "k", "100"),
		cmd("GET", "k"),
	)
	require.NoError(t, err)
	assert.Equal(t, []abi.Reply{status("OK"), integer(42), integer(1), bulkR("42")}, rs)
	assert.InDelta(t, 100*time.Second, f.direct.TTL(ctx, f.prefix+"k").Val(), float64(5*time.Second))

	// A command that fails when it runs is an error at its position; the
	// others run (Redis transactions do not roll back).
	rs, err = transaction(t, f.b,
		cmd("SET", "s", "x"),
		cmd("INCR", "s"),
		cmd("SET", "t", "y"),
	)
	require.NoError(t, err)
	require.Len(t, rs, 3)
	assert.Equal(t, status("OK"), rs[0])
	assert.Equal(t, abi.ReplyError, rs[1].Kind)
	assert.Equal(t, status("OK"), rs[2])
	assert.Equal(t, "y", f.direct.Get(ctx, f.prefix+"t").Val())
}

// A command refused when queued (here NOPERM: the ACL user may not run
// GET any more) makes Redis discard the whole transaction: its own error
// at its position, EXECABORT at the others, and nothing runs.
func TestTransactionDiscarded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, func(c *Config) { c.Scripts = true })
	require.NoError(t, f.direct.Do(ctx, "acl", "setuser", userPrefix+f.prefix, "-get").Err())
	rs, err := transaction(t, f.b,
		cmd("SET", "a", "1"),
		cmd("GET", "a"),
		cmd("SET", "b", "2"),
	)
	require.NoError(t, err)
	require.Len(t, rs, 3)
	for i, r := range rs {
		require.Equal(t, abi.ReplyError, r.Kind, "reply %d", i)
	}
	assert.Contains(t, string(rs[1].Str), "NOPERM")
	assert.Contains(t, string(rs[0].Str), "EXECABORT")
	assert.Contains(t, string(rs[2].Str), "EXECABORT")
	assert.Zero(t, f.direct.Exists(ctx, f.prefix+"a", f.prefix+"b").Val(), "nothing ran")
}

func TestKeysArePrefixed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, func(c *Config) {
		c.AllowCommands = []string{"sinterstore", "zunionstore", "zunion"}
	})
	p := f.prefix
	b := f.b
	one(t, b, "SET", "plain", "1")
	one(t, b, "MSET", "m1", "a", "m2", "b")
	one(t, b, "HSET", "{agent:7}:state", "v", "1")
	one(t, b, "SADD", "s1", "x", "y")
	one(t, b, "SADD", "s2", "y")
	one(t, b, "SINTERSTORE", "s3", "s1", "s2")
	one(t, b, "ZADD", "z1", "1", "a")
	assert.Equal(t, integer(1), one(t, b, "ZUNIONSTORE", "z2", "1", "z1", "WEIGHTS", "2"))
	assert.Equal(t, array(bulkR("a")), one(t, b, "ZUNION", "2", "z1", "z2"))
	one(t, b, "RPUSH", "l1", "a", "b")
	one(t, b, "LMOVE", "l1", "l2", "LEFT", "RIGHT")
	one(t, b, "SET", "old", "v")
	one(t, b, "RENAME", "old", "new")
	one(t, b, "XADD", "st", "1-1", "f", "v")
	one(t, b, "XGROUP", "CREATE", "st", "g", "0")
	assert.Equal(t, abi.ReplyArray, one(t, b, "XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "st", ">").Kind)
	assert.Equal(t, abi.ReplyArray, one(t, b, "XREAD", "COUNT", "5", "STREAMS", "st", "0").Kind)
	one(t, b, "SET", "}{", "braces")
	one(t, b, "SET", "", "empty name")

	for _, k := range []string{"plain", "m1", "m2", "{agent:7}:state", "s3", "z2", "l2", "new", "st", "}{", ""} {
		assert.EqualValues(t, 1, f.direct.Exists(ctx, p+k).Val(), "%q is stored as %q", k, p+k)
		if k != "" {
			assert.Zero(t, f.direct.Exists(ctx, k).Val(), "nothing is stored as %q", k)
		}
	}
	assert.Zero(t, f.direct.Exists(ctx, p+"old").Val())
	assert.Equal(t, "v", f.direct.Get(ctx, p+"new").Val())
	assert.Equal(t, "1", f.direct.HGet(ctx, p+"{agent:7}:state", "v").Val())
}

// Replies that name keys (LMPOP, ZMPOP, XREAD) name them as Redis knows
// them, prefix included: the bridge rewrites no reply.
func TestLMPOPReplyNamesThePrefixedKey(t *testing.T) {
	f := newFixture(t, nil, nil)
	one(t, f.b, "RPUSH", "l", "a")
	assert.Equal(t, array(bulkR(f.prefix+"l"), array(bulkR("a"))), one(t, f.b, "LMPOP", "1", "l", "LEFT"))
}

func TestCommandNamesAnyCase(t *testing.T) {
	f := newFixture(t, nil, nil)
	assert.Equal(t, status("OK"), one(t, f.b, "set", "k", "v"))
	assert.Equal(t, bulkR("v"), one(t, f.b, "gEt", "k"))
	_, err := pipeline(t, f.b, cmd("flushall"))
	assert.ErrorIs(t, err, abi.StatusInvalid)
}

func TestRefusedCommands(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, nil)
	refused := [][]string{
		{"FLUSHALL"}, {"flushdb"}, {"KEYS", "*"}, {"SCAN", "0"}, {"CONFIG", "GET", "*"},
		{"EVAL", "return 1", "0"}, {"EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"},
		{"SCRIPT", "FLUSH"}, {"FUNCTION", "FLUSH"}, {"FCALL", "f", "0"},
		{"SORT", "l", "BY", "nosort", "GET", "*"}, {"SORT_RO", "l"}, {"OBJECT", "ENCODING", "k"},
		{"SELECT", "1"}, {"SWAPDB", "0", "1"}, {"MOVE", "k", "1"}, {"COPY", "a", "b", "DB", "1"},
		{"MIGRATE", "h", "1", "k", "0", "1"}, {"DUMP", "k"}, {"RESTORE", "k", "0", "x"},
		{"RANDOMKEY"}, {"DBSIZE"}, {"INFO"}, {"CLIENT", "LIST"}, {"MONITOR"}, {"DEBUG", "SLEEP", "0"},
		{"SHUTDOWN"}, {"ACL", "LIST"}, {"AUTH", "x"}, {"HELLO", "3"}, {"QUIT"}, {"RESET"},
		{"SUBSCRIBE", "c"}, {"PUBLISH", "c", "m"}, {"WAIT", "1", "0"},
		{"MULTI"}, {"EXEC"}, {"DISCARD"}, {"WATCH", "k"},
		{"BLPOP", "l", "0"}, {"BRPOP", "l", "0"}, {"BLMOVE", "a", "b", "LEFT", "LEFT", "0"},
		{"BZPOPMIN", "z", "0"}, {"BLMPOP", "0", "1", "l", "LEFT"}, {"BRPOPLPUSH", "a", "b", "0"},
		{"GEORADIUS", "g", "0", "0", "1", "km", "STORE", "other"},
		{"NOSUCHCOMMAND"}, {"GET\x00"}, {strings.Repeat("G", 100)},
	}
	for _, c := range refused {
		// Behind an allowed command, to show nothing of the request is sent.
		_, err := pipeline(t, f.b, cmd("SET", "sentinel", "1"), cmd(c...))
		var ae *abi.Error
		require.ErrorAs(t, err, &ae, "%v", c)
		assert.Equal(t, abi.StatusInvalid, ae.Status, "%v", c)
		name := c[0]
		if len(name) > 40 {
			name = name[:40]
		}
		assert.Contains(t, ae.Message, fmt.Sprintf("%q", name), "the message names the command")
	}
	assert.Zero(t, f.direct.Exists(ctx, f.prefix+"sentinel").Val(), "nothing was sent")

	_, err := pipeline(t, f.b, cmd("GEOADD", "g", "0", "0", "m"))
	require.ErrorIs(t, err, abi.StatusInvalid)
	assert.Contains(t, err.Error(), "AllowCommands", "a table command that is off says how to turn it on")
}

func TestMalformedRequests(t *testing.T) {
	f := newFixture(t, nil, nil)
	cases := map[string]*abi.RedisRequest{
		"no commands":   {Mode: abi.RedisPipeline},
		"empty command": {Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("PING"), {}}},
		"empty tx":      {Mode: abi.RedisTransaction},
		"unknown mode":  {Mode: 9, Commands: [][][]byte{cmd("PING")}},
	}
	for name, req := range cases {
		var out abi.Encoder
		f.b.Do(context.Background(), req, &out)
		_, err := abi.ParseResponse(out.Bytes())
		assert.ErrorIs(t, err, abi.StatusInvalid, name)
	}
}

// Arguments that would move a key to a position the table does not
// prefix are refused before they reach Redis.
func TestKeyPositionsCannotBeDodged(t *testing.T) {
	f := newFixture(t, nil, nil)
	dodges := [][]string{
		{"GET"},                                      // no key at all
		{"GET", "a", "b"},                            // exact arity
		{"MSET", "a", "1", "b"},                      // an odd pair: b would be a key Redis never sees
		{"ZUNIONSTORE", "d", "3", "a", "b"},          // more keys announced than given
		{"ZUNIONSTORE", "d", "-1", "a"},              // a negative count
		{"ZUNIONSTORE", "d", "01", "a"},              // not Redis's spelling of a count
		{"ZUNIONSTORE", "d", "+1", "a"},              //
		{"ZUNION", "x", "a"},                         // not a number
		{"LMPOP", "2", "a"},                          //
		{"XREAD", "STREAMS", "a"},                    // keys and IDs unbalanced
		{"XREAD", "COUNT"},                           // an incomplete option
		{"XREAD", "BLOCK", "0", "STREAMS", "a", "0"}, // blocking
		{"XREADGROUP", "GROUP", "g", "c", "BLOCK", "1", "STREAMS", "a", ">"}, //
		{"XREAD", "NOACK", "STREAMS", "a", "0"},                              // XREADGROUP's option
		{"XREAD", "COUNT", "1", "a", "STREAMS", "b", "0"},                    // an unknown option
		{"XGROUP", "HELP"}, // no key after the subcommand
	}
	for _, d := range dodges {
		_, err := pipeline(t, f.b, cmd(d...))
		assert.ErrorIs(t, err, abi.StatusInvalid, "%v", d)
	}
}

func TestAllowCommands(t *testing.T) {
	f := newFixture(t, nil, func(c *Config) { c.AllowCommands = []string{"geoadd", "PFADD", "pfcount"} })
	assert.Equal(t, integer(1), one(t, f.b, "GEOADD", "g", "13.361389", "38.115556", "Palermo"))
	assert.Equal(t, integer(1), one(t, f.b, "PFADD", "h", "a"))
	assert.EqualValues(t, 1, f.direct.Exists(context.Background(), f.prefix+"g").Val())

	for _, bad := range []string{"FLUSHALL", "keys", "EVAL", "nosuch"} {
		_, err := Open(context.Background(), Config{Addrs: []string{redistest.Addr(t)}, KeyPrefix: "p:", AllowCommands: []string{bad}})
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "command table")
	}
}

// A write that stores a copy of other keys is refused unless the
// backend's configuration grants it: its size is what those keys hold,
// which no bound of the request sees.
func TestCopyingWritesNeedAGrant(t *testing.T) {
	f := newFixture(t, nil, nil)
	assert.Equal(t, integer(1), one(t, f.b, "ZADD", "src", "1", "m"))
	for _, c := range [][]string{
		{"ZRANGESTORE", "d", "src", "0", "-1"},
		{"ZUNIONSTORE", "d", "1", "src"},
		{"SUNIONSTORE", "d", "src"},
	} {
		_, err := pipeline(t, f.b, cmd(c...))
		assert.ErrorIs(t, err, abi.StatusInvalid, "%v", c)
		assert.ErrorContains(t, err, "grants it in the backend's allow_commands", "%v", c)
	}
	assert.Zero(t, f.direct.Exists(context.Background(), f.prefix+"d").Val())

	g := newFixture(t, nil, func(c *Config) { c.AllowCommands = []string{"zrangestore"} })
	assert.Equal(t, integer(1), one(t, g.b, "ZADD", "src", "1", "m"))
	assert.Equal(t, integer(1), one(t, g.b, "ZRANGESTORE", "d", "src", "0", "9"))
}

func TestConfigChecks(t *testing.T) {
	addr := []string{redistest.Addr(t)}
	for _, p := range []string{"", "a{b:", "a}:", "a*:", "a?", "a[1]", `a\`, "a b", "a\n", "é", strings.Repeat("p", 129)} {
		_, err := Open(context.Background(), Config{Addrs: addr, KeyPrefix: p})
		assert.Error(t, err, "prefix %q", p)
	}
	_, err := Open(context.Background(), Config{KeyPrefix: "p:"})
	assert.ErrorContains(t, err, "Addrs")
	_, err = Open(context.Background(), Config{URL: "redis://" + addr[0], Addrs: addr, KeyPrefix: "p:"})
	assert.ErrorContains(t, err, "exclusive")
	_, err = Open(context.Background(), Config{URL: "http://x", KeyPrefix: "p:"})
	assert.Error(t, err)
	_, err = Open(context.Background(), Config{Addrs: []string{"a:1", "b:1"}, DB: 2, KeyPrefix: "p:"})
	assert.ErrorContains(t, err, "database 0")
}

func TestOptions(t *testing.T) {
	o, err := (&Config{Addrs: []string{"h:1"}, KeyPrefix: "p:"}).options()
	require.NoError(t, err)
	assert.Equal(t, DefaultDialTimeout, o.DialTimeout)
	assert.Equal(t, DefaultReadTimeout, o.ReadTimeout)
	assert.Equal(t, DefaultWriteTimeout, o.WriteTimeout)
	assert.Equal(t, DefaultPoolTimeout, o.PoolTimeout)
	assert.Equal(t, -1, o.MaxRetries, "no retries by default")
	assert.Equal(t, 2, o.Protocol)
	assert.True(t, o.ContextTimeoutEnabled)
	assert.Nil(t, o.TLSConfig)

	o, err = (&Config{URL: "rediss://u:pw@h:7/3?dial_timeout=3s&pool_size=7", ReadTimeout: time.Second, MaxRetries: 2, KeyPrefix: "p:"}).options()
	require.NoError(t, err)
	assert.Equal(t, []string{"h:7"}, o.Addrs)
	assert.Equal(t, "u", o.Username)
	assert.Equal(t, "pw", o.Password)
	assert.Equal(t, 3, o.DB)
	assert.NotNil(t, o.TLSConfig)
	assert.Equal(t, 3*time.Second, o.DialTimeout, "from the URL")
	assert.Equal(t, time.Second, o.ReadTimeout, "Config wins")
	assert.Equal(t, 7, o.PoolSize)
	assert.Equal(t, 2, o.MaxRetries)

	o, err = (&Config{URL: "redis://h:1?addr=h:2&addr=h:3", KeyPrefix: "p:"}).options()
	require.NoError(t, err)
	assert.Equal(t, []string{"h:1", "h:2", "h:3"}, o.Addrs)
	assert.True(t, o.IsClusterMode)

	// Servers names the addresses for logs, from the URL too, without
	// its credentials.
	assert.Equal(t, []string{"h:7"}, (&Config{URL: "rediss://u:pw@h:7/3"}).Servers())
	assert.Equal(t, []string{"h:1", "h:2"}, (&Config{URL: "redis://h:1?addr=h:2"}).Servers())
	assert.Equal(t, []string{"s:1"}, (&Config{Addrs: []string{"s:1"}}).Servers())

	o, err = (&Config{Addrs: []string{"s:1", "s:2"}, MasterName: "m", DB: 1, TLS: true, KeyPrefix: "p:"}).options()
	require.NoError(t, err)
	assert.Equal(t, "m", o.MasterName)
	assert.NotNil(t, o.TLSConfig)
	assert.Equal(t, 1, o.DB)
}

func TestBridgesAreIsolated(t *testing.T) {
	a := newFixture(t, nil, nil)
	b := newFixture(t, nil, nil)
	one(t, a.b, "SET", "k", "a's")
	one(t, a.b, "HSET", "{t}h", "f", "a's")
	assert.Equal(t, nilReply, one(t, b.b, "GET", "k"))
	assert.Equal(t, integer(0), one(t, b.b, "DEL", "k", "{t}h"))
	assert.Equal(t, integer(0), one(t, b.b, "EXISTS", "k"))
	assert.Equal(t, abi.ReplyError, one(t, b.b, "RENAME", "k", "mine").Kind, "no such key in b's namespace")
	// b naming a's key by its full name, or wrapping it in braces, only
	// reaches b's own namespace.
	assert.Equal(t, nilReply, one(t, b.b, "GET", a.prefix+"k"))
	assert.Equal(t, status("OK"), one(t, b.b, "SET", "{"+a.prefix+"}k", "b's"))
	assert.Equal(t, status("OK"), one(t, b.b, "SET", "}"+a.prefix+"k", "b's"))
	assert.EqualValues(t, 1, b.direct.Exists(context.Background(), b.prefix+"{"+a.prefix+"}k").Val())
	assert.Equal(t, bulkR("a's"), one(t, a.b, "GET", "k"))
	assert.Equal(t, bulkR("a's"), one(t, a.b, "HGET", "{t}h", "f"))
}

func TestUnavailableQuickly(t *testing.T) {
	s := redistest.NewServer(t)
	prefix := "sht:down:"
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: prefix})
	assert.Equal(t, status("OK"), one(t, b, "SET", "k", "v"))

	s.Stop()
	for range 3 {
		var err error
		took := timed(func() { _, err = pipeline(t, b, cmd("GET", "k"), cmd("GET", "j")) })
		require.ErrorIs(t, err, abi.StatusUnavailable)
		assert.Contains(t, err.Error(), "redis unavailable")
		assert.Less(t, took, time.Second, "a dead Redis answers at once")
	}
	_, err := transaction(t, b, cmd("SET", "k", "v"))
	require.ErrorIs(t, err, abi.StatusUnavailable)

	s.Start()
	redistest.WaitFor(t, 5*time.Second, 20*time.Millisecond, func() bool {
		_, err := pipeline(t, b, cmd("PING"))
		return err == nil
	}, "the bridge works again once Redis is back")
	assert.Equal(t, status("OK"), one(t, b, "SET", "k", "v"))
}

func TestUnavailableWhenNothingListens(t *testing.T) {
	b, err := Open(context.Background(), Config{Addrs: []string{"127.0.0.1:1"}, KeyPrefix: "p:"})
	require.NoError(t, err, "Open does not wait for Redis")
	defer b.Close()
	var callErr error
	took := timed(func() { _, callErr = pipeline(t, b, cmd("GET", "k")) })
	require.ErrorIs(t, callErr, abi.StatusUnavailable)
	assert.Less(t, took, time.Second)
}

func TestUnavailableWhenCancelled(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := callCtx(t, ctx, f.b, &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("GET", "k")}})
	require.ErrorIs(t, err, abi.StatusUnavailable)
	assert.Contains(t, err.Error(), "cancel")

	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err = callCtx(t, ctx, f.b, &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("GET", "k"), cmd("GET", "j")}})
	require.ErrorIs(t, err, abi.StatusUnavailable)
	assert.Contains(t, err.Error(), "deadline")
}

func TestClosedBridgeIsUnavailable(t *testing.T) {
	b, err := Open(context.Background(), Config{Addrs: []string{redistest.Addr(t)}, KeyPrefix: redistest.Prefix(t)})
	require.NoError(t, err)
	require.NoError(t, b.Close())
	_, err = pipeline(t, b, cmd("GET", "k"))
	require.ErrorIs(t, err, abi.StatusUnavailable)
	assert.Contains(t, err.Error(), "closed")
}

// A hung Redis (paused, not dead) is bounded by the caller's deadline,
// or by ReadTimeout.
func TestUnavailableWhenRedisHangs(t *testing.T) {
	s := redistest.NewServer(t)
	// ReadTimeout far from the caller's deadline, so a loaded machine
	// cannot blur which of the two ended a call.
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "sht:hang:", ReadTimeout: 2 * time.Second})
	assert.Equal(t, status("OK"), one(t, b, "SET", "k", "v"))
	s.Pause()
	defer s.Resume()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var err error
	took := timed(func() {
		_, err = callCtx(t, ctx, b, &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("GET", "k")}})
	})
	require.ErrorIs(t, err, abi.StatusUnavailable)
	assert.Less(t, took, time.Second, "the caller's deadline")

	took = timed(func() { _, err = pipeline(t, b, cmd("GET", "k"), cmd("GET", "j")) })
	require.ErrorIs(t, err, abi.StatusUnavailable)
	assert.GreaterOrEqual(t, took, 2*time.Second, "ReadTimeout")
	assert.Less(t, took, 10*time.Second, "ReadTimeout")

	s.Resume()
	redistest.WaitFor(t, 5*time.Second, 20*time.Millisecond, func() bool {
		_, err := pipeline(t, b, cmd("GET", "k"))
		return err == nil
	}, "the bridge works again once Redis answers")
}

// All connections busy: the next caller waits PoolTimeout at most.
func TestUnavailableOnPoolTimeout(t *testing.T) {
	s := redistest.NewServer(t)
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "sht:pool:",
		PoolSize: 1, PoolTimeout: 100 * time.Millisecond, ReadTimeout: 30 * time.Second})
	assert.Equal(t, status("OK"), one(t, b, "SET", "k", "v"))
	s.Pause()
	defer s.Resume()
	busy := make(chan error, 1)
	go func() { // holds the only connection until Redis resumes
		_, err := pipeline(t, b, cmd("GET", "k"))
		busy <- err
	}()
	redistest.WaitFor(t, 10*time.Second, time.Millisecond, func() bool { return b.PoolStats().IdleConns == 0 && b.PoolStats().TotalConns == 1 },
		"the first call takes the connection")
	var err error
	took := timed(func() { _, err = pipeline(t, b, cmd("GET", "k")) })
	require.ErrorIs(t, err, abi.StatusUnavailable)
	assert.Contains(t, err.Error(), "pool timeout")
	assert.Less(t, took, 10*time.Second, "PoolTimeout, not ReadTimeout")
	s.Resume()
	assert.NoError(t, <-busy, "the first call is answered once Redis resumes")
}

// Many callers at once: every command is counted once (run with -race).
func TestConcurrentCallers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, withScripts)
	const callers, rounds = 32, 50
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				var err error
				switch i % 3 {
				case 0:
					_, err = pipeline(t, f.b, cmd("INCR", "n"), cmd("GET", "n"))
				case 1:
					_, err = transaction(t, f.b, cmd("INCR", "n"), cmd("GET", "n"))
				case 2:
					_, err = script(t, f.b, "return redis.call('INCR', KEYS[1])", sc([]string{"n"}))
				}
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, fmt.Sprint(callers*rounds), f.direct.Get(ctx, f.prefix+"n").Val())
}

// The host keeps keys of its own outside each namespace (the event
// stream); no command names them, nor the namespace's own `__host__:`
// keys, at any key position.
func TestHostKeysAreRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, nil)
	for _, c := range [][]string{
		{"XADD", "__host__:events", "*", "k", "v"}, {"GET", "__host__:x"}, {"DEL", "a", "__host__:events"},
		{"XREAD", "STREAMS", "__host__:events", "0"}, {"MGET", "a", "__host__:x"},
	} {
		_, err := pipeline(t, f.b, cmd("SET", "sentinel", "1"), cmd(c...))
		require.ErrorIs(t, err, abi.StatusInvalid, "%v", c)
		assert.Contains(t, err.Error(), "are the host's", "%v", c)
	}
	assert.Zero(t, f.direct.Exists(ctx, f.prefix+"sentinel").Val(), "nothing was sent")
	assert.Equal(t, "__host__:{"+f.prefix+"}:events", f.b.Key("events"))
}
