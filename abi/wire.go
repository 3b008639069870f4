package abi

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"time"
)

// The wire encoding is a concatenation of fields with no tags and no
// padding; the order of fields is fixed per message (see README.md):
//
//	u8      one byte
//	uvarint unsigned LEB128, at most 10 bytes (encoding/binary.Uvarint)
//	varint  zig-zag signed LEB128 (encoding/binary.Varint)
//	f64     IEEE 754 binary64, 8 bytes little-endian
//	bytes   uvarint length, then that many bytes
//	string  bytes holding UTF-8
//	time    varint Unix nanoseconds; 0 is "unset"

// ErrTruncated is returned by a Decoder that ran out of input.
var ErrTruncated = errors.New("abi: truncated message")

// ErrMalformed is returned by a Decoder that met a value it cannot accept.
var ErrMalformed = errors.New("abi: malformed message")

// maxCount bounds any element count read from the wire, so a hostile
// length cannot make a decoder allocate more than the message could hold.
const maxCount = 1 << 24

// maxPrealloc bounds the capacity a decoder allocates from a count before
// reading the elements: slices grow as elements actually decode, so nested
// counts that each claim the whole message cannot multiply allocation.
const maxPrealloc = 64

func prealloc[T any](n int) []T { return make([]T, 0, min(n, maxPrealloc)) }

// Encoder appends encoded fields to a byte slice. The zero Encoder is ready
// to use; Reset reuses its buffer.
type Encoder struct {
	buf []byte
	err error
}

// Err reports the first value the Encoder could not encode (a time
// outside what the wire carries), or what Fail recorded: a message with an
// error must not be sent.
func (e *Encoder) Err() error { return e.err }

// Fail records err as the Encoder's error, unless it has one already: an
// encoder of a message made of parts encoded apart (a batch's items)
// carries their errors this way.
func (e *Encoder) Fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// Bytes returns the encoded message. It aliases the Encoder's buffer.
func (e *Encoder) Bytes() []byte { return e.buf }

// Reset empties the Encoder and keeps its buffer.
func (e *Encoder) Reset() { e.buf, e.err = e.buf[:0], nil }

// Truncate drops what was appended after the first n bytes, keeping the
// buffer: n is a length Bytes had before.
func (e *Encoder) Truncate(n int) { e.buf = e.buf[:n] }

// U8 appends one byte.
func (e *Encoder) U8(v uint8) { e.buf = append(e.buf, v) }

// Bool appends 1 or 0.
func (e *Encoder) Bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// Uvarint appends an unsigned LEB128 integer.
func (e *Encoder) Uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

// Varint appends a zig-zag signed LEB128 integer.
func (e *Encoder) Varint(v int64) { e.buf = binary.AppendVarint(e.buf, v) }

// F64 appends an IEEE 754 double, little-endian.
func (e *Encoder) F64(v float64) {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v))
}

// BytesField appends a length-prefixed byte string.
func (e *Encoder) BytesField(v []byte) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(v)))
	e.buf = append(e.buf, v...)
}

// String appends a length-prefixed UTF-8 string.
func (e *Encoder) String(v string) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(v)))
	e.buf = append(e.buf, v...)
}

// Time appends t as Unix nanoseconds; the zero time encodes as 0. A time
// the wire cannot carry (its nanoseconds overflow an int64: before
// 1677-09-21T00:12:43.145224192Z or after 2262-04-11T23:47:16.854775807Z;
// or it is the Unix epoch itself, which would read back as unset) is an
// error of the Encoder (StatusInvalid), and 0 stands in its place.
func (e *Encoder) Time(t time.Time) {
	if t.IsZero() {
		e.buf = append(e.buf, 0)
		return
	}
	ns := t.UnixNano()
	if ns == 0 || !time.Unix(0, ns).Equal(t) {
		e.Fail(Errorf(StatusInvalid, "time %s cannot be carried: times run from 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z, and the Unix epoch itself means unset", t.UTC().Format(time.RFC3339Nano)))
		ns = 0
	}
	e.Varint(ns)
}

// Raw appends b as it is, with no length prefix.
func (e *Encoder) Raw(b []byte) { e.buf = append(e.buf, b...) }

// Decoder reads fields from a message. The first error sticks: every later
// read returns a zero value, and Err reports it. Decoded strings and byte
// slices are copies, never aliases of the input.
//
// It reads at an offset into its input rather than reslicing it: a read
// stores one integer, not a slice, which in a Go guest is one store and
// no GC write barrier.
type Decoder struct {
	buf   []byte
	off   int // bytes of buf read
	err   error
	errAt int // off when err was met
}

// NewDecoder returns a Decoder over b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Reset points d at b and clears its error.
func (d *Decoder) Reset(b []byte) { d.buf, d.off, d.err, d.errAt = b, 0, nil, 0 }

// Err returns the first error met, if any.
func (d *Decoder) Err() error { return d.err }

// Len returns the number of bytes not yet read.
func (d *Decoder) Len() int { return len(d.buf) - d.off }

