package host

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLogTextIsOnePrintableLine: what a plugin says becomes one line of
// printable UTF-8, each character that is not printable escaped as Go
// quotes it; printable text is kept as it is.
func TestLogTextIsOnePrintableLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, with \"quotes\" and \\ and é ü 日本": "plain text, with \"quotes\" and \\ and é ü 日本",
		"":                         "",
		"a\nb":                     `a\nb`,
		"a\r\nb":                   `a\r\nb`,
		"a\x1b[31mred\x1b[0m":      `a\x1b[31mred\x1b[0m`,
		"nul\x00":                  `nul\x00`,
		"del\x7f":                  `del\x7f`,
		"tab\tv\vf\f":              `tab\tv\vf\f`,
		"bad \xff\xfe utf8":        `bad \xff\xfe utf8`,
		"cut \xe2\x80":             `cut \xe2\x80`,
		"c1 \u0085 \u009b":         `c1 \u0085 \u009b`,
		"ls \u2028 ps \u2029":      `ls \u2028 ps \u2029`,
		"bidi \u202e \u2066":       `bidi \u202e \u2066`,
		"nbsp\u00a0zwsp\u200b":     `nbsp\u00a0zwsp\u200b`,
		"bom \ufeff":               `bom \ufeff`,
		"encoded error \uFFFD ok":  "encoded error \uFFFD ok",
		"surrogate \xed\xa0\x80 x": `surrogate \xed\xa0\x80 x`,
	} {
		got := logText(in)
		assert.Equal(t, want, got, "%q", in)
		assert.True(t, utf8.ValidString(got), "%q", got)
		for _, r := range got {
			assert.True(t, r == ' ' || unicode.IsGraphic(r) && !unicode.IsSpace(r), "%q keeps %U", got, r)
		}
	}
	s := "nothing to escape"
	// The fewest of five rounds: AllocsPerRun counts every goroutine's
	// allocations.
	n := math.Inf(1)
	for range 5 {
		n = min(n, testing.AllocsPerRun(10, func() { s = logText(s) }))
	}
	assert.Equal(t, 0.0, n, "printable text is not copied")
}

// TestTrapTextIsBounded: the text of a trap (whose stack names the
// plugin's functions) is cut before it is escaped for the log, so a
// megabyte of control characters costs the log a bounded line.
func TestTrapTextIsBounded(t *testing.T) {
	got := trapText(errors.New("wasm error: unreachable\n" + strings.Repeat("\x01", 1<<20)))
	// Escaped, a control byte is four: the text is cut at a quarter.
	require.LessOrEqual(t, len(got), maxTrapText+maxCutNote)
	require.True(t, strings.HasSuffix(got, "… ("+strconv.Itoa(1<<20+len("wasm error: unreachable\n")-maxTrapText/4)+" bytes more)"), got[len(got)-40:])
	printable := trapText(errors.New(strings.Repeat("a", 1<<20)))
	require.True(t, strings.HasSuffix(printable, "… ("+strconv.Itoa(1<<20-maxTrapText)+" bytes more)"), "printable text is cut at the bound")
	require.NotContains(t, got, "\n")
	require.Equal(t, "short", trapText(errors.New("short")))
}
