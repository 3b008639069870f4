package redisbridge

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/abi"
)

// call is one command ready to send: its arguments, keys prefixed, and
// the position of its first key (0: none), which routes it on a cluster.
type call struct {
	args  []any
	first int
	write bool // the command may change data (a script call always may)
	// allocates: a write Redis takes past maxmemory that allocates
	// (allocatingPastMaxmemory)
	allocates bool
}

// Do runs req and appends a whole response to e: a status byte and, for
// StatusOK, one reply per command or script call (abi.EncodeReplies).
// ctx is the caller's: its deadline and cancellation bound the call. The
// request's byte slices may alias the plugin's memory; Do keeps none of
// them after it returns.
//
// The response is:
//   - StatusInvalid, with nothing sent, for a malformed request (no
//     commands, an empty command, an unknown mode), a command outside the
//     backend's allowlist (the message names it), arguments that do not fit
//     the command, or a script when scripts are not granted;
//   - StatusUnavailable when Redis cannot be reached or answered for none
//     of the commands (refused or timed-out connection, pool timeout,
//     cancelled or expired ctx, a closed bridge) or answered CLUSTERDOWN,
//     LOADING, MASTERDOWN or TRYAGAIN to any of them, and none of the
//     request's writes ran or may have (outcome.go);
//   - StatusUnknown in the same cases when one of them may have: a write
//     command or script call was sent, or may have been, and its reply was
//     lost (a read timeout, a reset or closed connection, the deadline
//     passing after the request was written), or a write ran and another
//     command failed. A request of read-only commands is never UNKNOWN;
//   - StatusOK otherwise, with a Redis error reply to one command as a
//     ReplyError at its position and the other replies intact.
//
// A transaction that Redis discards (EXECABORT: a command failed to
// queue) has a ReplyError at every position: the command's own error
// where it failed, EXECABORT at the others. On a cluster a transaction's
// keys must share a slot; otherwise go-redis refuses it before sending and
// every position holds the CROSSSLOT error reply, as Redis itself would
// answer (a plugin error, not a bridge refusal: on a single node the same
// request is fine). A nil EXEC (a WATCHed key changed) cannot happen, as
// WATCH is not offered; it would show as the error "redis: transaction
// failed" at every position.
//
// A script request runs EVALSHA per call, pipelined; calls that Redis
// answers NOSCRIPT run again as EVAL, which loads the script on that node.
//
// Do returns an error wrapping ErrNotGranted when it refused the request
// for lack of a grant of the backend's configuration (a script without
// Config.Scripts, a command outside Config.AllowCommands), nil otherwise:
// the response says how the request went.
func (b *Bridge) Do(ctx context.Context, req *abi.RedisRequest, e *abi.Encoder) error {
	w := works.Get().(*work)
	reuse, err := b.do(ctx, w, req, e)
	if reuse {
		w.release()
	}
	return err
}

