package main

// Fallback, the buffer's state in kv: the queue's counters (c), its
// entries (q/), and the per-record entries (r/). See fallback.go for the
// layout.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

// --- the queue ---

// readMeta reads the queue's head, tail and settled.
func (f *fallback) readMeta(now time.Time) error {
	en, err := f.kv.Get(kvMeta)
	switch {
	case err == nil:
		if len(en.Value) != 16 && len(en.Value) != 24 {
			f.pending = true
			return abi.Errorf(abi.StatusInternal, "fallback buffer: corrupt queue state (%d bytes)", len(en.Value))
		}
		f.head, f.tail, f.rev = binary.BigEndian.Uint64(en.Value), binary.BigEndian.Uint64(en.Value[8:]), en.Revision
		// Without settled (a buffer an older plugin left), no event of a
		// write below head is still to come.
		f.settled = f.head
		if len(en.Value) == 24 {
			f.settled = binary.BigEndian.Uint64(en.Value[16:])
		}
	case errors.Is(err, sdk.ErrNotFound):
		f.head, f.tail, f.settled, f.rev = 1, 0, 1, 0
	default:
		f.pending = true
		return err
	}
	f.pending = f.settled <= f.tail
	f.checkedAt = now
	return nil
}

// writeMeta sets the queue's head, tail and settled if it is still as
// last read.
func (f *fallback) writeMeta(head, tail, settled uint64) error {
	var v [24]byte
	binary.BigEndian.PutUint64(v[:], head)
	binary.BigEndian.PutUint64(v[8:], tail)
	binary.BigEndian.PutUint64(v[16:], settled)
	cond := abi.Condition{Mode: abi.IfAbsent}
	if f.rev != 0 {
		cond = abi.Condition{Mode: abi.IfVersion, Version: f.rev}
	}
	rev, _, err := f.kv.Put(kvMeta, v[:], time.Time{}, false, cond)
	if err != nil {
		return err
	}
	f.head, f.tail, f.settled, f.rev = head, tail, settled, rev
	f.pending = settled <= tail
	return nil
}

// alloc allocates the next queue position, answering errBufferFull when
// the queue holds limit writes.
func (f *fallback) alloc(now time.Time, limit uint64) (uint64, error) {
	fresh := false
	for range casAttempts {
		if f.tail+1-f.head >= limit {
			if !fresh {
				if err := f.readMeta(now); err != nil {
					return 0, err
				}
				fresh = true
				continue
			}
			return 0, errBufferFull
		}
		err := f.writeMeta(f.head, f.tail+1, f.settled)
		if err == nil {
			return f.tail, nil
		}
		if !errors.Is(err, sdk.ErrConflict) {
			return 0, err
		}
		if err := f.readMeta(now); err != nil {
			return 0, err
		}
		fresh = true
	}
	return 0, abi.Errorf(abi.StatusUnavailable, "fallback buffer: too much contention")
}

// redisAnswers reports whether Redis answers a PING, or answered one
// from this instance less than hintEvery ago.
func (b *backend) redisAnswers(now time.Time) bool {
	f := b.fb
	if d := now.Sub(f.answeredAt); !f.answeredAt.IsZero() && d >= 0 && d < hintEvery {
		return true
	}
	if _, err := b.redis.Do(cmdPing); err != nil {
		return false
	}
	f.answeredAt = now
	return true
}

// settle moves settled up to head: the tick that replayed the writes
// below head has returned, and the host has published their events.
func (f *fallback) settle(now time.Time) error {
	for range casAttempts {
		if f.settled >= f.head {
			return nil
		}
		err := f.writeMeta(f.head, f.tail, f.head)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sdk.ErrConflict) {
			return err
		}
		if err := f.readMeta(now); err != nil {
			return err
		}
	}
	return abi.Errorf(abi.StatusUnavailable, "fallback buffer: too much contention")
}

// advance moves head from from to to, reporting false when another
// replayer moved it first.
func (f *fallback) advance(from, to uint64, now time.Time) (bool, error) {
	for range casAttempts {
		if f.head != from {
			return false, nil
		}
		err := f.writeMeta(to, f.tail, f.settled)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sdk.ErrConflict) {
			return false, err
		}
		if err := f.readMeta(now); err != nil {
			return false, err
		}
	}
	return false, abi.Errorf(abi.StatusUnavailable, "fallback buffer: too much contention")
}

