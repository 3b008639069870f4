// Package wasmcheck measures a WebAssembly module's bytes against bounds
// before a runtime compiles it.
//
// wazero sizes what it allocates by what a module declares: a function's
// local declarations are expanded into one entry per local, vectors are
// allocated at their declared length before their elements are read, a
// table gets one reference per declared element. A module of a few hundred
// bytes can so ask for tens of gigabytes, and the Go runtime ends the
// process when it cannot have them. Check walks the binary format section
// by section and every function body instruction by instruction, summing
// local declarations without expanding them, and refuses a module past a
// bound before any of that happens.
//
// Check allocates in proportion to the bytes present, never to a count the
// module declares: every declared count is first compared with the bytes
// left to hold it, and with its bound.
//
// The instruction set is that of WebAssembly 2.0 (sign extension,
// saturating truncation, bulk memory, reference types, multi-value, fixed-
// width SIMD) plus the threads proposal's atomics, which are decoded so that
// depth is measured, not judged: whether a module may use a feature is the
// runtime's decision. Opcodes outside those are refused, so the walk never
// guesses at an immediate's length.
//
// Instrument uses the same walk to rewrite a module with fuel checks, so
// that a host can interrupt it without the runtime's help.
package wasmcheck

import (
	"errors"
	"fmt"
	"math"
)

// ErrBound marks a module past one of the Limits; ErrMalformed, one that is
// not a well-formed module in the binary format this package walks.
var (
	ErrBound     = errors.New("wasmcheck: module over a bound")
	ErrMalformed = errors.New("wasmcheck: malformed module")
)

// Limits are the bounds Check enforces. Every field is a maximum; a module
// at it passes.
type Limits struct {
	// ModuleBytes bounds the module's size.
	ModuleBytes uint32
	// Types, Imports, Functions, Globals and Exports bound those sections'
	// entries; Functions counts imported and defined functions together.
	Types, Imports, Functions, Globals, Exports uint32
	// Tables bounds the tables, imported and defined.
	Tables uint32
	// TableElements bounds each table's size: its minimum, which every
	// instance allocates, and, if any function uses table.grow, its
	// maximum, which must then be declared: nothing else grows a table.
	TableElements uint32
	// ElementSegments and DataSegments bound those sections' entries;
	// ElementEntries the entries of all element segments, each of which
	// the runtime keeps as a constant expression of its own.
	ElementSegments, DataSegments, ElementEntries uint32
	// Names bounds the entries of the name section's function and local
	// name maps together.
	Names uint32
	// NameBytes bounds each name of the name section (the module's, a
	// function's, a local's): a trap's text names up to 30 functions,
	// and reaches the host's log and callers.
	NameBytes uint32
	// Locals bounds one function's locals, its parameters included;
	// ModuleLocals the sum over all functions, since the runtime expands
	// every declaration into one entry per local.
	Locals       uint32
	ModuleLocals uint64
	// BodyBytes bounds one function body's size, CodeBytes the code
	// section's.
	BodyBytes, CodeBytes uint32
	// Depth bounds the nesting of blocks, loops and ifs in one function;
	// the function's own body is depth 1.
	Depth uint32
	// LocalsTimesDepth bounds one function's locals times its depth: a
	// compiler keeps per-block state for the locals, so the two together
	// cost more than either alone. ModuleLocalsTimesDepth bounds the sum
	// over all functions, and so the compilation of the whole module.
	LocalsTimesDepth, ModuleLocalsTimesDepth uint64
	// Branches bounds one function's branch edges: a br, br_if or return
	// is one, an if two, a br_table one per label. BranchValues bounds one
	// function's branches times what each carries into the compiler's
	// merge at its target (the function's locals, the most values any of
	// its blocks takes or gives, and one), plus the values its calls take
	// and give; ModuleBranchValues the sum over all functions: a br_table
	// is a byte a label, an if two bytes, and the compiler's work follows
	// its merges times the values live across them.
	Branches                         uint32
	BranchValues, ModuleBranchValues uint64
	// Blocks bounds one function's blocks, loops and ifs, however they
	// nest: the compiler's time grows with the square of a function's
	// blocks (100 000 empty ones in a row, 300 KB, took a minute).
	// ModuleBlocksSquared bounds the sum of those squares over all
	// functions.
	Blocks              uint32
	ModuleBlocksSquared uint64
}

