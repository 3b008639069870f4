package redisbridge

import (
	"context"

	"github.com/storage-host/storage-host/host/internal/coalesce"
)

// Auto-pipelining (package coalesce): the bridge sees the requests of
// every instance of its backend, and concurrent ones share pipelines
// instead of taking a connection and a round trip each.
//
// At most defaultMaxInFlight pipelines are on the wire at once. A request
// that finds one free sends its commands at once on the caller's
// goroutine, as if alone. Otherwise it queues; when a pipeline comes back
// and requests are waiting, a flusher goroutine takes them (up to
// maxCommands commands) and sends their commands as one pipeline on one
// connection, then again while more wait.
//
// Only pipelines and script calls of at most maxSharedRequest commands
// share: a transaction keeps its own connection (MULTI/EXEC), a bulk
// request is a pipeline of its own, and no blocking or connection-state
// command is in the command table. A cluster client keeps per-request
// pipelines.
//
// Outcomes stay per request. A shared pipeline that fails before any byte
// is written fails every command unsent (UNAVAILABLE); one that fails after
// fails every command not yet answered as possibly sent, so each request
// with a write among them is UNKNOWN (outcome.go). A queued request whose
// context ends leaves the queue untouched by Redis (UNAVAILABLE) if no
// flusher has taken it yet, and is answered as possibly sent (UNKNOWN with
// a write) if one has.

// maxSharedRequest is the most commands of a request that shares
// pipelines: a larger one (a bulk write) already amortises its round trip,
// and queueing it would hold small requests behind it.
const maxSharedRequest = 16

// defaultMaxInFlight is how many pipelines a bridge keeps on the wire at
// once (BENCHMARKS.md, Redis: auto-pipelining).
const defaultMaxInFlight = 2

// sendResult is how a request sent through the coalescer ended.
type sendResult uint8

const (
	answered       sendResult = iota // the commands have their replies or errors
	abandonedQueue                   // the caller's context ended before anything was sent
	abandonedSent                    // it ended once a flusher held the commands: possibly sent
)

// pipes is the bridge's coalescer of shared pipelines: at most
// defaultMaxInFlight on the wire, maxCommands commands each.
type pipes = coalesce.Coalescer[[]*rawCmd]

func newPipes(maxCommands int, exec func(ctx context.Context, cmds []*rawCmd)) *pipes {
	return coalesce.New(defaultMaxInFlight, maxCommands, func(cmds []*rawCmd) int { return len(cmds) },
		func(ctx context.Context, batch []*coalesce.Entry[[]*rawCmd]) {
			var cmds []*rawCmd
			for _, e := range batch {
				cmds = append(cmds, e.Item...)
			}
			exec(ctx, cmds)
		})
}

// share sends cmds, sharing a pipeline with concurrent requests when
// every pipeline is in flight. Unless it returns answered, the commands
// belong to the flusher and the caller must not read them.
func (b *Bridge) share(ctx context.Context, cmds []*rawCmd) sendResult {
	res := b.pipes.Do(ctx, func() { b.exec(ctx, cmds, false) }, func() []*rawCmd {
		// The request's byte arguments alias the plugin's memory, which is
		// the plugin's again once the bridge answers: a request that may
		// be answered before a flusher writes it must own its bytes.
		own(cmds)
		return cmds
	})
	switch res {
	case coalesce.Answered:
		return answered
	case coalesce.Unsent:
		return abandonedQueue
	default:
		return abandonedSent
	}
}

// own replaces the byte arguments of cmds that alias the plugin's memory
// with one copy of them all.
func own(cmds []*rawCmd) {
	size := 0
	for _, c := range cmds {
		for _, a := range c.Args() {
			switch a := a.(type) {
			case []byte:
				size += len(a)
			case *byteArg:
				if !a.owned {
					size += len(a.b)
				}
			}
		}
	}
	arena := make([]byte, 0, size)
	for _, c := range cmds {
		args := c.Args()
		for i, a := range args {
			switch a := a.(type) {
			case []byte:
				start := len(arena)
				arena = append(arena, a...)
				args[i] = arena[start:len(arena):len(arena)]
			case *byteArg:
				if !a.owned {
					start := len(arena)
					arena = append(arena, a.b...)
					a.b, a.owned = arena[start:len(arena):len(arena)], true
				}
			}
		}
	}
}
