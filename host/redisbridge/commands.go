package redisbridge

import (
	"bytes"
	"fmt"
	"strings"
)

// command is one entry of the bridge's command table: the commands a
// plugin may ever send, with where their keys are, so that every key can
// be prefixed. Positions count the command name as 0, as COMMAND INFO does.
type command struct {
	name string // lower case, as the plugin names it

	// sends is the name sent to Redis instead, when not "": DEL goes as
	// UNLINK (the same reply), so that Redis frees a large value in a
	// background thread, not in the one every client waits on.
	sends string

	// arity is the argument count, the name included: n exactly, or -n at
	// least n (COMMAND INFO's arity).
	arity int

	// first, last and step give the fixed key positions: first, then every
	// step-th argument up to last; a negative last counts from the end (-1
	// is the last argument). first 0: no fixed keys.
	first, last, step int

	// numkeys, when not 0, is the position of a key count; that many keys
	// follow it (ZUNIONSTORE dest numkeys key..., LMPOP numkeys key...).
	numkeys int

	// streams: the keys are the first half of the arguments after the
	// STREAMS option (XREAD, XREADGROUP); BLOCK is refused.
	streams bool

	// data: in the default allowlist. The others are in the table, and so
	// keyed correctly, but a backend gets them only through
	// Config.AllowCommands.
	data bool

	// check bounds the arguments that size the command's work or the
	// memory it makes Redis allocate (bounds.go); nil: none do.
	check check

	// entries, for a stream read, counts the entries it may answer
	// (streamEntries); nil for any other command.
	entries func(in [][]byte) int64

	// readOnly: the command changes no data (readOnlyCommands), so a
	// request of such commands alone that fails is UNAVAILABLE, never
	// UNKNOWN.
	readOnly bool

	// searches: a write that walks its key to find where it acts
	// (searchingWrites), so that its cost grows with the key, not with
	// its arguments or reply; counted with the reads (maxRepeats).
	searches bool

	// echoes: a write whose reply carries what the key holds, as a read's
	// does, without taking it away (echoingWrites); counted with the reads
	// (maxRepeats).
	echoes bool

	// moves: a write that moves a value from its first key to its second
	// (movingWrites); the two count as one key from then on (repeats.move).
	moves bool

	// allocatesPastMaxmemory: a write Redis takes past maxmemory that
	// allocates all the same (allocatingPastMaxmemory).
	allocatesPastMaxmemory bool
}

// searchingWrites are the writes of the table that walk or read their
// key: LREM and LINSERT scan the list for an element, LSET walks it to an
// index, ZRANGESTORE walks a sorted set to its range (a LIMIT offset up to
// maxOffset), XREADGROUP and XAUTOCLAIM read up to COUNT entries of a
// stream or of its pending list. Each costs Redis time linear in the
// key's size, once per command: ten thousand LREMs of one ten-megabyte
// list, or 300 XREADGROUPs of 10 000 pending entries, in a request
// stalled every client of the server for seconds.
var searchingWrites = []string{"lrem", "linsert", "lset", "zrangestore", "xreadgroup", "xautoclaim"}

// echoingWrites are the writes of the table whose reply carries data the
// key holds, and holds still afterwards, as a read's does: GETEX is a GET
// that may set an expiry, XCLAIM answers every entry it names, as often
// as it names it. Each repeat is the value again in Redis's output
// buffer, so they count with the reads: 4 000 GETEXs of a 1 MiB value in
// one request (40 KB sent) took a shared Redis to 3.6 GB and held another
// client's PING 2.8 s. LMOVE and RPOPLPUSH answer the element they move:
// they are movingWrites, counted when they move a value out of a key a
// move of the request filled. The other writes that answer stored data
// answer at most, for a key, what it held when the request began and
// then what the request itself wrote there (GETSET, SET's GET option,
// GETDEL), or take what they answer away (the pops);
// TestEveryWriteIsClassed holds the table's writes to these lists.
var echoingWrites = []string{"getex", "xclaim"}

