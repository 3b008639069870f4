package redisbridge

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redistest"
)

// Attacks a plugin can make on a shared Redis through the bridge, each
// driven with the hostile request itself.

// A script that never returns makes Redis answer BUSY to everyone. The
// call that sent it times out, and the bridge kills the script, so the
// other clients are served again. The private server's
// busy-reply-threshold is below the call timeout, as SECURITY.md advises.
func TestHostileLoopingScriptIsKilled(t *testing.T) {
	srv := redistest.NewServer(t, "--busy-reply-threshold", "100")
	b := openBridge(t, Config{Addrs: []string{srv.Addr()}, KeyPrefix: "loop:", Scripts: true, ReadTimeout: 300 * time.Millisecond})
	other := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 2, DisableIdentity: true, ReadTimeout: 5 * time.Second})
	defer other.Close()

	_, err := script(t, b, "while true do end", sc([]string{"k"}))
	require.ErrorIs(t, err, abi.StatusUnknown, "the call times out after the script was sent: it may have written")
	failed := time.Now()
	redistest.WaitFor(t, 5*time.Second, 20*time.Millisecond, func() bool {
		return other.Ping(context.Background()).Err() == nil
	}, "another client's PING is answered")
	assert.Less(t, time.Since(failed), time.Second, "PING answered within a second of the timeout")
	assert.Equal(t, uint64(1), b.Kills().Killed)

	// The bridge serves again, scripts included.
	rs, err := script(t, b, "return 1", sc(nil))
	require.NoError(t, err)
	assert.Equal(t, integer(1), rs[0])
}

// A script that is still within its deadline is not killed, and nor is
// one when the call failed for another reason than its deadline.
func TestScriptWithinItsDeadlineIsNotKilled(t *testing.T) {
	srv := redistest.NewServer(t, "--busy-reply-threshold", "100")
	b := openBridge(t, Config{Addrs: []string{srv.Addr()}, KeyPrefix: "slow:", Scripts: true, ReadTimeout: 2 * time.Second})
	// Busy for 300 ms: past busy-reply-threshold but within the call's deadline.
	rs, err := script(t, b, "local t = redis.call('TIME'); local s = t[1]*1e6 + t[2]; "+
		"while true do local n = redis.call('TIME'); if n[1]*1e6 + n[2] - s > 300000 then return 1 end end", sc(nil))
	require.NoError(t, err)
	assert.Equal(t, integer(1), rs[0])
	assert.Zero(t, b.Kills().Killed)
}

