package redisbridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redistest"
)

// transcode runs raw RESP through appendRaw and decodes the ABI reply.
func transcode(t *testing.T, raw string) abi.Reply {
	t.Helper()
	var e abi.Encoder
	appendRaw(&e, []byte(raw))
	var r abi.Reply
	d := abi.NewDecoder(e.Bytes())
	r.Decode(d)
	require.NoError(t, d.Finish(), "%q", raw)
	return r
}

func TestTranscodeRESP2(t *testing.T) {
	cases := map[string]abi.Reply{
		"+OK\r\n":                             status("OK"),
		"-ERR bad\r\n":                        {Kind: abi.ReplyError, Str: []byte("ERR bad")},
		":-42\r\n":                            integer(-42),
		":9223372036854775807\r\n":            integer(9223372036854775807),
		"$-1\r\n":                             nilReply,
		"$0\r\n\r\n":                          bulkR(""),
		"$5\r\na\r\nb!\r\n":                   bulkR("a\r\nb!"),
		"*-1\r\n":                             nilReply,
		"*0\r\n":                              array(),
		"*3\r\n:1\r\n$-1\r\n-ERR in\r\n":      array(integer(1), nilReply, abi.Reply{Kind: abi.ReplyError, Str: []byte("ERR in")}),
		"*2\r\n*1\r\n+x\r\n*0\r\n":            array(array(status("x")), array()),
		"_\r\n":                               nilReply,
		",1.5\r\n":                            bulkR("1.5"),
		"#t\r\n":                              integer(1),
		"#f\r\n":                              integer(0),
		"(12345678901234567890\r\n":           bulkR("12345678901234567890"),
		"=7\r\ntxt:abc\r\n":                   bulkR("abc"),
		"!5\r\nERR x\r\n":                     {Kind: abi.ReplyError, Str: []byte("ERR x")},
		"%1\r\n+k\r\n:1\r\n":                  array(status("k"), integer(1)),
		"~1\r\n+m\r\n":                        array(status("m")),
		"|1\r\n+a\r\n+b\r\n:7\r\n":            integer(7),
		"*1\r\n|1\r\n+a\r\n+b\r\n$1\r\nv\r\n": array(bulkR("v")),
	}
	for raw, want := range cases {
		assert.Equal(t, want, transcode(t, raw), "%q", raw)
	}
}

func TestTranscodeMalformed(t *testing.T) {
	for _, raw := range []string{"", "+OK", "+OK\n", "$3\r\nab\r\n", "$2\r\nabc\r\n", "*2\r\n:1\r\n", ":x\r\n", "?\r\n", "+OK\r\n+extra\r\n", "*99999999\r\n"} {
		r := transcode(t, raw)
		assert.Equal(t, abi.ReplyError, r.Kind, "%q", raw)
		assert.Contains(t, string(r.Str), "malformed", "%q", raw)
	}
}

func TestTranscodeDepth(t *testing.T) {
	raw := strings.Repeat("*1\r\n", 20) + ":1\r\n"
	r := transcode(t, raw)
	for range maxDepth {
		require.Equal(t, abi.ReplyArray, r.Kind)
		r = r.Array[0]
	}
	assert.Equal(t, abi.ReplyError, r.Kind)

	r = transcode(t, strings.Repeat("*1\r\n", maxDepth)+":1\r\n")
	for range maxDepth {
		r = r.Array[0]
	}
	assert.Equal(t, integer(1), r, "sixteen levels pass")
}

func TestParseCount(t *testing.T) {
	for s, want := range map[string]int{"0": 0, "1": 1, "42": 42, "999999999": 999999999} {
		n, ok := parseCount([]byte(s))
		assert.True(t, ok, s)
		assert.Equal(t, want, n, s)
	}
	for _, s := range []string{"", "-1", "+1", "01", " 1", "1 ", "1e3", "1234567890", "x"} {
		_, ok := parseCount([]byte(s))
		assert.False(t, ok, s)
	}
}

