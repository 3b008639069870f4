package abi_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// args builds a command or a key list from strings; an empty string is an
// empty argument, which decodes as nil.
func args(ss ...string) [][]byte {
	if len(ss) == 0 {
		return nil
	}
	out := make([][]byte, len(ss))
	for i, s := range ss {
		if s != "" {
			out[i] = []byte(s)
		}
	}
	return out
}

// binaryArg holds bytes a text protocol would choke on: NUL, CR LF, and
// bytes that are not UTF-8.
var binaryArg = []byte{0, '\r', '\n', 0xff, 0x80, '$', '*'}

// Sample values, in the form decoding yields them: empty byte strings and
// empty argument lists are nil, empty request lists are empty slices.
var (
	samplePipeline = abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{
		args("SET", "{a1}:state", `{"x":1}`, "PX", "60000"),
		{[]byte("GET"), binaryArg},
		args("SET", "k", ""), // an empty value
		nil,                  // a command with no arguments encodes (the host refuses it)
	}}
	sampleTransaction = abi.RedisRequest{Mode: abi.RedisTransaction, Commands: [][][]byte{
		args("INCR", "{a1}:version"),
		args("HSET", "{a1}:state", "doc", `{"x":1}`),
		args("PEXPIRE", "{a1}:state", "3600000"),
	}}
	sampleScript = abi.RedisRequest{
		Mode:   abi.RedisScript,
		Script: []byte(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("SET", KEYS[1], ARGV[2]) end return nil`),
		Calls: []abi.ScriptCall{
			{Keys: args("{a1}:state"), Args: args("old", "new")},
			{Keys: args("{b}:x", "{b}:y"), Args: [][]byte{binaryArg, nil}},
			{}, // no keys, no args
		},
	}
	emptyRedisRequests = []abi.RedisRequest{
		{Mode: abi.RedisPipeline, Commands: [][][]byte{}},
		{Mode: abi.RedisTransaction, Commands: [][][]byte{}},
		{Mode: abi.RedisScript, Script: []byte("return 1"), Calls: []abi.ScriptCall{}},
		{Mode: abi.RedisScript, Calls: []abi.ScriptCall{}},
	}

	replyNil        = abi.Reply{Kind: abi.ReplyNil}
	replyOK         = abi.Reply{Kind: abi.ReplyStatus, Str: []byte("OK")}
	replyEmptyBulk  = abi.Reply{Kind: abi.ReplyBulk, Str: []byte{}}
	replyEmptyArray = abi.Reply{Kind: abi.ReplyArray, Array: []abi.Reply{}}
	replyNoPerm     = abi.Reply{Kind: abi.ReplyError, Str: []byte("NOPERM this user has no permissions to access one of the keys used as arguments")}
	replyMixed      = abi.Reply{Kind: abi.ReplyArray, Array: []abi.Reply{
		{Kind: abi.ReplyBulk, Str: binaryArg},
		replyNil,
		{Kind: abi.ReplyInt, Int: -7},
		{Kind: abi.ReplyArray, Array: []abi.Reply{replyOK, replyNoPerm, replyEmptyArray, replyEmptyBulk}},
	}}
	sampleReplies = []abi.Reply{
		replyNil,
		replyOK,
		{Kind: abi.ReplyStatus}, // an empty status decodes with a nil Str
		replyNoPerm,
		{Kind: abi.ReplyInt},
		{Kind: abi.ReplyInt, Int: math.MaxInt64},
		{Kind: abi.ReplyInt, Int: math.MinInt64},
		{Kind: abi.ReplyBulk, Str: []byte("v")},
		replyEmptyBulk,
		replyEmptyArray,
		replyMixed,
		nestedReply(abi.MaxReplyDepth, abi.Reply{Kind: abi.ReplyInt, Int: 1}),
	}
)

// nestedReply wraps inner in n arrays of one element each.
func nestedReply(n int, inner abi.Reply) abi.Reply {
	for i := 0; i < n; i++ {
		inner = abi.Reply{Kind: abi.ReplyArray, Array: []abi.Reply{inner}}
	}
	return inner
}

func replyBytes(r abi.Reply) []byte { return encoded(r.Encode) }

func repliesCodec(name string, rs []abi.Reply) codec {
	return codec{
		name:     name,
		want:     rs,
		encode:   func(e *abi.Encoder) { abi.EncodeReplies(e, rs) },
		decode:   func(d *abi.Decoder) any { return abi.DecodeReplies(d) },
		reencode: func(e *abi.Encoder, v any) { abi.EncodeReplies(e, v.([]abi.Reply)) },
	}
}

// redisCodecs lists the redis capability's messages; codecs() includes
// them, so TestRoundTrip, TestTruncated and TestTrailingBytes cover them.
func redisCodecs() []codec {
	cs := []codec{
		msgCodec("redis pipeline", samplePipeline),
		msgCodec("redis pipeline/one command", abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{args("GET", "k")}}),
		msgCodec("redis transaction", sampleTransaction),
		msgCodec("redis script", sampleScript),
		msgCodec("redis pipeline/empty", emptyRedisRequests[0]),
		msgCodec("redis transaction/empty", emptyRedisRequests[1]),
		msgCodec("redis script/no calls", emptyRedisRequests[2]),
		msgCodec("redis script/empty", emptyRedisRequests[3]),
		repliesCodec("redis replies", sampleReplies),
		repliesCodec("redis replies/empty", []abi.Reply{}),
		repliesCodec("redis replies/two at the depth limit", []abi.Reply{
			nestedReply(abi.MaxReplyDepth, replyNil), nestedReply(abi.MaxReplyDepth-1, replyEmptyArray),
		}),
	}
	for i, r := range sampleReplies {
		cs = append(cs, msgCodec(fmt.Sprintf("redis reply/%d kind %d", i, r.Kind), r))
	}
	return cs
}

// TestRedisBytes pins the byte layouts README.md documents.
func TestRedisBytes(t *testing.T) {
	req := func(r abi.RedisRequest) func(e *abi.Encoder) { return r.Encode }
	reply := func(r abi.Reply) func(e *abi.Encoder) { return r.Encode }
	tests := []struct {
		name string
		enc  func(e *abi.Encoder)
		want []byte
	}{
		{"pipeline", req(abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{args("GET", "k"), args("PING")}}),
			[]byte{1, 2, 2, 3, 'G', 'E', 'T', 1, 'k', 1, 4, 'P', 'I', 'N', 'G'}},
		{"pipeline empty", req(abi.RedisRequest{Mode: abi.RedisPipeline}), []byte{1, 0}},
		{"pipeline binary and empty arguments", req(abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{
			{[]byte("SET"), {0, 0xff}, {}}, {},
		}}), []byte{1, 2, 3, 3, 'S', 'E', 'T', 2, 0, 0xff, 0, 0}},
		{"transaction", req(abi.RedisRequest{Mode: abi.RedisTransaction, Commands: [][][]byte{args("INCR", "n")}}),
			[]byte{2, 1, 2, 4, 'I', 'N', 'C', 'R', 1, 'n'}},
		{"transaction empty", req(abi.RedisRequest{Mode: abi.RedisTransaction}), []byte{2, 0}},
		{"script", req(abi.RedisRequest{Mode: abi.RedisScript, Script: []byte("s"), Calls: []abi.ScriptCall{
			{Keys: args("k"), Args: args("a", "b")}, {},
		}}), []byte{3, 1, 's', 2, 1, 1, 'k', 2, 1, 'a', 1, 'b', 0, 0}},
		{"script no calls", req(abi.RedisRequest{Mode: abi.RedisScript, Script: []byte("s")}), []byte{3, 1, 's', 0}},
		{"pipeline ignores the script fields", req(abi.RedisRequest{
			Mode: abi.RedisPipeline, Commands: [][][]byte{args("PING")}, Script: []byte("s"), Calls: []abi.ScriptCall{{}},
		}), []byte{1, 1, 1, 4, 'P', 'I', 'N', 'G'}},
		{"script ignores the commands", req(abi.RedisRequest{
			Mode: abi.RedisScript, Script: []byte("s"), Commands: [][][]byte{args("PING")},
		}), []byte{3, 1, 's', 0}},

		{"reply nil", reply(replyNil), []byte{0}},
		{"reply nil ignores the other fields", reply(abi.Reply{Kind: abi.ReplyNil, Str: []byte("x"), Int: 3, Array: []abi.Reply{replyNil}}), []byte{0}},
		{"reply status", reply(replyOK), []byte{1, 2, 'O', 'K'}},
		{"reply error", reply(abi.Reply{Kind: abi.ReplyError, Str: []byte("ERR x")}), []byte{2, 5, 'E', 'R', 'R', ' ', 'x'}},
		{"reply int", reply(abi.Reply{Kind: abi.ReplyInt, Int: -2}), []byte{3, 3}},
		{"reply int ignores Str", reply(abi.Reply{Kind: abi.ReplyInt, Int: 64, Str: []byte("x")}), []byte{3, 0x80, 0x01}},
		{"reply bulk", reply(abi.Reply{Kind: abi.ReplyBulk, Str: []byte{0, 0xff}}), []byte{4, 2, 0, 0xff}},
		{"reply empty bulk", reply(replyEmptyBulk), []byte{4, 0}},
		{"reply nil bulk", reply(abi.Reply{Kind: abi.ReplyBulk}), []byte{4, 0}},
		{"reply empty array", reply(replyEmptyArray), []byte{5, 0}},
		{"reply array", reply(abi.Reply{Kind: abi.ReplyArray, Array: []abi.Reply{
			{Kind: abi.ReplyBulk, Str: []byte("a")}, replyNil,
		}}), []byte{5, 2, 4, 1, 'a', 0}},
		{"reply nested arrays", reply(nestedReply(2, replyEmptyArray)), []byte{5, 1, 5, 1, 5, 0}},
		{"replies", func(e *abi.Encoder) { abi.EncodeReplies(e, []abi.Reply{replyOK, replyNil}) }, []byte{2, 1, 2, 'O', 'K', 0}},
		{"replies empty", func(e *abi.Encoder) { abi.EncodeReplies(e, nil) }, []byte{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, encoded(tt.enc))
		})
	}
}

func TestRedisNumbers(t *testing.T) {
	assert.Equal(t, []uint8{1, 2, 3}, []uint8{uint8(abi.RedisPipeline), uint8(abi.RedisTransaction), uint8(abi.RedisScript)})
	assert.Equal(t, []uint8{0, 1, 2, 3, 4, 5}, []uint8{
		uint8(abi.ReplyNil), uint8(abi.ReplyStatus), uint8(abi.ReplyError),
		uint8(abi.ReplyInt), uint8(abi.ReplyBulk), uint8(abi.ReplyArray),
	})
	assert.Equal(t, 16, abi.MaxReplyDepth)
}

// TestReplyNilIsNotEmpty: nil, an empty bulk string, an empty status and an
// empty array are different replies on the wire and after decoding.
func TestReplyNilIsNotEmpty(t *testing.T) {
	replies := []abi.Reply{replyNil, replyEmptyBulk, {Kind: abi.ReplyStatus}, {Kind: abi.ReplyError}, replyEmptyArray}
	msgs := make([][]byte, len(replies))
	for i, r := range replies {
		msgs[i] = encoded(r.Encode)
		for j := 0; j < i; j++ {
			assert.NotEqual(t, msgs[j], msgs[i], "%v and %v encode alike", replies[j].Kind, r.Kind)
		}
		var got abi.Reply
		d := abi.NewDecoder(msgs[i])
		got.Decode(d)
		require.NoError(t, d.Finish())
		assert.Equal(t, r.Kind, got.Kind)
	}

	var got abi.Reply
	d := abi.NewDecoder([]byte{byte(abi.ReplyBulk), 0})
	got.Decode(d)
	require.NoError(t, d.Finish())
	assert.NotNil(t, got.Str, "an empty bulk string decodes as a non-nil empty Str")
	assert.Empty(t, got.Str)

	d = abi.NewDecoder([]byte{byte(abi.ReplyNil)})
	got.Decode(d)
	require.NoError(t, d.Finish())
	assert.Nil(t, got.Str)
	assert.Nil(t, got.Array)

	d = abi.NewDecoder([]byte{byte(abi.ReplyArray), 0})
	got.Decode(d)
	require.NoError(t, d.Finish())
	assert.NotNil(t, got.Array, "an empty array decodes as a non-nil empty Array")
}

// TestReplyDepth: arrays nest at most MaxReplyDepth deep; one more is
// malformed, and a hostile nesting far deeper stops at the limit.
func TestReplyDepth(t *testing.T) {
	decode := func(msg []byte) (abi.Reply, error) {
		var r abi.Reply
		d := abi.NewDecoder(msg)
		require.NotPanics(t, func() { r.Decode(d) })
		return r, d.Finish()
	}
	int1 := abi.Reply{Kind: abi.ReplyInt, Int: 1}

	// MaxReplyDepth arrays, the innermost at depth MaxReplyDepth-1, with an
	// int at depth MaxReplyDepth: accepted.
	deepest := nestedReply(abi.MaxReplyDepth, int1)
	got, err := decode(encoded(deepest.Encode))
	require.NoError(t, err)
	assert.Equal(t, deepest, got)

	// The same depth with an empty array innermost: accepted.
	_, err = decode(replyBytes(nestedReply(abi.MaxReplyDepth-1, replyEmptyArray)))
	require.NoError(t, err)

	// One array more, even an empty one or one holding a scalar: malformed.
	for _, r := range []abi.Reply{nestedReply(abi.MaxReplyDepth+1, int1), nestedReply(abi.MaxReplyDepth, replyEmptyArray)} {
		msg := encoded(r.Encode)
		_, err = decode(msg)
		assert.ErrorIs(t, err, abi.ErrMalformed, "%x", msg)
	}

	// The limit applies to every reply of a response on its own.
	msg := encoded(func(e *abi.Encoder) {
		abi.EncodeReplies(e, []abi.Reply{deepest, deepest, int1})
	})
	d := abi.NewDecoder(msg)
	rs := abi.DecodeReplies(d)
	require.NoError(t, d.Finish())
	assert.Len(t, rs, 3)
	msg = encoded(func(e *abi.Encoder) {
		abi.EncodeReplies(e, []abi.Reply{deepest, nestedReply(abi.MaxReplyDepth+1, int1)})
	})
	d = abi.NewDecoder(msg)
	abi.DecodeReplies(d)
	assert.ErrorIs(t, d.Finish(), abi.ErrMalformed)

	// A million nested arrays: the decoder gives up at the limit.
	hostile := append(bytes.Repeat([]byte{byte(abi.ReplyArray), 1}, 1_000_000), byte(abi.ReplyNil))
	_, err = decode(hostile)
	assert.ErrorIs(t, err, abi.ErrMalformed)
}

func TestRedisDecodeErrors(t *testing.T) {
	req := func(d *abi.Decoder) { (&abi.RedisRequest{}).Decode(d) }
	reply := func(d *abi.Decoder) { (&abi.Reply{}).Decode(d) }
	replies := func(d *abi.Decoder) { abi.DecodeReplies(d) }
	huge := encoded(func(e *abi.Encoder) { e.Uvarint(1 << 40) })
	tests := []struct {
		name   string
		msg    []byte
		decode func(d *abi.Decoder)
		want   error
	}{
		{"request empty", nil, req, abi.ErrTruncated},
		{"mode 0", []byte{0, 0}, req, abi.ErrMalformed},
		{"mode 4", []byte{4, 0}, req, abi.ErrMalformed},
		{"mode 255", []byte{255}, req, abi.ErrMalformed},
		{"pipeline without count", []byte{1}, req, abi.ErrTruncated},
		{"commands beyond the input", []byte{1, 3, 0, 0}, req, abi.ErrMalformed},
		{"huge command count", append([]byte{2}, huge...), req, abi.ErrMalformed},
		{"arguments beyond the input", []byte{1, 1, 3, 0, 0}, req, abi.ErrMalformed},
		{"argument longer than the input", []byte{1, 1, 1, 5, 'G', 'E', 'T'}, req, abi.ErrTruncated},
		{"script truncated", []byte{3, 4, 'r', 'e'}, req, abi.ErrTruncated},
		{"script without calls", []byte{3, 0}, req, abi.ErrTruncated},
		{"script calls beyond the input", []byte{3, 0, 2, 0, 0, 0}, req, abi.ErrMalformed},
		{"huge script call count", append([]byte{3, 0}, huge...), req, abi.ErrMalformed},
		{"script keys beyond the input", []byte{3, 0, 1, 3, 0, 0}, req, abi.ErrMalformed},
		{"script call shorter than two bytes", []byte{3, 0, 1, 0}, req, abi.ErrMalformed},
		{"script call without args", []byte{3, 0, 1, 1, 0}, req, abi.ErrTruncated},
		{"reply empty", nil, reply, abi.ErrTruncated},
		{"reply kind 6", []byte{6}, reply, abi.ErrMalformed},
		{"reply kind 255", []byte{255, 0}, reply, abi.ErrMalformed},
		{"reply status truncated", []byte{1, 2, 'O'}, reply, abi.ErrTruncated},
		{"reply int truncated", []byte{3, 0x80}, reply, abi.ErrTruncated},
		{"reply int overflows", []byte{3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, reply, abi.ErrMalformed},
		{"reply array beyond the input", []byte{5, 2, 0}, reply, abi.ErrMalformed},
		{"reply huge array", append([]byte{5}, huge...), reply, abi.ErrMalformed},
		{"reply array element bad", []byte{5, 1, 9}, reply, abi.ErrMalformed},
		{"replies empty", nil, replies, abi.ErrTruncated},
		{"replies beyond the input", []byte{2, 0}, replies, abi.ErrMalformed},
		{"huge replies count", huge, replies, abi.ErrMalformed},
		{"replies trailing byte", []byte{1, 0, 0}, replies, abi.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := abi.NewDecoder(tt.msg)
			require.NotPanics(t, func() { tt.decode(d) })
			assert.ErrorIs(t, d.Finish(), tt.want)
		})
	}

	// The smallest valid messages decode.
	for _, msg := range [][]byte{{1, 0}, {2, 1, 0}, {3, 0, 0}, {3, 0, 1, 0, 0}} {
		d := abi.NewDecoder(msg)
		(&abi.RedisRequest{}).Decode(d)
		assert.NoError(t, d.Finish(), "%x", msg)
	}
}

// TestRedisDecodeAliases records that arguments, keys, the script and
// reply strings are views of the input (the host reads requests in place
// from guest memory; the SDK keeps replies in its buffer).
func TestRedisDecodeAliases(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) {
		(&abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{args("GET", "k")}}).Encode(e)
	})
	var r abi.RedisRequest
	d := abi.NewDecoder(msg)
	r.Decode(d)
	require.NoError(t, d.Finish())
	msg[len(msg)-1] = 'K'
	assert.Equal(t, []byte("K"), r.Commands[0][1])

	msg = encoded(func(e *abi.Encoder) {
		(&abi.RedisRequest{Mode: abi.RedisScript, Script: []byte("s"), Calls: []abi.ScriptCall{{Keys: args("k"), Args: args("a")}}}).Encode(e)
	})
	d = abi.NewDecoder(msg)
	r.Decode(d)
	require.NoError(t, d.Finish())
	copy(msg, []byte{3, 1, 'S', 1, 1, 1, 'K', 1, 1, 'A'})
	assert.Equal(t, []byte("S"), r.Script)
	assert.Equal(t, [][]byte{[]byte("K")}, r.Calls[0].Keys)
	assert.Equal(t, [][]byte{[]byte("A")}, r.Calls[0].Args)

	msg = encoded(func(e *abi.Encoder) { abi.EncodeReplies(e, []abi.Reply{{Kind: abi.ReplyBulk, Str: []byte("v")}}) })
	d = abi.NewDecoder(msg)
	rs := abi.DecodeReplies(d)
	require.NoError(t, d.Finish())
	msg[3] = 'V'
	assert.Equal(t, []byte("V"), rs[0].Str)
}

// TestRedisDecodeResets: decoding into a used value leaves nothing of the
// old value behind.
func TestRedisDecodeResets(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) {
		(&abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{args("PING")}}).Encode(e)
	})
	r := sampleScript
	r.Commands = sampleTransaction.Commands
	d := abi.NewDecoder(msg)
	r.Decode(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{args("PING")}}, r)

	msg = encoded(func(e *abi.Encoder) { (&abi.RedisRequest{Mode: abi.RedisScript}).Encode(e) })
	r = samplePipeline
	d = abi.NewDecoder(msg)
	r.Decode(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, abi.RedisRequest{Mode: abi.RedisScript, Calls: []abi.ScriptCall{}}, r)

	rep := replyMixed
	rep.Str, rep.Int = []byte("old"), 9
	d = abi.NewDecoder([]byte{byte(abi.ReplyNil)})
	rep.Decode(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, replyNil, rep)
}

func TestReplyErr(t *testing.T) {
	err := replyNoPerm.Err()
	require.Error(t, err)
	assert.ErrorIs(t, err, abi.StatusInternal)
	assert.Equal(t, &abi.Error{Status: abi.StatusInternal, Message: "redis: " + string(replyNoPerm.Str)}, err)
	for _, r := range []abi.Reply{replyNil, replyOK, replyEmptyBulk, replyEmptyArray, {Kind: abi.ReplyInt, Int: 1}, replyMixed} {
		assert.NoError(t, r.Err(), "kind %d", r.Kind)
	}
	// Refused by Redis for its own state: did nothing, may be asked again.
	for _, msg := range []string{"OOM command not allowed when used memory > 'maxmemory'.", "LOADING Redis is loading the dataset in memory",
		"BUSY Redis is busy running a script.", "READONLY You can't write against a read only replica.", "MISCONF Redis is configured to save RDB snapshots"} {
		r := abi.Reply{Kind: abi.ReplyError, Str: []byte(msg)}
		assert.ErrorIs(t, r.Err(), abi.StatusUnavailable, msg)
		assert.ErrorContains(t, r.Err(), msg)
	}
	r := abi.Reply{Kind: abi.ReplyError, Str: []byte("OOMPH not a refusal")}
	assert.ErrorIs(t, r.Err(), abi.StatusInternal)
}

// redisExample renders the example of README.md section 12.7: a pipeline
// and its response, byte by byte, as the real decoders read them.
func redisExample() string {
	req := abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{
		args("SET", "k", "v"), args("GET", "k"), args("GET", "x"),
	}}
	reqBytes := encoded(req.Encode)
	replies := []abi.Reply{replyOK, {Kind: abi.ReplyBulk, Str: []byte("v")}, replyNil}
	respBytes := encoded(func(e *abi.Encoder) {
		e.U8(uint8(abi.StatusOK))
		abi.EncodeReplies(e, replies)
	})

	// The request, field by field; decoding it whole must give req back.
	d := abi.NewDecoder(reqBytes)
	var got abi.RedisRequest
	got.Decode(d)
	if err := d.Finish(); err != nil || !sameValue(reflect.ValueOf(got), reflect.ValueOf(req)) {
		panic(fmt.Sprintf("the example request does not round-trip: %v", err))
	}
	fields := []exampleField{
		{read: func(d *abi.Decoder) string { return fmt.Sprintf("mode %d = pipeline", d.U8()) }},
		{read: func(d *abi.Decoder) string { return fmt.Sprintf("%d commands", d.Uvarint()) }},
	}
	for i, c := range req.Commands {
		fields = append(fields, exampleField{read: func(d *abi.Decoder) string {
			return fmt.Sprintf("command %d: %d arguments", i+1, d.Uvarint())
		}})
		for range c {
			fields = append(fields, exampleField{read: func(d *abi.Decoder) string { return fmt.Sprintf("%q", d.View()) }})
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "request:  %x\n", reqBytes)
	annotate(&b, reqBytes, fields)

	fields = []exampleField{
		{read: func(d *abi.Decoder) string { return fmt.Sprintf("status %d = %s", d.U8(), abi.StatusOK) }},
		{read: func(d *abi.Decoder) string { return fmt.Sprintf("%d replies", d.Uvarint()) }},
	}
	for range replies {
		fields = append(fields, exampleField{read: func(d *abi.Decoder) string {
			var r abi.Reply
			r.Decode(d)
			switch r.Kind {
			case abi.ReplyNil:
				return "nil"
			case abi.ReplyStatus:
				return fmt.Sprintf("status %q", r.Str)
			case abi.ReplyBulk:
				return fmt.Sprintf("bulk %q", r.Str)
			}
			panic("unexpected reply kind in the example")
		}})
	}
	fmt.Fprintf(&b, "response: %x\n", respBytes)
	annotate(&b, respBytes, fields)
	return b.String()
}

// The example of README.md section 12.7. If this output changes, the
// README must change with it (TestREADMERedisExample checks that).
func Example_redisPipeline() {
	fmt.Print(redisExample())
	// Output:
	// request:  01030303534554016b01760203474554016b02034745540178
	// 01                          mode 1 = pipeline
	// 03                          3 commands
	// 03                          command 1: 3 arguments
	// 03 53 45 54                 "SET"
	// 01 6b                       "k"
	// 01 76                       "v"
	// 02                          command 2: 2 arguments
	// 03 47 45 54                 "GET"
	// 01 6b                       "k"
	// 02                          command 3: 2 arguments
	// 03 47 45 54                 "GET"
	// 01 78                       "x"
	// response: 000301024f4b04017600
	// 00                          status 0 = ok
	// 03                          3 replies
	// 01 02 4f 4b                 status "OK"
	// 04 01 76                    bulk "v"
	// 00                          nil
}

func TestREADMERedisExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(readme), "```\n"+redisExample()+"```\n"),
		"README.md must contain the output of Example_redisPipeline verbatim:\n%s", redisExample())

	// The array example of section 12.2.
	arr := abi.Reply{Kind: abi.ReplyArray, Array: []abi.Reply{{Kind: abi.ReplyBulk, Str: []byte("a")}, replyNil}}
	want := "`" + spacedHex(encoded(arr.Encode)) + "` is an array of the bulk string \"a\" and\nnil"
	assert.True(t, strings.Contains(string(readme), want), "README.md must contain %q", want)
}

// TestREADMERedisDepth keeps the depth limit README.md states equal to
// the decoder's.
func TestREADMERedisDepth(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, want := range []string{
		fmt.Sprintf("accepts arrays at most %d deep", abi.MaxReplyDepth),
		fmt.Sprintf("an array at\ndepth %d (inside %d others) makes the message malformed", abi.MaxReplyDepth, abi.MaxReplyDepth),
	} {
		assert.True(t, strings.Contains(string(readme), want), "README.md must contain %q", want)
	}
}
