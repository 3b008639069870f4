package httpapi

import (
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// streamSlots are the places of the event streams open at once
// (Options.MaxEventStreams), shared among clients: anyone may take a free
// one, and when none is free a client whose address holds fewer streams
// than the address holding the most, by two or more, takes one of that
// address's places (its newest stream ends with too_many_streams). One
// client that opens streams and never reads them cannot keep every other
// client out; a lone client, or every client behind one proxy, may still
// use them all. RATIONALE.md, "Why are event streams shared among clients
// by displacing, not by a quota per address?".
type streamSlots struct {
	mu       sync.Mutex
	max      int
	open     int
	byClient map[string][]*streamSlot // open slots by client, oldest first
}

// streamSlot is the place of one open stream.
type streamSlot struct {
	client string
	// displaced is closed when another client's stream took the place.
	displaced chan struct{}
	gone      bool    // released, or taken by another client; under streamSlots.mu
	s         *stream // the stream written, once it is; under streamSlots.mu
}

func newStreamSlots(max int) *streamSlots {
	return &streamSlots{max: max, byClient: map[string][]*streamSlot{}}
}

// take returns a place for a stream of client, nil when there is none
// for it: every place is taken, and no address holds two streams more
// than client's.
func (ss *streamSlots) take(client string) *streamSlot {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.open >= ss.max {
		victim := ss.displaceable(len(ss.byClient[client]))
		if victim == nil {
			return nil
		}
		if victim.s != nil {
			victim.s.displace()
		}
		close(victim.displaced)
		ss.removeLocked(victim)
	}
	sl := &streamSlot{client: client, displaced: make(chan struct{})}
	ss.byClient[client] = append(ss.byClient[client], sl)
	ss.open++
	return sl
}

// available reports whether take would give client a place, without
// taking it.
func (ss *streamSlots) available(client string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.open < ss.max || ss.displaceable(len(ss.byClient[client])) != nil
}

// displaceable returns the newest stream of the address holding the
// most, if it holds at least two more than held.
func (ss *streamSlots) displaceable(held int) *streamSlot {
	var most []*streamSlot
	for _, sls := range ss.byClient {
		if len(sls) > len(most) {
			most = sls
		}
	}
	if len(most) < held+2 {
		return nil
	}
	return most[len(most)-1]
}

// attach makes s the stream of sl, which a displacing client cuts short.
// It reports false when sl was displaced already.
func (ss *streamSlots) attach(sl *streamSlot, s *stream) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if sl.gone {
		return false
	}
	sl.s = s
	return true
}

// release gives sl's place back, unless another client took it. A nil
// sl is no place.
func (ss *streamSlots) release(sl *streamSlot) {
	if sl == nil {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !sl.gone {
		ss.removeLocked(sl)
	}
}

func (ss *streamSlots) removeLocked(sl *streamSlot) {
	sl.gone, sl.s = true, nil
	ss.open--
	sls := ss.byClient[sl.client]
	for i, o := range sls {
		if o == sl {
			sls = append(sls[:i], sls[i+1:]...)
			break
		}
	}
	if len(sls) == 0 {
		delete(ss.byClient, sl.client)
	} else {
		ss.byClient[sl.client] = sls
	}
}

// setMax changes the number of places; streams open past a lowered
// number go on, and new ones wait for them to end (or displace them).
func (ss *streamSlots) setMax(max int) {
	ss.mu.Lock()
	ss.max = max
	ss.mu.Unlock()
}

// limit returns the number of places.
func (ss *streamSlots) limit() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.max
}

// clientKey is the client an address of http.Request.RemoteAddr counts
// as, for sharing the streams: its IP address, or its /64 for IPv6 (a
// host is commonly given a /64 of its own). An address that is not an
// IP, such as a Unix socket's, is one client.
func clientKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return ""
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		if p, err := a.WithZone("").Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// stream writes an event stream. Every write since the last flush, and
// that flush, must be done within the stream's timeout (a displaced
// stream's, within displacedGrace), or the stream ends: a client that
// takes nothing of what is sent for that long holds a goroutine, a
// connection and buffers no longer.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration

	mu    sync.Mutex
	armed bool // a write deadline covers the writes since the last flush
	cut   bool // displaced: writes get displacedGrace at most
}

// arm sets the deadline of the writes up to the next flush, unless set.
func (s *stream) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.armed {
		return
	}
	d := s.timeout
	if s.cut {
		d = min(d, displacedGrace)
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(d))
	s.armed = true
}

// write writes b and reports whether it could; a stream that cannot be
// written to is done.
func (s *stream) write(b []byte) bool {
	s.arm()
	_, err := s.w.Write(b)
	return err == nil
}

// flush sends what was written and reports whether it could.
func (s *stream) flush() bool {
	s.arm()
	err := s.rc.Flush()
	s.mu.Lock()
	s.armed = false
	s.mu.Unlock()
	return err == nil
}

// displace cuts the deadline of what s writes to displacedGrace from
// now, a write waiting on its client included. Called from another
// request's goroutine, under streamSlots.mu.
func (s *stream) displace() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut, s.armed = true, true
	_ = s.rc.SetWriteDeadline(time.Now().Add(displacedGrace))
}

// finish bounds what the server still writes after the handler (the end
// of the chunked body) by the stream's timeout; the server clears the
// deadline once it has written it, before the connection serves again.
func (s *stream) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.timeout
	if s.cut {
		d = min(d, displacedGrace)
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(d))
}