func TestOutcome(t *testing.T) {
	budget := new(replyBudget)
	budget.left.Store(1 << 20)
	raw := func(s string) *rawCmd {
		c := newRawCmd(context.Background(), budget, "get", "k")
		_, _ = c.Write([]byte(s))
		return c
	}
	reads := []bool{false, false}
	_, failed := outcome([]*rawCmd{raw("+OK\r\n"), raw("-WRONGTYPE x\r\n")}, reads)
	assert.False(t, failed, "an error reply is a reply")
	for _, msg := range []string{"CLUSTERDOWN The cluster is down", "LOADING Redis is loading", "MASTERDOWN Link down", "TRYAGAIN Multiple keys"} {
		f, failed := outcome([]*rawCmd{raw("+OK\r\n"), raw("-" + msg + "\r\n")}, reads)
		assert.True(t, failed, msg)
		assert.EqualError(t, f.err, msg)
		assert.False(t, f.unknown, "%s: refused, and no write ran", msg)
		f, _ = outcome([]*rawCmd{raw("+OK\r\n"), raw("-" + msg + "\r\n")}, []bool{true, false})
		assert.True(t, f.unknown, "%s: the write before it ran", msg)
	}
	c := raw("")
	c.SetErr(replyError("WRONGPASS invalid username-password pair"))
	f, failed := outcome([]*rawCmd{c}, []bool{true})
	assert.True(t, failed, "a failed login is no reply")
	assert.False(t, f.unknown, "a failed login sent nothing")
	c.SetErr(redis.ErrCrossSlot)
	_, failed = outcome([]*rawCmd{c}, []bool{true})
	assert.False(t, failed, "go-redis's CROSSSLOT stands for Redis's reply")
}

// timeoutErr is a socket's deadline passing, as net.Conn reports it.
var timeoutErr error = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

func TestOutcomeClassifiesTransportFailures(t *testing.T) {
	budget := new(replyBudget)
	budget.left.Store(1 << 20)
	failedWith := func(err error) *rawCmd {
		c := newRawCmd(context.Background(), budget, "set", "k", "v")
		c.SetErr(err)
		return c
	}
	notSent := map[string]error{
		"dial refused":                errUnsent{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}},
		"dial error unmarked":         fmt.Errorf("redis: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}),
		"write timed out, none sent":  errUnsent{&net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}},
		"pool timeout":                redis.ErrPoolTimeout,
		"pool exhausted":              redis.ErrPoolExhausted,
		"client closed":               redis.ErrClosed,
		"context ended before a conn": context.DeadlineExceeded,
		"context cancelled":           fmt.Errorf("pool: %w", context.Canceled),
		"login refused":               replyError("NOAUTH Authentication required."),
	}
	maybeSent := map[string]error{
		"read timed out":               timeoutErr,
		"reset while reading":          &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET},
		"closed while reading":         io.EOF,
		"unexpected EOF":               io.ErrUnexpectedEOF,
		"write failed part way":        &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE},
		"connection closed under us":   net.ErrClosed,
		"context deadline in a socket": fmt.Errorf("%w (%w)", timeoutErr, context.DeadlineExceeded),
		"anything else":                errors.New("redis: something new"),
	}
	for name, err := range notSent {
		assert.True(t, unsent(err), name)
		f, failed := outcome([]*rawCmd{failedWith(err)}, []bool{true})
		assert.True(t, failed, name)
		assert.False(t, f.unknown, "%s: not sent, so not applied", name)
	}
	for name, err := range maybeSent {
		assert.False(t, unsent(err), name)
		f, failed := outcome([]*rawCmd{failedWith(err)}, []bool{true})
		assert.True(t, failed, name)
		assert.True(t, f.unknown, "%s: a write may have run", name)
		f, _ = outcome([]*rawCmd{failedWith(err)}, []bool{false})
		assert.False(t, f.unknown, "%s: a read is never unknown", name)
	}
	// The marker survives go-redis's net.Error checks.
	var ne net.Error
	require.ErrorAs(t, errUnsent{timeoutErr}, &ne)
	assert.True(t, ne.Timeout())
}

// fakeConn is a net.Conn whose writes and reads answer what it is told.
type fakeConn struct {
	net.Conn
	writeN   int
	writeErr error
	readN    int
	readErr  error
}

func (c *fakeConn) Write(p []byte) (int, error) { return min(c.writeN, len(p)), c.writeErr }
func (c *fakeConn) Read(p []byte) (int, error)  { return min(c.readN, len(p)), c.readErr }

func TestSetupOnly(t *testing.T) {
	for _, p := range []string{
		"*2\r\n$5\r\nhello\r\n$1\r\n2\r\n",
		"*5\r\n$5\r\nhello\r\n$1\r\n2\r\n$4\r\nauth\r\n$1\r\nu\r\n$2\r\np\n\r\n",
		"*2\r\n$6\r\nselect\r\n$1\r\n1\r\n*3\r\n$6\r\nCLIENT\r\n$7\r\nsetname\r\n$1\r\nx\r\n",
	} {
		assert.True(t, setupOnly([]byte(p)), "%q", p)
	}
	for _, p := range []string{
		"",
		"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"*2\r\n$5\r\nhello\r\n$1\r\n2\r\n*1\r\n$4\r\nping\r\n", // set-up, then a command
		"*2\r\n$5\r\nhello\r\n$1\r\n2",                         // cut short
		"*1\r\n$99\r\nhello\r\n",
		"+OK\r\n",
	} {
		assert.False(t, setupOnly([]byte(p)), "%q", p)
	}
}

