package wasmcheck

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// FuelModule and FuelFunc name the function Instrument imports: () -> i32,
// called when the fuel counter runs out; it returns the counter's refill,
// or does not return at all (a host function that panics ends the call).
const (
	FuelModule = "storagehost_fuel"
	FuelFunc   = "refuel"
)

// GrowRefused names the global Instrument exports: 0 until a memory.grow
// of the instance is refused (answers -1), then 1. A guest that traps
// after that most likely ran out of memory; one that went on did not
// trap. The host may clear it.
const GrowRefused = "storagehost_grow_refused"

// CodeShift sets what a loop iteration and a function call cost: one unit
// of fuel, plus one per 2^CodeShift bytes of the loop's body or of the
// function's. Only a loop jumps back, so between two charges a guest runs
// at most the code it was charged for, and straight-line functions of at
// most 2^CodeShift bytes that make no calls, which are not charged.
const CodeShift = 6

// ImportCallCost is what a call to an imported function costs: the host's
// functions (WASI's among them) do work the guest's code does not show, up
// to thousands of times a loop iteration's in one call (a random_get of
// megabytes, a read over millions of empty iovecs, a path of megabytes),
// so a loop around one reaches the host's check of its deadline within
// a few such calls, not thousands. A call_indirect costs as much in a
// module that lets an imported function into a table (an element
// segment, a global or an export names one, as ref.func needs).
const ImportCallCost = 1000

// BulkShift sets what a bulk memory or table instruction (memory.fill,
// memory.copy, memory.init, table.fill, table.copy, table.init) costs: one
// unit of fuel, as a loop iteration does, plus one per 2^BulkShift bytes or
// elements it is asked to move.
const BulkShift = 6

// Instrument checks wasm as Check does and returns it rewritten so that
// the host regains control at least once per refill of fuel: the module
// gets a mutable i32 global, the fuel counter, after its own globals, and
// imports FuelModule.FuelFunc after its own imports, which moves every
// defined function's index up by one (calls, ref.func, element segments,
// exports, the start function and the name section are rewritten to
// match). Each loop body starts by taking one unit from the counter, each
// function that makes calls does so on entry, and each bulk memory or
// table instruction takes one plus its length >> BulkShift first; when
// the counter goes below zero the instruction calls the import and
// stores its result as the counter.
//
// A module whose own code or expressions refer to a global past its own,
// or exports one, or that imports from FuelModule itself, is refused with
// ErrMalformed: only the injected code may touch the counter or the
// import. The output grows by a bounded number of bytes per loop, call
// site and bulk instruction, so its size is proportional to the input's.
func Instrument(wasm []byte, l Limits) ([]byte, error) {
	c := checker{l: l, fuelType: -1}
	if err := c.module(wasm); err != nil {
		return nil, err
	}
	in := instrumenter{
		c:        &c,
		out:      make([]byte, 0, len(wasm)+len(wasm)/4+64),
		fuelFunc: c.importFuncs,
		globals:  c.shape.Globals,
		fuelType: uint32(c.fuelType),
		newType:  c.fuelType < 0,
	}
	if in.newType {
		in.fuelType = c.shape.Types
	}
	return in.module(wasm)
}

type instrumenter struct {
	c   *checker
	out []byte
	// fuelFunc is the import's function index; globals the module's own
	// global count, which is the counter's index; fuelType the import's
	// type, added after the module's own when newType.
	fuelFunc, globals, fuelType uint32
	newType                     bool
	// importReferenced is set when an element segment, a global or an
	// export names an imported function: a table may then hold one, and
	// every call_indirect is charged as an import's call.
	importReferenced bool
	// added records which of the type, import and global sections were
	// written (the module's own, extended, or new ones).
	added [secDataCount + 1]bool
	// sec and body are scratch buffers for a section and a function body.
	sec, body []byte
}

func (w *instrumenter) module(wasm []byte) ([]byte, error) {
	w.out = append(w.out, wasm[:8]...)
	r := reader{b: wasm, off: 8}
	for r.len() > 0 {
		start := r.off
		id, _ := r.byte()
		size, _ := r.u32()
		body, err := r.sub(size)
		if err != nil {
			return nil, err
		}
		if id != secCustom {
			w.missing(order[id])
		}
		switch id {
		case secType, secImport, secGlobal, secExport, secStart, secElement, secCode, secCustom:
			// The instrumented section is about as long as the original:
			// sized so, its buffer grows rarely.
			w.sec = slices.Grow(w.sec[:0], len(body.b)+len(body.b)/8+64)
			keep, err := w.section(id, &body)
			if err != nil {
				return nil, err
			}
			if keep {
				w.emit(id, w.sec)
			}
		case secData:
			if err := w.data(&body); err != nil {
				return nil, err
			}
			w.out = append(w.out, wasm[start:r.off]...)
		default:
			w.out = append(w.out, wasm[start:r.off]...)
		}
	}
	w.missing(len(order) + 1)
	return w.out, nil
}