// movingWrites are the writes of the table that move a value from their
// first key to their second: RENAME and RENAMENX a whole key, LMOVE and
// RPOPLPUSH an element, SMOVE a member. A value moved on through distinct
// keys is one value read again at each step (GET k0, RENAME k0 k1, GET
// k1, …; LMOVE l0 l1, LMOVE l1 l2, …: a chain of 600 LMOVEs of a 1 MiB
// element took a Redis to 603 MB), so a request counts the keys a move
// joined as one (repeats.move).
var movingWrites = []string{"rename", "renamenx", "lmove", "rpoplpush", "smove"}

// allocatingPastMaxmemory are the writes of the table that Redis does
// not refuse past maxmemory (their command flags lack denyoom: Redis
// counts them as taking or moving data, not adding it) yet that
// allocate: XREADGROUP, XCLAIM and XAUTOCLAIM add an entry of about 84
// bytes to a group's pending list for every stream entry they deliver or
// claim; SMOVE of an integer from a set of integers (4 bytes a member)
// into a set of strings costs about 48; the EXPIRE family and GETEX add an
// entry to the expiry table for a key that had none, RENAME and RENAMENX
// a longer name. A backend could add one stream and many groups while
// under the bound, then read the stream once per group: 1 500
// XREADGROUPs of 10 000 entries, each within the bridge's bounds, took a
// shared Redis to 1.2 GB past a maxmemory of 256 MB; SMOVEs of sets of
// integers, from 40 MB to 131 MB in 20 s: every other client's writes
// were refused OOM. Past maxmemory with noeviction (Redis refusing
// writes), the bridge refuses these too. The other writes Redis takes
// there free memory or leave it as it is (freeingWrites);
// TestEveryWriteRedisTakesPastMaxmemoryIsListed holds the two lists to
// the flags of the Redis the tests run on.
var allocatingPastMaxmemory = []string{"xreadgroup", "xclaim", "xautoclaim", "smove",
	"expire", "pexpire", "expireat", "pexpireat", "getex", "rename", "renamenx"}

// freeingWrites are the writes of the table that Redis takes past
// maxmemory and that free memory, or leave it as it is: deletes, pops,
// removals, trims, acknowledgements, PERSIST, and XGROUP's SETID,
// DELCONSUMER and DESTROY (XGROUP CREATE and CREATECONSUMER Redis
// refuses past maxmemory itself).
var freeingWrites = []string{"del", "unlink", "getdel", "persist", "hdel", "srem", "spop",
	"zrem", "zremrangebylex", "zremrangebyrank", "zremrangebyscore", "zpopmin", "zpopmax", "zmpop",
	"lpop", "rpop", "lmpop", "lrem", "ltrim", "xdel", "xtrim", "xack", "xgroup"}

// copyingWrites are the writes of the table that store a copy of what
// other keys hold (a range, a union, an intersection, a difference, the
// result of a search): Redis allocates what the source keys hold, not
// what the request sends, so neither the growth bounds nor the response
// bound see it. A chain of 120 ZRANGESTOREs, each copying the last (a
// request of 5 KB), took a shared Redis from 12 MB to 1.27 GB and held
// its main thread 26 s. None is in the default allowlist: a backend gets
// them only through Config.AllowCommands, which trusts it with the
// server's memory.
var copyingWrites = []string{"zrangestore", "sunionstore", "sinterstore", "sdiffstore",
	"zunionstore", "zinterstore", "zdiffstore", "geosearchstore"}

// readOnlyCommands are the commands of the table that change no data.
// Every other one counts as a write: a request holding one whose outcome is
// lost is UNKNOWN. TOUCH only updates access times; PFCOUNT may rewrite
// its cached cardinality, so it counts as a write, as Redis flags it.
var readOnlyCommands = []string{
	"get", "mget", "strlen", "getrange", "substr", "lcs",
	"exists", "touch", "type", "ttl", "pttl", "expiretime", "pexpiretime",
	"hget", "hmget", "hexists", "hgetall", "hkeys", "hvals", "hlen", "hstrlen", "hrandfield", "hscan",
	"smembers", "sismember", "smismember", "scard", "srandmember", "sinter", "sunion", "sdiff", "sintercard", "sscan",
	"zcard", "zcount", "zlexcount", "zscore", "zmscore", "zrank", "zrevrank", "zrange", "zrangebyscore",
	"zrevrangebyscore", "zrangebylex", "zrevrangebylex", "zrevrange", "zrandmember", "zscan",
	"zunion", "zinter", "zdiff", "zintercard",
	"llen", "lrange", "lindex", "lpos",
	"xlen", "xrange", "xrevrange", "xpending", "xinfo", "xread",
	"ping", "time", "echo",
	"geopos", "geodist", "geohash", "geosearch",
	"getbit", "bitcount", "bitpos", "bitfield_ro",
}