// do is Do on w's memory. It answers whether w may be used again: not
// once a flusher may hold its commands (the caller's context ended while
// they were queued).
func (b *Bridge) do(ctx context.Context, w *work, req *abi.RedisRequest, e *abi.Encoder) (reuse bool, _ error) {
	var calls []call
	switch req.Mode {
	case abi.RedisPipeline, abi.RedisTransaction:
		if len(req.Commands) == 0 {
			invalid(e, "no commands")
			return true, nil
		}
		if len(req.Commands) > b.maxCommands {
			limit(e, "%d commands in one request, more than the %d allowed", len(req.Commands), b.maxCommands)
			return true, nil
		}
		var growth, entries int64
		var reads repeats
		calls = w.callList(len(req.Commands))
		// Room for every argument to be a key: a command's keys are known
		// only once it is looked up.
		nargs, size := 0, 0
		for _, in := range req.Commands {
			nargs += len(in)
			for _, a := range in[min(1, len(in)):] {
				size += len(b.prefix) + len(a)
			}
		}
		arena := w.arena(nargs, size, nargs)
		for i, in := range req.Commands {
			if len(in) == 0 {
				invalid(e, "command %d is empty", i)
				return true, nil
			}
			c := lookup(b.allowed, in[0])
			if c == nil {
				if lookup(commands, in[0]) != nil {
					return true, notGranted(e, "command %s is not allowed for this backend (an operator grants it in the backend's allow_commands, Config.AllowCommands)", shown(in[0]))
				}
				invalid(e, "command %s is not allowed", shown(in[0]))
				return true, nil
			}
			args, first, err := c.args(in, b.prefix, &arena)
			if err == nil {
				var grows int64
				if grows, err = c.bounded(in); err == nil {
					if growth += grows; growth > maxGrowth {
						err = fmt.Errorf("%s: the request's commands would make Redis allocate more than %d bytes at offsets they name", strings.ToUpper(c.name), maxGrowth)
					}
				}
			}
			if err != nil {
				invalid(e, "command %d: %v", i, err)
				return true, nil
			}
			if c.entries != nil {
				if entries += c.entries(in); entries > maxCount {
					limit(e, "command %d: the request's stream reads may answer more than %d entries together (a stream answers a field's name, which it stores once for many entries, with each); split them over requests", i, maxCount)
					return true, nil
				}
			}
			if c.moves {
				whole := c.name == "rename" || c.name == "renamenx"
				echoes := c.name == "lmove" || c.name == "rpoplpush"
				if err := reads.move(in, whole, echoes); err != nil {
					limit(e, "command %d: %v", i, err)
					return true, nil
				}
			}
			if c.readOnly || c.searches || c.echoes {
				weight := 1
				if c.searches {
					weight = searchWeight
				}
				if err := reads.read(in, args, weight); err != nil {
					limit(e, "command %d: %v", i, err)
					return true, nil
				}
			}
			calls[i] = call{args: args, first: first, write: !c.readOnly, allocates: c.allocatesPastMaxmemory}
		}
		if growth > 0 && !b.grows.AllowN(time.Now(), int(growth)) {
			limit(e, "the request's offsets would make Redis allocate %d bytes, past the backend's %d a second", growth, maxGrowthPerSecond)
			return true, nil
		}
	case abi.RedisScript:
		if b.scripts == nil {
			return true, notGranted(e, "scripts are not granted to this backend")
		}
		if len(req.Script) == 0 {
			invalid(e, "empty script")
			return true, nil
		}
		if len(req.Calls) == 0 {
			invalid(e, "no script calls")
			return true, nil
		}
		if len(req.Calls) > b.maxCommands {
			limit(e, "%d script calls in one request, more than the %d allowed", len(req.Calls), b.maxCommands)
			return true, nil
		}
		sha, fresh := b.scripts.sha(req.Script)
		if sha == nil {
			if len(req.Script) > maxScriptBytes {
				limit(e, "a script of %d bytes, more than the %d allowed", len(req.Script), maxScriptBytes)
			} else {
				limit(e, "a script past the %d distinct scripts a backend may send: Redis keeps every script it is sent", maxScripts)
			}
			return true, nil
		}
		if fresh {
			if why := b.scriptsFull.Load(); why != nil && !b.scriptHeld(ctx, sha.(string)) {
				b.scripts.forget(req.Script)
				limit(e, "%s", *why)
				return true, nil
			}
		}
		calls = w.callList(len(req.Calls))
		nargs, size := 0, 0
		for _, sc := range req.Calls {
			nargs += len(sc.Keys) + len(sc.Args)
			for _, k := range sc.Keys {
				size += len(b.prefix) + len(k)
			}
		}
		arena := w.arena(nargs, size, nargs+3*len(req.Calls))
		for i, sc := range req.Calls {
			args := arena.list(3 + len(sc.Keys) + len(sc.Args))
			args = append(args, "evalsha", sha, numkeys(len(sc.Keys)))
			for _, k := range sc.Keys {
				if bytes.HasPrefix(k, hostKeyPrefix) {
					invalid(e, "script call %d: key %s: keys starting with %q are the host's", i, shown(k), HostKeyPrefix)
					return true, nil
				}
				args = append(args, arena.key(b.prefix, k))
			}
			for _, a := range sc.Args {
				args = append(args, arena.bytes(a))
			}
			calls[i].args = args
			calls[i].write = true // what the script does is unknown
			if len(sc.Keys) > 0 {
				calls[i].first = 3
			}
		}
	default:
		invalid(e, "unknown mode %d", req.Mode)
		return true, nil
	}

	writes := w.writeFlags(calls)
	if why := b.evicting.Load(); why != nil && slices.Contains(writes, true) {
		// Redis would take the write and may drop it once full.
		unavailable(e, fmt.Errorf("writes refused while Redis may evict what they write: %s", *why))
		return true, nil
	}
	if why := b.full.Load(); why != nil && slices.ContainsFunc(calls, func(c call) bool { return c.allocates }) {
		// Redis would take it, and grow past its bound: refused as Redis
		// refuses the other writes, for now.
		unavailable(e, fmt.Errorf("%s; the request's commands allocate (pending entries, set members, expiries, names) though Redis takes them", *why))
		return true, nil
	}
	cmds, budget, sent := b.run(ctx, w, req, calls)
	if sent != answered {
		// The caller's context ended while the request was queued for a
		// shared pipeline; its commands are the flusher's now.
		err := ctx.Err()
		if sent == abandonedSent && slices.Contains(writes, true) {
			if req.Mode == abi.RedisScript {
				b.killRunaway(calls)
			}
			unknown(e, err)
		} else {
			unavailable(e, err)
		}
		return false, nil
	}
	if f, failed := outcome(cmds, writes); failed && !budget.exceeded.Load() {
		if req.Mode == abi.RedisScript && overran(ctx, f.err) {
			b.killRunaway(calls)
		}
		if !f.unknown && b.user != nil && authFailure(f.err) && b.user.recreate(ctx) == nil {
			// Redis restarted without our ACL user: made again, retry once
			// (nothing ran: logging in failed).
			cmds, budget, sent = b.run(ctx, w, req, calls)
			if sent != answered {
				if sent == abandonedSent {
					unknown(e, ctx.Err())
				} else {
					unavailable(e, ctx.Err())
				}
				return false, nil
			}
			f, failed = outcome(cmds, writes)
		}
		if failed && !budget.exceeded.Load() {
			if f.unknown {
				unknown(e, f.err)
			} else {
				unavailable(e, f.err)
			}
			return true, nil
		}
	}
	if budget.exceeded.Load() {
		// The connection was dropped mid-reply; the commands ran.
		limit(e, "the replies exceed %d bytes, the backend's response bound; the commands ran", b.maxReply)
		return true, nil
	}
	e.U8(uint8(abi.StatusOK))
	e.Uvarint(uint64(len(cmds)))
	for _, c := range cmds {
		raw, err := c.Result()
		if err != nil {
			e.U8(uint8(abi.ReplyError))
			e.String(err.Error())
			continue
		}
		appendRaw(e, raw)
	}
	return true, nil
}

