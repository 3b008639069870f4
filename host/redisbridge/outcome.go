package redisbridge

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// A request that fails is answered UNAVAILABLE when none of its writes
// ran, and UNKNOWN (abi.StatusUnknown) when one may have: the caller must
// not take "not applied" for granted after a timeout that came once the
// request had left the host.
//
// go-redis does not say whether a failed command had been written: a
// write timeout and a read timeout are the same net.Error, and it returns
// the errors of getting a connection (a refused dial, a pool timeout, the
// caller's context ending while it waits) as they are. The bridge tells
// them apart itself:
//
//   - every connection it dials is a sentConn, which marks a write that
//     failed before any byte of the request reached the kernel (errUnsent),
//     a read of a set-up exchange's replies that failed, and a dial that
//     failed (errUnsent too);
//   - errors go-redis returns only before it has a connection (pool
//     timeout and exhaustion, a closed client, a context error: go-redis
//     checks the context only while waiting for a connection, and a
//     deadline passing later is the socket's i/o timeout) are not sent;
//   - so are the error replies of logging in (setupErrors);
//   - anything else, a read that timed out, a connection reset or closed
//     while the reply was awaited, a write that failed part way, may have
//     been sent.
//
// A connection whose set-up exchange (HELLO, AUTH, SELECT: go-redis sends
// it before the first request) gets no reply has not sent the request
// either: the sentConn recognises an exchange of set-up commands only.

// errUnsent marks a failure that happened before any byte of the request
// left the host.
type errUnsent struct{ err error }

func (e errUnsent) Error() string { return e.err.Error() }
func (e errUnsent) Unwrap() error { return e.err }

// Timeout and Temporary keep go-redis's view of the error as a net.Error:
// it decides from them whether to keep the connection.
func (e errUnsent) Timeout() bool {
	var ne net.Error
	return errors.As(e.err, &ne) && ne.Timeout()
}

func (e errUnsent) Temporary() bool { return false }

var _ net.Error = errUnsent{}

// sentConn is a connection that knows whether bytes of the current request
// have left the host: pending is set by a write that passed bytes to the
// kernel, and cleared by every read. go-redis writes a whole request, then
// reads its replies, one exchange at a time on a connection: the set-up of
// a new connection (HELLO, AUTH, SELECT) is an exchange of its own, so a
// read between two writes ends one exchange and the next write starts
// another. setup is set while the current exchange holds set-up commands
// only: a failure to read its replies leaves the request unsent, since
// go-redis writes the request only once the set-up has succeeded.
type sentConn struct {
	net.Conn
	pending atomic.Bool
	setup   atomic.Bool
}

// Write marks its error errUnsent when nothing of the request has been
// written: not by this call (n is 0) nor by one before it since the last
// read.
func (c *sentConn) Write(p []byte) (int, error) {
	if !c.pending.Load() {
		c.setup.Store(setupOnly(p))
	} else if c.setup.Load() && !setupOnly(p) {
		c.setup.Store(false)
	}
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.pending.Store(true)
	}
	if err != nil && n == 0 && !c.pending.Load() {
		return 0, unsentTwice(err)
	}
	return n, err
}

// unsentTwice marks err errUnsent in two layers: go-redis returns a
// failure of a connection's set-up (the first write of a new connection is
// its HELLO) with one layer unwrapped.
func unsentTwice(err error) error { return errUnsent{errUnsent{err}} }

// Read clears pending: the exchange that wrote it is over, answered or
// not. A failed read of a set-up exchange's replies is errUnsent.
func (c *sentConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.pending.Store(false)
	if err != nil && c.setup.Load() {
		return n, unsentTwice(err)
	}
	return n, err
}

// setupCommands are the commands go-redis sends to set a connection up;
// none of them is in the bridge's command table.
var setupCommands = []string{"hello", "auth", "select", "client", "readonly"}

// setupOnly reports whether p is whole RESP commands, each a set-up
// command. Anything else, or anything it cannot parse, is not.
func setupOnly(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	for len(p) > 0 {
		n, rest, ok := respHeader(p, '*')
		if !ok || n < 1 {
			return false
		}
		p = rest
		for i := 0; i < n; i++ {
			size, rest, ok := respHeader(p, '$')
			if !ok || size < 0 || len(rest) < size+2 {
				return false
			}
			if i == 0 && !slices.ContainsFunc(setupCommands, func(c string) bool { return strings.EqualFold(c, string(rest[:size])) }) {
				return false
			}
			p = rest[size+2:]
		}
	}
	return true
}

// respHeader parses a line "<kind><decimal>\r\n" at the start of p.
func respHeader(p []byte, kind byte) (int, []byte, bool) {
	if len(p) < 4 || p[0] != kind {
		return 0, nil, false
	}
	end := bytes.Index(p, []byte("\r\n"))
	if end < 2 || end > 12 {
		return 0, nil, false
	}
	n, err := strconv.Atoi(string(p[1:end]))
	if err != nil {
		return 0, nil, false
	}
	return n, p[end+2:], true
}

// sentSysConn is a sentConn over a connection with a file descriptor (plain
// TCP): go-redis's pool checks a pooled connection's health through it
// before use, and must keep doing so.
type sentSysConn struct{ *sentConn }

func (c sentSysConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// tracked wraps a new connection as a sentConn.
func tracked(conn net.Conn) net.Conn {
	sc := &sentConn{Conn: conn}
	if _, ok := conn.(syscall.Conn); ok {
		return sentSysConn{sc}
	}
	return sc
}

// trackSends is the hook that makes every dialled connection a sentConn
// and every failed dial errUnsent.
type trackSends struct{}

func (trackSends) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, errUnsent{err}
		}
		return tracked(conn), nil
	}
}

func (trackSends) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (trackSends) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

var _ redis.Hook = trackSends{}

// unsent reports whether err, a failure to talk to Redis (not an error
// reply to a command), happened before the request left the host.
func unsent(err error) bool {
	var us errUnsent
	switch {
	case errors.As(err, &us):
		return true
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted), errors.Is(err, redis.ErrClosed):
		return true
	case hasPrefix(err.Error(), setupErrors):
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		// A socket's error: a dial that failed, or a connection whose
		// deadline passed or that broke once the request may have left.
		return oe.Op == "dial"
	}
	// go-redis returns a bare context error only while waiting for a
	// connection; a deadline passing on the socket is a net.OpError.
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// failure is how a request failed as a whole.
type failure struct {
	err     error // the first failure, for the message
	unknown bool  // a write of the request ran or may have
}

// outcome reports whether cmds failed as a whole, why, and whether one of
// their writes (writes[i]: cmds[i] may change data) ran or may have: a
// command that could not be sent or answered, or an error reply that means
// Redis cannot serve now, fails the request.
func outcome(cmds []*rawCmd, writes []bool) (failure, bool) {
	var f failure
	failed, wrote := false, false
	for i, c := range cmds {
		if err := c.Err(); err != nil && !isReply(err) {
			if !failed {
				f.err, failed = err, true
			}
			if writes[i] && !unsent(err) {
				f.unknown = true
			}
			continue
		}
		if msg, ok := errorOf(c); ok && unavailableReply(msg) {
			if !failed {
				f.err, failed = replyError(msg), true
			}
			continue
		}
		if writes[i] {
			wrote = true // it ran
		}
	}
	if !failed {
		return failure{}, false
	}
	f.unknown = f.unknown || wrote
	return f, true
}
