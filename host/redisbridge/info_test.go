package redisbridge

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redistest"
)

// The server's figures are read with the configured rights even when the
// plugin's connections log in as the confined scripts user (who may not
// run INFO), cached for InfoMaxAge; readiness names the node and why it
// cannot take writes: out of memory, unreachable.
func TestServerInfoAndReady(t *testing.T) {
	ctx := context.Background()
	s := redistest.NewServer(t)
	b, err := Open(ctx, Config{Addrs: []string{s.Addr()}, KeyPrefix: "info:", Scripts: true})
	require.NoError(t, err)
	defer b.Close() // fails: Redis is stopped by then
	direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	defer direct.Close()

	require.Error(t, b.client.Info(ctx).Err(), "the scripts user may not run INFO")
	nodes := b.ServerInfo(ctx)
	require.Len(t, nodes, 1)
	n := nodes[0]
	require.NoError(t, n.Err)
	require.Equal(t, s.Addr(), n.Addr)
	require.Equal(t, "master", n.Fields["role"])
	require.NotEmpty(t, n.Fields["used_memory"])
	require.GreaterOrEqual(t, n.SlowlogLen, int64(0))
	commands, err := strconv.Atoi(n.Fields["total_commands_processed"])
	require.NoError(t, err)

	for range 5 {
		require.Equal(t, n.Fields["total_commands_processed"], b.ServerInfo(ctx)[0].Fields["total_commands_processed"], "read again within InfoMaxAge")
	}
	time.Sleep(InfoMaxAge)
	again, err := strconv.Atoi(b.ServerInfo(ctx)[0].Fields["total_commands_processed"])
	require.NoError(t, err)
	require.Greater(t, again, commands)

	require.NoError(t, b.Ready(ctx))
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "1").Err())
	var ready error
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool { ready = b.Ready(ctx); return ready != nil }, "not ready once out of memory")
	require.ErrorIs(t, ready, abi.StatusUnavailable)
	require.ErrorContains(t, ready, "redis "+s.Addr()+": OOM")
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "0").Err())
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool { return b.Ready(ctx) == nil }, "ready again")

	// Made a replica (of a master that is not there): every write is
	// refused READONLY.
	require.NoError(t, direct.Do(ctx, "replicaof", "127.0.0.1", "1").Err())
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool { ready = b.Ready(ctx); return ready != nil }, "not ready as a replica")
	require.ErrorIs(t, ready, abi.StatusUnavailable)
	require.ErrorContains(t, ready, "redis "+s.Addr()+": READONLY it is a replica of 127.0.0.1:1")
	require.NoError(t, direct.Do(ctx, "replicaof", "no", "one").Err())
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool { return b.Ready(ctx) == nil }, "ready again as a master")

	s.Stop()
	ready = b.Ready(ctx)
	require.ErrorIs(t, ready, abi.StatusUnavailable)
	require.ErrorContains(t, ready, "redis "+s.Addr()+": connection refused")
	time.Sleep(InfoMaxAge)
	n = b.ServerInfo(ctx)[0]
	require.Error(t, n.Err)
	require.Nil(t, n.Fields)
}

// On a cluster every node is read, each under its own address.
func TestServerInfoOfEveryClusterNode(t *testing.T) {
	addrs := redistest.Cluster(t)
	f := newFixture(t, addrs, func(c *Config) { c.Scripts = true })
	var got []string
	for _, n := range f.b.ServerInfo(context.Background()) {
		require.NoError(t, n.Err, n.Addr)
		require.Equal(t, "master", n.Fields["role"], n.Addr)
		got = append(got, n.Addr)
	}
	require.ElementsMatch(t, nodes(t, addrs), got)
	require.NoError(t, f.b.Ready(context.Background()))
}

