package httpapi

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultMaxConnections is the default bound of a ConnLimit.
const DefaultMaxConnections = 16384

// ConnLimit bounds the connections a server holds open, each a file
// descriptor, a goroutine and buffers: without it, a client opening
// connections and leaving them idle (or sending nothing) took the
// process's every file descriptor, and the backends could open none.
// At the bound a new connection takes the place of one that serves no
// request: idle between requests, or yet to send one, of the client
// address holding the most connections, the longest idle first; when
// none is, the new connection is closed. Serve with Listener and
// ConnState both. Safe for concurrent use.
type ConnLimit struct {
	log hclog.Logger

	mu     sync.Mutex
	max    int
	conns  map[net.Conn]*connEntry
	byAddr map[string]int
	shed   uint64 // connections closed at the bound
}

type connEntry struct {
	client string
	busy   bool      // serving a request (http.StateActive)
	since  time.Time // of its last change between busy and not
}

// NewConnLimit returns a ConnLimit of max connections (0 for the default:
// DefaultMaxConnections, or half the process's limit on open files when
// that is lower), logging to log (nil for none) when it closes some.
func NewConnLimit(max int, log hclog.Logger) *ConnLimit {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &ConnLimit{log: log, max: maxConnections(max), conns: map[net.Conn]*connEntry{}, byAddr: map[string]int{}}
}

// maxConnections is a ConnLimit's bound n with its default.
func maxConnections(n int) int {
	if n > 0 {
		return n
	}
	n = DefaultMaxConnections
	if lim := fdLimit() / 2; lim > 0 && lim < uint64(n) {
		n = int(lim)
	}
	return n
}

// SetMax changes the bound, for a configuration reload (0 for the
// default). Connections past a lowered bound are closed as new ones
// arrive, as at the bound.
func (l *ConnLimit) SetMax(max int) {
	l.mu.Lock()
	l.max = maxConnections(max)
	l.mu.Unlock()
}

// Max returns the bound.
func (l *ConnLimit) Max() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.max
}

// Open returns the number of connections open.
func (l *ConnLimit) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Listener returns ln, whose connections l counts and bounds.
func (l *ConnLimit) Listener(ln net.Listener) net.Listener { return &limitedListener{ln, l} }

type limitedListener struct {
	net.Listener
	l *ConnLimit
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil || ll.l.admit(c) {
			return c, err
		}
	}
}

// admit counts c, making room for it if needed; it closes c and reports
// false when there is none.
func (l *ConnLimit) admit(c net.Conn) bool {
	client := clientKey(c.RemoteAddr().String())
	l.mu.Lock()
	var victim net.Conn
	for len(l.conns) >= l.max {
		if victim = l.victim(); victim == nil {
			break
		}
		l.removeLocked(victim)
		victim.Close()
		l.shedLocked()
	}
	if victim == nil && len(l.conns) >= l.max {
		l.shedLocked()
		l.mu.Unlock()
		c.Close()
		return false
	}
	l.conns[c] = &connEntry{client: client, since: time.Now()}
	l.byAddr[client]++
	l.mu.Unlock()
	return true
}

// victim returns the connection to close for a new one: one serving no
// request, of the client holding the most connections, the one longest
// without a request; nil when every connection serves one.
func (l *ConnLimit) victim() net.Conn {
	var best net.Conn
	var bestEntry *connEntry
	for c, e := range l.conns {
		if e.busy {
			continue
		}
		if best == nil || l.byAddr[e.client] > l.byAddr[bestEntry.client] ||
			l.byAddr[e.client] == l.byAddr[bestEntry.client] && e.since.Before(bestEntry.since) {
			best, bestEntry = c, e
		}
	}
	return best
}

func (l *ConnLimit) removeLocked(c net.Conn) {
	e, ok := l.conns[c]
	if !ok {
		return
	}
	delete(l.conns, c)
	if l.byAddr[e.client]--; l.byAddr[e.client] <= 0 {
		delete(l.byAddr, e.client)
	}
}

func (l *ConnLimit) shedLocked() {
	l.shed++
	if l.shed&(l.shed-1) == 0 { // log at powers of two
		l.log.Warn("connections at their bound: idle ones closed for new ones, or new ones refused", "max_connections", l.max, "closed", l.shed)
	}
}

// ConnState is http.Server.ConnState: it follows which connections
// serve a request, and forgets closed ones.
func (l *ConnLimit) ConnState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateActive, http.StateIdle:
		if e, ok := l.conns[c]; ok {
			e.busy, e.since = s == http.StateActive, time.Now()
		}
	case http.StateClosed, http.StateHijacked:
		l.removeLocked(c)
	}
}