// Serve decodes the encoded RedisRequest reqBytes and runs it as Do does.
// A request with more commands or script calls than the bridge takes is
// refused (StatusLimit) from its count, before it is decoded: decoding the
// million commands of a 6 MB request would allocate about 150 MiB.
// Its error is Do's.
func (b *Bridge) Serve(ctx context.Context, reqBytes []byte, e *abi.Encoder) error {
	peek := abi.NewDecoder(reqBytes)
	mode := abi.RedisMode(peek.U8())
	if mode == abi.RedisScript {
		peek.View()
	}
	n := peek.Uvarint()
	if peek.Err() == nil && n > uint64(b.maxCommands) {
		limit(e, "%d commands or script calls in one request, more than the %d allowed", n, b.maxCommands)
		return nil
	}
	if args := countArgs(peek, mode, n); args > maxArguments {
		limit(e, "more than %d arguments (keys included) in one request", maxArguments)
		return nil
	}
	var req abi.RedisRequest
	d := abi.NewDecoder(reqBytes)
	req.Decode(d)
	if err := d.Finish(); err != nil {
		abi.AppendError(e, abi.StatusInvalid, "redis request: "+err.Error())
		return nil
	}
	return b.Do(ctx, &req, e)
}

// maxArguments bounds the arguments of one request's commands (or its
// script calls' keys and arguments) together. An argument is a byte of
// the request at least, and costs the host some 250 bytes to send (one
// request of 2^20 empty arguments, 1 MB, made it allocate 266 MB before
// Redis refused the command); the built-in plugins send a few thousand
// for a bulk write of a thousand records.
const maxArguments = 1 << 18

