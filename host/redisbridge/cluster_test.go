package redisbridge

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redistest"
)

func TestClusterPipelineAcrossSlots(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, redistest.Cluster(t), nil)
	require.True(t, f.b.isCluster)
	var sets, gets [][][]byte
	for i := range 50 {
		sets = append(sets, cmd("SET", fmt.Sprintf("k%d", i), fmt.Sprint(i)))
		gets = append(gets, cmd("GET", fmt.Sprintf("k%d", i)))
	}
	gets = append(gets, cmd("GET", "missing"), cmd("HSET", "k0", "f", "v"))
	rs, err := pipeline(t, f.b, sets...)
	require.NoError(t, err)
	for _, r := range rs {
		assert.Equal(t, status("OK"), r)
	}
	rs, err = pipeline(t, f.b, gets...)
	require.NoError(t, err)
	require.Len(t, rs, 52)
	for i := range 50 {
		assert.Equal(t, bulkR(fmt.Sprint(i)), rs[i], "in order, from every node")
		assert.Equal(t, fmt.Sprint(i), f.direct.Get(ctx, fmt.Sprintf("%sk%d", f.prefix, i)).Val())
	}
	assert.Equal(t, nilReply, rs[50])
	assert.Equal(t, abi.ReplyError, rs[51].Kind)

	var masters atomic.Int32
	require.NoError(t, f.direct.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		keys, _, err := n.Scan(ctx, 0, f.prefix+"*", 100).Result()
		if len(keys) > 0 {
			masters.Add(1)
		}
		return err
	}))
	assert.EqualValues(t, 3, masters.Load(), "the keys are on every master")
}

func TestClusterTransactionInOneSlot(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, redistest.Cluster(t), nil)
	rs, err := transaction(t, f.b,
		cmd("HSET", "{agent:1}:state", "v", "1"),
		cmd("INCR", "{agent:1}:version"),
		cmd("EXPIRE", "{agent:1}:state", "60"),
		cmd("MGET", "{agent:1}:version", "{agent:1}:missing"),
	)
	require.NoError(t, err)
	assert.Equal(t, []abi.Reply{integer(1), integer(1), integer(1), array(bulkR("1"), nilReply)}, rs)
	assert.Equal(t, "1", f.direct.HGet(ctx, f.prefix+"{agent:1}:state", "v").Val())

	// Keys in two slots: go-redis refuses before sending, and every
	// position carries Redis's CROSSSLOT error.
	rs, err = transaction(t, f.b, cmd("SET", "{a}x", "1"), cmd("SET", "{b}y", "2"))
	require.NoError(t, err)
	require.Len(t, rs, 2)
	for _, r := range rs {
		assert.Equal(t, abi.ReplyError, r.Kind)
		assert.True(t, strings.HasPrefix(string(r.Str), "CROSSSLOT"), "%s", r.Str)
	}
	assert.Zero(t, f.direct.Exists(ctx, f.prefix+"{a}x").Val(), "nothing ran")

	// One command naming keys of two slots: Redis's own CROSSSLOT reply.
	r := one(t, f.b, "MSET", "{a}x", "1", "{b}y", "2")
	assert.Equal(t, abi.ReplyError, r.Kind)
	assert.Contains(t, string(r.Str), "CROSSSLOT")
}

