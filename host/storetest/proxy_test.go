package storetest_test

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// faultProxy forwards TCP connections to a server and fails as a network
// can, for one store alone while others reach the same server directly:
// Cut closes every connection and each new one at once, until Restore;
// Freeze makes the server look frozen (a process stopped, a network that
// drops every packet): no byte goes either way and new connections are
// held, until Thaw, when everything held goes on.
type faultProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	thawed *sync.Cond
	cut    bool
	frozen bool
	conns  map[net.Conn]struct{}
	// delay holds the first chunk a client sends holding marker, and
	// what its connection sends after it, for delay (DelayNext).
	marker    []byte
	delay     time.Duration
	heldAt    time.Time // when the chunk DelayNext armed for began its hold
	delivered bool      // the chunk DelayNext held was written on
	answered  bool      // and the server answered it
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.thawed = sync.NewCond(&p.mu)
	t.Cleanup(func() { p.Thaw(); _ = ln.Close(); p.Cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

// open waits while the proxy is frozen and reports whether connections
// go through (not cut).
func (p *faultProxy) open() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.frozen {
		p.thawed.Wait()
	}
	return !p.cut
}

func (p *faultProxy) forward(c net.Conn) {
	defer c.Close()
	if !p.open() {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var held atomic.Bool // this connection's chunk was held (DelayNext)
	go func() {
		p.copy(up, c, true, &held)
		// Half closed, so that the server's answer to what the client sent
		// last is still read (Answered), as a network delivers it.
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			_ = up.Close()
		}
	}()
	p.copy(c, up, false, &held)
}

// copy copies src to dst, holding what it read while the proxy is frozen;
// from a client (fromClient), a chunk DelayNext armed the proxy for is
// held for its delay, and the connection's later bytes behind it, though
// the client may have given up and closed meanwhile: a request a network
// delivers late. held is set once that chunk is written on, and the
// server's answer behind it marks the proxy answered.
func (p *faultProxy) copy(dst io.Writer, src io.Reader, fromClient bool, held *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !p.open() {
			return
		}
		delayed := false
		if fromClient && n > 0 {
			if d := p.delayFor(buf[:n]); d > 0 {
				time.Sleep(d)
				delayed = true
			}
		}
		if !fromClient && n > 0 && held.Load() {
			p.mu.Lock()
			p.answered = true
			p.mu.Unlock()
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if delayed {
				p.mu.Lock()
				p.delivered = true
				p.mu.Unlock()
				held.Store(true)
			}
		}
		if err != nil {
			return
		}
	}
}

// DelayNext arms the proxy to hold the next chunk a client sends that
// holds marker for d (see copy); other connections go on meanwhile.
func (p *faultProxy) DelayNext(marker []byte, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker, p.delay = marker, d
}

// delayFor is how long to hold chunk: the armed delay, once, for a chunk
// holding the marker, else 0.
func (p *faultProxy) delayFor(chunk []byte) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marker == nil || !bytes.Contains(chunk, p.marker) {
		return 0
	}
	d := p.delay
	p.marker, p.delay, p.heldAt = nil, 0, time.Now()
	return d
}

// HeldAt is when the chunk DelayNext armed for began its hold: the zero
// time until a chunk holding its marker came.
func (p *faultProxy) HeldAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heldAt
}

// Delivered reports whether the chunk DelayNext held was written on to
// the server.
func (p *faultProxy) Delivered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered
}

// Answered reports whether the server answered the chunk DelayNext held:
// it ran it.
func (p *faultProxy) Answered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answered
}

// Cut closes every connection and refuses new ones until Restore.
func (p *faultProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Restore lets connections through again.
func (p *faultProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Freeze stops every byte and connection until Thaw.
func (p *faultProxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

// Thaw lets everything held go on.
func (p *faultProxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = false
	p.thawed.Broadcast()
}
