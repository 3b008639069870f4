package redisbridge

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/abi"
)

// call is one command ready to send: its arguments, keys prefixed, and
// the position of its first key (0: none), which routes it on a cluster.
type call struct {
	args  []any
	first int
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
//     LOADING, MASTERDOWN or TRYAGAIN to any of them. Commands of the
//     request may have run: the outcome is unknown;
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
func (b *Bridge) Do(ctx context.Context, req *abi.RedisRequest, e *abi.Encoder) {
	var calls []call
	switch req.Mode {
	case abi.RedisPipeline, abi.RedisTransaction:
		if len(req.Commands) == 0 {
			invalid(e, "no commands")
			return
		}
		calls = make([]call, len(req.Commands))
		for i, in := range req.Commands {
			if len(in) == 0 {
				invalid(e, "command %d is empty", i)
				return
			}
			c := lookup(b.allowed, in[0])
			if c == nil {
				if lookup(commands, in[0]) != nil {
					invalid(e, "command %s is not allowed for this backend (not in AllowCommands)", shown(in[0]))
				} else {
					invalid(e, "command %s is not allowed", shown(in[0]))
				}
				return
			}
			args, first, err := c.args(in, b.prefix, make([]any, 0, len(in)))
			if err != nil {
				invalid(e, "command %d: %v", i, err)
				return
			}
			calls[i] = call{args: args, first: first}
		}
	case abi.RedisScript:
		if b.scripts == nil {
			invalid(e, "scripts are not granted to this backend")
			return
		}
		if len(req.Script) == 0 {
			invalid(e, "empty script")
			return
		}
		if len(req.Calls) == 0 {
			invalid(e, "no script calls")
			return
		}
		sha := b.scripts.sha(req.Script)
		calls = make([]call, len(req.Calls))
		for i, sc := range req.Calls {
			args := make([]any, 0, 3+len(sc.Keys)+len(sc.Args))
			args = append(args, "evalsha", sha, strconv.Itoa(len(sc.Keys)))
			for _, k := range sc.Keys {
				if bytes.HasPrefix(k, hostKeyPrefix) {
					invalid(e, "script call %d: key %s: keys starting with %q are the host's", i, shown(k), HostKeyPrefix)
					return
				}
				args = append(args, b.prefix+string(k))
			}
			for _, a := range sc.Args {
				args = append(args, a)
			}
			calls[i].args = args
			if len(sc.Keys) > 0 {
				calls[i].first = 3
			}
		}
	default:
		invalid(e, "unknown mode %d", req.Mode)
		return
	}

	cmds := b.run(ctx, req, calls)
	if failed, err := outcome(cmds); failed {
		if b.user != nil && authFailure(err) && b.user.recreate(ctx) == nil {
			// Redis restarted without our ACL user: made again, retry once.
			cmds = b.run(ctx, req, calls)
			failed, err = outcome(cmds)
		}
		if failed {
			unavailable(e, err)
			return
		}
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
}

// run sends calls as req's mode says and returns their commands.
func (b *Bridge) run(ctx context.Context, req *abi.RedisRequest, calls []call) []*redis.RawCmd {
	cmds := newCmds(ctx, calls)
	tx := req.Mode == abi.RedisTransaction
	b.exec(ctx, cmds, tx)
	if req.Mode == abi.RedisScript {
		var again []*redis.RawCmd
		var at []int
		for i, c := range cmds {
			if msg, ok := errorOf(c); ok && strings.HasPrefix(msg, "NOSCRIPT ") {
				args := append([]any{"eval", req.Script}, calls[i].args[2:]...)
				again = append(again, newCmds(ctx, []call{{args: args, first: calls[i].first}})...)
				at = append(at, i)
			}
		}
		if len(again) > 0 {
			b.exec(ctx, again, false)
			for j, i := range at {
				cmds[i] = again[j]
			}
		}
	}
	return cmds
}

func newCmds(ctx context.Context, calls []call) []*redis.RawCmd {
	cmds := make([]*redis.RawCmd, len(calls))
	for i, c := range calls {
		cmds[i] = redis.NewRawCmd(ctx, c.args...)
		if 0 < c.first && c.first <= 127 {
			cmds[i].SetFirstKeyPos(int8(c.first))
		}
	}
	return cmds
}

// exec sends cmds: one alone as a command, several as a pipeline, or as a
// MULTI/EXEC transaction.
func (b *Bridge) exec(ctx context.Context, cmds []*redis.RawCmd, tx bool) {
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
			if c.Err() == nil && c.Val() == nil {
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
func errorOf(c *redis.RawCmd) (string, bool) {
	raw, err := c.Result()
	if err != nil {
		return err.Error(), isReply(err)
	}
	if msg, ok := topError(raw); ok {
		return string(msg), true
	}
	return "", false
}

// outcome reports whether cmds failed as a whole, and why: a command that
// could not be sent or answered, or an error reply that means Redis cannot
// serve now.
func outcome(cmds []*redis.RawCmd) (bool, error) {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !isReply(err) {
			return true, err
		}
		if msg, ok := errorOf(c); ok && unavailableReply(msg) {
			return true, replyError(msg)
		}
	}
	return false, nil
}

// authFailure reports whether err is Redis refusing the bridge's
// credentials.
func authFailure(err error) bool {
	s := err.Error()
	return strings.Contains(s, "WRONGPASS") || strings.Contains(s, "NOAUTH")
}

// scriptCache remembers the SHA-1 of the scripts a backend runs.
type scriptCache struct {
	mu sync.RWMutex
	m  map[string]string
}

// maxScripts bounds a scriptCache; a backend uses a handful of scripts.
const maxScripts = 256

func newScriptCache() *scriptCache { return &scriptCache{m: make(map[string]string)} }

func (c *scriptCache) sha(script []byte) string {
	c.mu.RLock()
	s, ok := c.m[string(script)]
	c.mu.RUnlock()
	if ok {
		return s
	}
	sum := sha1.Sum(script)
	s = hex.EncodeToString(sum[:])
	c.mu.Lock()
	if len(c.m) >= maxScripts {
		clear(c.m)
	}
	c.m[string(script)] = s
	c.mu.Unlock()
	return s
}