// Commands whose cost is not bounded by the request: refused before
// anything is sent.
func TestHostileCostlyCommandsAreRefused(t *testing.T) {
	f := newFixture(t, nil, func(c *Config) { c.AllowCommands = []string{"setbit", "bitfield", "geosearch", "zrangestore"} })
	big := strings.Repeat("x", 11<<10)
	for _, c := range [][]string{
		{"LCS", "a", "b"},                   // quadratic: off the default allowlist
		{"SINTER", "a", "b"},                // product of collections
		{"ZUNIONSTORE", "d", "2", "a", "b"}, // sum of collections, then sorted
		{"SETRANGE", "k", "536870911", "x"}, // 26 bytes that allocate 512 MiB
		{"SETBIT", "k", "4294967295", "1"},  // 512 MiB
		{"BITFIELD", "k", "SET", "u8", "#536870911", "1"},
		{"BITFIELD", "k", "INCRBY", "i64", "4294967000", "1"},
		{"SRANDMEMBER", "s", "-1000000000"}, // a billion replies from one member
		{"HRANDFIELD", "h", "-1000000000"},
		{"ZRANDMEMBER", "z", "-1000000000", "WITHSCORES"},
		{"SPOP", "s", "1000000"},
		{"LPOP", "l", "1000000"},
		{"LRANGE", "l", "0", "-1"}, // as long as the list
		{"LRANGE", "l", "0", "99999"},
		{"ZRANGE", "z", "0", "-1"},
		{"ZRANGE", "z", "-inf", "+inf", "BYSCORE"}, // no LIMIT
		{"ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "-1"},
		{"ZRANGEBYSCORE", "z", "-inf", "+inf"},
		{"ZREVRANGEBYLEX", "z", "+", "-", "LIMIT", "99999999", "1"},
		{"HSCAN", "h", "0", "COUNT", "100000000"},
		// Glob matching costs the member's length times the pattern's
		// past a '*': a 10 KB pattern against a 40 KB member stalled
		// Redis 0.4 s, a 300 KB one against a 300 KB member 90 s.
		{"SSCAN", "s", "0", "MATCH", "*" + strings.Repeat("a", 100) + "b"},
		{"HSCAN", "h", "0", "MATCH", "x*" + strings.Repeat("a", 64)},
		{"ZSCAN", "z", "0", "MATCH", "*", "MATCH", "*" + strings.Repeat("a*", 40)}, // Redis obeys the last
		{"SSCAN", "s", "0", "match", "a*" + strings.Repeat("?", 70), "COUNT", "10"},
		// Before its first '*' Redis reads a whole [...] class for each
		// byte it compares: a class of 1 MiB held it 8.3 s in one HSCAN.
		{"HSCAN", "h", "0", "MATCH", "[" + strings.Repeat("b", 300) + "a]*"},
		// A negative count repeats one element: -10000 of a 10 KiB one
		// took Redis to 101 MB for one reply.
		{"SRANDMEMBER", "s", "-9"},
		{"HRANDFIELD", "h", "-10000", "WITHVALUES"},
		{"ZRANDMEMBER", "z", "-10000", "WITHSCORES"},
		{"LPOS", "l", "x", "COUNT", "0"}, // every match in the whole list
		{"LPOS", "l", "x"},               // the whole list, for what it does not hold
		{"LPOS", "l", "x", "MAXLEN", "1000", "MAXLEN", "0"},
		{"XRANGE", "x", "-", "+"}, // the whole stream
		{"XREVRANGE", "x", "+", "-"},
		{"XREAD", "STREAMS", "x", "0"},
		{"XREADGROUP", "GROUP", "g", "c", "STREAMS", "x", ">"},
		{"XREADGROUP", "GROUP", "COUNT", "5", "STREAMS", "x", ">"}, // a group named COUNT gives none
		{"XREAD", "BLOCK", "COUNT", "STREAMS", "x", "0"},
		// A whole hash or set, with no bound: off the default allowlist.
		{"HGETALL", "h"}, {"HKEYS", "h"}, {"HVALS", "h"}, {"SMEMBERS", "s"},
		{"XRANGE", "x", "-", "+", "COUNT", "100000000"},
		{"XREAD", "COUNT", "100000000", "STREAMS", "x", "0"},
		{"XREAD", "COUNT", "-1", "STREAMS", "x", "0"}, // 0 or less: the whole stream
		{"XREAD", "COUNT", "0", "STREAMS", "x", "0"},
		{"XREAD", "COUNT", "-9223372036854775808", "STREAMS", "x", "0"},
		{"XREADGROUP", "GROUP", "g", "c", "COUNT", "0", "STREAMS", "x", ">"},
		{"XINFO", "STREAM", "x", "FULL", "COUNT", "0"},
		{"GEOSEARCH", "g", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km", "COUNT", "99999999"},
		// Widths that overflow int64, which Redis clamps to the whole
		// collection.
		{"LRANGE", "l", "0", "9223372036854775807"},
		{"LRANGE", "l", "-9223372036854775808", "-1"},
		{"LRANGE", "l", "-9223372036854775808", "9223372036854775807"},
		{"ZRANGE", "z", "0", "9223372036854775807"},
		{"ZREVRANGE", "z", "0", "9223372036854775807"},
		{"ZRANGESTORE", "d", "z", "0", "9223372036854775807"},
		{"SRANDMEMBER", "s", "-9223372036854775808"},
		{"HRANDFIELD", "h", "-9223372036854775808"},
		// Redis obeys the last LIMIT: every one is bounded.
		{"ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "0", "10", "LIMIT", "0", "-1"},
		{"ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "10", "LIMIT", "0", "-1"},
		{"ZRANGEBYLEX", "z", "-", "+", "LIMIT", "0", "5", "LIMIT", "0", "-1"},
		{"ZRANGESTORE", "d", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "10", "LIMIT", "0", "-1"},
		{"ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "0", "10", "LIMIT"},
		{"ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "0", "-1", "LIMIT", "0", "10"}, // simpler: each one
	} {
		_, err := pipeline(t, f.b, cmd("SET", "sentinel", "1"), cmd(c...))
		require.ErrorIs(t, err, abi.StatusInvalid, "%v", c)
	}
	// Offsets add up over a request: 40 SETRANGEs of 1 MiB are 40 MiB.
	var cmds [][][]byte
	for i := range 40 {
		cmds = append(cmds, cmd("SETRANGE", "k"+string(rune('a'+i%26))+string(rune('a'+i/26)), "1048576", "x"))
	}
	_, err := pipeline(t, f.b, cmds...)
	require.ErrorIs(t, err, abi.StatusInvalid)
	assert.Contains(t, err.Error(), "allocate more than")
	// A transaction is checked the same way.
	_, err = transaction(t, f.b, cmd("SET", "sentinel", "1"), cmd("SETRANGE", "k", "536870911", "x"))
	require.ErrorIs(t, err, abi.StatusInvalid)
	assert.Zero(t, f.direct.Exists(context.Background(), f.prefix+"sentinel").Val(), "nothing was sent")

	// The bounded forms pass.
	for _, c := range [][]string{
		{"SETRANGE", "k", "1024", "x"}, {"SETBIT", "k", "8192", "1"}, {"BITFIELD", "k", "SET", "u8", "#16", "1", "GET", "u8", "999999999"},
		{"SRANDMEMBER", "s", "-8"}, {"SRANDMEMBER", "s", "10000"}, {"LRANGE", "l", "0", "99"}, {"LRANGE", "l", "-100", "-1"},
		{"LRANGE", "l", "0", "9999"}, {"LRANGE", "l", "-10000", "-1"}, {"LRANGE", "l", "-5", "9999"}, {"LRANGE", "l", "9", "0"},
		{"ZRANGE", "z", "0", "9"}, {"ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "100"},
		{"HSCAN", "h", "0", "COUNT", "100"}, {"SSCAN", "s", "0", "MATCH", big[:255] + "*", "COUNT", "100"},
		{"ZSCAN", "z", "0", "MATCH", "agent:*:" + strings.Repeat("x", 55)}, {"HSCAN", "h", "0", "MATCH", big[:256]},
		{"LPOS", "l", "x", "COUNT", "0", "MAXLEN", "1000"},
		{"XRANGE", "x", "-", "+", "COUNT", "100"}, {"HSCAN", "h", "0", "COUNT", "100"}, {"XREAD", "COUNT", "100", "STREAMS", "x", "0"},
	} {
		_, err := pipeline(t, f.b, cmd(c...))
		require.NoError(t, err, "%v", c)
	}
	// LCS stays available to an operator who allows it.
	g := newFixture(t, nil, func(c *Config) { c.AllowCommands = []string{"lcs"} })
	one(t, g.b, "SET", "a", big[:10])
	assert.Equal(t, bulkR("xxxxxxxxxx"), one(t, g.b, "LCS", "a", "a"))
}

// A stream's consumer and group names are bounded where a command makes
// one: XPENDING and XINFO STREAM FULL repeat a consumer's name in each
// pending entry they answer, and Redis builds the reply whole (eight
// XPENDINGs of 10 000 entries claimed by a consumer of a 20 000-byte
// name, a request of 800 bytes, took a Redis of 256 MB maxmemory to
// 1.6 GB). XPENDING's IDLE, which walks the whole pending list whatever
// the count (94 ms of Redis's thread for 1.3 million entries), and XINFO
// STREAM FULL, which answers every group's pending entries, are refused.
func TestHostileStreamNamesAndIdleScansAreRefused(t *testing.T) {
	f := newFixture(t, nil, nil)
	long, most := strings.Repeat("c", maxName+1), strings.Repeat("c", maxName)
	one(t, f.b, "XADD", "s", "*", "f", "v")
	one(t, f.b, "XGROUP", "CREATE", "s", "g", "0")
	named, idle, full := "consumer or group name of 257 bytes", "IDLE is refused", "FULL is refused"
	for _, c := range []struct {
		cmd []string
		why string
	}{
		{[]string{"XREADGROUP", "GROUP", "g", long, "COUNT", "10", "STREAMS", "s", ">"}, named},
		{[]string{"XREADGROUP", "GROUP", long, "c", "COUNT", "10", "STREAMS", "s", ">"}, named},
		// Redis takes the options in any order, and the last GROUP.
		{[]string{"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "GROUP", "g", long, "STREAMS", "s", ">"}, named},
		{[]string{"XREADGROUP", "COUNT", "10", "NOACK", "GROUP", "g", long, "STREAMS", "s", ">"}, named},
		{[]string{"XCLAIM", "s", "g", long, "0", "0-1"}, named},
		{[]string{"XAUTOCLAIM", "s", "g", long, "0", "0", "COUNT", "10"}, named},
		{[]string{"XGROUP", "CREATECONSUMER", "s", "g", long}, named},
		{[]string{"XGROUP", "CREATE", "s", long, "$"}, named},
		{[]string{"XPENDING", "s", "g", "IDLE", "999999999", "-", "+", "10"}, idle},
		{[]string{"XPENDING", "s", "g", "idle", "1", "-", "+", "10", "c"}, idle},
		// Every group's and consumer's pending entries, whatever COUNT:
		// eight of a stream of 320 groups took a Redis to 1.1 GB.
		{[]string{"XINFO", "STREAM", "s", "FULL"}, full},
		{[]string{"XINFO", "stream", "s", "full", "COUNT", "1"}, full},
	} {
		_, err := pipeline(t, f.b, cmd("SET", "sentinel", "1"), cmd(c.cmd...))
		require.ErrorIs(t, err, abi.StatusInvalid, "%v", c.cmd[:2])
		require.ErrorContains(t, err, c.why, "%v", c.cmd[:2])
	}
	assert.Zero(t, f.direct.Exists(context.Background(), f.prefix+"sentinel").Val(), "nothing was sent")
	n := f.direct.XInfoConsumers(context.Background(), f.prefix+"s", "g").Val()
	assert.Empty(t, n, "no consumer was made")

	// Names up to the bound, and XPENDING without IDLE, pass.
	for _, c := range [][]string{
		{"XREADGROUP", "GROUP", "g", most, "COUNT", "10", "STREAMS", "s", ">"},
		{"XGROUP", "CREATECONSUMER", "s", "g", "other"},
		{"XPENDING", "s", "g"},
		{"XPENDING", "s", "g", "-", "+", "10"},
		{"XPENDING", "s", "g", "-", "+", "10", "IDLE"}, // a consumer named IDLE
		{"XAUTOCLAIM", "s", "g", "other", "0", "0", "COUNT", "10"},
		{"XINFO", "STREAM", "s"}, {"XINFO", "GROUPS", "s"}, {"XINFO", "CONSUMERS", "s", "g"},
		{"XREADGROUP", "COUNT", "5", "GROUP", "g", "other", "STREAMS", "s", "0"}, // GROUP after COUNT
		// A name made long before the bound can still be removed.
		{"XGROUP", "DELCONSUMER", "s", "g", long}, {"XGROUP", "DESTROY", "s", long},
	} {
		_, err := pipeline(t, f.b, cmd(c...))
		require.NoError(t, err, "%v", c[:2])
	}
	p := f.direct.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: f.prefix + "s", Group: "g", Start: "-", End: "+", Count: 10}).Val()
	require.Len(t, p, 1)
	assert.Equal(t, "other", p[0].Consumer, "XAUTOCLAIM moved the entry read by the consumer of the longest name")
}

// A request's stream reads answer at most maxCount entries together: a
// stream stores a field's name once for up to a hundred entries and
// answers it with each, so a read of distinct streams, each read once,
// can still make Redis build replies many times what it stores.
func TestHostileStreamReadsAnswerBoundedEntries(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx := context.Background()
	name := strings.Repeat("f", 1300)
	p := f.direct.Pipeline()
	for _, s := range []string{"a", "b"} {
		for range 2000 {
			p.XAdd(ctx, &redis.XAddArgs{Stream: f.prefix + s, Values: []string{name, "1"}})
		}
	}
	_, err := p.Exec(ctx)
	require.NoError(t, err)
	stored := f.direct.MemoryUsage(ctx, f.prefix+"a", 0).Val()
	r, err := pipeline(t, f.b, cmd("XRANGE", "a", "-", "+", "COUNT", "2000"))
	require.NoError(t, err)
	require.Len(t, r[0].Array, 2000)
	assert.Greater(t, int64(2000*len(name)), 10*stored, "the reply is many times what the stream stores")

	for what, c := range map[string][][][]byte{
		"two XRANGEs":           {cmd("XRANGE", "a", "-", "+", "COUNT", "6000"), cmd("XRANGE", "b", "-", "+", "COUNT", "6000")},
		"XREAD of three":        {cmd("XREAD", "COUNT", "4000", "STREAMS", "a", "b", "c", "0", "0", "0")},
		"the last COUNT counts": {cmd("XREVRANGE", "a", "+", "-", "COUNT", "1", "COUNT", "10000"), cmd("XRANGE", "b", "-", "+", "COUNT", "1")},
		"XPENDING and XRANGE":   {cmd("XPENDING", "a", "g", "-", "+", "5001"), cmd("XRANGE", "b", "-", "+", "COUNT", "5000")},
		// A consumer named BLOCK hides nothing: Redis reads GROUP's two
		// names, then the last COUNT, 10 000 of each of four streams.
		"XREADGROUP's last COUNT": {cmd("XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "GROUP", "g", "BLOCK", "COUNT", "10000", "STREAMS", "a", "b", "c", "d", ">", ">", ">", ">")},
	} {
		_, err := pipeline(t, f.b, c...)
		require.ErrorIs(t, err, abi.StatusLimit, what)
		assert.ErrorContains(t, err, "stream reads may answer more than", what)
	}
	// Up to the bound together, they pass.
	r, err = pipeline(t, f.b, cmd("XRANGE", "a", "-", "+", "COUNT", "5000"), cmd("XREAD", "COUNT", "2500", "STREAMS", "a", "b", "0", "0"))
	require.NoError(t, err)
	assert.Len(t, r[0].Array, 2000)
}

// The sorted-set range removals are off the default allowlist: Redis
// removes a range member by member in its main thread, whatever lazyfree
// says (one ZREMRANGEBYRANK 0 -1 of 2.1 million members held another
// client's PING 3.3 s), and a score or lex range has no LIMIT. Once an
// operator allows it, a rank range is bounded as an index range.
func TestHostileRangeRemovalsAreOffTheAllowlist(t *testing.T) {
	f := newFixture(t, nil, nil)
	for _, c := range [][]string{{"ZREMRANGEBYRANK", "z", "0", "-1"}, {"ZREMRANGEBYSCORE", "z", "-inf", "+inf"}, {"ZREMRANGEBYLEX", "z", "-", "+"}} {
		_, err := pipeline(t, f.b, cmd(c...))
		require.ErrorContains(t, err, "grants it in the backend's allow_commands", "%v", c)
	}
	g := newFixture(t, nil, func(c *Config) { c.AllowCommands = []string{"zremrangebyrank"} })
	for _, c := range [][]string{{"ZREMRANGEBYRANK", "z", "0", "-1"}, {"ZREMRANGEBYRANK", "z", "0", "99999"}} {
		_, err := pipeline(t, g.b, cmd(c...))
		require.ErrorIs(t, err, abi.StatusInvalid, "%v", c)
	}
	one(t, g.b, "ZADD", "z", "1", "a", "2", "b")
	assert.Equal(t, abi.Reply{Kind: abi.ReplyInt, Int: 2}, one(t, g.b, "ZREMRANGEBYRANK", "z", "0", "9"))
}

// The commands of one request are capped: a request of a million PINGs
// is refused before the bridge builds anything for them.
func TestHostileCommandFloodIsRefusedCheaply(t *testing.T) {
	f := newFixture(t, nil, nil)
	ping := cmd("PING")
	req := &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: make([][][]byte, 1_000_000)}
	for i := range req.Commands {
		req.Commands[i] = ping
	}
	var out abi.Encoder
	alloc := allocated(func() { f.b.Do(context.Background(), req, &out) })
	_, err := abi.ParseResponse(out.Bytes())
	require.ErrorIs(t, err, abi.StatusLimit)
	assert.Less(t, alloc, uint64(64<<10), "bytes the refusal allocated")

	// Encoded, as the plugin sends it (6 MB), it is refused from its count:
	// decoding it would allocate about 150 MiB.
	var enc abi.Encoder
	req.Encode(&enc)
	out.Reset()
	alloc = allocated(func() { f.b.Serve(context.Background(), enc.Bytes(), &out) })
	_, err = abi.ParseResponse(out.Bytes())
	require.ErrorIs(t, err, abi.StatusLimit)
	assert.Less(t, alloc, uint64(64<<10), "bytes the refusal of the encoded request allocated")

	calls := make([]abi.ScriptCall, DefaultMaxCommands+1)
	g := newFixture(t, nil, func(c *Config) { c.Scripts = true })
	_, err = script(t, g.b, "return 1", calls...)
	require.ErrorIs(t, err, abi.StatusLimit)

	// One command of 2^20 empty arguments is a 1 MB request, which made
	// the host allocate 266 MB to send; it is refused from the arguments'
	// lengths, read in place.
	for _, req := range []*abi.RedisRequest{
		{Mode: abi.RedisPipeline, Commands: [][][]byte{append(cmd("HMGET", "h"), make([][]byte, 1<<20)...)}},
		{Mode: abi.RedisScript, Script: []byte("return 1"), Calls: []abi.ScriptCall{{Keys: [][]byte{[]byte("k")}, Args: make([][]byte, 1<<20)}}},
	} {
		enc.Reset()
		req.Encode(&enc)
		out.Reset()
		alloc = allocated(func() { g.b.Serve(context.Background(), enc.Bytes(), &out) })
		_, err = abi.ParseResponse(out.Bytes())
		require.ErrorIs(t, err, abi.StatusLimit)
		require.ErrorContains(t, err, "arguments (keys included) in one request")
		assert.Less(t, alloc, uint64(64<<10), "bytes the refusal of %d bytes of arguments allocated", len(enc.Bytes()))
	}
	// A bulk write of a thousand records is far from it.
	fields := make([][]byte, 8000)
	for i := range fields {
		fields[i] = strconv.AppendInt(nil, int64(i), 10)
	}
	big := &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{append(cmd("HMGET", "h"), fields...)}}
	out.Reset()
	enc.Reset()
	big.Encode(&enc)
	require.NoError(t, g.b.Serve(context.Background(), enc.Bytes(), &out))
	_, err = abi.ParseResponse(out.Bytes())
	require.NoError(t, err)
}

// Replies are read through the backend's bound: eight reads of a 16 MiB
// value cost the host about the 1 MiB bound (and a fresh connection: the old one is dropped mid-reply), not 128 MiB. (The same holds
// for 64 MiB values and the default 16 MiB bound; smaller sizes keep the
// shared test Redis quick.)
func TestHostileHugeRepliesAreBoundedAsRead(t *testing.T) {
	ctx := context.Background()
	const value = 16 << 20
	f := newFixture(t, nil, func(c *Config) { c.MaxReplyBytes = 1 << 20; c.ReadTimeout = 10 * time.Second })
	require.NoError(t, f.direct.Set(ctx, f.prefix+"big", strings.Repeat("v", value), 0).Err())
	var cmds [][][]byte
	for range 8 {
		cmds = append(cmds, cmd("MGET", "big"))
	}
	for _, mode := range []abi.RedisMode{abi.RedisPipeline, abi.RedisTransaction} {
		req := &abi.RedisRequest{Mode: mode, Commands: cmds}
		var out abi.Encoder
		alloc := allocated(func() { f.b.Do(ctx, req, &out) })
		_, err := abi.ParseResponse(out.Bytes())
		require.ErrorIs(t, err, abi.StatusLimit, "mode %d", mode)
		assert.Less(t, alloc, uint64(8<<20), "bytes allocated for 128 MiB of replies, mode %d", mode)
		assert.Less(t, len(out.Bytes()), 1<<10)
	}
	// A script's reply too.
	g := newFixture(t, nil, func(c *Config) { c.Scripts = true; c.MaxReplyBytes = 1 << 20; c.ReadTimeout = 10 * time.Second })
	require.NoError(t, g.direct.Set(ctx, g.prefix+"big", strings.Repeat("v", value), 0).Err())
	req := &abi.RedisRequest{Mode: abi.RedisScript, Script: []byte("return redis.call('GET', KEYS[1])"),
		Calls: []abi.ScriptCall{sc([]string{"big"}), sc([]string{"big"})}}
	var out abi.Encoder
	alloc := allocated(func() { g.b.Do(ctx, req, &out) })
	_, err := abi.ParseResponse(out.Bytes())
	require.ErrorIs(t, err, abi.StatusLimit)
	assert.Less(t, alloc, uint64(8<<20))

	// Within the bound, a reply passes whole, and the bridge still serves.
	require.NoError(t, f.direct.Set(ctx, f.prefix+"small", strings.Repeat("v", 512<<10), 0).Err())
	assert.Len(t, one(t, f.b, "GET", "small").Str, 512<<10)
}

// allocated returns the bytes the process allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A script learns its prefix from KEYS[1], but the host's keys are
// outside the ~prefix* pattern of its ACL user: it can neither forge, trim
// nor delete the event stream, nor move its ID forward.
func TestHostileScriptCannotReachTheHostKeys(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, func(c *Config) { c.Scripts = true })
	stream := f.b.Key("events")
	require.NoError(t, f.b.Client().XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"k", "metrics"}}).Err(), "the host reaches it")
	t.Cleanup(func() { f.direct.Del(ctx, stream) })
	// The attacker knows where the host keeps the stream (it is
	// documented) and learns its prefix from KEYS[1]: the name arrives
	// as ARGV here, which is what such a script would build.
	derive := "local s = ARGV[1]; "
	for _, attack := range []string{
		"return redis.call('XADD', s, '*', 'k', 'alerts', 'o', 'put')",
		"return redis.call('XADD', s, '18446744073709551615-18446744073709551615', 'k', 'x')",
		"return redis.call('DEL', s)",
		"return redis.call('XTRIM', s, 'MAXLEN', 0)",
		"return redis.call('XSETID', s, '18446744073709551615-0')",
		"return redis.call('RENAME', s, KEYS[1])",
	} {
		rs, err := script(t, f.b, derive+attack, abi.ScriptCall{Keys: keys("x"), Args: [][]byte{[]byte(stream)}})
		require.NoError(t, err)
		require.Equal(t, abi.ReplyError, rs[0].Kind, attack)
		assert.Contains(t, string(rs[0].Str), "can't access", attack) // Redis 7.0's words for NOPERM inside a script
	}
	assert.Equal(t, int64(1), f.direct.XLen(ctx, stream).Val(), "the stream is as the host left it")
}

// Prefixes that overlap on one Redis are refused while both are open;
// one that covers the host's keys always is.
func TestHostileOverlappingPrefixesAreRefused(t *testing.T) {
	addr := redistest.Addr(t)
	p := redistest.Prefix(t)
	a := openBridge(t, Config{Addrs: []string{addr}, KeyPrefix: p + "app", Owner: "a"})
	for _, c := range []Config{
		{Addrs: []string{addr}, KeyPrefix: p + "app:billing:", Owner: "b"}, // nested
		{Addrs: []string{addr}, KeyPrefix: p + "ap", Owner: "b"},           // covers it
		{Addrs: []string{addr}, KeyPrefix: p + "app", Owner: "b"},          // equal, another backend
		{Addrs: []string{addr}, KeyPrefix: p + "app"},                      // equal, unnamed
		{Addrs: []string{addr}, KeyPrefix: p + "app:billing:", DB: 1},      // another database
	} {
		_, err := Open(context.Background(), c)
		require.Error(t, err, c.KeyPrefix)
		assert.Contains(t, err.Error(), "overlaps", c.KeyPrefix)
	}
	// The same server by another name.
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "127.0.0.1" || host == "localhost") {
		other := "localhost"
		if host == "localhost" {
			other = "127.0.0.1"
		}
		_, err := Open(context.Background(), Config{Addrs: []string{net.JoinHostPort(other, port)}, KeyPrefix: p + "app", Owner: "c"})
		require.Error(t, err, "%s and %s name one Redis", host, other)
		assert.Contains(t, err.Error(), "overlaps")
	}
	// A prefix beside it is fine, in any database.
	openBridge(t, Config{Addrs: []string{addr}, KeyPrefix: p + "other:"})
	openBridge(t, Config{Addrs: []string{addr}, KeyPrefix: p + "more:", DB: 1})
	// The same backend, a new generation: fine.
	openBridge(t, Config{Addrs: []string{addr}, KeyPrefix: p + "app", Owner: "a"})
	// Released on Close.
	require.NoError(t, a.Close())
	for _, prefix := range []string{"_", "__host", "__host__:", "__host__:x"} {
		_, err := Open(context.Background(), Config{Addrs: []string{addr}, KeyPrefix: prefix})
		require.Error(t, err, prefix)
		assert.Contains(t, err.Error(), "are the host's", prefix)
	}
}

// A script cannot run the costly commands the backend is not allowed:
// its ACL user is denied them.
func TestHostileScriptCannotRunCostlyCommands(t *testing.T) {
	f := newFixture(t, nil, func(c *Config) { c.Scripts = true })
	for _, c := range []string{"LCS', KEYS[1], KEYS[1]", "SINTER', KEYS[1]", "ZUNIONSTORE', KEYS[1], 1, KEYS[1]", "ZREMRANGEBYRANK', KEYS[1], 0, -1"} {
		rs, err := script(t, f.b, "return redis.call('"+c+")", sc([]string{"a"}))
		require.NoError(t, err)
		require.Equal(t, abi.ReplyError, rs[0].Kind, c)
		assert.Contains(t, string(rs[0].Str), "can't run this command", c)
	}
	g := newFixture(t, nil, func(c *Config) { c.Scripts = true; c.AllowCommands = []string{"lcs"} })
	rs, err := script(t, g.b, "return redis.call('LCS', KEYS[1], KEYS[1])", sc([]string{"a"}))
	require.NoError(t, err)
	assert.Equal(t, bulkR(""), rs[0], "allowed to this backend")
}

// A request's reads name one key at most maxRepeats times, and one read
// (HMGET's fields) another argument at most maxRepeats times: Redis builds
// each reply whole in its output buffer, so repeats multiply a value in
// Redis's memory (one MGET of a 1 MiB value 400 times, 3 KB asked, made
// Redis allocate 410 MB). The writes that scan or read their key (LREM,
// LINSERT, LSET, ZRANGESTORE, XREADGROUP, XAUTOCLAIM) count with the
// reads, as half of them each (two a key); the writes that answer what
// their key holds and leave it there (GETEX, XCLAIM), as reads; the writes
// that move a value (RENAME, LMOVE, …) make the keys they carry it along
// one for the count, and an LMOVE of a value a move carried is a read.
// HMGET's fields and XCLAIM's entries count across the request. Distinct
// keys, other writes
// and a key read within the bound pass; nothing of a refused request is
// sent.
func TestHostileRepeatedReadsAreRefused(t *testing.T) {
	f := newFixture(t, nil, func(c *Config) { c.AllowCommands = []string{"zrangestore"} })
	repeat := func(n int, args ...string) []string {
		var out []string
		for range n {
			out = append(out, args...)
		}
		return out
	}
	each := func(n int, args ...string) [][][]byte {
		var cmds [][][]byte
		for range n {
			cmds = append(cmds, cmd(args...))
		}
		return cmds
	}
	// chain moves a value along keys k0, k1, …, kn-1 with move, reading
	// each key it reaches with read (nil: none).
	chain := func(n int, move func(a, b string) [][]byte, read func(k string) [][]byte) [][][]byte {
		var cmds [][][]byte
		for i := range n - 1 {
			a, b := fmt.Sprintf("k%d", i), fmt.Sprintf("k%d", i+1)
			if read != nil {
				cmds = append(cmds, read(a))
			}
			cmds = append(cmds, move(a, b))
		}
		return cmds
	}
	gets := func(n int, key string) [][][]byte {
		var cmds [][][]byte
		for range n {
			cmds = append(cmds, cmd("GET", key))
		}
		return cmds
	}
	var pingPong [][][]byte
	for range 5 {
		pingPong = append(pingPong, cmd("LMOVE", "list", "other", "LEFT", "RIGHT"), cmd("LMOVE", "other", "list", "LEFT", "RIGHT"))
	}
	for name, cmds := range map[string][][][]byte{
		"MGET of one key 9 times":    {cmd(append([]string{"MGET"}, repeat(maxRepeats+1, "big")...)...)},
		"9 GETs of one key":          gets(maxRepeats+1, "big"),
		"MGET then GETs of one key":  append([][][]byte{cmd("MGET", "big", "big", "a", "b")}, gets(maxRepeats-1, "big")...),
		"HMGET of one field 9 times": {cmd(append([]string{"HMGET", "h"}, repeat(maxRepeats+1, "f")...)...)},
		"a write then 9 reads of it": append([][][]byte{cmd("SET", "sentinel", "1")}, gets(maxRepeats+1, "big")...),
		"10 000 GETs of one key":     gets(10_000, "big"),
		"LRANGE of one list 9 times": each(maxRepeats+1, "LRANGE", "list", "0", "99"),
		// Writes that scan their key: each repeat is the key's size again
		// in Redis's time.
		"10 000 LREMs of one list":       each(10_000, "LREM", "list", "0", "nomatch"),
		"3 LREMs of one list":            each(3, "LREM", "list", "0", "nomatch"),
		"3 LINSERTs into one list":       each(3, "LINSERT", "list", "BEFORE", "nomatch", "x"),
		"3 LSETs of one list":            each(3, "LSET", "list", "-1", "x"),
		"3 ZRANGESTOREs from one set":    each(3, "ZRANGESTORE", "dst", "z", "0", "+inf", "BYSCORE", "LIMIT", "999999", "1"),
		"3 XREADGROUPs of one stream":    each(3, "XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", "s", "0"),
		"3 XAUTOCLAIMs of one stream":    each(3, "XAUTOCLAIM", "s", "g", "c", "0", "0", "COUNT", "10"),
		"an LREM and 5 LPOS of one list": append(each(1, "LREM", "list", "0", "nomatch"), each(5, "LPOS", "list", "nomatch", "MAXLEN", "100")...),
		// Writes that answer what their key holds, and holds still: each
		// repeat is the value again in Redis's output buffer.
		"9 GETEXs of one key":                      each(maxRepeats+1, "GETEX", "big"),
		"9 LMOVEs of a list onto itself":           each(maxRepeats+1, "LMOVE", "list", "list", "LEFT", "RIGHT"),
		"9 RPOPLPUSHs of a list onto itself":       each(maxRepeats+1, "RPOPLPUSH", "list", "list"),
		"LMOVEs between two lists, back and forth": pingPong,
		"XCLAIM of one entry 9 times":              {cmd(append([]string{"XCLAIM", "s", "g", "c", "0"}, repeat(maxRepeats+1, "1-1")...)...)},
		"a GETEX and 8 GETs of one key":            append(each(1, "GETEX", "big"), gets(maxRepeats, "big")...),
		// A value moved on through distinct keys is read again at each.
		"a chain of LMOVEs":             chain(maxRepeats+3, func(a, b string) [][]byte { return cmd("LMOVE", a, b, "LEFT", "RIGHT") }, nil),
		"a chain of RPOPLPUSHs":         chain(maxRepeats+3, func(a, b string) [][]byte { return cmd("RPOPLPUSH", a, b) }, nil),
		"GETs along a chain of RENAMEs": chain(maxRepeats+2, func(a, b string) [][]byte { return cmd("RENAME", a, b) }, func(k string) [][]byte { return cmd("GET", k) }),
		// Elements across commands: eight XCLAIMs of one entry eight
		// times would answer it 64 times.
		"2 XCLAIMs of one entry 5 times":            each(2, append([]string{"XCLAIM", "s", "g", "c", "0"}, repeat(5, "1-1")...)...),
		"2 HMGETs of one field 5 times":             each(2, append([]string{"HMGET", "h"}, repeat(5, "f")...)...),
		"HMGETs along a chain of RENAMEs":           chain(3, func(a, b string) [][]byte { return cmd("RENAME", a, b) }, func(k string) [][]byte { return cmd(append([]string{"HMGET", k}, repeat(5, "f")...)...) }),
		"XCLAIM of one entry spelled 9 ways":        {cmd("XCLAIM", "s", "g", "c", "0", "1-1", "01-1", "1-01", "+1-1", " 1-1", "001-001", "1-1", "1-1", "1-1")},
		"XCLAIM of one entry 9 times among options": {cmd(append(append([]string{"XCLAIM", "s", "g", "c", "0", "1-1", "+1"}, repeat(maxRepeats, "1-1")...), "IDLE", "0")...)},
	} {
		_, err := pipeline(t, f.b, cmds...)
		require.ErrorIs(t, err, abi.StatusLimit, name)
		assert.ErrorContains(t, err, "more than 8 times", name)
	}
	assert.Zero(t, f.direct.Exists(context.Background(), f.prefix+"sentinel").Val(), "nothing was sent")

	// Within the bound, distinct keys, and writes pass.
	var distinct [][][]byte
	for i := range 1000 {
		distinct = append(distinct, cmd("GET", fmt.Sprintf("k%d", i)))
	}
	var lrems [][][]byte
	for i := range 100 {
		lrems = append(lrems, cmd("LREM", fmt.Sprintf("list%d", i), "0", "x"))
	}
	var fanIn [][][]byte
	for i := range 20 {
		fanIn = append(fanIn, cmd("LMOVE", fmt.Sprintf("queue%d", i), "processing", "LEFT", "RIGHT"))
	}
	var lens [][][]byte
	for i := range 20 {
		lens = append(lens, cmd("LLEN", fmt.Sprintf("queue%d", i)))
	}
	var writes [][][]byte
	for range 100 {
		writes = append(writes, cmd("INCR", "counter"))
	}
	for name, cmds := range map[string][][][]byte{
		"8 GETs of one key":                                gets(maxRepeats, "big"),
		"MGET of one key 8 times":                          {cmd(append([]string{"MGET"}, repeat(maxRepeats, "big")...)...)},
		"HMGET of 8 fields, 8 times":                       {cmd(append([]string{"HMGET", "h"}, repeat(maxRepeats, "a", "b", "c", "d", "e", "f", "g", "h")...)...)},
		"1000 GETs of distinct keys":                       distinct,
		"100 INCRs of one key":                             writes,
		"2 LREMs of one list":                              each(2, "LREM", "list", "0", "nomatch"),
		"8 GETEXs of one key":                              each(maxRepeats, "GETEX", "big"),
		"8 LMOVEs of a list onto itself":                   each(maxRepeats, "LMOVE", "list", "list", "LEFT", "RIGHT"),
		"LMOVEs of 20 queues into one":                     fanIn,
		"LMOVEs of 20 queues into one, then their lengths": append(slices.Clone(fanIn), lens...),
		"XCLAIMs of 8 entries, options":                    {cmd("XCLAIM", "s", "g", "c", "0", "1-1", "2", "IDLE", "0", "RETRYCOUNT", "0", "FORCE"), cmd("XCLAIM", "s", "g", "c", "0", "1-1", "3-0", "IDLE", "0", "JUSTID")},
		"XCLAIM of 8 entries":                              {cmd("XCLAIM", "s", "g", "c", "0", "1-1", "1-2", "1-3", "1-4", "1-5", "1-6", "1-7", "1-8")},
		"an LREM and 4 LPOS":                               append(each(1, "LREM", "list", "0", "nomatch"), each(4, "LPOS", "list", "nomatch", "MAXLEN", "100")...),
		"LREMs of 100 lists":                               lrems,
		"HMGETs of the same fields":                        {cmd("HMGET", "h1", "d", "v"), cmd("HMGET", "h2", "d", "v"), cmd("HMGET", "h3", "d", "v"), cmd("HMGET", "h4", "d", "v"), cmd("HMGET", "h5", "d", "v"), cmd("HMGET", "h6", "d", "v"), cmd("HMGET", "h7", "d", "v"), cmd("HMGET", "h8", "d", "v"), cmd("HMGET", "h9", "d", "v")},
	} {
		_, err := pipeline(t, f.b, cmds...)
		require.NoError(t, err, name)
	}
}

// TestHostileGrowthPerSecondIsBounded: the bytes a backend's offsets may
// make Redis allocate are bounded per second as well as per request. One
// SETRANGE at a 16 MiB offset is a request of 40 bytes: a plugin sending
// 200 a tick filled a Redis to its 2 GB maxmemory in 5.5 s.
func TestHostileGrowthPerSecondIsBounded(t *testing.T) {
	f := newFixture(t, nil, nil)
	ctx := context.Background()
	var taken, limited int
	for i := range 8 {
		_, err := pipeline(t, f.b, cmd("SETRANGE", "g"+strconv.Itoa(i), strconv.Itoa(4<<20-1), "x"))
		if err == nil {
			taken++
			continue
		}
		require.ErrorIs(t, err, abi.StatusLimit)
		require.ErrorContains(t, err, "a second")
		limited++
	}
	// 16 MiB of growth in a burst: four of 4 MiB, and a fifth only if the
	// loop took a quarter of a second to refill it.
	assert.GreaterOrEqual(t, taken, 4)
	assert.Positive(t, limited)
	var held int64
	for i := range 8 {
		held += f.direct.StrLen(ctx, f.prefix+"g"+strconv.Itoa(i)).Val()
	}
	assert.Equal(t, int64(taken*(4<<20)), held, "the refused ones were not sent")
	_, err := pipeline(t, f.b, cmd("SET", "small", "1"))
	require.NoError(t, err, "writes without offsets go on")
}