// Abbreviations for the table.
const (
	allow = true  // in the default allowlist
	extra = false // only through Config.AllowCommands
)

// commandTable lists every command the bridge knows. Anything not here
// is refused, whatever the configuration: server and connection commands
// (FLUSHALL, FLUSHDB, CONFIG, SHUTDOWN, DEBUG, CLIENT, SELECT, SWAPDB,
// MONITOR, ACL, AUTH, HELLO, RESET, QUIT), keyspace-wide reads (KEYS, SCAN,
// RANDOMKEY, DBSIZE), commands that move data out of the namespace or the
// database (MOVE, MIGRATE, COPY, RESTORE, DUMP), commands whose options
// name other keys (SORT with BY/GET, GEORADIUS with STORE), OBJECT,
// scripting and functions (EVAL, EVALSHA, SCRIPT, FUNCTION, FCALL: scripts
// go through RedisScript mode), transactions and watches (MULTI, EXEC,
// DISCARD, WATCH: RedisTransaction mode does MULTI/EXEC), pub/sub, WAIT,
// and every blocking command (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN,
// BZPOPMAX, BZMPOP, BRPOPLPUSH; XREAD and XREADGROUP only without BLOCK).
//
// Arities and key positions are those of Redis 7's COMMAND INFO; the
// movable-key commands say where their key count is.
var commandTable = []command{
	// Strings.
	{name: "get", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "set", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "setnx", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "setex", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "psetex", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "getset", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "getdel", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "getex", arity: -2, first: 1, last: 1, step: 1, data: allow},
	{name: "mget", arity: -2, first: 1, last: -1, step: 1, data: allow},
	{name: "mset", arity: -3, first: 1, last: -1, step: 2, data: allow},
	{name: "msetnx", arity: -3, first: 1, last: -1, step: 2, data: allow},
	{name: "append", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "strlen", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "incr", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "incrby", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "incrbyfloat", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "decr", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "decrby", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "getrange", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "setrange", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "substr", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "lcs", arity: -3, first: 1, last: 2, step: 1, data: extra},

	// Keys: existence, type, TTL, rename. RENAME keeps both names inside
	// the namespace, as both are keys.
	{name: "del", sends: "unlink", arity: -2, first: 1, last: -1, step: 1, data: allow},
	{name: "unlink", arity: -2, first: 1, last: -1, step: 1, data: allow},
	{name: "exists", arity: -2, first: 1, last: -1, step: 1, data: allow},
	{name: "touch", arity: -2, first: 1, last: -1, step: 1, data: allow},
	{name: "type", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "expire", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "pexpire", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "expireat", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "pexpireat", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "ttl", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "pttl", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "expiretime", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "pexpiretime", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "persist", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "rename", arity: 3, first: 1, last: 2, step: 1, data: allow},
	{name: "renamenx", arity: 3, first: 1, last: 2, step: 1, data: allow},

	// Hashes.
	{name: "hget", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "hset", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "hsetnx", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "hmset", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "hmget", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "hdel", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "hexists", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "hgetall", arity: 2, first: 1, last: 1, step: 1, data: extra},
	{name: "hkeys", arity: 2, first: 1, last: 1, step: 1, data: extra},
	{name: "hvals", arity: 2, first: 1, last: 1, step: 1, data: extra},
	{name: "hlen", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "hincrby", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "hincrbyfloat", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "hstrlen", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "hrandfield", arity: -2, first: 1, last: 1, step: 1, data: allow},
	{name: "hscan", arity: -3, first: 1, last: 1, step: 1, data: allow},

	// Sets.
	{name: "sadd", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "srem", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "smembers", arity: 2, first: 1, last: 1, step: 1, data: extra},
	{name: "sismember", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "smismember", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "scard", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "spop", arity: -2, first: 1, last: 1, step: 1, data: allow},
	{name: "srandmember", arity: -2, first: 1, last: 1, step: 1, data: allow},
	{name: "smove", arity: 4, first: 1, last: 2, step: 1, data: allow},
	{name: "sinter", arity: -2, first: 1, last: -1, step: 1, data: extra},
	{name: "sunion", arity: -2, first: 1, last: -1, step: 1, data: extra},
	{name: "sdiff", arity: -2, first: 1, last: -1, step: 1, data: extra},
	{name: "sinterstore", arity: -3, first: 1, last: -1, step: 1, data: extra},
	{name: "sunionstore", arity: -3, first: 1, last: -1, step: 1, data: extra},
	{name: "sdiffstore", arity: -3, first: 1, last: -1, step: 1, data: extra},
	{name: "sintercard", arity: -3, numkeys: 1, data: extra},
	{name: "sscan", arity: -3, first: 1, last: 1, step: 1, data: allow},

	// Sorted sets.
	{name: "zadd", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "zincrby", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "zrem", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "zcard", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "zcount", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "zlexcount", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "zscore", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "zmscore", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "zrank", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "zrevrank", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "zrange", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "zrangebyscore", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "zrevrangebyscore", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "zrangebylex", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "zrevrangebylex", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "zrevrange", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "zrangestore", arity: -5, first: 1, last: 2, step: 1, data: extra},
	{name: "zremrangebyscore", arity: 4, first: 1, last: 1, step: 1, data: extra},
	{name: "zremrangebyrank", arity: 4, first: 1, last: 1, step: 1, data: extra},
	{name: "zremrangebylex", arity: 4, first: 1, last: 1, step: 1, data: extra},
	{name: "zpopmin", arity: -2, first: 1, last: 1, step: 1, data: allow},
	{name: "zpopmax", arity: -2, first: 1, last: 1, step: 1, data: allow},
	{name: "zrandmember", arity: -2, first: 1, last: 1, step: 1, data: allow},
	{name: "zscan", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "zunionstore", arity: -4, first: 1, last: 1, step: 1, numkeys: 2, data: extra},
	{name: "zinterstore", arity: -4, first: 1, last: 1, step: 1, numkeys: 2, data: extra},
	{name: "zdiffstore", arity: -4, first: 1, last: 1, step: 1, numkeys: 2, data: extra},
	{name: "zunion", arity: -3, numkeys: 1, data: extra},
	{name: "zinter", arity: -3, numkeys: 1, data: extra},
	{name: "zdiff", arity: -3, numkeys: 1, data: extra},
	{name: "zintercard", arity: -3, numkeys: 1, data: extra},
	{name: "zmpop", arity: -4, numkeys: 1, data: allow},

	// Lists.
	{name: "lpush", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "rpush", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "lpushx", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "rpushx", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "lpop", arity: -2, first: 1, last: 1, step: 1, data: allow},
	{name: "rpop", arity: -2, first: 1, last: 1, step: 1, data: allow},
	{name: "llen", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "lrange", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "lindex", arity: 3, first: 1, last: 1, step: 1, data: allow},
	{name: "lset", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "linsert", arity: 5, first: 1, last: 1, step: 1, data: allow},
	{name: "lrem", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "ltrim", arity: 4, first: 1, last: 1, step: 1, data: allow},
	{name: "lpos", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "lmove", arity: 5, first: 1, last: 2, step: 1, data: allow},
	{name: "rpoplpush", arity: 3, first: 1, last: 2, step: 1, data: allow},
	{name: "lmpop", arity: -4, numkeys: 1, data: allow},

	// Streams. XGROUP and XINFO take their key after the subcommand.
	{name: "xadd", arity: -5, first: 1, last: 1, step: 1, data: allow},
	{name: "xlen", arity: 2, first: 1, last: 1, step: 1, data: allow},
	{name: "xrange", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "xrevrange", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "xdel", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "xtrim", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "xack", arity: -4, first: 1, last: 1, step: 1, data: allow},
	{name: "xpending", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "xclaim", arity: -6, first: 1, last: 1, step: 1, data: allow},
	{name: "xautoclaim", arity: -6, first: 1, last: 1, step: 1, data: allow},
	{name: "xsetid", arity: -3, first: 1, last: 1, step: 1, data: allow},
	{name: "xgroup", arity: -3, first: 2, last: 2, step: 1, data: allow},
	{name: "xinfo", arity: -3, first: 2, last: 2, step: 1, data: allow},
	{name: "xread", arity: -4, streams: true, data: allow},
	{name: "xreadgroup", arity: -7, streams: true, data: allow},

	// Connection: harmless, keyless.
	{name: "ping", arity: -1, data: allow},
	{name: "time", arity: 1, data: allow},
	{name: "echo", arity: 2, data: extra},

	// Geo, HyperLogLog, bitmaps: keyed correctly, off by default.
	{name: "geoadd", arity: -5, first: 1, last: 1, step: 1, data: extra},
	{name: "geopos", arity: -2, first: 1, last: 1, step: 1, data: extra},
	{name: "geodist", arity: -4, first: 1, last: 1, step: 1, data: extra},
	{name: "geohash", arity: -2, first: 1, last: 1, step: 1, data: extra},
	{name: "geosearch", arity: -7, first: 1, last: 1, step: 1, data: extra},
	{name: "geosearchstore", arity: -8, first: 1, last: 2, step: 1, data: extra},
	{name: "pfadd", arity: -2, first: 1, last: 1, step: 1, data: extra},
	{name: "pfcount", arity: -2, first: 1, last: -1, step: 1, data: extra},
	{name: "pfmerge", arity: -2, first: 1, last: -1, step: 1, data: extra},
	{name: "setbit", arity: 4, first: 1, last: 1, step: 1, data: extra},
	{name: "getbit", arity: 3, first: 1, last: 1, step: 1, data: extra},
	{name: "bitcount", arity: -2, first: 1, last: 1, step: 1, data: extra},
	{name: "bitpos", arity: -3, first: 1, last: 1, step: 1, data: extra},
	{name: "bitfield", arity: -2, first: 1, last: 1, step: 1, data: extra},
	{name: "bitfield_ro", arity: -2, first: 1, last: 1, step: 1, data: extra},
	{name: "bitop", arity: -4, first: 2, last: -1, step: 1, data: extra},
}

