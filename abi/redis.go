package abi

import (
	"bytes"
	"slices"
)

// CapabilityRedis is the "storagehost_redis" module (ABI 1.1): Redis
// commands run through the host's connection pool for this backend.
//
//	call(req_ptr i32, req_len i32, out_ptr i32, out_cap i32) -> i32
//	result(out_ptr i32, out_cap i32) -> i32
//
// with the same output protocol as storagehost_kv. The request is a
// RedisRequest; the response is a status byte and, for StatusOK, one Reply
// per command (one for a script). A Redis error reply to one command is a
// ReplyError inside an OK response; the status is not OK only when the
// request is refused (StatusInvalid: a command outside the backend's
// allowlist, a malformed request) or Redis cannot be reached
// (StatusUnavailable).
//
// The host confines every key to the backend's namespace: it prefixes each
// key argument of each command, and each KEYS entry of a script, with the
// backend's key prefix, so a plugin sees a keyspace of its own. Plugins
// must keep one agent's keys in one hash slot ({agent} hash tags) for
// Redis Cluster; the prefix never contains braces.
const CapabilityRedis Capability = "redis"

// CapabilityRedisScripts (ABI 1.4) is the grant to run Lua scripts
// (RedisScript requests) through CapabilityRedis. It has no module: a
// plugin never imports it, it declares it in its Metadata, beside
// CapabilityRedis, and a host loads the plugin only where the backend's
// configuration grants scripts. A plugin that runs scripts SHOULD declare
// it, so that a backend that would refuse every script is refused at load
// rather than at its first request.
const CapabilityRedisScripts Capability = "redis_scripts"

// Function names of the redis capability module.
const (
	FuncRedisCall   = "call"
	FuncRedisResult = "result"
)

// RedisMode says how the commands of a RedisRequest are sent.
type RedisMode uint8

// Redis request modes.
const (
	// RedisPipeline sends the commands in one round trip (one per node on a
	// cluster); each gets its own reply; they are not atomic.
	RedisPipeline RedisMode = 1
	// RedisTransaction wraps the commands in MULTI/EXEC, one round trip:
	// no other client's command runs between them, but a command that
	// fails while it runs gets its error reply and the others still take
	// effect (Redis does not roll back); only a transaction Redis discards
	// whole (EXECABORT, a command it could not queue) runs none. On a
	// cluster every key must be in one hash slot.
	RedisTransaction RedisMode = 2
	// RedisScript runs one Lua script once per entry of Calls, each with
	// its own keys and args (EVALSHA, falling back to EVAL), pipelined in
	// one round trip; one reply per call. Needs the backend's scripts grant
	// (CapabilityRedisScripts).
	RedisScript RedisMode = 3
)

// RedisRequest is the request of storagehost_redis.call: mode u8, then for
// a pipeline or transaction count, each command as count then each
// argument bytes (the command name first); for a script, script bytes,
// then count and each call as keys (count, bytes each) and args (count,
// bytes each).
type RedisRequest struct {
	Mode     RedisMode
	Commands [][][]byte
	Script   []byte
	Calls    []ScriptCall
}

// ScriptCall is one invocation of a RedisScript request's script.
type ScriptCall struct {
	Keys [][]byte
	Args [][]byte
}

func (e *Encoder) byteList(l [][]byte) {
	e.Uvarint(uint64(len(l)))
	for _, b := range l {
		e.BytesField(b)
	}
}

func (d *Decoder) byteList() [][]byte {
	n := d.Count(1)
	if n == 0 {
		return nil
	}
	l := prealloc[[]byte](n)
	for i := 0; i < n && d.err == nil; i++ {
		l = append(l, d.View())
	}
	return l
}

// Encode appends r.
func (r *RedisRequest) Encode(e *Encoder) {
	e.U8(uint8(r.Mode))
	if r.Mode == RedisScript {
		e.BytesField(r.Script)
		e.Uvarint(uint64(len(r.Calls)))
		for i := range r.Calls {
			e.byteList(r.Calls[i].Keys)
			e.byteList(r.Calls[i].Args)
		}
		return
	}
	e.Uvarint(uint64(len(r.Commands)))
	for _, c := range r.Commands {
		e.byteList(c)
	}
}

// Decode reads what Encode wrote. Arguments alias the decoder's input.
func (r *RedisRequest) Decode(d *Decoder) {
	*r = RedisRequest{Mode: RedisMode(d.U8())}
	switch r.Mode {
	case RedisPipeline, RedisTransaction:
		n := d.Count(1)
		r.Commands = prealloc[[][]byte](n)
		for i := 0; i < n && d.err == nil; i++ {
			r.Commands = append(r.Commands, d.byteList())
		}
	case RedisScript:
		r.Script = d.View()
		n := d.Count(2)
		r.Calls = prealloc[ScriptCall](n)
		for i := 0; i < n && d.err == nil; i++ {
			keys := d.byteList()
			r.Calls = append(r.Calls, ScriptCall{Keys: keys, Args: d.byteList()})
		}
	default:
		d.fail(ErrMalformed)
	}
}

// ReplyKind is the type of a Redis reply (RESP2).
type ReplyKind uint8

