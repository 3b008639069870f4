// Package wasmgen writes WebAssembly modules byte by byte, for tests: it
// expresses shapes the text format cannot, or only in files of gigabytes,
// such as one declaration of 2^32-1 locals.
package wasmgen

// U32 encodes v as unsigned LEB128.
func U32(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Vec encodes a vector: its length, then its entries.
func Vec(entries ...[]byte) []byte {
	b := U32(uint32(len(entries)))
	for _, e := range entries {
		b = append(b, e...)
	}
	return b
}

// Section encodes a section of the given id and content.
func Section(id byte, content []byte) []byte {
	return append(append([]byte{id}, U32(uint32(len(content)))...), content...)
}

// Module encodes a module of the given sections.
func Module(sections ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		b = append(b, s...)
	}
	return b
}

// Section IDs.
const (
	SecType     = 1
	SecFunction = 3
	SecTable    = 4
	SecExport   = 7
	SecCode     = 10
)

// I32 is the value type i32.
const I32 = 0x7f

// Locals is one group of local declarations: N locals of Type.
type Locals struct {
	N    uint32
	Type byte
}

// Body encodes a function body: its local declarations, then code, which
// must end with the end opcode (0x0b).
func Body(locals []Locals, code []byte) []byte {
	var b []byte
	b = append(b, U32(uint32(len(locals)))...)
	for _, l := range locals {
		b = append(append(b, U32(l.N)...), l.Type)
	}
	b = append(b, code...)
	return append(U32(uint32(len(b))), b...)
}

// Functions encodes a module of one type, () -> (), and a function of it
// for each body.
func Functions(bodies ...[]byte) []byte {
	types := Section(SecType, Vec([]byte{0x60, 0, 0}))
	idx := make([][]byte, len(bodies))
	for i := range idx {
		idx[i] = U32(0)
	}
	return Module(types, Section(SecFunction, Vec(idx...)), Section(SecCode, Vec(bodies...)))
}

// Nested returns code of depth blocks nested in one another, then the
// end of the body.
func Nested(depth int) []byte {
	code := make([]byte, 0, 4*depth+1)
	for range depth {
		code = append(code, 0x02, 0x40) // block (empty type)
	}
	for range depth {
		code = append(code, 0x0b)
	}
	return append(code, 0x0b)
}

// ReadInLoops returns code reading each of locals locals inside depth
// nested loops, then the end of the body: the shape whose compilation
// grows with locals times depth.
func ReadInLoops(locals uint32, depth int) []byte {
	var code []byte
	for range depth {
		code = append(code, 0x03, 0x40) // loop (empty type)
	}
	for i := range locals {
		code = append(append(append(code, 0x20), U32(i)...), 0x1a) // local.get i, drop
	}
	for range depth {
		code = append(code, 0x0b)
	}
	return append(code, 0x0b)
}

// BrTable returns code of depth blocks nested in one another around a
// br_table of labels labels, each to one of the blocks in turn, then the
// end of the body: a few bytes a label, and a branch edge each for the
// compiler to merge at its target.
func BrTable(depth, labels int) []byte {
	var code []byte
	for range depth {
		code = append(code, 0x02, 0x40) // block (empty type)
	}
	code = append(code, 0x41, 0x00, 0x0e) // i32.const 0, br_table
	code = append(code, U32(uint32(labels))...)
	for i := range labels {
		code = append(code, U32(uint32(i%depth))...)
	}
	code = append(code, 0x00) // the default
	for range depth {
		code = append(code, 0x0b)
	}
	return append(code, 0x0b)
}

// BranchValues returns a module of one function holding a block of a
// type giving results i32 values, and a br_table of labels labels to it:
// each label's edge carries every one of the values.
func BranchValues(results, labels int) []byte {
	many := make([]byte, results)
	for i := range many {
		many[i] = I32
	}
	types := Section(SecType, Vec([]byte{0x60, 0, 0}, append([]byte{0x60, 0}, Vec(bytesOf(many)...)...)))
	code := []byte{0x02, 0x01} // block of type 1
	for range results {
		code = append(code, 0x41, 0x00) // i32.const 0
	}
	code = append(code, 0x41, 0x00, 0x0e) // i32.const 0, br_table
	code = append(code, U32(uint32(labels))...)
	for range labels + 1 { // the labels, then the default
		code = append(code, 0x00)
	}
	code = append(code, 0x0b)
	for range results {
		code = append(code, 0x1a) // drop
	}
	code = append(code, 0x0b)
	return Module(types, Section(SecFunction, Vec(U32(0))), Section(SecCode, Vec(Body(nil, code))))
}

// bytesOf splits b into one-byte entries, for Vec.
func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// Blocks returns code of n empty blocks one after another, then the end of
// the body.
func Blocks(n int) []byte {
	var code []byte
	for range n {
		code = append(code, 0x02, 0x40, 0x0b) // block (empty type), end
	}
	return append(code, 0x0b)
}

// IfsThenLocals returns code of ifs empty ifs one after another, each on
// local 0, then a read of each of locals locals, then the end of the body.
func IfsThenLocals(locals uint32, ifs int) []byte {
	var code []byte
	for range ifs {
		code = append(code, 0x20, 0x00, 0x04, 0x40, 0x0b) // local.get 0, if, end
	}
	for i := range locals {
		code = append(append(append(code, 0x20), U32(i)...), 0x1a) // local.get i, drop
	}
	return append(code, 0x0b)
}

// CallChain returns a module of one function taking and giving values
// i32 values, which calls itself calls times in a chain, each call's
// results the next one's arguments.
func CallChain(values uint32, calls int) []byte {
	typ := []byte{0x60}
	for range 2 {
		typ = append(typ, U32(values)...)
		for range values {
			typ = append(typ, I32)
		}
	}
	var code []byte
	for i := range values {
		code = append(append(code, 0x20), U32(i)...) // local.get i
	}
	for range calls {
		code = append(code, 0x10, 0x00) // call 0
	}
	code = append(code, 0x0b)
	return Module(Section(SecType, Vec(typ)), Section(SecFunction, Vec(U32(0))), Section(SecCode, Vec(Body(nil, code))))
}
