package wasmcheck

import "fmt"

// instructions decodes a function body after its locals, returning the
// deepest nesting of blocks it reaches (the body itself is depth 1). The
// body must end with the end of its outermost block, on its last byte.
// When c.visit is set, it is called with every instruction decoded (see
// visitor): one walk serves both the check and Instrument.
func (c *checker) instructions(idx uint32, r *reader) (uint32, error) {
	depth, deepest := uint32(1), uint32(1)
	fail := func(err error) (uint32, error) {
		return 0, fmt.Errorf("function %d: %w", idx, err)
	}
	for r.len() > 0 {
		at := r.off
		op, _ := r.byte()
		var err error
		var sub, imm uint32
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
			var typ int64
			if typ, err = r.blocktype(); typ >= 0 && typ < int64(len(c.arity)) {
				c.bodyArity = max(c.bodyArity, c.arity[typ])
			}
			if op == 0x04 {
				c.bodyBranches += 2
			}
			c.bodyBlocks++
			depth++
			if depth > deepest {
				deepest = depth
				if depth > c.l.Depth {
					return 0, fmt.Errorf("%w: function %d nests blocks %d deep, more than %d", ErrBound, idx, depth, c.l.Depth)
				}
			}
		case op == 0x0b: // end
			depth--
			if depth == 0 {
				if r.len() != 0 {
					return fail(fmt.Errorf("%w: %d bytes after the body's end", ErrMalformed, r.len()))
				}
				if c.visit != nil {
					if err := c.visit(instr{op: op, raw: r.b[at:r.off]}); err != nil {
						return fail(err)
					}
				}
				return deepest, nil
			}
		case op == 0x0f: // return
			c.bodyBranches++
		case noImmediate(op):
		case op == 0x0c || op == 0x0d: // br, br_if
			imm, err = r.u32()
			c.bodyBranches++
		case op == 0x10: // call
			imm, err = r.u32()
			c.bodyCalls += uint64(c.callValues(imm))
		case
			(op >= 0x20 && op <= 0x26) || // local.*, global.*, table.get, table.set
				op == 0xd2: // ref.func
			imm, err = r.u32()
		case op == 0x0e: // br_table
			var n uint32
			if n, err = r.u32(); err == nil {
				if uint64(n) > uint64(r.len()) {
					return fail(fmt.Errorf("%w: br_table of %d labels in %d bytes", ErrMalformed, n, r.len()))
				}
				for i := uint32(0); i <= n && err == nil; i++ { // the labels, then the default
					_, err = r.u32()
				}
				c.bodyBranches += uint64(n) + 1
			}
		case op == 0x11: // call_indirect: type, table
			var typ uint32
			if typ, err = r.u32(); err == nil {
				_, err = r.u32()
			}
			if int64(typ) < int64(len(c.values)) {
				c.bodyCalls += uint64(c.values[typ])
			}
		case op == 0x1c: // select with types
			_, err = r.valtypes()
		case op >= 0x28 && op <= 0x3e: // loads and stores
			err = r.memarg()
		case op == 0x3f || op == 0x40: // memory.size, memory.grow: memory index
			_, err = r.u32()
		case op == 0x41:
			_, err = r.signed(32)
		case op == 0x42:
			_, err = r.signed(64)
		case op == 0x43:
			_, err = r.take(4)
		case op == 0x44:
			_, err = r.take(8)
		case op == 0xd0: // ref.null
			err = r.reftype()
		case op == 0xfc:
			if sub, imm, err = r.prefixFC(); err == nil && sub == 15 { // table.grow
				err = c.grown(idx, imm)
			}
		case op == 0xfd:
			err = r.prefixFD()
		case op == 0xfe:
			err = r.prefixFE()
		default:
			return fail(fmt.Errorf("%w: unsupported opcode %#x at offset %d", ErrMalformed, op, at))
		}
		if err == nil && c.visit != nil {
			err = c.visit(instr{op: op, sub: sub, imm: imm, raw: r.b[at:r.off]})
		}
		if err != nil {
			return fail(err)
		}
	}
	return fail(fmt.Errorf("%w: body does not end with end", ErrMalformed))
}