// missing writes the type, import and global sections the module lacks,
// once the next section's rank is past theirs.
func (w *instrumenter) missing(rank int) {
	for _, id := range [...]byte{secType, secImport, secGlobal, secExport} {
		if w.added[id] || order[id] >= rank {
			continue
		}
		w.sec = w.sec[:0]
		switch {
		case id == secType && w.newType:
			w.sec = append(w.sec, 1)
			w.sec = appendFuelType(w.sec)
		case id == secImport:
			w.sec = append(w.sec, 1)
			w.sec = w.appendFuelImport(w.sec)
		case id == secGlobal:
			w.sec = append(w.sec, 2)
			w.sec = appendFuelGlobals(w.sec)
		case id == secExport:
			w.sec = append(w.sec, 1)
			w.sec = w.appendGrowExport(w.sec)
		default:
			continue
		}
		w.added[id] = true
		w.emit(id, w.sec)
	}
}

func (w *instrumenter) emit(id byte, content []byte) {
	w.out = append(w.out, id)
	w.out = binary.AppendUvarint(w.out, uint64(len(content)))
	w.out = append(w.out, content...)
}

func appendFuelType(b []byte) []byte { return append(b, 0x60, 0, 1, 0x7f) }

// appendFuelGlobals appends the counter and the grow flag: mutable i32s,
// both 0.
func appendFuelGlobals(b []byte) []byte {
	return append(b, 0x7f, 1, 0x41, 0, 0x0b, 0x7f, 1, 0x41, 0, 0x0b)
}

// appendGrowExport appends the export of the grow flag, the global after
// the counter.
func (w *instrumenter) appendGrowExport(b []byte) []byte {
	b = appendName(b, GrowRefused)
	b = append(b, 3)
	return binary.AppendUvarint(b, uint64(w.globals)+1)
}