// appendQueueKey appends the kv key of queue position seq.
func appendQueueKey(dst []byte, seq uint64) []byte {
	const digits = "0123456789abcdef"
	dst = append(dst, kvQueue...)
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[seq>>uint(shift)&0xf])
	}
	return dst
}

func parseQueueKey(k []byte) (uint64, bool) {
	if len(k) != len(kvQueue)+16 || !bytes.HasPrefix(k, kvQueue) {
		return 0, false
	}
	var u uint64
	for _, c := range k[len(kvQueue):] {
		switch {
		case c >= '0' && c <= '9':
			u = u<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			u = u<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return u, true
}

func (f *fallback) decodeQueued(seq uint64, v []byte) (queued, error) {
	d := &f.dec
	d.Reset(v)
	q := queued{seq: seq, op: abi.Op(d.Uvarint()), now: d.Time(), floor: d.Uvarint()}
	q.payload = d.Rest()
	return q, d.Finish()
}

// --- per-record entries ---

// appendRecordKey appends the r/ key of the record of it.
func appendRecordKey(dst []byte, it *item) []byte {
	dst = append(dst, "r/"...)
	switch it.kind() {
	case 'm':
		dst = append(dst, "m/"...)
		dst = append(dst, it.Metric.AgentID...)
		dst = append(dst, 0)
		dst = appendMember(dst, it.Metric.Name, it.Metric.Timestamp)
	case 'a':
		dst = append(dst, "a/"...)
		dst = append(dst, it.Alert.ID...)
	case 's':
		dst = append(dst, "s/"...)
		dst = append(dst, it.State.AgentID...)
	}
	return dst
}

// getRecord reads the r/ entry at key into out.
func (f *fallback) getRecord(kind byte, key []byte, out *buffered) (bool, error) {
	en, err := f.kv.Get(key)
	if errors.Is(err, sdk.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	d := &f.dec
	d.Reset(en.Value)
	out.seq = d.Uvarint()
	out.gone = d.U8() == 1
	if out.gone {
		out.state.Version = d.Uvarint()
	} else {
		switch kind {
		case 'm':
			out.metric.Decode(d)
		case 'a':
			out.alert.Decode(d)
		case 's':
			out.state.Decode(d)
		}
	}
	if err := d.Finish(); err != nil {
		return false, abi.Errorf(abi.StatusInternal, "fallback buffer: corrupt entry %q: %v", key, err)
	}
	out.rev = en.Revision
	return true, nil
}

func encodeBuffered(e *abi.Encoder, kind byte, r *buffered) {
	e.Uvarint(r.seq)
	if r.gone {
		e.U8(1)
		e.Uvarint(r.state.Version)
		return
	}
	e.U8(0)
	switch kind {
	case 'm':
		r.metric.Encode(e)
	case 'a':
		r.alert.Encode(e)
	case 's':
		r.state.Encode(e)
	}
}

func (r *buffered) expired(kind byte, now time.Time) bool {
	var at time.Time
	switch kind {
	case 'm':
		at = r.metric.ExpiresAt
	case 'a':
		at = r.alert.ExpiresAt
	case 's':
		at = r.state.ExpiresAt
	}
	return !at.IsZero() && !now.Before(at)
}

// putRecord sets the r/ entry at key to value, the record after write
// seq, unless it holds a later write. rev and found are what the caller
// read there before.
func (f *fallback) putRecord(key, value []byte, seq, rev uint64, found bool) error {
	cond := abi.Condition{Mode: abi.IfAbsent}
	if found {
		cond = abi.Condition{Mode: abi.IfVersion, Version: rev}
	}
	for range casAttempts {
		_, _, err := f.kv.Put(key, value, time.Time{}, false, cond)
		if err == nil || !errors.Is(err, sdk.ErrConflict) {
			return err
		}
		en, err := f.kv.Get(key)
		switch {
		case err == nil:
			if s, n := binary.Uvarint(en.Value); n > 0 && s > seq {
				return nil // a later write's copy
			}
			cond = abi.Condition{Mode: abi.IfVersion, Version: en.Revision}
		case errors.Is(err, sdk.ErrNotFound):
			cond = abi.Condition{Mode: abi.IfAbsent}
		default:
			return err
		}
	}
	return abi.Errorf(abi.StatusUnavailable, "fallback buffer: too much contention")
}