// commands indexes commandTable by name.
var commands = func() map[string]*command {
	m := make(map[string]*command, len(commandTable))
	for i := range commandTable {
		c := &commandTable[i]
		if _, dup := m[c.name]; dup || c.name != strings.ToLower(c.name) {
			panic("redisbridge: bad command table entry " + c.name)
		}
		m[c.name] = c
	}
	for _, name := range readOnlyCommands {
		c := m[name]
		if c == nil {
			panic("redisbridge: read-only command " + name + " is not in the table")
		}
		c.readOnly = true
	}
	for _, name := range freeingWrites {
		if c := m[name]; c == nil || c.readOnly {
			panic("redisbridge: freeing write " + name + " is not a write of the table")
		}
	}
	for _, name := range allocatingPastMaxmemory {
		c := m[name]
		if c == nil || c.readOnly {
			panic("redisbridge: allocating write " + name + " is not a write of the table")
		}
		c.allocatesPastMaxmemory = true
	}
	for _, name := range movingWrites {
		c := m[name]
		if c == nil || c.readOnly || c.first != 1 || c.last != 2 {
			panic("redisbridge: moving write " + name + " is not a write of two keys of the table")
		}
		c.moves = true
	}
	for _, name := range echoingWrites {
		c := m[name]
		if c == nil || c.readOnly {
			panic("redisbridge: echoing write " + name + " is not a write of the table")
		}
		c.echoes = true
	}
	for _, name := range searchingWrites {
		c := m[name]
		if c == nil || c.readOnly {
			panic("redisbridge: searching write " + name + " is not a write of the table")
		}
		c.searches = true
	}
	return m
}()