// A master that evicts keys (any policy but noeviction, once it has a
// maxmemory) drops records it acknowledged: it is reported, as is one
// out of memory under noeviction; a replica, or no maxmemory, is not.
func TestUnreadyWhenRedisEvicts(t *testing.T) {
	for _, tc := range []struct {
		fields map[string]string
		want   string
	}{
		{map[string]string{"role": "master", "maxmemory": "0", "maxmemory_policy": "allkeys-lru"}, ""},
		{map[string]string{"role": "master", "maxmemory": "1000", "maxmemory_policy": "noeviction", "used_memory": "10"}, ""},
		{map[string]string{"role": "master", "maxmemory": "1000", "maxmemory_policy": "allkeys-lru"}, "maxmemory-policy allkeys-lru evicts keys at maxmemory 1000 bytes"},
		{map[string]string{"role": "master", "maxmemory": "1000", "maxmemory_policy": "volatile-ttl"}, "maxmemory-policy volatile-ttl evicts keys"},
		{map[string]string{"role": "slave", "maxmemory": "1000", "maxmemory_policy": "allkeys-lru"}, ""},
		{map[string]string{"role": "master", "maxmemory": "1000", "maxmemory_policy": "noeviction", "used_memory": "2000"}, "OOM: used memory 2000 bytes over maxmemory 1000"},
	} {
		got := unready(tc.fields)
		if tc.want == "" {
			require.Empty(t, got, "%v", tc.fields)
			continue
		}
		require.Contains(t, got, tc.want, "%v", tc.fields)
	}
}

// While a master the backend writes to is set to evict, Redis would take
// a write and may drop it once full: every request that may write is
// refused UNAVAILABLE, nothing sent, within a second or so; reads are
// served; writes are taken again once Redis no longer evicts.
func TestWritesRefusedWhileRedisEvicts(t *testing.T) {
	ctx := context.Background()
	s := redistest.NewServer(t)
	var logs logBuffer
	b, err := Open(ctx, Config{Addrs: []string{s.Addr()}, KeyPrefix: "evict:", Scripts: true, Logger: logs.logger()})
	require.NoError(t, err)
	defer b.Close()
	direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	defer direct.Close()

	_, err = pipeline(t, b, cmd("SET", "k", "1"))
	require.NoError(t, err)
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err())
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "1gb").Err())
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool {
		_, err = pipeline(t, b, cmd("SET", "k", "2"))
		return err != nil
	}, "writes refused once Redis evicts")
	require.ErrorIs(t, err, abi.StatusUnavailable)
	require.ErrorContains(t, err, "writes refused while Redis may evict what they write: redis "+s.Addr()+": maxmemory-policy allkeys-lru evicts keys")
	_, err = script(t, b, "return 1", abi.ScriptCall{Keys: [][]byte{[]byte("k")}})
	require.ErrorIs(t, err, abi.StatusUnavailable, "a script may write")
	// (The loop's writes before Redis's change was read went through.)
	_, err = pipeline(t, b, cmd("SET", "k", "refused"))
	require.ErrorIs(t, err, abi.StatusUnavailable)
	require.Contains(t, []abi.Reply{bulkR("1"), bulkR("2")}, one(t, b, "GET", "k"), "reads are served, and the refused writes were not sent")
	require.NotEmpty(t, b.Evicting(ctx))
	// An operator hears of it at once, once.
	require.Equal(t, 1, strings.Count(logs.String(), "[ERROR] Redis is set to evict keys"), logs.String())
	require.Contains(t, logs.String(), "maxmemory-policy allkeys-lru")

	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "0").Err())
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool {
		_, err = pipeline(t, b, cmd("SET", "k", "3"))
		return err == nil
	}, "writes taken again once Redis no longer evicts")
	require.Empty(t, b.Evicting(ctx))
	require.Contains(t, logs.String(), "[INFO]  Redis no longer evicts keys")
}

// Keys a Redis set to evict dropped before a reading stopped the
// backend's writes (or that another client's writes made it drop) are
// logged: Redis publishes nothing of an eviction, and the backend's
// records among them are lost.
func TestEvictedKeysAreLogged(t *testing.T) {
	ctx := context.Background()
	s := redistest.NewServer(t)
	var logs logBuffer
	b, err := Open(ctx, Config{Addrs: []string{s.Addr()}, KeyPrefix: "evicted:", Logger: logs.logger()})
	require.NoError(t, err)
	defer b.Close()
	direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	defer direct.Close()
	_, err = pipeline(t, b, cmd("SET", "k", "1"))
	require.NoError(t, err)
	b.Evicting(ctx) // a first reading: where evicted_keys counts from

	used, err := direct.Info(ctx, "memory").Result()
	require.NoError(t, err)
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory-policy", "allkeys-random").Err())
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", strconv.FormatInt(infoInt(parseInfo(used), "used_memory")+256<<10, 10)).Err())
	value := strings.Repeat("x", 4096)
	for i := range 1000 { // 4 MB, past the 256 KiB of room: Redis evicts
		require.NoError(t, direct.Set(ctx, "other:"+strconv.Itoa(i), value, 0).Err())
	}
	require.Positive(t, infoInt(parseInfo(direct.Info(ctx, "stats").Val()), "evicted_keys"))
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool {
		return strings.Contains(logs.String(), "[ERROR] Redis evicted keys")
	}, "the evictions logged")
	require.Contains(t, logs.String(), "redis="+s.Addr())
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "0").Err())
}

