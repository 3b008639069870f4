// Package wirepath names the field of an ABI message that holds a given
// byte, from the ABI's machine-readable description (abi.MessagesJSON), so
// that an error in a message a plugin sent can say
// "AgentState.updated_at (time)" and not only a byte offset. It runs on
// failure paths only: it reads the description once, on first use.
package wirepath

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/storage-host/storage-host/abi"
)

type (
	description struct {
		Messages map[string]message `json:"messages"`
	}
	message struct {
		Fields []field          `json:"fields"`
		Alias  *json.RawMessage `json:"alias"`
	}
	field struct {
		Name   string          `json:"name"`
		Type   json.RawMessage `json:"type"`
		Values []uint64        `json:"values"`
		When   *struct {
			Field string   `json:"field"`
			In    []uint64 `json:"in"`
			From  *uint64  `json:"from"` // present when the field is From or more
		} `json:"when"`
	}
	composite struct {
		List   json.RawMessage   `json:"list"`
		Switch string            `json:"switch"`
		Cases  map[string]string `json:"cases"`
	}
)

var load = sync.OnceValues(func() (*description, error) {
	var d description
	if err := json.Unmarshal([]byte(abi.MessagesJSON()), &d); err != nil {
		return nil, err
	}
	return &d, nil
})

// Fault describes the error d met decoding b, a message of type msg (a
// name of abi/messages.json), for a plugin author: the error, its byte,
// and where the ABI's description places that byte — the field being
// read ("in AgentState.updated_at (time): past the end of the message")
// or the bytes after the message's last field. Where the description
// finds b malformed first, its byte is the one given.
func Fault(msg string, b []byte, d *abi.Decoder) string {
	at, where := Locate(msg, b, d.ErrOffset())
	text := fmt.Sprintf("%v at byte %d of %d", d.Err(), at, len(b))
	if where != "" {
		text += ", " + where
	}
	if path, typ := readsWhenFixed(msg, b); path != "" {
		text += fmt.Sprintf("; the message reads whole with %s as a fixed-width little-endian integer, which a %s is not: it is a uvarint (abi/README.md, section 7.1)", path, typ)
	}
	return text
}

// readsWhenFixed returns the path and type of the u16 or u32 field of b,
// a message of type msg, that makes b read whole, with no byte left, when
// taken as a fixed-width little-endian integer: the mistake a writer of
// the ABI by hand makes most, since "u32" names a fixed-width type in
// most languages. It tries the first maxFixedTries such fields in turn,
// in a message of maxFixedBytes at most (each try reads b again, and a
// plugin's answer may be megabytes of them); "" when none does.
func readsWhenFixed(msg string, b []byte) (path, typ string) {
	d, err := load()
	if err != nil || len(b) > maxFixedBytes {
		return "", ""
	}
	if _, ok := d.Messages[msg]; !ok {
		return "", ""
	}
	for k := range maxFixedTries {
		w := walker{d: d, b: b, at: -1, fixed: k}
		err := w.named(msg, msg)
		if w.seen <= k {
			return "", "" // no k-th u16 or u32 field before the walk stopped
		}
		if err == nil && w.off == len(b) {
			return w.fixedPath, w.fixedType
		}
	}
	return "", ""
}

const (
	maxFixedTries = 8
	maxFixedBytes = 64 << 10
)

// Locate says where byte at of b, a message of type msg, falls: in the
// field read there, as a path ("in TickResult.writes[0].state.updated_at
// (time, bytes 20 to 27)"), or what the description finds wrong with b
// before that byte (a value past the end, a value no layout allows; the
// byte returned is then that value's), or after the message's last field.
// It returns at and "" when msg is not described.
func Locate(msg string, b []byte, at int) (int, string) {
	d, err := load()
	if err != nil {
		return at, ""
	}
	if _, ok := d.Messages[msg]; !ok {
		return at, ""
	}
	w := walker{d: d, b: b, at: at, fixed: -1}
	if err := w.named(msg, msg); err != nil {
		var f *fault
		switch {
		case errors.As(err, &f) && (w.holder == "" || f.off <= at):
			return f.off, fmt.Sprintf("in %s (%s): %s", f.path, f.typ, f.why)
		case w.holder != "":
			return at, "in " + w.holder
		default:
			return at, "" // the walk stopped short: nothing to say of the end
		}
	}
	if w.holder != "" {
		return at, "in " + w.holder
	}
	if at >= w.off && w.off < len(b) {
		return at, fmt.Sprintf("after the last field of %s, which ends at byte %d", msg, w.off)
	}
	return at, ""
}

// fault is where the description found b malformed.
type fault struct {
	path, typ, why string
	off            int
}

func (f *fault) Error() string { return f.path + ": " + f.why }

type walker struct {
	d      *description
	b      []byte
	off    int
	at     int
	holder string // the field holding byte at, once read

	// fixed, when not negative, is the u16 or u32 field, counted from 0
	// in the order read, to read as a fixed-width little-endian integer
	// (readsWhenFixed); seen counts those fields read, and fixedPath and
	// fixedType name the one read so.
	fixed                int
	seen                 int
	fixedPath, fixedType string
	fixedStart           int
}