func TestSentConnMarksWritesThatSentNothing(t *testing.T) {
	fc := &fakeConn{writeErr: os.ErrDeadlineExceeded}
	sc := tracked(fc)
	_, err := sc.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	assert.True(t, unsent(err), "nothing left the host")
	assert.True(t, unsent(errors.Unwrap(err)), "go-redis unwraps a set-up failure once")

	fc.writeN, fc.writeErr = 5, nil
	_, err = sc.Write([]byte("*3\r\n"))
	require.NoError(t, err)
	fc.writeN, fc.writeErr = 0, os.ErrDeadlineExceeded
	_, err = sc.Write([]byte("$3\r\nset\r\n"))
	assert.False(t, unsent(err), "an earlier part of the request was written")

	fc.readN = 5
	_, _ = sc.Read(make([]byte, 8))
	_, err = sc.Write([]byte("*1\r\n"))
	assert.True(t, unsent(err), "a reply came: the next request starts clean")

	fc.writeN = 2
	_, err = sc.Write([]byte("*1\r\n"))
	assert.False(t, unsent(err), "part of this write was sent")

	// A read that fails: after a set-up exchange, nothing of the request
	// was sent, even seen through one layer of unwrapping; after a
	// command, it may have been.
	fc.writeN, fc.writeErr, fc.readN, fc.readErr = 64, nil, 0, os.ErrDeadlineExceeded
	_, _ = sc.Read(make([]byte, 8)) // ends the exchange before
	_, err = sc.Write([]byte("*2\r\n$5\r\nhello\r\n$1\r\n2\r\n"))
	require.NoError(t, err)
	_, err = sc.Read(make([]byte, 8))
	assert.True(t, unsent(err), "the set-up got no reply")
	assert.True(t, unsent(errors.Unwrap(err)), "go-redis unwraps a set-up failure once")
	_, err = sc.Write([]byte("*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n"))
	require.NoError(t, err)
	_, err = sc.Read(make([]byte, 8))
	assert.False(t, unsent(err), "the command was written")
}

func TestCommandTableIsConsistent(t *testing.T) {
	for _, c := range commandTable {
		assert.Equal(t, strings.ToLower(c.name), c.name)
		assert.NotZero(t, c.arity, c.name)
		if c.first > 0 {
			assert.Positive(t, c.step, c.name)
			assert.False(t, c.last > 0 && c.last < c.first, c.name)
			min := c.first + 1
			if c.last > 0 {
				min = c.last + 1
			}
			assert.True(t, c.arity >= min || -c.arity >= min, "%s: arity %d leaves room for its keys", c.name, c.arity)
		}
		assert.False(t, c.numkeys > 0 && c.streams, c.name)
	}
	for _, never := range []string{"flushall", "flushdb", "config", "shutdown", "debug", "keys", "scan", "monitor",
		"client", "select", "swapdb", "move", "migrate", "object", "sort", "sort_ro", "eval", "evalsha", "script",
		"function", "fcall", "acl", "subscribe", "publish", "wait", "blpop", "brpop", "blmove", "bzpopmin", "bzmpop",
		"blmpop", "multi", "exec", "watch", "auth", "hello", "copy", "restore", "dump", "randomkey", "dbsize", "georadius"} {
		assert.Nil(t, commands[never], never)
	}
	for _, name := range copyingWrites {
		c := commands[name]
		if assert.NotNil(t, c, name) {
			assert.False(t, c.data, "%s copies what other keys hold: not in the default allowlist", name)
		}
	}
}

// Every write of the table is classed by what its reply carries, so that
// a command added to the table is looked at for it: a write that answers
// what its key holds, and holds still (echoingWrites), counts with the
// reads against maxRepeats, as a write that walks its key does
// (searchingWrites), and one that moves a value to another key joins the
// two (movingWrites); the others repeat nothing stored in their replies:
// they answer nothing stored, or at most what a key held when the
// request began and then what the request wrote there, or take away what
// they answer.
func TestEveryWriteIsClassed(t *testing.T) {
	repeatsNothing := []string{"set", "setnx", "setex", "psetex", "getset", "getdel", "mset", "msetnx",
		"append", "incr", "incrby", "incrbyfloat", "decr", "decrby", "setrange", "del", "unlink", "expire",
		"pexpire", "expireat", "pexpireat", "persist", "hset", "hsetnx", "hmset", "hdel",
		"hincrby", "hincrbyfloat", "sadd", "srem", "spop", "sinterstore", "sunionstore", "sdiffstore",
		"zadd", "zincrby", "zrem", "zremrangebyscore", "zremrangebyrank", "zremrangebylex", "zpopmin", "zpopmax",
		"zunionstore", "zinterstore", "zdiffstore", "zmpop", "lpush", "rpush", "lpushx", "rpushx", "lpop", "rpop",
		"ltrim", "lmpop", "xadd", "xdel", "xtrim", "xack", "xsetid", "xgroup", "geoadd", "geosearchstore",
		"pfadd", "pfcount", "pfmerge", "setbit", "bitfield", "bitop"}
	classes := map[string]int{}
	for _, list := range [][]string{repeatsNothing, echoingWrites, searchingWrites, movingWrites} {
		for _, name := range list {
			classes[name]++
		}
	}
	for _, c := range commandTable {
		if c.readOnly {
			assert.Zero(t, classes[c.name], "%s is a read", c.name)
			continue
		}
		assert.Equal(t, 1, classes[c.name], "write %s: in exactly one of repeatsNothing, echoingWrites, searchingWrites, movingWrites", c.name)
		assert.Equal(t, c.echoes || c.searches || c.moves, classes[c.name] == 1 && !slices.Contains(repeatsNothing, c.name), "%s is counted", c.name)
	}
}