// countArgs counts, past the command count n that d has just read, the
// arguments of a request of mode, reading their lengths only; it stops
// once past maxArguments or at a decoding error (which the decoding
// proper then reports).
func countArgs(d *abi.Decoder, mode abi.RedisMode, n uint64) int {
	lists := uint64(1) // a command is one list of arguments
	if mode == abi.RedisScript {
		lists = 2 // a call is its keys, then its arguments
	}
	total := 0
	for range n * lists {
		k := d.Uvarint()
		if d.Err() != nil || k > maxArguments-uint64(total) {
			return total + int(min(k, maxArguments+1))
		}
		total += int(k)
		for range k {
			d.View()
		}
	}
	return total
}

// replyBudget is the raw reply bytes one run of a request may read, shared
// by its commands (a cluster pipeline reads several nodes at once). The
// ABI encoding of a reply is never longer than its RESP, so the response
// stays within the budget too.
type replyBudget struct {
	left     atomic.Int64
	exceeded atomic.Bool
}

// errReplyTooLarge fails the read of a reply that would pass the budget;
// go-redis then drops the connection, so the rest is never read.
var errReplyTooLarge = errors.New("redisbridge: replies exceed the response bound")

// rawCmd is a command whose raw reply go-redis streams into buf through
// the request's budget: a reply is never held whole past the bound, and a
// 64 MiB value costs the host at most the budget, not 64 MiB.
type rawCmd struct {
	*redis.RawWriteToCmd
	buf    []byte
	budget *replyBudget
}

func newRawCmd(ctx context.Context, budget *replyBudget, args ...any) *rawCmd {
	c := &rawCmd{budget: budget}
	c.RawWriteToCmd = redis.NewRawWriteToCmd(ctx, c, args...)
	return c
}

