package redisbridge

import (
	"bytes"
	"context"
	"crypto/sha1"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// BenchmarkDo compares a GET through Bridge.Do, with the request decoded
// and the reply encoded as the host function does, with the same GET
// issued directly with go-redis, in one run: one caller, and 64.
func BenchmarkDo(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, nil, nil)
	value := bytes.Repeat([]byte("v"), 100)
	require.NoError(b, f.direct.Set(ctx, f.prefix+"bench", value, 0).Err())

	var enc abi.Encoder
	(&abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("GET", "bench")}}).Encode(&enc)
	reqBytes := enc.Bytes()
	want := func() []byte {
		var e abi.Encoder
		e.U8(uint8(abi.StatusOK))
		abi.EncodeReplies(&e, []abi.Reply{{Kind: abi.ReplyBulk, Str: value}})
		return e.Bytes()
	}()

	bridge := func(b *testing.B, e *abi.Encoder, d *abi.Decoder) {
		var req abi.RedisRequest
		d.Reset(reqBytes)
		req.Decode(d)
		if err := d.Finish(); err != nil {
			b.Fatal(err)
		}
		e.Reset()
		f.b.Do(ctx, &req, e)
		if !bytes.Equal(e.Bytes(), want) {
			b.Fatalf("response %q", e.Bytes())
		}
	}
	direct := func(b *testing.B) {
		v, err := f.direct.Get(ctx, f.prefix+"bench").Bytes()
		if err != nil || len(v) != len(value) {
			b.Fatal(err)
		}
	}

	b.Run("bridge", func(b *testing.B) {
		b.ReportAllocs()
		var e abi.Encoder
		d := abi.NewDecoder(nil)
		for b.Loop() {
			bridge(b, &e, d)
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			direct(b)
		}
	})
	par := max(64/runtime.GOMAXPROCS(0), 1)
	b.Run("bridge-64", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			var e abi.Encoder
			d := abi.NewDecoder(nil)
			for pb.Next() {
				bridge(b, &e, d)
			}
		})
	})
	b.Run("direct-64", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				direct(b)
			}
		})
	})
}

// BenchmarkOverhead is the bridge's own work for that GET, without the
// round trip: decode the request, check and prefix the command, build the
// go-redis command, transcode the raw reply and encode the response.
func BenchmarkOverhead(b *testing.B) {
	var enc abi.Encoder
	(&abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("GET", "bench")}}).Encode(&enc)
	reqBytes := enc.Bytes()
	raw := append(append([]byte("$100\r\n"), bytes.Repeat([]byte("v"), 100)...), "\r\n"...)
	bridge := &Bridge{prefix: "sht:0123456789abcdef:", allowed: commands}
	ctx := context.Background()
	b.ReportAllocs()
	var e abi.Encoder
	d := abi.NewDecoder(nil)
	for b.Loop() {
		var req abi.RedisRequest
		d.Reset(reqBytes)
		req.Decode(d)
		if err := d.Finish(); err != nil {
			b.Fatal(err)
		}
		in := req.Commands[0]
		c := lookup(bridge.allowed, in[0])
		arena := newArgArena(len(in), 64, len(in))
		args, first, err := c.args(in, bridge.prefix, &arena)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.bounded(in); err != nil {
			b.Fatal(err)
		}
		budget := new(replyBudget)
		budget.left.Store(DefaultMaxReplyBytes)
		cmds := newCmds(ctx, budget, []call{{args: args, first: first}})
		if _, err := cmds[0].Write(raw); err != nil {
			b.Fatal(err)
		}
		e.Reset()
		e.U8(uint8(abi.StatusOK))
		e.Uvarint(1)
		appendRaw(&e, cmds[0].buf)
	}
}

// BenchmarkChecks is what the cost bounds add to checking and prefixing
// one command (args), for a command without a bound (GET) and for the
// bounded kinds: a count, an index range, a LIMIT, an allocation offset.
func BenchmarkChecks(b *testing.B) {
	for _, in := range [][][]byte{
		cmd("GET", "k"),
		cmd("SRANDMEMBER", "s", "-10"),
		cmd("LRANGE", "l", "0", "99"),
		cmd("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "100"),
		cmd("SETRANGE", "k", "1024", "v"),
	} {
		c := lookup(commands, in[0])
		b.Run(string(in[0])+"/args", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				arena := newArgArena(len(in), 64, len(in))
				if _, _, err := c.args(in, "sht:0123456789abcdef:", &arena); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(in[0])+"/args+bounds", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				arena := newArgArena(len(in), 64, len(in))
				if _, _, err := c.args(in, "sht:0123456789abcdef:", &arena); err != nil {
					b.Fatal(err)
				}
				if _, err := c.bounded(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScriptSHA is the per-call cost of finding the SHA-1 of a 4.9 KB
// script the guest sends with every request (a cache lookup), against
// computing it.
//
//	go test ./host/redisbridge -run '^$' -bench ScriptSHA
func BenchmarkScriptSHA(b *testing.B) {
	script := bytes.Repeat([]byte("local x = redis.call('get', KEYS[1])\n"), 4900/37)
	b.Run("cached", func(b *testing.B) {
		c := newScriptCache()
		c.sha(script)
		for b.Loop() {
			_, _ = c.sha(script)
		}
	})
	b.Run("sha1", func(b *testing.B) {
		for b.Loop() {
			_ = sha1.Sum(script)
		}
	})
}

// BenchmarkDoScript is a script request as the redis plugin sends its
// writes: one call of four keys and six arguments (a put), and 100 such
// calls in one request (a bulk put), each through the bridge, with its
// allocations (the round trip included).
func BenchmarkDoScript(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, nil, withScripts)
	put := sc([]string{"s:{a0}", "{idx}:s", "{idx}:s:x", "{idx}:s:t"}, "sput", "p", "", "1764000000000000000", `{"step":1,"goal":"benchmark"}`, "60000")
	for _, n := range []int{1, 100} {
		calls := make([]abi.ScriptCall, n)
		for i := range calls {
			calls[i] = put
		}
		req := &abi.RedisRequest{Mode: abi.RedisScript, Script: []byte("return #KEYS + #ARGV"), Calls: calls}
		b.Run("calls="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			var e abi.Encoder
			for b.Loop() {
				e.Reset()
				if err := f.b.Do(ctx, req, &e); err != nil || e.Bytes()[0] != byte(abi.StatusOK) {
					b.Fatalf("%v %q", err, e.Bytes())
				}
			}
		})
	}
}