// The table's arities and key positions are Redis's own, as COMMAND INFO
// gives them, for every command this Redis knows.
func TestCommandTableMatchesRedis(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr(t), Protocol: 2})
	defer c.Close()
	info, err := c.Command(context.Background()).Result()
	require.NoError(t, err)
	for _, cmd := range commandTable {
		ri := info[cmd.name]
		if ri == nil {
			t.Logf("%s: unknown to this Redis", cmd.name)
			continue
		}
		container := cmd.name == "xgroup" || cmd.name == "xinfo" // key after the subcommand
		if cmd.arity != int(ri.Arity) && !container {
			// A newer syntax (ZRANK ... WITHSCORE) may allow more.
			assert.Equal(t, -cmd.arity, int(ri.Arity), "%s arity", cmd.name)
		}
		movable := cmd.numkeys > 0 || cmd.streams
		assert.Equal(t, movable, hasFlag(ri.Flags, "movablekeys"), "%s movable keys", cmd.name)
		assert.False(t, hasFlag(ri.Flags, "blocking") && !cmd.streams, "%s blocks", cmd.name)
		if ri.FirstKeyPos == 0 && !movable {
			if !container {
				assert.Zero(t, cmd.first, "%s keyless", cmd.name)
			}
			continue
		}
		if cmd.first > 0 {
			assert.EqualValues(t, ri.FirstKeyPos, cmd.first, "%s first key", cmd.name)
			assert.EqualValues(t, ri.LastKeyPos, cmd.last, "%s last key", cmd.name)
			assert.EqualValues(t, ri.StepCount, cmd.step, "%s step", cmd.name)
		}
	}
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// A request's work is kept for the next one, its reply buffers and
// argument lists with it, unless it holds more than maxKeptWork: then it
// is emptied (replies of 40 KB, read into buffers of its own, and what
// another request leaves past its own length, count too).
func TestWorkKeepsAtMostItsBound(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, nil)
	require.NoError(t, f.direct.Set(ctx, f.prefix+"small", "v", 0).Err())
	require.NoError(t, f.direct.Set(ctx, f.prefix+"large", bytes.Repeat([]byte("v"), 40<<10), 0).Err())

	run := func(w *work, keys ...string) []abi.Reply {
		var e abi.Encoder
		req := abi.RedisRequest{Mode: abi.RedisPipeline}
		for _, k := range keys {
			req.Commands = append(req.Commands, cmd("GET", k))
		}
		reuse, err := f.b.do(ctx, w, &req, &e)
		require.NoError(t, err)
		require.True(t, reuse)
		body, err := abi.ParseResponse(e.Bytes())
		require.NoError(t, err)
		d := abi.NewDecoder(body)
		replies := abi.DecodeReplies(d)
		require.NoError(t, d.Finish())
		return replies
	}

	w := new(work)
	require.Equal(t, "v", string(run(w, "small")[0].Str))
	w.release()
	require.NotZero(t, cap(w.cmds[0].buf), "a small request's reply buffer is kept")
	require.Nil(t, w.cmds[0].RawWriteToCmd, "and nothing of the request")
	require.LessOrEqual(t, w.kept(), maxKeptWork)

	// One large reply, then two: the second request's work holds 80 KB.
	require.Len(t, run(w, "large")[0].Str, 40<<10)
	w.release()
	require.NotZero(t, w.kept())
	require.Len(t, run(w, "large", "large")[1].Str, 40<<10)
	w.release()
	require.Zero(t, w.kept(), "a work past the bound is emptied")

	// Buffers past a later request's length count: two large replies,
	// then one small request on the same work.
	w = new(work)
	run(w, "large", "large")
	require.Equal(t, "v", string(run(w, "small")[0].Str))
	w.release()
	require.Zero(t, w.kept(), "the second large buffer counts though the last request did not use it")
}