// maxNameLen bounds a command name looked up in the table.
const maxNameLen = 24

// lookup returns the entry of name, any case, from m.
func lookup(m map[string]*command, name []byte) *command {
	if len(name) > maxNameLen {
		return nil
	}
	var buf [maxNameLen]byte
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return m[string(buf[:len(name)])]
}

// shown quotes a plugin-supplied name for an error message, shortened.
func shown(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q...", b[:40])
	}
	return fmt.Sprintf("%q", b)
}

// args builds the arguments of c from the plugin's, with every key
// prefixed, into out (reused). It returns them and the position of the
// first key (0: none), or an error saying why the command is refused.
// Key arguments are bytes of their own; the others alias the request.
// Both come from arena.
func (c *command) args(in [][]byte, prefix string, arena *argArena) ([]any, int, error) {
	n := len(in)
	if c.arity > 0 && n != c.arity || c.arity < 0 && n < -c.arity {
		return nil, 0, fmt.Errorf("wrong number of arguments for %s (%d)", strings.ToUpper(c.name), n-1)
	}
	name := c.name
	if c.sends != "" {
		name = c.sends
	}
	out := append(arena.list(n), name)
	for _, a := range in[1:] {
		out = append(out, arena.bytes(a))
	}
	var reserved []byte
	key := func(i int) {
		if bytes.HasPrefix(in[i], hostKeyPrefix) {
			reserved = in[i]
		}
		arena.setKey(out[i].(*byteArg), prefix, in[i])
	}
	firstKey := 0
	if c.first > 0 {
		last := c.last
		if last < 0 {
			last += n
		}
		if last < c.first || last >= n || (last-c.first+1)%c.step != 0 {
			return nil, 0, fmt.Errorf("wrong number of arguments for %s (%d)", strings.ToUpper(c.name), n-1)
		}
		for i := c.first; i <= last; i += c.step {
			key(i)
		}
		firstKey = c.first
	}
	if c.numkeys > 0 {
		count, ok := parseCount(in[c.numkeys])
		if !ok || count > n-1-c.numkeys {
			return nil, 0, fmt.Errorf("%s: numkeys %s is not a count of the keys that follow it", strings.ToUpper(c.name), shown(in[c.numkeys]))
		}
		for i := c.numkeys + 1; i <= c.numkeys+count; i++ {
			key(i)
		}
		if firstKey == 0 && count > 0 {
			firstKey = c.numkeys + 1
		}
	}
	if c.streams {
		from, count, err := c.streamKeys(in)
		if err != nil {
			return nil, 0, err
		}
		for i := from; i < from+count; i++ {
			key(i)
		}
		firstKey = from
	}
	if reserved != nil {
		return nil, 0, fmt.Errorf("key %s: keys starting with %q are the host's", shown(reserved), HostKeyPrefix)
	}
	return out, firstKey, nil
}