func TestClusterScripts(t *testing.T) {
	ctx := context.Background()
	addrs := redistest.Cluster(t)
	f := newFixture(t, addrs, withScripts)

	for _, a := range nodes(t, addrs) {
		n := redis.NewClient(&redis.Options{Addr: a, Protocol: 2})
		u, err := n.Do(ctx, "acl", "getuser", userPrefix+f.prefix).Result()
		_ = n.Close()
		require.NoError(t, err, "the ACL user exists on %s", a)
		assert.Contains(t, strings.Join(flatten(u), " "), "~"+f.prefix+"*")
	}

	const cas = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return redis.error_reply('CONFLICT stale') end
redis.call('SET', KEYS[1], ARGV[2])
return redis.call('INCR', KEYS[2])`
	var calls []abi.ScriptCall
	for i := range 20 { // agents spread over every node
		calls = append(calls, sc([]string{fmt.Sprintf("{agent:%d}:state", i), fmt.Sprintf("{agent:%d}:version", i)}, "", "s"))
	}
	// First run: the version is missing (nil ~= '' in Lua): CONFLICT.
	rs, err := script(t, f.b, cas, calls...)
	require.NoError(t, err)
	require.Len(t, rs, 20)
	for _, r := range rs {
		assert.Equal(t, abi.ReplyError, r.Kind)
	}
	_, err = pipeline(t, f.b, cmd("SET", "{agent:3}:version", "7"))
	require.NoError(t, err)
	rs, err = script(t, f.b, cas, sc([]string{"{agent:3}:state", "{agent:3}:version"}, "7", "new"))
	require.NoError(t, err)
	assert.Equal(t, integer(8), rs[0])
	assert.Equal(t, "new", f.direct.Get(ctx, f.prefix+"{agent:3}:state").Val())

	rs, err = script(t, f.b, "return redis.call('SET', KEYS[1], 'x') and redis.call('SET', KEYS[2], 'y')", sc([]string{"{a}1", "{b}2"}))
	require.NoError(t, err)
	assert.Equal(t, abi.ReplyError, rs[0].Kind, "keys of two slots in one call")
	assert.Contains(t, string(rs[0].Str), "CROSSSLOT")

	rs, err = script(t, f.b, "return redis.call('GET', ARGV[1])", sc([]string{"{z}k"}, "{z}elsewhere"))
	require.NoError(t, err)
	assert.True(t, refusedByRedis(string(rs[0].Str)), "%s", rs[0].Str)
}

// A slot moved behind the bridge's back: MOVED is followed, for a command
// alone and inside a pipeline.
func TestClusterFollowsMoved(t *testing.T) {
	ctx := context.Background()
	addrs := redistest.NewCluster(t)
	f := newFixture(t, addrs, nil)
	assert.Equal(t, status("OK"), one(t, f.b, "SET", "warm", "up")) // loads the slot map

	cc := f.direct.(*redis.ClusterClient)
	move := func(key string) {
		t.Helper()
		slot := int(cc.ClusterKeySlot(ctx, key).Val())
		var owner, target string
		shards, err := cc.ClusterShards(ctx).Result()
		require.NoError(t, err)
		for _, s := range shards {
			master := primary(t, s)
			owns := false
			for _, r := range s.Slots {
				owns = owns || (r.Start <= int64(slot) && int64(slot) <= r.End)
			}
			if owns {
				owner = master.ID
			} else if target == "" {
				target = master.ID
			}
		}
		for _, a := range addrs {
			n := redis.NewClient(&redis.Options{Addr: a, Protocol: 2})
			require.NoError(t, n.Do(ctx, "cluster", "setslot", slot, "node", target).Err(), "slot %d from %s to %s", slot, owner, target)
			_ = n.Close()
		}
		cc.ReloadState(ctx)
		redistest.WaitFor(t, 5*time.Second, 20*time.Millisecond, func() bool {
			return cc.Set(ctx, key, "probe", 0).Err() == nil
		}, "the move settles")
	}

	move(f.prefix + "alone")
	assert.Equal(t, status("OK"), one(t, f.b, "SET", "alone", "1"), "MOVED followed")
	assert.Equal(t, "1", f.direct.Get(ctx, f.prefix+"alone").Val())

	move(f.prefix + "piped")
	rs, err := pipeline(t, f.b, cmd("SET", "piped", "2"), cmd("SET", "other", "3"), cmd("GET", "piped"))
	require.NoError(t, err)
	assert.Equal(t, []abi.Reply{status("OK"), status("OK"), bulkR("2")}, rs, "MOVED inside a pipeline, sent again")
	assert.Equal(t, "2", f.direct.Get(ctx, f.prefix+"piped").Val())

	move(f.prefix + "{t}x")
	rs, err = transaction(t, f.b, cmd("SET", "{t}x", "4"), cmd("GET", "{t}x"))
	require.NoError(t, err)
	assert.Equal(t, []abi.Reply{status("OK"), bulkR("4")}, rs, "a transaction follows MOVED as a whole")
}

func TestClusterUnavailableQuickly(t *testing.T) {
	b, err := Open(context.Background(), Config{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, KeyPrefix: "p:"})
	require.NoError(t, err)
	defer b.Close()
	for _, req := range [][][]byte{cmd("GET", "k")} {
		var callErr error
		took := timed(func() { _, callErr = pipeline(t, b, req, cmd("GET", "j")) })
		require.ErrorIs(t, callErr, abi.StatusUnavailable)
		assert.Less(t, took, 2*time.Second)
		took = timed(func() { _, callErr = pipeline(t, b, req) })
		require.ErrorIs(t, callErr, abi.StatusUnavailable)
		assert.Less(t, took, 2*time.Second)
	}
}