// logBuffer keeps what a logger writes, for a test to read while the
// bridge's reading goroutine writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: l, Level: hclog.Info})
}

// A plugin's DEL is sent as UNLINK: Redis frees a large value in a thread
// of its own (a DEL of a set of two million members held it 1.4 s; an
// UNLINK, 92 µs). The plugin gets DEL's reply.
func TestDeleteIsSentAsUnlink(t *testing.T) {
	ctx := context.Background()
	s := redistest.NewServer(t)
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "unlink:"})
	direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	defer direct.Close()

	members := make([]string, 1000)
	for i := range 10 {
		for j := range members {
			members[j] = strconv.Itoa(i*len(members) + j)
		}
		_, err := pipeline(t, b, cmd(append([]string{"SADD", "big"}, members...)...))
		require.NoError(t, err)
	}
	require.Equal(t, int64(10_000), direct.SCard(ctx, "unlink:big").Val())
	require.NoError(t, direct.ConfigResetStat(ctx).Err())

	require.Equal(t, integer(1), one(t, b, "DEL", "big", "absent"), "DEL's reply: the keys removed")
	require.Zero(t, direct.Exists(ctx, "unlink:big").Val())
	stats := parseInfo(direct.Info(ctx, "commandstats").Val())
	assert.Contains(t, stats["cmdstat_unlink"], "calls=1,")
	assert.NotContains(t, stats, "cmdstat_del")
	assert.NotEqual(t, "0", parseInfo(direct.Info(ctx, "stats").Val())["lazyfreed_objects"], "the set was freed in the background")
}

// FreesInline names the settings that leave Redis freeing overwritten and
// expired values in the thread every client waits on.
func TestFreesInlineNamesTheSettings(t *testing.T) {
	ctx := context.Background()
	s := redistest.NewServer(t, "--lazyfree-lazy-server-del", "no", "--lazyfree-lazy-expire", "no", "--lazyfree-lazy-user-del", "yes")
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "lazy:"})
	assert.Equal(t, "redis "+s.Addr()+": lazyfree-lazy-server-del no, lazyfree-lazy-expire no", b.FreesInline(ctx))

	direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	defer direct.Close()
	require.NoError(t, direct.ConfigSet(ctx, "lazyfree-lazy-server-del", "yes").Err())
	require.NoError(t, direct.ConfigSet(ctx, "lazyfree-lazy-expire", "yes").Err())
	assert.Empty(t, b.FreesInline(ctx))
}

// RepliesUnbounded says when neither an output buffer hard limit nor
// maxmemory-clients bounds the replies Redis builds.
func TestRepliesUnboundedNamesTheSettings(t *testing.T) {
	ctx := context.Background()
	s := redistest.NewServer(t, "--client-output-buffer-limit", "normal 0 0 0")
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "replies:"})
	assert.Equal(t, "redis "+s.Addr()+": client-output-buffer-limit normal 0 0 0, maxmemory-clients 0", b.RepliesUnbounded(ctx))

	direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	defer direct.Close()
	require.NoError(t, direct.ConfigSet(ctx, "client-output-buffer-limit", "normal 64mb 32mb 10").Err())
	assert.Empty(t, b.RepliesUnbounded(ctx))
	require.NoError(t, direct.ConfigSet(ctx, "client-output-buffer-limit", "normal 0 0 0").Err())
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory-clients", "100mb").Err())
	assert.Empty(t, b.RepliesUnbounded(ctx))
}

