package redisbridge

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Lua script runs to its end with Redis answering nobody else: past
// busy-reply-threshold (5 s by default) every other client, the host's
// event appender and other backends included, is answered BUSY until the
// script ends or someone sends SCRIPT KILL. The bridge sends it when one
// of its own script calls overran its deadline, and only then:
//
//   - the call's connection timed out or its context ended while the
//     script ran (a reply, even an error one, means it had finished);
//   - Redis reads SCRIPT KILL only once it answers BUSY, that is once a
//     script has run past busy-reply-threshold, the operator's bound for
//     any script; before that it answers NOTBUSY, and the bridge stops;
//   - the kill goes to the node of the call's first key, on a connection
//     of the configured rights (the confined user has no SCRIPT).
//
// The script may be another client's runaway that kept ours waiting:
// killing it is what Redis's own bound says to do, and its own client may
// retry. A script that has written cannot be killed (UNKILLABLE: only
// SHUTDOWN NOSAVE stops it); the bridge counts it and gives up.

// killWait bounds the wait for SCRIPT KILL's answer: Redis reads it only
// once the script has run past busy-reply-threshold (5 s by default).
const killWait = 10 * time.Second

// killCloseWait bounds how long Close lets a round of kills go on: one
// that Redis does not answer (frozen, or a network that drops everything)
// would hold it for killWait.
const killCloseWait = 2 * time.Second

// killer sends the kills of one bridge, one round at a time.
type killer struct {
	running atomic.Bool
	// mu orders a round's start (wg.Add) before Close's wait (wg.Wait),
	// which a WaitGroup does not allow at once: once closed is set, no
	// round starts.
	mu         sync.Mutex
	closed     bool
	wg         sync.WaitGroup
	killed     atomic.Uint64
	unkillable atomic.Uint64
}

// wait waits for the round under way, if any: killCloseWait at most, then
// its connections are closed, which ends it.
func (k *killer) wait(u *aclUser) {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	if u == nil {
		return
	}
	done := make(chan struct{})
	go func() { k.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(killCloseWait):
		_ = u.closeKiller()
		<-done
	}
}

// KillStats counts the scripts a bridge killed after its calls overran.
type KillStats struct {
	Killed     uint64 // SCRIPT KILL answered OK
	Unkillable uint64 // SCRIPT KILL answered UNKILLABLE: the script had written
}

// Kills returns the bridge's counts of killed scripts.
func (b *Bridge) Kills() KillStats {
	return KillStats{Killed: b.kills.killed.Load(), Unkillable: b.kills.unkillable.Load()}
}

// overran reports whether err is the call running out of time (or being
// cancelled) while waiting for Redis, as opposed to Redis being away.
func overran(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// killRunaway kills the script the overrun calls left running, in the
// background: the caller has its answer already.
func (b *Bridge) killRunaway(calls []call) {
	if b.user == nil || !b.kills.running.CompareAndSwap(false, true) {
		return // no scripts, or a round is under way
	}
	var key string
	for _, c := range calls {
		if c.first > 0 {
			if k, ok := c.args[c.first].(*byteArg); ok {
				key = k.String()
			}
			break
		}
	}
	b.kills.mu.Lock()
	if b.kills.closed {
		b.kills.mu.Unlock()
		b.kills.running.Store(false)
		return // Close waits for no more rounds
	}
	b.kills.wg.Add(1)
	b.kills.mu.Unlock()
	go func() {
		defer b.kills.wg.Done()
		defer b.kills.running.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), killWait)
		defer cancel()
		go func() { // Close ends the round
			select {
			case <-b.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		node, err := b.user.killNode(ctx, key)
		if err != nil {
			return
		}
		// A pipelined run after a killed one may loop too: one kill per
		// call at most.
		for range calls {
			err := node.Do(ctx, "script", "kill").Err()
			switch {
			case err == nil:
				b.kills.killed.Add(1)
			case strings.HasPrefix(err.Error(), "UNKILLABLE"):
				b.kills.unkillable.Add(1)
				return
			default: // NOTBUSY: nothing runs; or Redis away
				return
			}
		}
	}()
}

// killNode returns the client that reaches the node holding key (any node
// on a single Redis).
func (u *aclUser) killNode(ctx context.Context, key string) (*redis.Client, error) {
	switch c := u.killer.(type) {
	case *redis.ClusterClient:
		if key == "" {
			return nil, errors.New("redisbridge: a keyless script call on a cluster: no node to kill it on")
		}
		return c.MasterForKey(ctx, key)
	case *redis.Client:
		return c, nil
	}
	return nil, errors.New("redisbridge: no client to kill scripts with")
}
