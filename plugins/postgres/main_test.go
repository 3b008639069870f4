package main

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/storage-host/storage-host/abi"
)

// The conformance suite (host/storetest, postgres_test.go) checks the
// plugin end to end against a real PostgreSQL; these tests pin the
// encodings it relies on.

// prefixEnd bounds exactly the strings that start with the prefix.
func TestPrefixEnd(t *testing.T) {
	for _, p := range []string{"a", "agent-", "\u007f", "é", "\ud7ff", "x\U0010ffff", "\u07ff"} {
		end, ok := prefixEnd(p)
		if !ok || !utf8.ValidString(end) || end <= p {
			t.Fatalf("prefixEnd(%q) = %q, %v: not a valid bound above the prefix", p, end, ok)
		}
		for _, s := range []string{p, p + "\x01", p + "zzz", p + "\U0010ffff"} {
			if s >= end {
				t.Fatalf("%q starts with %q but is not below its bound %q", s, p, end)
			}
		}
		if strings.HasPrefix(end, p) {
			t.Fatalf("the bound %q of %q starts with it", end, p)
		}
	}
	if end, ok := prefixEnd("\U0010ffff"); ok {
		t.Fatalf("prefixEnd of the greatest rune = %q, want none", end)
	}
}

// The jsonb text of labels is JSON, holds exactly the text values, and
// the stored labels come back as they went in.
func TestLabelEncodings(t *testing.T) {
	l := map[string]string{"a\"b": "c\\d\n\x01", "bin": "\xff\xfe", "nul": "a\x00b", "plain": "v", "empty": ""}
	var got map[string]string
	if err := json.Unmarshal([]byte(labelSet(l)), &got); err != nil {
		t.Fatalf("labelSet is not JSON: %v", err)
	}
	want := map[string]string{"a\"b": "c\\d\n\x01", "plain": "v", "empty": ""}
	if len(got) != len(want) {
		t.Fatalf("labelSet = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("labelSet[%q] = %q, want %q", k, got[k], v)
		}
	}
	var b backend
	back, err := decodeLabels(b.encodeLabels(l))
	if err != nil || len(back) != len(l) {
		t.Fatalf("decodeLabels(encodeLabels) = %v, %v", back, err)
	}
	for k, v := range l {
		if back[k] != v {
			t.Fatalf("label %q came back as %q, want %q", k, back[k], v)
		}
	}
	if none, err := decodeLabels(b.encodeLabels(nil)); err != nil || none != nil {
		t.Fatalf("no labels came back as %v, %v; want nil", none, err)
	}
}

// A cursor opens only for its own kind and query.
func TestCursors(t *testing.T) {
	var enc abi.Encoder
	c := cursor{kind: 'm', hash: 42}
	cur := c.make(&enc, "agent", "name", int64(-7))
	var agent, name string
	var ts int64
	if err := c.open(cur, &agent, &name, &ts); err != nil || agent != "agent" || name != "name" || ts != -7 {
		t.Fatalf("open = %q %q %d %v", agent, name, ts, err)
	}
	for _, other := range []cursor{{kind: 'a', hash: 42}, {kind: 'm', hash: 43}} {
		if err := other.open(cur, &agent, &name, &ts); err == nil {
			t.Fatalf("a cursor of %v opened for %v", c, other)
		}
	}
	if err := c.open(cur[:len(cur)-1], &agent, &name, &ts); err == nil {
		t.Fatal("a truncated cursor opened")
	}
}
