package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// jsonScanSeeds are documents at the edges of the JSON grammar, valid and
// not.
var jsonScanSeeds = []string{
	``, ` `, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-05`, `1e`, `1e+`, `-1.5e3x`, `123456789012345678901234567890`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `nulll`, `"`, `""`, `"a"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\uD83D\uDE00"`, `"\u12"`, `"\u12G4"`, `"\x"`,
	"\"a\x01\"", "\"a\x7f\"", "\"\xff\xfe\"", "\"\u2028\"", `"<&>"`,
	`{}`, `{ }`, `[]`, `[ ]`, `[1,2]`, `[1,]`, `[,1]`, `[1 2]`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":[1,{"b":null}],"c":"d"}`,
	`{"a":1}}`, `[[]`, `]`, `}`, `1 2`, `{} {}`, " \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \n", "[\v]", `[1]x`, `{"a":1]`, `[1}`,
	"{\"step\":42,\"goal\":\"benchmark the daemon\",\"plan\":[\"observe\",\"decide\",\"act\"],\"score\":0.875}",
}

// checkJSONScan holds validJSON and appendCompactJSON to json.Valid and
// json.Compact on src.
func checkJSONScan(t *testing.T, src []byte) {
	t.Helper()
	if got, want := validJSON(src), json.Valid(src); got != want {
		t.Fatalf("validJSON(%q) = %v, json.Valid %v", src, got, want)
	}
	var want bytes.Buffer
	want.WriteString("prefix")
	err := json.Compact(&want, src)
	got, ok := appendCompactJSON([]byte("prefix"), src)
	if ok != (err == nil) || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("appendCompactJSON(%q) = %q, %v; json.Compact %q, %v", src, got, ok, want.Bytes(), err)
	}
}

func TestJSONScanMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonScanSeeds {
		checkJSONScan(t, []byte(s))
	}
	// encoding/json refuses a document nested deeper than 10 000 levels.
	for _, depth := range []int{maxJSONDepth, maxJSONDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closing := "]"
			if open != "[" {
				closing = "}"
			}
			checkJSONScan(t, []byte(strings.Repeat(open, depth)+"1"+strings.Repeat(closing, depth)))
		}
	}
}

func FuzzJSONScan(f *testing.F) {
	for _, s := range jsonScanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) { checkJSONScan(t, src) })
}

func BenchmarkJSONScan(b *testing.B) {
	doc := []byte(`{"step":42,"goal":"benchmark the daemon","plan":["observe","decide","act"],` +
		`"memory":{"last_tool":"search","tokens_used":1234,"cursor":"c-000001"},"flags":{"dry_run":false,"verbose":true},"score":0.875}`)
	var buf bytes.Buffer
	b.Run("encoding-json/Valid", func(b *testing.B) {
		for b.Loop() {
			json.Valid(doc)
		}
	})
	b.Run("encoding-json/Compact", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			_ = json.Compact(&buf, doc)
		}
	})
	b.Run("scan/Valid", func(b *testing.B) {
		for b.Loop() {
			validJSON(doc)
		}
	})
	b.Run("scan/Compact", func(b *testing.B) {
		dst := make([]byte, 0, 512)
		for b.Loop() {
			dst, _ = appendCompactJSON(dst[:0], doc)
		}
	})
}