// streamKeys parses the options of XREAD and XREADGROUP as Redis does and
// returns where the keys are. BLOCK is refused: a blocked call would hold a
// pooled connection and the plugin's instance.
func (c *command) streamKeys(in [][]byte) (from, count int, err error) {
	group := c.name == "xreadgroup"
	n := len(in)
	for i := 1; i < n; {
		more := n - i - 1
		switch opt := strings.ToUpper(string(in[i])); {
		case opt == "BLOCK":
			return 0, 0, fmt.Errorf("%s BLOCK is not allowed: blocking commands are refused", strings.ToUpper(c.name))
		case opt == "COUNT" && more >= 1:
			i += 2
		case opt == "GROUP" && group && more >= 2:
			i += 3
		case opt == "NOACK" && group:
			i++
		case opt == "STREAMS" && more >= 1:
			if more%2 != 0 {
				return 0, 0, fmt.Errorf("%s: unbalanced STREAMS keys and IDs", strings.ToUpper(c.name))
			}
			return i + 1, more / 2, nil
		default:
			return 0, 0, fmt.Errorf("%s: unknown or incomplete option %s", strings.ToUpper(c.name), shown(in[i]))
		}
	}
	return 0, 0, fmt.Errorf("%s without STREAMS", strings.ToUpper(c.name))
}

// parseCount parses a non-negative decimal count the way Redis reads
// numkeys (no sign, no spaces, no leading zeros).
func parseCount(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