func (w *instrumenter) appendFuelImport(b []byte) []byte {
	b = appendName(b, FuelModule)
	b = appendName(b, FuelFunc)
	b = append(b, 0)
	return binary.AppendUvarint(b, uint64(w.fuelType))
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// referenced maps a function index an element segment, a global or an
// export names, noting whether it is an import's.
func (w *instrumenter) referenced(idx uint32) uint32 {
	if idx < w.fuelFunc {
		w.importReferenced = true
	}
	return w.function(idx)
}

// function maps a function index of the module to the instrumented one's.
func (w *instrumenter) function(idx uint32) uint32 {
	if idx >= w.fuelFunc {
		return idx + 1
	}
	return idx
}

// global refuses a reference to a global past the module's own.
func (w *instrumenter) global(idx uint32) error {
	if idx >= w.globals {
		return fmt.Errorf("%w: refers to global %d of %d", ErrMalformed, idx, w.globals)
	}
	return nil
}

// expr copies a constant expression to w.sec, rewriting ref.func.
func (w *instrumenter) expr(r *reader) error {
	return r.constExprVisit(func(in instr) error {
		switch in.op {
		case 0xd2:
			w.sec = append(w.sec, 0xd2)
			w.sec = binary.AppendUvarint(w.sec, uint64(w.referenced(in.imm)))
			return nil
		case 0x23:
			if err := w.global(in.imm); err != nil {
				return err
			}
		}
		w.sec = append(w.sec, in.raw...)
		return nil
	})
}

// section writes the instrumented content of section id to w.sec; keep is
// false for a section to drop.
func (w *instrumenter) section(id byte, r *reader) (keep bool, err error) {
	switch id {
	case secType:
		n, _ := r.u32()
		if w.newType {
			n++
		}
		w.sec = binary.AppendUvarint(w.sec, uint64(n))
		w.sec = append(w.sec, r.b[r.off:]...)
		if w.newType {
			w.sec = appendFuelType(w.sec)
		}
		w.added[secType] = true
	case secImport:
		err = w.imports(r)
		w.added[secImport] = true
	case secGlobal:
		n, _ := r.u32()
		w.sec = binary.AppendUvarint(w.sec, uint64(n)+2)
		for i := uint32(0); i < n && err == nil; i++ {
			w.sec = append(w.sec, r.b[r.off:r.off+2]...) // type, mutability
			r.off += 2
			err = w.expr(r)
		}
		w.sec = appendFuelGlobals(w.sec)
		w.added[secGlobal] = true
	case secExport:
		n, _ := r.u32()
		w.sec = binary.AppendUvarint(w.sec, uint64(n)+1)
		for i := uint32(0); i < n && err == nil; i++ {
			at := r.off
			nameLen, _ := r.u32()
			if name, _ := r.take(nameLen); string(name) == GrowRefused {
				return false, fmt.Errorf("%w: exports %s, which is the host's own", ErrMalformed, GrowRefused)
			}
			kind, _ := r.byte()
			w.sec = append(w.sec, r.b[at:r.off]...)
			idx, _ := r.u32()
			switch kind {
			case 0:
				idx = w.referenced(idx)
			case 3:
				err = w.global(idx)
			}
			w.sec = binary.AppendUvarint(w.sec, uint64(idx))
		}
		w.sec = w.appendGrowExport(w.sec)
		w.added[secExport] = true
	case secStart:
		idx, _ := r.u32()
		w.sec = binary.AppendUvarint(w.sec, uint64(w.function(idx)))
	case secElement:
		err = w.elements(r)
	case secCode:
		err = w.code(r)
	case secCustom:
		return w.custom(r)
	}
	return true, err
}

func (w *instrumenter) imports(r *reader) error {
	n, _ := r.u32()
	w.sec = binary.AppendUvarint(w.sec, uint64(n)+1)
	for i := uint32(0); i < n; i++ {
		at := r.off
		ml, _ := r.u32()
		mod, _ := r.take(ml)
		if string(mod) == FuelModule {
			return fmt.Errorf("%w: imports from %s, which is the host's own", ErrMalformed, FuelModule)
		}
		_ = r.name()
		kind, _ := r.byte()
		switch kind {
		case 0:
			_, _ = r.u32()
		case 1:
			_ = r.reftype()
			_, _, _ = r.limits()
		case 2:
			_, _, _ = r.limits()
		case 3:
			r.off += 2
		}
		w.sec = append(w.sec, r.b[at:r.off]...)
	}
	w.sec = w.appendFuelImport(w.sec)
	return nil
}

func (w *instrumenter) elements(r *reader) error {
	n, _ := r.u32()
	w.sec = binary.AppendUvarint(w.sec, uint64(n))
	for i := uint32(0); i < n; i++ {
		at := r.off
		flags, _ := r.u32()
		passiveOrDeclarative, explicitTable, exprs := flags&1 != 0, flags&2 != 0, flags&4 != 0
		if !passiveOrDeclarative {
			if explicitTable {
				_, _ = r.u32()
			}
			w.sec = append(w.sec, r.b[at:r.off]...)
			if err := w.expr(r); err != nil {
				return err
			}
			at = r.off
		}
		if passiveOrDeclarative || explicitTable {
			_, _ = r.byte() // elemkind or reference type
		}
		m, _ := r.u32()
		w.sec = append(w.sec, r.b[at:r.off]...)
		for j := uint32(0); j < m; j++ {
			if exprs {
				if err := w.expr(r); err != nil {
					return err
				}
				continue
			}
			idx, _ := r.u32()
			w.sec = binary.AppendUvarint(w.sec, uint64(w.referenced(idx)))
		}
	}
	return nil
}

// data refuses a data segment whose offset refers to a global past the
// module's own; the section is copied as it is.
func (w *instrumenter) data(r *reader) error {
	n, _ := r.u32()
	for i := uint32(0); i < n; i++ {
		flags, _ := r.u32()
		if flags == 2 {
			_, _ = r.u32()
		}
		if flags != 1 {
			err := r.constExprVisit(func(in instr) error {
				if in.op == 0x23 {
					return w.global(in.imm)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		_ = r.bytesVec()
	}
	return nil
}

// custom rewrites the name section's function and local name maps, and
// drops its other subsections, whose indices could be stale; other custom
// sections are copied.
func (w *instrumenter) custom(r *reader) (bool, error) {
	nameLen, _ := r.u32()
	name, _ := r.take(nameLen)
	w.sec = appendName(w.sec, string(name))
	if string(name) != "name" {
		w.sec = append(w.sec, r.b[r.off:]...)
		return true, nil
	}
	for r.len() > 0 {
		id, _ := r.byte()
		size, _ := r.u32()
		sub, err := r.sub(size)
		if err != nil {
			return false, err
		}
		switch id {
		case 0:
			w.sec = append(w.sec, 0)
			w.sec = binary.AppendUvarint(w.sec, uint64(size))
			w.sec = append(w.sec, sub.b...)
		case 1, 2:
			w.body = w.body[:0]
			n, _ := sub.u32()
			w.body = binary.AppendUvarint(w.body, uint64(n))
			for i := uint32(0); i < n; i++ {
				idx, _ := sub.u32()
				w.body = binary.AppendUvarint(w.body, uint64(w.function(idx)))
				if id == 1 {
					at := sub.off
					_ = sub.name()
					w.body = append(w.body, sub.b[at:sub.off]...)
					continue
				}
				at := sub.off
				m, _ := sub.u32()
				for j := uint32(0); j < m; j++ {
					_, _ = sub.u32()
					_ = sub.name()
				}
				w.body = append(w.body, sub.b[at:sub.off]...)
			}
			w.sec = append(w.sec, id)
			w.sec = binary.AppendUvarint(w.sec, uint64(len(w.body)))
			w.sec = append(w.sec, w.body...)
		}
	}
	return true, nil
}

// code instruments every function body. The bodies are walked again by a
// checker that knows the module's types and functions and bounds nothing:
// the first walk bounded them already.
func (w *instrumenter) code(r *reader) error {
	walk := checker{l: Unlimited, params: w.c.params, arity: w.c.arity, values: w.c.values, importTypes: w.c.importTypes, funcs: w.c.funcs, importFuncs: w.c.importFuncs, tableMax: w.c.tableMax, fuelType: -1}
	n, _ := r.u32()
	w.sec = binary.AppendUvarint(w.sec, uint64(n))
	var code []byte // the current body's instructions, instrumented
	// calls: the body makes calls; scratch: it needs the scratch local
	// (a bulk instruction's length, memory.grow's result).
	var calls, scratch bool
	// at is the offset in the body of the instruction visited; open holds,
	// for each block open there, where its loop's charge is in code, or -1
	// for a block or if, and starts where each loop's body starts.
	var at int
	var open, starts []int
	walk.visit = func(in instr) error {
		defer func() { at += len(in.raw) }()
		switch {
		case in.op == 0x02 || in.op == 0x04: // block, if
			open = append(open, -1)
			starts = append(starts, 0)
		case in.op == 0x0b && len(open) > 0: // end of a block
			pos, start := open[len(open)-1], starts[len(starts)-1]
			open, starts = open[:len(open)-1], starts[:len(starts)-1]
			if pos >= 0 {
				putCost(code[pos:pos+5], loopCost(at-start))
			}
		case in.op == 0x10 || in.op == 0xd2: // call, ref.func
			calls = calls || in.op == 0x10
			if in.op == 0x10 && in.imm < w.fuelFunc {
				code = w.charge(code, ImportCallCost)
			}
			code = append(code, in.op)
			code = binary.AppendUvarint(code, uint64(w.function(in.imm)))
			return nil
		case in.op == 0x11:
			calls = true
			if w.importReferenced {
				code = w.charge(code, ImportCallCost)
			}
		case in.op == 0x23 || in.op == 0x24: // global.get, global.set
			if err := w.global(in.imm); err != nil {
				return err
			}
		case in.op == 0x03: // loop: charged by its size, set at its end
			code = append(code, in.raw...)
			open = append(open, len(code)+1+uvarintLen(w.globals)+1) // global.get, i32.const
			starts = append(starts, at+len(in.raw))
			code = w.charge(code, 0)
			return nil
		case in.op == 0xfc && (in.sub == 8 || in.sub == 10 || in.sub == 11 || in.sub == 12 || in.sub == 14 || in.sub == 17):
			// memory.init, memory.copy, memory.fill, table.init,
			// table.copy, table.fill: the length is on top of the stack.
			// The scratch local comes after the body's own.
			scratch = true
			local := uint32(walk.bodyLocals)
			code = append(code, 0x21) // local.set scratch
			code = binary.AppendUvarint(code, uint64(local))
			code = w.chargeLength(code, local)
			code = append(code, 0x20) // local.get scratch
			code = binary.AppendUvarint(code, uint64(local))
		case in.op == 0x40: // memory.grow: its result is flagged after it
			scratch = true
			code = append(code, in.raw...)
			code = w.flagRefusedGrow(code, uint32(walk.bodyLocals))
			return nil
		}
		code = append(code, in.raw...)
		return nil
	}
	for i := uint32(0); i < n; i++ {
		idx := w.c.importFuncs + i
		size, _ := r.u32()
		body, err := r.sub(size)
		if err != nil {
			return err
		}
		code, calls, scratch = code[:0], false, false
		at, open, starts = 0, open[:0], starts[:0]
		if err := walk.body(idx, w.c.funcs[i], &body); err != nil {
			return err
		}
		w.body = w.body[:0]
		header := reader{b: body.b}
		groups, _ := header.u32()
		if scratch {
			groups++
		}
		w.body = binary.AppendUvarint(w.body, uint64(groups))
		w.body = append(w.body, body.b[header.off:walk.bodyCode]...)
		if scratch {
			w.body = append(w.body, 1, 0x7f)
		}
		if calls || size > 1<<CodeShift {
			w.body = w.charge(w.body, loopCost(int(size)))
		}
		w.body = append(w.body, code...)
		w.sec = binary.AppendUvarint(w.sec, uint64(len(w.body)))
		w.sec = append(w.sec, w.body...)
	}
	return nil
}

// loopCost is the fuel a loop iteration or a function entry takes for
// size bytes of code.
func loopCost(size int) uint32 { return 1 + uint32(size)>>CodeShift }

// putCost writes cost as a signed LEB128 number padded to five bytes.
func putCost(b []byte, cost uint32) {
	for i := range 4 {
		b[i] = byte(cost>>(7*i))&0x7f | 0x80
	}
	b[4] = byte(cost>>28) & 0x7f
}

// charge appends code taking cost from the counter and refuelling when it
// goes below zero; the cost is padded to five bytes, for putCost.
func (w *instrumenter) charge(b []byte, cost uint32) []byte {
	b = w.getCounter(b)
	b = append(b, 0x41, 0, 0, 0, 0, 0) // i32.const cost
	putCost(b[len(b)-5:], cost)
	b = append(b, 0x6b) // i32.sub
	return w.setAndCheck(b)
}

// chargeLength appends code taking 1 + local >> BulkShift from the
// counter and refuelling when it goes below zero.
func (w *instrumenter) chargeLength(b []byte, local uint32) []byte {
	b = w.getCounter(b)
	b = append(b, 0x20) // local.get
	b = binary.AppendUvarint(b, uint64(local))
	b = append(b, 0x41, BulkShift, 0x76, 0x41, 1, 0x6a) // i32.const shift, i32.shr_u, i32.const 1, i32.add
	b = append(b, 0x6b)                                 // i32.sub
	return w.setAndCheck(b)
}

// flagRefusedGrow appends, after a memory.grow, code that sets the grow
// flag when its result is -1 and leaves the result on the stack, by way
// of local.
func (w *instrumenter) flagRefusedGrow(b []byte, local uint32) []byte {
	b = append(b, 0x22) // local.tee
	b = binary.AppendUvarint(b, uint64(local))
	b = append(b, 0x41, 0x7f, 0x46, 0x04, 0x40, 0x41, 1, 0x24) // i32.const -1, i32.eq, if, i32.const 1, global.set
	b = binary.AppendUvarint(b, uint64(w.globals)+1)
	b = append(b, 0x0b, 0x20) // end, local.get
	return binary.AppendUvarint(b, uint64(local))
}

func (w *instrumenter) getCounter(b []byte) []byte {
	b = append(b, 0x23) // global.get
	return binary.AppendUvarint(b, uint64(w.globals))
}

// setAndCheck stores the value on the stack as the counter, and calls the
// import to refill it if it is below zero.
func (w *instrumenter) setAndCheck(b []byte) []byte {
	b = append(b, 0x24) // global.set
	b = binary.AppendUvarint(b, uint64(w.globals))
	b = w.getCounter(b)
	b = append(b, 0x41, 0, 0x48, 0x04, 0x40, 0x10) // i32.const 0, i32.lt_s, if, call
	b = binary.AppendUvarint(b, uint64(w.fuelFunc))
	b = append(b, 0x24) // global.set
	b = binary.AppendUvarint(b, uint64(w.globals))
	return append(b, 0x0b) // end
}

// uvarintLen is the length of v encoded as unsigned LEB128.
func uvarintLen(v uint32) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}