// Default are the bounds of a plugin module. They leave wide margins over
// what the Go plugins built with this repository need: RATIONALE.md ("Why
// check modules before compiling them?") has the measured numbers, and
// TestDefaultFitsBuiltins keeps a margin of 4 over them.
var Default = Limits{
	ModuleBytes:      64 << 20,
	Types:            10_000,
	Imports:          10_000,
	Functions:        100_000,
	Globals:          10_000,
	Exports:          10_000,
	Tables:           4,
	TableElements:    1 << 18,
	ElementSegments:  10_000,
	DataSegments:     200_000,
	ElementEntries:   1 << 18,
	Names:            200_000,
	NameBytes:        4096,
	Locals:           10_000,
	ModuleLocals:     1_000_000,
	BodyBytes:        256 << 10,
	CodeBytes:        16 << 20,
	Depth:            10_000,
	LocalsTimesDepth: 250_000,
	Branches:         40_000,
	BranchValues:     250_000,
	Blocks:           5_000,

	ModuleLocalsTimesDepth: 5_000_000,
	ModuleBranchValues:     10_000_000,
	ModuleBlocksSquared:    100_000_000,
}

// Unlimited has every bound at its largest: Check with it only measures,
// still refusing a malformed module.
var Unlimited = Limits{
	ModuleBytes: math.MaxUint32, Types: math.MaxUint32, Imports: math.MaxUint32,
	Functions: math.MaxUint32, Globals: math.MaxUint32, Exports: math.MaxUint32,
	Tables: math.MaxUint32, TableElements: math.MaxUint32,
	ElementSegments: math.MaxUint32, DataSegments: math.MaxUint32,
	ElementEntries: math.MaxUint32, Names: math.MaxUint32, NameBytes: math.MaxUint32,
	Locals: math.MaxUint32, ModuleLocals: math.MaxUint64, BodyBytes: math.MaxUint32, CodeBytes: math.MaxUint32,
	Depth: math.MaxUint32, LocalsTimesDepth: math.MaxUint64,
	ModuleLocalsTimesDepth: math.MaxUint64,
	Branches:               math.MaxUint32, BranchValues: math.MaxUint64, ModuleBranchValues: math.MaxUint64,
	Blocks: math.MaxUint32, ModuleBlocksSquared: math.MaxUint64,
}

// Shape is what Check measured of a module: the quantities the Limits
// bound, each the largest or the total as its bound reads.
type Shape struct {
	Types, Imports, Functions, Globals, Exports uint32
	Tables, TableElements                       uint32
	ElementSegments, DataSegments               uint32
	ElementEntries, Names, NameBytes            uint32
	Locals                                      uint32
	ModuleLocals                                uint64
	BodyBytes, CodeBytes, Depth                 uint32
	LocalsTimesDepth, ModuleLocalsTimesDepth    uint64
	Branches                                    uint32
	BranchValues, ModuleBranchValues            uint64
	Blocks                                      uint32
	ModuleBlocksSquared                         uint64
}

// Section IDs of the binary format.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
)

// order is each known section's rank: sections other than custom ones come
// at most once, in this order (data count sits between element and code).
var order = [...]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5,
	secGlobal: 6, secExport: 7, secStart: 8, secElement: 9, secDataCount: 10,
	secCode: 11, secData: 12,
}

// Check walks wasm and returns its shape, or an error matching ErrBound
// that names the bound and the value past it, or one matching ErrMalformed.
func Check(wasm []byte, l Limits) (Shape, error) {
	c := checker{l: l, fuelType: -1}
	err := c.module(wasm)
	return c.shape, err
}