// Past maxmemory with noeviction, Redis refuses writes but still takes
// XREADGROUP, XCLAIM and XAUTOCLAIM, which add pending entries, and the
// EXPIRE family, which adds expiries: a backend reading one stream once
// per group took a shared Redis to 1.2 GB past a maxmemory of 256 MB (an
// outside check). The bridge refuses those while a reading finds Redis
// past its bound, and takes the writes that free memory.
func TestAllocatingWritesRefusedPastMaxmemory(t *testing.T) {
	ctx := context.Background()
	s := redistest.NewServer(t)
	b := openBridge(t, Config{Addrs: []string{s.Addr()}, KeyPrefix: "full:"})
	direct := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	defer direct.Close()
	for i := range 20 {
		one(t, b, "XADD", "s", "*", "n", strconv.Itoa(i))
	}
	for _, g := range []string{"g1", "g2", "g3"} {
		one(t, b, "XGROUP", "CREATE", "s", g, "0")
	}
	one(t, b, "SET", "k", "v")
	one(t, b, "SADD", "ints", "1", "2", "3")
	one(t, b, "SADD", "strs", "a")
	require.Equal(t, abi.ReplyArray, one(t, b, "XREADGROUP", "GROUP", "g1", "c", "COUNT", "10", "STREAMS", "s", ">").Kind)

	require.NoError(t, direct.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "1").Err())
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool { return b.full.Load() != nil }, "the bridge did not read that Redis is full")
	for _, c := range [][]string{
		{"XREADGROUP", "GROUP", "g2", "c", "COUNT", "10", "STREAMS", "s", ">"},
		{"XCLAIM", "s", "g1", "other", "0", "0-1"},
		{"XAUTOCLAIM", "s", "g1", "other", "0", "0"},
		{"EXPIRE", "k", "100"},
		{"GETEX", "k", "EX", "100"},
		{"SMOVE", "ints", "strs", "1"},
		{"RENAME", "k", "a-longer-name"},
	} {
		_, err := pipeline(t, b, cmd(c...))
		require.ErrorIs(t, err, abi.StatusUnavailable, c[0])
		require.ErrorContains(t, err, "OOM: used memory", c[0])
	}
	pel, err := direct.XPending(ctx, "full:s", "g2").Result()
	require.NoError(t, err)
	require.Zero(t, pel.Count, "the refused XREADGROUP reached Redis")
	// What frees memory still runs, and reads.
	require.Equal(t, integer(20), one(t, b, "XTRIM", "s", "MAXLEN", "0"))
	require.Equal(t, bulkR("v"), one(t, b, "GET", "k"))
	require.Equal(t, integer(1), one(t, b, "DEL", "k"))

	require.NoError(t, direct.ConfigSet(ctx, "maxmemory", "0").Err())
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool { return b.full.Load() == nil }, "the bridge did not read that Redis has room again")
	one(t, b, "XADD", "s", "*", "n", "again")
	require.Equal(t, abi.ReplyArray, one(t, b, "XREADGROUP", "GROUP", "g2", "c", "COUNT", "10", "STREAMS", "s", ">").Kind)
}

// Every write of the bridge's table that the Redis the tests run on takes
// past maxmemory (no denyoom flag) is either refused by the bridge there
// (allocatingPastMaxmemory) or known to free memory (freeingWrites): a
// command added to the table, or a Redis whose flags differ, fails here
// rather than letting a backend fill a shared Redis.
func TestEveryWriteRedisTakesPastMaxmemoryIsListed(t *testing.T) {
	direct := redis.NewClient(&redis.Options{Addr: redistest.Addr(t), Protocol: 2, DisableIdentity: true})
	defer direct.Close()
	infos, err := direct.Command(context.Background()).Result()
	require.NoError(t, err)
	listed := append(slices.Clone(allocatingPastMaxmemory), freeingWrites...)
	checked := 0
	for name, c := range commands {
		info := infos[name]
		require.NotNil(t, info, "Redis does not know %s", name)
		if c.readOnly || !slices.Contains(info.Flags, "write") || slices.Contains(info.Flags, "denyoom") {
			continue
		}
		checked++
		assert.True(t, slices.Contains(listed, name), "%s: Redis takes it past maxmemory; list it as allocating or freeing", name)
	}
	require.Positive(t, checked)
}