// Finish returns the first error met, or ErrMalformed when input remains.
func (d *Decoder) Finish() error {
	if d.err == nil && d.off != len(d.buf) {
		d.err, d.errAt = ErrMalformed, d.off
	}
	return d.err
}

// Where says where the first error was met, for a message: "at byte N
// of M" (for input left over, N is where the message should have ended),
// or "" when there was none.
func (d *Decoder) Where() string {
	if d.err == nil {
		return ""
	}
	return "at byte " + strconv.Itoa(d.errAt) + " of " + strconv.Itoa(len(d.buf))
}

// ErrOffset returns the byte at which the first error was met (for input
// left over, where the message should have ended), or -1 when there was
// none.
func (d *Decoder) ErrOffset() int {
	if d.err == nil {
		return -1
	}
	return d.errAt
}

func (d *Decoder) fail(err error) {
	if d.err == nil {
		d.err, d.errAt = err, d.off
	}
	d.off = len(d.buf)
}

// U8 reads one byte.
func (d *Decoder) U8() uint8 {
	if d.off >= len(d.buf) {
		d.fail(ErrTruncated)
		return 0
	}
	v := d.buf[d.off]
	d.off++
	return v
}

// Bool reads a byte that must be 0 or 1.
func (d *Decoder) Bool() bool {
	switch d.U8() {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(ErrMalformed)
		return false
	}
}

// Uvarint reads an unsigned LEB128 integer.
func (d *Decoder) Uvarint() uint64 {
	if d.off < len(d.buf) && d.buf[d.off] < 0x80 { // one byte: most lengths, counts, versions
		v := d.buf[d.off]
		d.off++
		return uint64(v)
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		if n == 0 {
			d.fail(ErrTruncated)
		} else {
			d.fail(ErrMalformed)
		}
		return 0
	}
	d.off += n
	return v
}

// Uint32 reads an unsigned LEB128 integer that must fit in 32 bits.
func (d *Decoder) Uint32() uint32 {
	v := d.Uvarint()
	if v > math.MaxUint32 {
		d.fail(ErrMalformed)
		return 0
	}
	return uint32(v)
}

// Uint16 reads an unsigned LEB128 integer that must fit in 16 bits.
func (d *Decoder) Uint16() uint16 {
	v := d.Uvarint()
	if v > math.MaxUint16 {
		d.fail(ErrMalformed)
		return 0
	}
	return uint16(v)
}

// Varint reads a zig-zag signed LEB128 integer.
func (d *Decoder) Varint() int64 {
	if d.off < len(d.buf) && d.buf[d.off] < 0x80 { // one byte, zig-zag: -64..63
		b := d.buf[d.off]
		d.off++
		return int64(b>>1) ^ -int64(b&1)
	}
	v, n := binary.Varint(d.buf[d.off:])
	if n <= 0 {
		if n == 0 {
			d.fail(ErrTruncated)
		} else {
			d.fail(ErrMalformed)
		}
		return 0
	}
	d.off += n
	return v
}

// Count reads an element count and checks that the remaining input could
// hold that many elements of at least minSize bytes each.
func (d *Decoder) Count(minSize int) int {
	n := d.Uvarint()
	if d.err != nil {
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if n > maxCount || n*uint64(minSize) > uint64(d.Len()) {
		d.fail(ErrMalformed)
		return 0
	}
	return int(n)
}

// countAtMost is Count for a list of at most max elements: a longer one
// is malformed.
func (d *Decoder) countAtMost(minSize, max int) int {
	n := d.Count(minSize)
	if n > max {
		d.fail(ErrMalformed)
		return 0
	}
	return n
}

// F64 reads an IEEE 754 double, little-endian.
func (d *Decoder) F64() float64 {
	if d.Len() < 8 {
		d.fail(ErrTruncated)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf[d.off:]))
	d.off += 8
	return v
}

func (d *Decoder) field() []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(d.Len()) {
		d.fail(ErrTruncated)
		return nil
	}
	b := d.buf[d.off : d.off+int(n)]
	d.off += int(n)
	return b
}

// BytesField reads a length-prefixed byte string into a new slice. An
// empty field decodes as nil.
func (d *Decoder) BytesField() []byte {
	b := d.field()
	if len(b) == 0 {
		return nil
	}
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

// View reads a length-prefixed byte string without copying it: the result
// aliases the Decoder's input and is valid only as long as that is.
// An empty field decodes as nil, as with BytesField.
func (d *Decoder) View() []byte {
	b := d.field()
	if len(b) == 0 {
		return nil
	}
	return b
}

// String reads a length-prefixed string.
func (d *Decoder) String() string { return string(d.field()) }

// Time reads Unix nanoseconds; 0 decodes as the zero time.
func (d *Decoder) Time() time.Time {
	n := d.Varint()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Rest returns a copy of the unread input and consumes it.
func (d *Decoder) Rest() []byte {
	b := append([]byte(nil), d.buf[d.off:]...)
	d.off = len(d.buf)
	return b
}