type checker struct {
	l     Limits
	shape Shape
	// params holds each type's parameter count, funcs each defined
	// function's type index: both are bounded by the bytes that declare
	// them.
	params []uint32
	funcs  []uint32
	// arity holds each type's values carried by a branch to a block of
	// that type: the larger of its parameter and result counts; values
	// the two together, what a call of that type takes and gives.
	arity, values []uint32
	// importTypes holds each imported function's type index.
	importTypes  []uint32
	importFuncs  uint32
	sawFunctions bool
	// tableMax holds each table's maximum, -1 if it has none.
	tableMax []int64
	// fuelType is the index of the first type () -> i32, -1 if none.
	fuelType int64
	// visit, when set, sees every instruction of every body walked;
	// bodyLocals and bodyCode are the last body's locals (parameters
	// included) and the offset of its first instruction.
	visit      func(instr) error
	bodyLocals uint64
	bodyCode   int
	// bodyBranches counts the last body's branch edges: one a br, br_if
	// or return, two an if (its two ways to its end), one per label (the
	// default included) of a br_table; bodyArity is the most values a
	// branch of it may carry (the largest arity of its blocks' types and
	// its own); bodyCalls sums the values its calls take and give.
	bodyBranches uint64
	bodyArity    uint32
	bodyCalls    uint64
	// bodyBlocks counts the last body's blocks, loops and ifs.
	bodyBlocks uint64
}

// over returns the error of a module declaring value of what, if that is
// more than limit.
func over(what string, value, limit uint64) error {
	if value > limit {
		return fmt.Errorf("%w: module declares %d %s, more than %d", ErrBound, value, what, limit)
	}
	return nil
}

func (c *checker) module(b []byte) error {
	if uint64(len(b)) > uint64(c.l.ModuleBytes) {
		return fmt.Errorf("%w: module of %d bytes, more than %d", ErrBound, len(b), c.l.ModuleBytes)
	}
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return fmt.Errorf("%w: no wasm magic number", ErrMalformed)
	}
	if string(b[4:8]) != "\x01\x00\x00\x00" {
		return fmt.Errorf("%w: binary format version %x, not 1", ErrMalformed, b[4:8])
	}
	r := reader{b: b, off: 8}
	last := 0
	for r.len() > 0 {
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return fmt.Errorf("section %d size: %w", id, err)
		}
		body, err := r.sub(size)
		if err != nil {
			return fmt.Errorf("section %d: %w", id, err)
		}
		if id != secCustom {
			if int(id) >= len(order) || order[id] == 0 {
				return fmt.Errorf("%w: unknown section %d", ErrMalformed, id)
			}
			if order[id] <= last {
				return fmt.Errorf("%w: section %d out of order", ErrMalformed, id)
			}
			last = order[id]
		}
		if err := c.section(id, &body); err != nil {
			return err
		}
		if id != secCustom && body.len() != 0 {
			return fmt.Errorf("%w: section %d has %d bytes past its end", ErrMalformed, id, body.len())
		}
	}
	if len(c.funcs) > 0 && !c.sawFunctions {
		return fmt.Errorf("%w: %d functions declared but no code section", ErrMalformed, len(c.funcs))
	}
	return nil
}

