package main

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/storage-host/storage-host/abi"
)

// Labels are stored twice: exactly, in the ABI's layout (count, then
// key/value string pairs in key order) in a bytea column, and as a jsonb
// object (label_set) of the labels whose values PostgreSQL text can hold:
// valid UTF-8 without NUL. The jsonb copy serves equality matchers
// (query.go); records are always read back from the exact copy.

// encodeLabels returns l in the ABI's layout.
func (b *backend) encodeLabels(l map[string]string) []byte {
	e := &b.enc
	e.Reset()
	e.Uvarint(uint64(len(l)))
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.String(k)
		e.String(l[k])
	}
	return append([]byte(nil), e.Bytes()...)
}

// decodeLabels is the inverse of encodeLabels; no labels is nil, as the
// ABI's decoder gives.
func decodeLabels(v []byte) (map[string]string, error) {
	var d abi.Decoder
	d.Reset(v)
	n := d.Count(2)
	var l map[string]string
	if n > 0 {
		l = make(map[string]string, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		k := d.String()
		l[k] = d.String()
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("corrupt labels: %w", err)
	}
	return l, nil
}

// textValue reports whether PostgreSQL text (and jsonb) can hold v.
func textValue(v string) bool {
	return utf8.ValidString(v) && strings.IndexByte(v, 0) < 0
}

// labelSet returns the jsonb text of the labels of l whose values are
// text (label names always are: abi.CheckID).
func labelSet(l map[string]string) string {
	var sb strings.Builder
	sb.WriteByte('{')
	first := true
	for k, v := range l {
		if !textValue(v) {
			continue
		}
		if !first {
			sb.WriteByte(',')
		}
		first = false
		appendJSONString(&sb, k)
		sb.WriteByte(':')
		appendJSONString(&sb, v)
	}
	sb.WriteByte('}')
	return sb.String()
}

// appendJSONString writes s, valid UTF-8 without NUL, as a JSON string.
func appendJSONString(sb *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < 0x20:
			sb.WriteString(`\u00`)
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&0xf])
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('"')
}
