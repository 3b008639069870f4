package redisbridge

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redistest"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{}) // go-redis logs every refused dial of the outage tests
	redistest.Main(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// fixture is a bridge on a real Redis, its prefix, and a direct go-redis
// client to look at the raw keys.
type fixture struct {
	b      *Bridge
	prefix string
	addrs  []string
	direct redis.UniversalClient
}

// newFixture opens a bridge on addrs (none: redistest.Addr) with a fresh
// prefix; edit changes the config before Open.
func newFixture(t testing.TB, addrs []string, edit func(*Config)) *fixture {
	t.Helper()
	if len(addrs) == 0 {
		addrs = []string{redistest.Addr(t)}
	}
	f := &fixture{prefix: redistest.Prefix(t, addrs...), addrs: addrs}
	cfg := Config{Addrs: addrs, KeyPrefix: f.prefix}
	if edit != nil {
		edit(&cfg)
	}
	f.b = openBridge(t, cfg)
	f.direct = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = f.direct.Close() })
	return f
}

// openBridge opens a bridge closed at cleanup. Its scripts user, if any,
// goes with the keys at the cleanup of redistest.Prefix.
func openBridge(t testing.TB, cfg Config) *Bridge {
	t.Helper()
	b, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

// nodes returns every node's address: addrs themselves for a single node,
// all masters and replicas of a cluster.
func nodes(t testing.TB, addrs []string) []string {
	if len(addrs) == 1 {
		return addrs
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	var out []string
	shards, err := c.ClusterShards(context.Background()).Result()
	require.NoError(t, err)
	for _, s := range shards {
		for _, n := range s.Nodes {
			out = append(out, net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10)))
		}
	}
	return out
}

// primary returns the master among a shard's nodes.
func primary(t testing.TB, s redis.ClusterShard) redis.Node {
	t.Helper()
	for _, n := range s.Nodes {
		if n.Role == "master" {
			return n
		}
	}
	require.Failf(t, "no master", "shard %+v", s)
	return redis.Node{}
}

// cmd makes a command from strings.
func cmd(args ...string) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

// call runs req through the wire encoding, as the host function does, and
// returns the decoded replies or the response's error.
func roundTrip(t testing.TB, b *Bridge, req *abi.RedisRequest) ([]abi.Reply, error) {
	t.Helper()
	return callCtx(t, context.Background(), b, req)
}

func callCtx(t testing.TB, ctx context.Context, b *Bridge, req *abi.RedisRequest) ([]abi.Reply, error) {
	t.Helper()
	var enc abi.Encoder
	req.Encode(&enc)
	var got abi.RedisRequest
	d := abi.NewDecoder(enc.Bytes())
	got.Decode(d)
	require.NoError(t, d.Finish())

	var out abi.Encoder
	b.Do(ctx, &got, &out)
	body, err := abi.ParseResponse(out.Bytes())
	if err != nil {
		return nil, err
	}
	d = abi.NewDecoder(body)
	replies := abi.DecodeReplies(d)
	require.NoError(t, d.Finish(), "response body")
	return replies, nil
}

func pipeline(t testing.TB, b *Bridge, cmds ...[][]byte) ([]abi.Reply, error) {
	t.Helper()
	return roundTrip(t, b, &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: cmds})
}

func transaction(t testing.TB, b *Bridge, cmds ...[][]byte) ([]abi.Reply, error) {
	t.Helper()
	return roundTrip(t, b, &abi.RedisRequest{Mode: abi.RedisTransaction, Commands: cmds})
}

func script(t testing.TB, b *Bridge, src string, calls ...abi.ScriptCall) ([]abi.Reply, error) {
	t.Helper()
	return roundTrip(t, b, &abi.RedisRequest{Mode: abi.RedisScript, Script: []byte(src), Calls: calls})
}

// one runs a single command that must be answered.
func one(t testing.TB, b *Bridge, args ...string) abi.Reply {
	t.Helper()
	rs, err := pipeline(t, b, cmd(args...))
	require.NoError(t, err)
	require.Len(t, rs, 1)
	return rs[0]
}

// Reply constructors for expectations.
func status(s string) abi.Reply { return abi.Reply{Kind: abi.ReplyStatus, Str: []byte(s)} }
func bulkR(s string) abi.Reply  { return abi.Reply{Kind: abi.ReplyBulk, Str: []byte(s)} }
func integer(n int64) abi.Reply { return abi.Reply{Kind: abi.ReplyInt, Int: n} }
func array(rs ...abi.Reply) abi.Reply {
	if rs == nil {
		rs = []abi.Reply{}
	}
	return abi.Reply{Kind: abi.ReplyArray, Array: rs}
}

var nilReply = abi.Reply{Kind: abi.ReplyNil}

func keys(ks ...string) [][]byte { return cmd(ks...) }

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}