// Write takes the next bytes of the reply, or refuses them past the budget.
func (c *rawCmd) Write(p []byte) (int, error) {
	if c.budget.left.Add(-int64(len(p))) < 0 {
		c.budget.exceeded.Store(true)
		return 0, errReplyTooLarge
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// ReadFrom reads the body of a bulk reply straight into buf, within the
// budget; without it io.CopyN, which go-redis streams bodies with, would
// allocate a 32 KiB buffer per reply.
func (c *rawCmd) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if len(c.buf) == cap(c.buf) {
			c.buf = slices.Grow(c.buf, 512)
		}
		n, err := r.Read(c.buf[len(c.buf):cap(c.buf)])
		if c.budget.left.Add(-int64(n)) < 0 {
			c.budget.exceeded.Store(true)
			return total, errReplyTooLarge
		}
		c.buf = c.buf[:len(c.buf)+n]
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// reset forgets the reply read so far (a redirection, before the command
// is sent again) and gives its bytes back to the budget.
func (c *rawCmd) reset() {
	c.budget.left.Add(int64(len(c.buf)))
	c.buf = c.buf[:0]
}

// Result returns the raw reply and the command's error.
func (c *rawCmd) Result() ([]byte, error) { return c.buf, c.Err() }

// limit appends a StatusLimit response.
func limit(e *abi.Encoder, format string, args ...any) {
	abi.AppendError(e, abi.StatusLimit, "redisbridge: "+fmt.Sprintf(format, args...))
}

// run sends calls as req's mode says and returns their commands, the
// budget their replies were read through, and whether they were answered
// (coalesce.go); unless they were, the commands must not be read.
func (b *Bridge) run(ctx context.Context, w *work, req *abi.RedisRequest, calls []call) ([]*rawCmd, *replyBudget, sendResult) {
	budget := &w.budget
	budget.left.Store(b.maxReply)
	budget.exceeded.Store(false)
	cmds := w.commands(ctx, calls)
	tx := req.Mode == abi.RedisTransaction
	if sent := b.send(ctx, cmds, tx); sent != answered {
		return nil, budget, sent
	}
	if req.Mode == abi.RedisScript && !budget.exceeded.Load() {
		var again []*rawCmd
		var at []int
		for i, c := range cmds {
			if msg, ok := errorOf(c); ok && strings.HasPrefix(msg, "NOSCRIPT ") {
				c.reset()
				args := append([]any{"eval", req.Script}, calls[i].args[2:]...)
				again = append(again, newCmds(ctx, budget, []call{{args: args, first: calls[i].first}})...)
				at = append(at, i)
			}
		}
		if len(again) > 0 {
			if sent := b.send(ctx, again, false); sent != answered {
				return nil, budget, sent
			}
			for j, i := range at {
				cmds[i] = again[j]
			}
		}
	}
	return cmds, budget, answered
}

// send sends cmds: a transaction, a request that is a pipeline of its own
// (more than maxSharedRequest commands), or any request on a cluster, on
// a connection of its own (exec); anything else through the coalescer,
// which may share a pipeline with concurrent requests.
func (b *Bridge) send(ctx context.Context, cmds []*rawCmd, tx bool) sendResult {
	if tx || b.pipes == nil || len(cmds) > maxSharedRequest {
		b.exec(ctx, cmds, tx)
		return answered
	}
	return b.share(ctx, cmds)
}

// work is the memory one request takes in Do: its calls and their write
// flags, the arena of their arguments, its reply budget, its commands and
// their reply buffers. Do takes one from works and gives it back once the
// request is answered, so that a request allocates little more than
// go-redis's own command per command. One whose commands a flusher may
// still hold (queued, then given up by its caller: coalesce.go) is left
// to the garbage collector; its arguments, which the flusher writes, are
// in it.
type work struct {
	calls  []call
	writes []bool
	refs   []byteArg
	keys   []byte
	args   []any
	budget replyBudget
	ptrs   []*rawCmd
	cmds   []rawCmd
}

var works = sync.Pool{New: func() any { return new(work) }}

// maxKeptWork bounds the memory a work keeps between requests: the
// buffers of a large request (a bulk write, a page of large replies) go
// with it rather than staying in the pool.
const maxKeptWork = 64 << 10

// kept is the memory w holds, in bytes: its lists to their capacity,
// every reply buffer it has, used by its last request or not.
func (w *work) kept() int {
	n := cap(w.calls)*int(unsafe.Sizeof(call{})) + cap(w.writes) +
		cap(w.refs)*int(unsafe.Sizeof(byteArg{})) + cap(w.keys) + cap(w.args)*int(unsafe.Sizeof(any(nil))) +
		cap(w.ptrs)*int(unsafe.Sizeof(&rawCmd{})) + cap(w.cmds)*int(unsafe.Sizeof(rawCmd{}))
	for _, c := range w.cmds[:cap(w.cmds)] {
		n += cap(c.buf)
	}
	return n
}

// release gives w back to works, without what refers to a request's
// bytes, and empty if it holds more than maxKeptWork.
func (w *work) release() {
	if w.kept() > maxKeptWork {
		*w = work{}
		works.Put(w)
		return
	}
	for i := range w.cmds {
		c := &w.cmds[i]
		c.RawWriteToCmd, c.budget, c.buf = nil, nil, c.buf[:0]
	}
	clear(w.calls)
	clear(w.refs[:cap(w.refs)])
	clear(w.args[:cap(w.args)])
	clear(w.ptrs)
	works.Put(w)
}

// callList returns room for n calls.
func (w *work) callList(n int) []call {
	w.calls = grown(w.calls, n)
	return w.calls
}

// writeFlags returns whether each of calls may change data.
func (w *work) writeFlags(calls []call) []bool {
	w.writes = grown(w.writes, len(calls))
	for i := range calls {
		w.writes[i] = calls[i].write
	}
	return w.writes
}

// arena returns an arena on w's memory, at least as large as
// newArgArena(refs, keyBytes, slots).
func (w *work) arena(refs, keyBytes, slots int) argArena {
	if cap(w.refs) < refs || cap(w.keys) < keyBytes || cap(w.args) < slots {
		a := newArgArena(max(refs, cap(w.refs)), max(keyBytes, cap(w.keys)), max(slots, cap(w.args)))
		w.refs, w.keys, w.args = a.refs, a.keys, a.any
	}
	return argArena{refs: w.refs[:0], keys: w.keys[:0], any: w.args[:0]}
}

// commands returns the commands of calls, reading their replies through
// w's budget into buffers kept from w's earlier requests.
func (w *work) commands(ctx context.Context, calls []call) []*rawCmd {
	w.ptrs = grown(w.ptrs, len(calls))
	if cap(w.cmds) < len(calls) {
		// Extended, keeping the reply buffers it has.
		w.cmds = append(w.cmds[:cap(w.cmds)], make([]rawCmd, len(calls)-cap(w.cmds))...)
	}
	w.cmds = w.cmds[:len(calls)]
	for i, c := range calls {
		cmd := &w.cmds[i]
		cmd.buf, cmd.budget = cmd.buf[:0], &w.budget
		cmd.RawWriteToCmd = redis.NewRawWriteToCmd(ctx, cmd, c.args...)
		if 0 < c.first && c.first <= 127 {
			cmd.SetFirstKeyPos(int8(c.first))
		}
		w.ptrs[i] = cmd
	}
	return w.ptrs
}

// grown returns s with length n, its elements zero, reusing its array
// when it has room.
func grown[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

func newCmds(ctx context.Context, budget *replyBudget, calls []call) []*rawCmd {
	cmds := make([]*rawCmd, len(calls))
	for i, c := range calls {
		cmds[i] = newRawCmd(ctx, budget, c.args...)
		if 0 < c.first && c.first <= 127 {
			cmds[i].SetFirstKeyPos(int8(c.first))
		}
	}
	return cmds
}

// exec sends cmds: one alone as a command, several as a pipeline, or as a
// MULTI/EXEC transaction.
func (b *Bridge) exec(ctx context.Context, cmds []*rawCmd, tx bool) {
	if len(cmds) == 1 && !tx {
		_ = b.client.Process(ctx, cmds[0])
		return
	}
	var p redis.Pipeliner
	if tx {
		p = b.client.TxPipeline()
	} else {
		p = b.client.Pipeline()
	}
	for _, c := range cmds {
		_ = p.Process(ctx, c)
	}
	if _, err := p.Exec(ctx); err != nil && !isReply(err) {
		// go-redis does not copy a failure that hit the whole pipeline (a
		// refused login, say) onto the commands that never got a reply:
		// do it, so outcome sees the failure and its cause.
		for _, c := range cmds {
			if c.Err() == nil && len(c.buf) == 0 {
				c.SetErr(err)
			}
		}
	}
	if b.isCluster && !tx {
		// A cluster pipeline reads raw replies itself, so a redirection
		// comes back as the reply. Such a command did not run: send it
		// alone, and the nodes' hook lets go-redis follow it.
		for _, c := range cmds {
			if msg, ok := errorOf(c); ok && redirection(msg) {
				c.reset()
				_ = b.client.Process(ctx, c)
			}
		}
	}
}

func redirection(msg string) bool {
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ") || strings.HasPrefix(msg, "TRYAGAIN ")
}

// errorOf returns the error reply of c, whether it is in its raw value or
// was lifted into its error.
func errorOf(c *rawCmd) (string, bool) {
	raw, err := c.Result()
	if err != nil {
		return err.Error(), isReply(err)
	}
	if msg, ok := topError(raw); ok {
		return string(msg), true
	}
	return "", false
}

// authFailure reports whether err is Redis refusing the bridge's
// credentials.
func authFailure(err error) bool {
	s := err.Error()
	return strings.Contains(s, "WRONGPASS") || strings.Contains(s, "NOAUTH")
}

// scriptCache remembers the SHA-1 of the scripts a backend runs, and
// holds the backend to maxScripts of them.
type scriptCache struct {
	mu sync.RWMutex
	m  map[string]any // script -> its SHA1 in hex, a string
}

// maxScripts and maxScriptBytes bound the scripts a backend may send
// Redis while the bridge lives: distinct scripts, and the bytes of one.
// Redis keeps every script it is sent until SCRIPT FLUSH, which would
// empty every other client's cache too, and runs and caches one that
// writes nothing even past maxmemory: 65 000 distinct scripts of 10 KiB
// took a shared Redis from 1 MB to 808 MB, and another backend's writes
// were then refused. A backend uses a handful of scripts, the built-in
// library of about 25 KB; the bounds hold it to 8 MiB of Redis's memory.
//
// Each bound is per bridge, and a daemon's next start has its own; what
// bounds Redis's cache across them is scriptCacheBytes: while a master's
// script cache holds more (read from INFO every InfoMaxAge), a script it
// does not hold already is refused.
const (
	maxScripts       = 64
	maxScriptBytes   = 128 << 10
	scriptCacheBytes = 64 << 20
)

func newScriptCache() *scriptCache { return &scriptCache{m: make(map[string]any)} }

// sha returns the SHA1 of script in hex, as a string in an interface: an
// EVALSHA argument, boxed once per script rather than once per call; and
// whether the script is new to the cache. It returns nil for a script
// past the bounds, which must not be sent.
func (c *scriptCache) sha(script []byte) (_ any, fresh bool) {
	c.mu.RLock()
	s, ok := c.m[string(script)]
	c.mu.RUnlock()
	if ok {
		return s, false
	}
	if len(script) > maxScriptBytes {
		return nil, false
	}
	sum := sha1.Sum(script)
	s = hex.EncodeToString(sum[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[string(script)]; ok {
		return s, false
	}
	if len(c.m) >= maxScripts {
		return nil, false
	}
	c.m[string(script)] = s
	return s, true
}

// forget removes a script the bridge did not send after all.
func (c *scriptCache) forget(script []byte) {
	c.mu.Lock()
	delete(c.m, string(script))
	c.mu.Unlock()
}

// scriptHeld reports whether Redis holds the script of sha already, so
// that sending it adds nothing to its cache; false when it cannot tell.
func (b *Bridge) scriptHeld(ctx context.Context, sha string) bool {
	ctx, cancel := context.WithTimeout(ctx, InfoTimeout)
	defer cancel()
	held, err := b.infoClient.ScriptExists(ctx, sha).Result()
	return err == nil && len(held) == 1 && held[0]
}

// smallCounts are the numkeys arguments of up to 16 keys, boxed once.
var smallCounts = func() (n [17]any) {
	for i := range n {
		n[i] = strconv.Itoa(i)
	}
	return n
}()

// numkeys returns n as an EVALSHA numkeys argument.
func numkeys(n int) any {
	if n < len(smallCounts) {
		return smallCounts[n]
	}
	return strconv.Itoa(n)
}
