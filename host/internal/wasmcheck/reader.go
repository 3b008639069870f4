package wasmcheck

import "fmt"

// reader reads the binary format from a byte slice. Every read checks the
// bytes left, so a declared length never leads past the end.
type reader struct {
	b   []byte
	off int
}

func (r *reader) len() int { return len(r.b) - r.off }

func (r *reader) eof(what string) error {
	return fmt.Errorf("%w: unexpected end reading %s at offset %d", ErrMalformed, what, r.off)
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.eof("a byte")
	}
	r.off++
	return r.b[r.off-1], nil
}

// take returns the next n bytes.
func (r *reader) take(n uint32) ([]byte, error) {
	if uint64(n) > uint64(r.len()) {
		return nil, fmt.Errorf("%w: %d bytes declared, %d left", ErrMalformed, n, r.len())
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

// sub returns a reader of the next n bytes and skips them.
func (r *reader) sub(n uint32) (reader, error) {
	b, err := r.take(n)
	return reader{b: b}, err
}

// u32 reads an unsigned LEB128 number of at most 32 bits.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 4 && b&0xf0 != 0 {
			return 0, fmt.Errorf("%w: LEB128 number over 32 bits at offset %d", ErrMalformed, r.off-1)
		}
		v |= uint32(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: LEB128 number too long at offset %d", ErrMalformed, r.off)
}

// signed reads a signed LEB128 number of at most bits bits (up to 64).
func (r *reader) signed(bits int) (int64, error) {
	var v int64
	var shift int
	n := (bits + 6) / 7
	for i := 0; i < n; i++ {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(b&0x7f) << shift
		shift += 7
		if b&0x80 == 0 {
			if shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: LEB128 number over %d bits at offset %d", ErrMalformed, bits, r.off)
}

// name reads a length-prefixed string.
func (r *reader) name() error {
	_, err := r.bytesVecLen()
	return err
}

func (r *reader) bytesVec() error {
	_, err := r.bytesVecLen()
	return err
}

func (r *reader) bytesVecLen() (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	_, err = r.take(n)
	return n, err
}

func isValtype(b byte) bool {
	switch b {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f: // i32 i64 f32 f64 v128 funcref externref
		return true
	}
	return false
}

func (r *reader) valtype() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	if !isValtype(b) {
		return fmt.Errorf("%w: value type %#x at offset %d", ErrMalformed, b, r.off-1)
	}
	return nil
}

// valtypes reads a vector of value types and returns its length.
func (r *reader) valtypes() (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n) > uint64(r.len()) {
		return 0, fmt.Errorf("%w: %d value types declared in %d bytes", ErrMalformed, n, r.len())
	}
	for i := uint32(0); i < n; i++ {
		if err := r.valtype(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (r *reader) reftype() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	if b != 0x70 && b != 0x6f {
		return fmt.Errorf("%w: reference type %#x at offset %d", ErrMalformed, b, r.off-1)
	}
	return nil
}

// limits reads a limits pair; max is -1 when absent.
func (r *reader) limits() (min uint32, max int64, err error) {
	flags, err := r.byte()
	if err != nil {
		return 0, 0, err
	}
	if flags > 3 { // bit 0: a maximum; bit 1: shared (threads)
		return 0, 0, fmt.Errorf("%w: limits flags %#x at offset %d", ErrMalformed, flags, r.off-1)
	}
	if min, err = r.u32(); err != nil {
		return 0, 0, err
	}
	max = -1
	if flags&1 != 0 {
		m, err := r.u32()
		if err != nil {
			return 0, 0, err
		}
		max = int64(m)
	}
	return min, max, nil
}

// constExpr reads a constant expression up to its end.
func (r *reader) constExpr() error { return r.constExprVisit(nil) }

// constExprVisit reads a constant expression up to its end, calling visit,
// if set, with each instruction, its end included.
func (r *reader) constExprVisit(visit func(instr) error) error {
	for {
		at := r.off
		op, err := r.byte()
		if err != nil {
			return err
		}
		var imm uint32
		switch op {
		case 0x0b: // end
			if visit != nil {
				return visit(instr{op: op, raw: r.b[at:r.off]})
			}
			return nil
		case 0x41: // i32.const
			_, err = r.signed(32)
		case 0x42: // i64.const
			_, err = r.signed(64)
		case 0x43: // f32.const
			_, err = r.take(4)
		case 0x44: // f64.const
			_, err = r.take(8)
		case 0x23, 0xd2: // global.get, ref.func
			imm, err = r.u32()
		case 0xd0: // ref.null
			err = r.reftype()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const arithmetic
		case 0xfd: // v128.const
			var sub uint32
			if sub, err = r.u32(); err == nil {
				if sub != 12 {
					return fmt.Errorf("%w: vector opcode %d in a constant expression", ErrMalformed, sub)
				}
				_, err = r.take(16)
			}
		default:
			return fmt.Errorf("%w: opcode %#x in a constant expression at offset %d", ErrMalformed, op, r.off-1)
		}
		if err == nil && visit != nil {
			err = visit(instr{op: op, imm: imm, raw: r.b[at:r.off]})
		}
		if err != nil {
			return err
		}
	}
}