func (c *checker) section(id byte, r *reader) error {
	switch id {
	case secCustom:
		return c.custom(r)
	case secType:
		return c.types(r)
	case secImport:
		return c.imports(r)
	case secFunction:
		return c.functions(r)
	case secTable:
		n, err := c.count(r, "tables", uint64(c.shape.Tables), c.l.Tables)
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if err := c.table(r); err != nil {
				return err
			}
		}
		return nil
	case secMemory:
		n, err := c.count(r, "memories", 0, math.MaxUint32)
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if _, _, err := r.limits(); err != nil {
				return err
			}
		}
		return nil
	case secGlobal:
		n, err := c.count(r, "globals", uint64(c.shape.Globals), c.l.Globals)
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if err := r.valtype(); err != nil {
				return err
			}
			if _, err := r.byte(); err != nil {
				return err
			}
			if err := r.constExpr(); err != nil {
				return err
			}
		}
		c.shape.Globals += n
		return nil
	case secExport:
		n, err := c.count(r, "exports", 0, c.l.Exports)
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if err := r.name(); err != nil {
				return err
			}
			if _, err := r.byte(); err != nil {
				return err
			}
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		c.shape.Exports = n
		return nil
	case secStart:
		_, err := r.u32()
		return err
	case secElement:
		return c.elements(r)
	case secCode:
		return c.code(r)
	case secData:
		return c.data(r)
	case secDataCount:
		n, err := r.u32()
		if err != nil {
			return err
		}
		return over("data segments (data count section)", uint64(n), uint64(c.l.DataSegments))
	}
	return nil
}

// count reads a vector's length, refusing one that the rest of the
// section could not hold (every entry takes at least a byte) or that would
// take the running total past limit.
func (c *checker) count(r *reader, what string, before uint64, limit uint32) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n) > uint64(r.len()) {
		return 0, fmt.Errorf("%w: %d %s declared in %d bytes", ErrMalformed, n, what, r.len())
	}
	return n, over(what, before+uint64(n), uint64(limit))
}

func (c *checker) types(r *reader) error {
	n, err := c.count(r, "types", 0, c.l.Types)
	if err != nil {
		return err
	}
	c.shape.Types = n
	c.params, c.arity, c.values = make([]uint32, 0, n), make([]uint32, 0, n), make([]uint32, 0, n)
	for i := uint32(0); i < n; i++ {
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return fmt.Errorf("%w: type %d has form %#x, not a function type", ErrMalformed, i, form)
		}
		params, err := r.valtypes()
		if err != nil {
			return err
		}
		at := r.off
		results, err := r.valtypes()
		if err != nil {
			return err
		}
		if c.fuelType < 0 && params == 0 && results == 1 && r.b[at+1] == 0x7f {
			c.fuelType = int64(i)
		}
		c.params = append(c.params, params)
		c.arity = append(c.arity, max(params, results))
		c.values = append(c.values, params+results)
	}
	return nil
}