// Reply kinds. Nil, an empty bulk string and an error are distinct.
const (
	ReplyNil    ReplyKind = 0 // no value (a missing key, a nil array)
	ReplyStatus ReplyKind = 1 // a simple string, like OK
	ReplyError  ReplyKind = 2 // an error reply, like WRONGTYPE ...
	ReplyInt    ReplyKind = 3 // an integer
	ReplyBulk   ReplyKind = 4 // a bulk string, possibly empty
	ReplyArray  ReplyKind = 5 // an array of replies, possibly empty
)

// maxReplyDepth bounds nested arrays in a decoded reply.
const maxReplyDepth = 16

// Reply is one Redis reply: kind u8, then for status, error and bulk
// bytes; for int varint; for array count and each reply; nil has no body.
type Reply struct {
	Kind  ReplyKind
	Str   []byte
	Int   int64
	Array []Reply
}

// Encode appends r.
func (r *Reply) Encode(e *Encoder) {
	e.U8(uint8(r.Kind))
	switch r.Kind {
	case ReplyStatus, ReplyError, ReplyBulk:
		e.BytesField(r.Str)
	case ReplyInt:
		e.Varint(r.Int)
	case ReplyArray:
		e.Uvarint(uint64(len(r.Array)))
		for i := range r.Array {
			r.Array[i].Encode(e)
		}
	}
}

// Decode reads what Encode wrote. Strings alias the decoder's input.
func (r *Reply) Decode(d *Decoder) { r.decode(d, 0, nil) }

func (r *Reply) decode(d *Decoder, depth int, buf *ReplyBuffer) {
	*r = Reply{Kind: ReplyKind(d.U8())}
	switch r.Kind {
	case ReplyNil:
	case ReplyStatus, ReplyError, ReplyBulk:
		r.Str = d.View()
		if r.Str == nil && r.Kind == ReplyBulk {
			r.Str = []byte{}
		}
	case ReplyInt:
		r.Int = d.Varint()
	case ReplyArray:
		if depth >= maxReplyDepth {
			d.fail(ErrMalformed)
			return
		}
		n := d.Count(1)
		r.Array = buf.take(n)
		for i := 0; i < n && d.err == nil; i++ {
			// Decoded in place: a Reply of its own would escape (decode
			// recurses), an allocation per element.
			r.Array = append(r.Array, Reply{})
			r.Array[i].decode(d, depth+1, buf)
		}
	default:
		d.fail(ErrMalformed)
	}
}

// Err returns the error a ReplyError carries, as an *Error, or nil for
// any other kind. Its status is StatusUnavailable when Redis refused the
// command for its own state, so that it did nothing and the same command
// may succeed later (see refusedCodes: out of memory, loading, a busy
// script, a read-only replica, a cluster or master down, a failing save),
// else StatusInternal.
func (r *Reply) Err() error {
	if r.Kind != ReplyError {
		return nil
	}
	st := StatusInternal
	code, _, _ := bytes.Cut(r.Str, []byte(" "))
	if slices.Contains(refusedCodes, string(code)) {
		st = StatusUnavailable
	}
	return &Error{Status: st, Message: "redis: " + string(r.Str)}
}

// refusedCodes are the error codes with which Redis refuses a command,
// before running it, for a state of its own that passes.
var refusedCodes = []string{"OOM", "LOADING", "BUSY", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "MISCONF", "NOREPLICAS"}

// EncodeReplies appends a redis call's OK body: count, then each reply.
func EncodeReplies(e *Encoder, rs []Reply) {
	e.Uvarint(uint64(len(rs)))
	for i := range rs {
		rs[i].Encode(e)
	}
}

// DecodeReplies reads what EncodeReplies wrote.
func DecodeReplies(d *Decoder) []Reply { return decodeReplies(d, nil) }

func decodeReplies(d *Decoder, buf *ReplyBuffer) []Reply {
	n := d.Count(1)
	rs := buf.take(n)
	for i := 0; i < n && d.err == nil; i++ {
		rs = append(rs, Reply{})
		rs[i].decode(d, 0, buf)
	}
	return rs
}

// ReplyBuffer decodes replies into storage it keeps from one call to the
// next, so that a client decoding a response per request (a Go guest, for
// which each allocation is dear) allocates nothing once it has seen its
// largest response. The zero ReplyBuffer is ready to use.
type ReplyBuffer struct {
	slab []Reply
}

// maxReplyBuffer is the most replies a ReplyBuffer keeps: arrays beyond
// it are allocated as DecodeReplies allocates them, so that one large
// response does not stay in memory for good.
const maxReplyBuffer = 4096

// Decode reads what EncodeReplies wrote, like DecodeReplies. The replies,
// arrays included, are valid until the next Decode.
func (b *ReplyBuffer) Decode(d *Decoder) []Reply {
	b.slab = b.slab[:0]
	return decodeReplies(d, b)
}

// take returns an empty slice of capacity n for an array of n replies:
// carved from the slab when it fits, else allocated. A slab that grows
// leaves the arrays carved before it in the old one, still valid.
func (b *ReplyBuffer) take(n int) []Reply {
	if b == nil || n == 0 || len(b.slab)+n > maxReplyBuffer {
		return prealloc[Reply](n)
	}
	l := len(b.slab)
	if l+n > cap(b.slab) {
		b.slab = make([]Reply, l, min(maxReplyBuffer, max(2*cap(b.slab), l+n, 64)))
	}
	b.slab = b.slab[:l+n]
	return b.slab[l : l : l+n]
}