// instr is one decoded instruction: its opcode, the sub-opcode of a 0xfc
// instruction, the first immediate of call, ref.func, local.*, global.*,
// table.get/set and 0xfc instructions, and its bytes as encoded.
type instr struct {
	op       byte
	sub, imm uint32
	raw      []byte
}

// noImmediate reports whether op is an instruction without immediates.
func noImmediate(op byte) bool {
	switch {
	case op == 0x00 || op == 0x01: // unreachable, nop
	case op == 0x05: // else
	case op == 0x0f: // return
	case op == 0x1a || op == 0x1b: // drop, select
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension
	case op == 0xd1: // ref.is_null
	default:
		return false
	}
	return true
}

// blocktype reads a block type: empty (0x40), a value type, or a type
// index as a positive signed LEB128 number of 33 bits (multi-value). It
// returns the type index, or -1 for the other two.
func (r *reader) blocktype() (int64, error) {
	if r.len() == 0 {
		return -1, r.eof("a block type")
	}
	if b := r.b[r.off]; b == 0x40 || isValtype(b) {
		r.off++
		return -1, nil
	}
	v, err := r.signed(33)
	if err == nil && v < 0 {
		err = fmt.Errorf("%w: block type %d at offset %d", ErrMalformed, v, r.off)
	}
	return v, err
}

// memarg reads a memory access's alignment and offset.
func (r *reader) memarg() error {
	if _, err := r.u32(); err != nil {
		return err
	}
	_, err := r.u32()
	return err
}

// prefixFC reads the saturating truncations, bulk memory and table
// instructions.
func (r *reader) prefixFC() (sub, imm uint32, err error) {
	if sub, err = r.u32(); err != nil {
		return 0, 0, err
	}
	switch {
	case sub <= 7: // trunc_sat
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init data mem, memory.copy mem mem, table.init elem table, table.copy table table
		if imm, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17): // data.drop, memory.fill, elem.drop, table.grow/size/fill
		imm, err = r.u32()
	default:
		err = fmt.Errorf("%w: unsupported opcode 0xfc %d at offset %d", ErrMalformed, sub, r.off)
	}
	return sub, imm, err
}

// prefixFD reads the fixed-width SIMD instructions. Their opcode is read
// as one byte, as wazero reads it: an opcode of 128 or more is encoded in
// two, the second being 0x01, which wazero then decodes as a nop, and so
// does this walk. Reading it as LEB128 instead would let a non-minimal
// encoding (0x8c 0x00) mean v128.const here, skipping 16 bytes that wazero
// decodes as instructions, blocks among them.
func (r *reader) prefixFD() error {
	sub, err := r.byte()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // v128 loads and stores
		return r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		_, err = r.take(16)
		return err
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		_, err = r.byte()
		return err
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		if err := r.memarg(); err != nil {
			return err
		}
		_, err = r.byte()
		return err
	}
	return nil
}

// prefixFE reads the threads proposal's atomic instructions.
func (r *reader) prefixFE() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub == 3: // atomic.fence
		_, err = r.byte()
		return err
	case sub <= 2 || (sub >= 0x10 && sub <= 0x4e):
		return r.memarg()
	}
	return fmt.Errorf("%w: unsupported opcode 0xfe %d at offset %d", ErrMalformed, sub, r.off)
}

// callValues is what a call of function fn takes and gives, or 0 for an
// index out of range (which wazero refuses).
func (c *checker) callValues(fn uint32) uint32 {
	var typ uint32
	switch {
	case fn < uint32(len(c.importTypes)):
		typ = c.importTypes[fn]
	case uint64(fn)-uint64(len(c.importTypes)) < uint64(len(c.funcs)):
		typ = c.funcs[fn-uint32(len(c.importTypes))]
	default:
		return 0
	}
	if typ >= uint32(len(c.values)) {
		return 0
	}
	return c.values[typ]
}