// read consumes n bytes of a value of type typ at path, or fails.
func (w *walker) read(path, typ string, n int, why string) error {
	if n <= 0 || w.off+n > len(w.b) {
		if why == "" {
			why = "past the end of the message"
		}
		return &fault{path: path, typ: typ, why: why, off: w.off}
	}
	if w.holder == "" && w.at >= w.off && w.at < w.off+n {
		w.holder = fmt.Sprintf("%s (%s, bytes %d to %d)", path, typ, w.off, w.off+n-1)
	}
	w.off += n
	return nil
}

func (w *walker) uvarint(path, typ string) (uint64, error) {
	v, n := binary.Uvarint(w.b[w.off:])
	why := ""
	if n < 0 {
		why = "an unsigned LEB128 longer than 10 bytes or past 64 bits"
	}
	if err := w.read(path, typ, n, why); err != nil {
		return 0, err
	}
	return v, nil
}

// value reads a value of type t at path; earlier holds the integer fields
// of the message being read, for switch types.
func (w *walker) value(t json.RawMessage, path string, earlier map[string]uint64) error {
	var name string
	if json.Unmarshal(t, &name) == nil {
		return w.named(name, path)
	}
	var c composite
	if err := json.Unmarshal(t, &c); err != nil {
		return err
	}
	if c.List != nil {
		start := w.off
		n, err := w.uvarint(path, "count")
		if err != nil {
			return err
		}
		if n > uint64(len(w.b)-w.off) {
			return &fault{path: path, typ: "count", why: fmt.Sprintf("%d elements in %d bytes", n, len(w.b)-w.off), off: start}
		}
		for i := range n {
			if err := w.value(c.List, path+"["+strconv.FormatUint(i, 10)+"]", nil); err != nil {
				return err
			}
		}
		return nil
	}
	sel, ok := earlier[c.Switch]
	if !ok {
		return fmt.Errorf("wirepath: switch on %q, not an earlier field", c.Switch)
	}
	name, ok = c.Cases[strconv.FormatUint(sel, 10)]
	if !ok {
		return &fault{path: path, typ: "switch", why: fmt.Sprintf("%s %d has no layout", c.Switch, sel), off: w.off}
	}
	return w.named(name, path)
}

// named reads a value of the primitive type or message called name.
func (w *walker) named(name, path string) error {
	start := w.off
	switch name {
	case "u8":
		return w.read(path, name, 1, "")
	case "bool":
		if w.off < len(w.b) && w.b[w.off] > 1 {
			return &fault{path: path, typ: name, why: fmt.Sprintf("%d is neither 0 nor 1", w.b[w.off]), off: w.off}
		}
		return w.read(path, name, 1, "")
	case "u16", "u32":
		w.seen++
		if w.seen-1 == w.fixed {
			w.fixedPath, w.fixedType, w.fixedStart = path, name, w.off
			return w.read(path, name, map[string]int{"u16": 2, "u32": 4}[name], "")
		}
		fallthrough
	case "uvarint":
		v, err := w.uvarint(path, name)
		if err == nil && (name == "u16" && v > math.MaxUint16 || name == "u32" && v > math.MaxUint32) {
			return &fault{path: path, typ: name, why: fmt.Sprintf("%d does not fit %s", v, name), off: start}
		}
		return err
	case "varint", "time":
		_, n := binary.Varint(w.b[w.off:])
		return w.read(path, name, n, "")
	case "f64":
		return w.read(path, name, 8, "")
	case "bytes", "string":
		n, err := w.uvarint(path, name+" length")
		if err != nil {
			return err
		}
		if n > uint64(len(w.b)-w.off) {
			return &fault{path: path, typ: name, why: fmt.Sprintf("a length of %d with %d bytes left", n, len(w.b)-w.off), off: start}
		}
		if n == 0 {
			return nil
		}
		return w.read(path, name, int(n), "")
	}
	def, ok := w.d.Messages[name]
	if !ok {
		return fmt.Errorf("wirepath: unknown type %q", name)
	}
	if def.Alias != nil {
		return w.value(*def.Alias, path, nil)
	}
	earlier := map[string]uint64{}
	for _, f := range def.Fields {
		if w := f.When; w != nil {
			if v := earlier[w.Field]; w.From != nil && v < *w.From || w.From == nil && !slices.Contains(w.In, v) {
				continue
			}
		}
		fpath := path + "." + f.Name
		fstart := w.off
		if err := w.value(f.Type, fpath, earlier); err != nil {
			return err
		}
		if v, ok := w.integer(f.Type, fstart); ok {
			earlier[f.Name] = v
			if f.Values != nil && !slices.Contains(f.Values, v) {
				return &fault{path: fpath, typ: typeName(f.Type), why: fmt.Sprintf("%d is not one of %v", v, f.Values), off: fstart}
			}
		}
	}
	return nil
}

// integer reads again the integer field of type t that began at off.
func (w *walker) integer(t json.RawMessage, off int) (uint64, bool) {
	switch typeName(t) {
	case "u8", "bool":
		return uint64(w.b[off]), true
	case "u16", "u32":
		if w.fixedPath != "" && w.fixedStart == off {
			if typeName(t) == "u16" {
				return uint64(binary.LittleEndian.Uint16(w.b[off:])), true
			}
			return uint64(binary.LittleEndian.Uint32(w.b[off:])), true
		}
		fallthrough
	case "uvarint":
		v, _ := binary.Uvarint(w.b[off:])
		return v, true
	}
	return 0, false
}

func typeName(t json.RawMessage) string {
	var name string
	if json.Unmarshal(t, &name) == nil {
		return name
	}
	return "composite"
}