func (c *checker) imports(r *reader) error {
	n, err := c.count(r, "imports", 0, c.l.Imports)
	if err != nil {
		return err
	}
	c.shape.Imports = n
	for i := uint32(0); i < n; i++ {
		if err := r.name(); err != nil {
			return err
		}
		if err := r.name(); err != nil {
			return err
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0: // function
			typ, err := r.u32()
			if err != nil {
				return err
			}
			c.importTypes = append(c.importTypes, typ)
			c.importFuncs++
			if err := over("functions", uint64(c.importFuncs), uint64(c.l.Functions)); err != nil {
				return err
			}
		case 1:
			if err := c.table(r); err != nil {
				return err
			}
		case 2:
			if _, _, err := r.limits(); err != nil {
				return err
			}
		case 3:
			if err := r.valtype(); err != nil {
				return err
			}
			if _, err := r.byte(); err != nil {
				return err
			}
			c.shape.Globals++
			if err := over("globals", uint64(c.shape.Globals), uint64(c.l.Globals)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: import %d has kind %#x", ErrMalformed, i, kind)
		}
	}
	return nil
}

func (c *checker) functions(r *reader) error {
	n, err := c.count(r, "functions", uint64(c.importFuncs), c.l.Functions)
	if err != nil {
		return err
	}
	c.shape.Functions = c.importFuncs + n
	c.funcs = make([]uint32, 0, n)
	for i := uint32(0); i < n; i++ {
		t, err := r.u32()
		if err != nil {
			return err
		}
		if t >= uint32(len(c.params)) {
			return fmt.Errorf("%w: function %d has type %d of %d", ErrMalformed, c.importFuncs+i, t, len(c.params))
		}
		c.funcs = append(c.funcs, t)
	}
	return nil
}

// table reads a table type and bounds its size: its minimum is allocated
// per instance. Its maximum bounds table.grow; a table without one, or
// with one past the bound, is refused only if some function uses
// table.grow, since nothing else grows a table.
func (c *checker) table(r *reader) error {
	idx := c.shape.Tables
	c.shape.Tables++
	if err := over("tables", uint64(c.shape.Tables), uint64(c.l.Tables)); err != nil {
		return err
	}
	if err := r.reftype(); err != nil {
		return err
	}
	lo, hi, err := r.limits()
	if err != nil {
		return err
	}
	c.shape.TableElements = max(c.shape.TableElements, lo)
	if lo > c.l.TableElements {
		return fmt.Errorf("%w: table %d declares %d elements, more than %d", ErrBound, idx, lo, c.l.TableElements)
	}
	c.tableMax = append(c.tableMax, hi)
	return nil
}

// grown refuses table.grow of a table whose maximum, if any, is past the
// bound.
func (c *checker) grown(fn, table uint32) error {
	if table >= uint32(len(c.tableMax)) {
		return fmt.Errorf("%w: function %d grows table %d of %d", ErrMalformed, fn, table, len(c.tableMax))
	}
	switch hi := c.tableMax[table]; {
	case hi < 0 && c.l.TableElements < math.MaxUint32: // a table has at most 2^32-1 elements
		return fmt.Errorf("%w: table %d declares no maximum size, and function %d uses table.grow on it, which could take it past %d elements", ErrBound, table, fn, c.l.TableElements)
	case hi > int64(c.l.TableElements):
		return fmt.Errorf("%w: table %d declares a maximum size of %d, and function %d uses table.grow on it, which could take it past %d elements", ErrBound, table, hi, fn, c.l.TableElements)
	}
	return nil
}

func (c *checker) elements(r *reader) error {
	n, err := c.count(r, "element segments", 0, c.l.ElementSegments)
	if err != nil {
		return err
	}
	c.shape.ElementSegments = n
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		if flags > 7 {
			return fmt.Errorf("%w: element segment %d has flags %d", ErrMalformed, i, flags)
		}
		passiveOrDeclarative, explicitTable, exprs := flags&1 != 0, flags&2 != 0, flags&4 != 0
		if !passiveOrDeclarative {
			if explicitTable {
				if _, err := r.u32(); err != nil {
					return err
				}
			}
			if err := r.constExpr(); err != nil {
				return err
			}
		}
		if passiveOrDeclarative || explicitTable {
			// elemkind (0x00, funcref) or a reference type
			if exprs {
				err = r.reftype()
			} else {
				_, err = r.byte()
			}
			if err != nil {
				return err
			}
		}
		m, err := c.count(r, "element segment entries", uint64(c.shape.ElementEntries), c.l.ElementEntries)
		if err != nil {
			return err
		}
		c.shape.ElementEntries += m
		for j := uint32(0); j < m; j++ {
			if exprs {
				err = r.constExpr()
			} else {
				_, err = r.u32()
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *checker) data(r *reader) error {
	n, err := c.count(r, "data segments", 0, c.l.DataSegments)
	if err != nil {
		return err
	}
	c.shape.DataSegments = n
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		switch flags {
		case 0:
		case 1:
		case 2:
			if _, err := r.u32(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: data segment %d has flags %d", ErrMalformed, i, flags)
		}
		if flags != 1 {
			if err := r.constExpr(); err != nil {
				return err
			}
		}
		if err := r.bytesVec(); err != nil {
			return err
		}
	}
	return nil
}

// custom reads a custom section's name and, for the name section, which
// the runtime decodes, its subsections; other custom sections are opaque.
func (c *checker) custom(r *reader) error {
	nameLen, err := r.u32()
	if err != nil {
		return err
	}
	name, err := r.take(nameLen)
	if err != nil {
		return err
	}
	if string(name) != "name" {
		return nil
	}
	for r.len() > 0 {
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		sub, err := r.sub(size)
		if err != nil {
			return fmt.Errorf("name section: %w", err)
		}
		switch id {
		case 0:
			err = c.name(&sub)
		case 1:
			err = c.nameMap(&sub)
		case 2:
			var n uint32
			if n, err = c.count(&sub, "local name maps", 0, math.MaxUint32); err != nil {
				break
			}
			for i := uint32(0); i < n && err == nil; i++ {
				if _, err = sub.u32(); err == nil {
					err = c.nameMap(&sub)
				}
			}
		default:
			continue
		}
		if err == nil && sub.len() != 0 {
			err = fmt.Errorf("%w: %d bytes past its end", ErrMalformed, sub.len())
		}
		if err != nil {
			return fmt.Errorf("name section, subsection %d: %w", id, err)
		}
	}
	return nil
}

// nameMap reads a name map, each of whose entries the runtime keeps.
func (c *checker) nameMap(r *reader) error {
	n, err := c.count(r, "names (name section)", uint64(c.shape.Names), c.l.Names)
	if err != nil {
		return err
	}
	c.shape.Names += n
	for i := uint32(0); i < n; i++ {
		if _, err := r.u32(); err != nil {
			return err
		}
		if err := c.name(r); err != nil {
			return err
		}
	}
	return nil
}

// name reads a name of the name section, within Limits.NameBytes.
func (c *checker) name(r *reader) error {
	n, err := r.bytesVecLen()
	if err != nil {
		return err
	}
	c.shape.NameBytes = max(c.shape.NameBytes, n)
	if n > c.l.NameBytes {
		return fmt.Errorf("%w: a name of %d bytes, more than %d", ErrBound, n, c.l.NameBytes)
	}
	return nil
}

func (c *checker) code(r *reader) error {
	c.sawFunctions = true
	c.shape.CodeBytes = uint32(r.len())
	if uint64(r.len()) > uint64(c.l.CodeBytes) {
		return fmt.Errorf("%w: code section of %d bytes, more than %d", ErrBound, r.len(), c.l.CodeBytes)
	}
	n, err := r.u32()
	if err != nil {
		return err
	}
	if n != uint32(len(c.funcs)) {
		return fmt.Errorf("%w: %d function bodies for %d functions", ErrMalformed, n, len(c.funcs))
	}
	for i := uint32(0); i < n; i++ {
		idx := c.importFuncs + i
		size, err := r.u32()
		if err != nil {
			return err
		}
		if size > c.l.BodyBytes {
			return fmt.Errorf("%w: function %d has a body of %d bytes, more than %d", ErrBound, idx, size, c.l.BodyBytes)
		}
		body, err := r.sub(size)
		if err != nil {
			return fmt.Errorf("function %d: %w", idx, err)
		}
		c.shape.BodyBytes = max(c.shape.BodyBytes, size)
		if err := c.body(idx, c.funcs[i], &body); err != nil {
			return err
		}
	}
	return nil
}

// body sums a function's local declarations without expanding them, then
// decodes its instructions to measure their nesting and branches. typ is
// the function's type.
func (c *checker) body(idx, typ uint32, r *reader) error {
	params := c.params[typ]
	groups, err := r.u32()
	if err != nil {
		return fmt.Errorf("function %d: %w", idx, err)
	}
	if uint64(groups) > uint64(r.len())/2 { // a count and a type each
		return fmt.Errorf("%w: function %d declares %d groups of locals in %d bytes", ErrMalformed, idx, groups, r.len())
	}
	locals := uint64(params)
	for i := uint32(0); i < groups; i++ {
		n, err := r.u32()
		if err != nil {
			return fmt.Errorf("function %d: %w", idx, err)
		}
		if err := r.valtype(); err != nil {
			return fmt.Errorf("function %d: %w", idx, err)
		}
		locals += uint64(n)
	}
	if locals > uint64(c.l.Locals) {
		if locals > math.MaxUint32 && c.l.Locals == math.MaxUint32 {
			return fmt.Errorf("%w: function %d declares %d locals, more than a function may have", ErrMalformed, idx, locals)
		}
		return fmt.Errorf("%w: function %d declares %d locals, more than %d", ErrBound, idx, locals, c.l.Locals)
	}
	c.shape.Locals = max(c.shape.Locals, uint32(locals))
	c.shape.ModuleLocals += locals
	if c.shape.ModuleLocals > c.l.ModuleLocals {
		return fmt.Errorf("%w: functions up to %d declare %d locals together, more than %d", ErrBound, idx, c.shape.ModuleLocals, c.l.ModuleLocals)
	}
	c.bodyLocals, c.bodyCode, c.bodyBranches, c.bodyArity, c.bodyCalls, c.bodyBlocks = locals, r.off, 0, c.arity[typ], 0, 0
	depth, err := c.instructions(idx, r)
	if err != nil {
		return err
	}
	c.shape.Depth = max(c.shape.Depth, depth)
	p := locals * uint64(depth)
	if p > c.l.LocalsTimesDepth {
		return fmt.Errorf("%w: function %d has %d locals at nesting depth %d, %d together, more than %d", ErrBound, idx, locals, depth, p, c.l.LocalsTimesDepth)
	}
	c.shape.LocalsTimesDepth = max(c.shape.LocalsTimesDepth, p)
	if c.bodyBranches > uint64(c.l.Branches) {
		return fmt.Errorf("%w: function %d has %d branches (an if two, a br_table one a label), more than %d", ErrBound, idx, c.bodyBranches, c.l.Branches)
	}
	c.shape.Branches = max(c.shape.Branches, uint32(c.bodyBranches))
	// Every branch edge carries the locals and the values of its target
	// into the compiler's merge there, and costs one more on its own; a
	// call, the values it takes and gives.
	v := (locals+uint64(c.bodyArity)+1)*c.bodyBranches + c.bodyCalls
	if v > c.l.BranchValues {
		return fmt.Errorf("%w: function %d has %d branches carrying up to %d locals and %d values each, and calls of %d values, %d together, more than %d", ErrBound, idx, c.bodyBranches, locals, c.bodyArity, c.bodyCalls, v, c.l.BranchValues)
	}
	c.shape.BranchValues = max(c.shape.BranchValues, v)
	if c.bodyBlocks > uint64(c.l.Blocks) {
		return fmt.Errorf("%w: function %d has %d blocks, loops and ifs, more than %d", ErrBound, idx, c.bodyBlocks, c.l.Blocks)
	}
	c.shape.Blocks = max(c.shape.Blocks, uint32(c.bodyBlocks))
	c.shape.ModuleBlocksSquared += c.bodyBlocks * c.bodyBlocks
	if c.shape.ModuleBlocksSquared > c.l.ModuleBlocksSquared {
		return fmt.Errorf("%w: functions up to %d have blocks, loops and ifs whose counts squared add up to %d, more than %d", ErrBound, idx, c.shape.ModuleBlocksSquared, c.l.ModuleBlocksSquared)
	}
	c.shape.ModuleBranchValues += v
	if c.shape.ModuleBranchValues > c.l.ModuleBranchValues {
		return fmt.Errorf("%w: functions up to %d have branches carrying %d locals and values together, more than %d", ErrBound, idx, c.shape.ModuleBranchValues, c.l.ModuleBranchValues)
	}
	c.shape.ModuleLocalsTimesDepth += p
	if c.shape.ModuleLocalsTimesDepth > c.l.ModuleLocalsTimesDepth {
		return fmt.Errorf("%w: functions up to %d have locals times nesting depth of %d together, more than %d", ErrBound, idx, c.shape.ModuleLocalsTimesDepth, c.l.ModuleLocalsTimesDepth)
	}
	return nil
}
