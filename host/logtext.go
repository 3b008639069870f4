package host

import (
	"strconv"
	"unicode/utf8"
)

// logText returns s made fit to be one line of the host's log, or the text
// of an error a caller may log: a plugin's log message, error message or
// trap. Every character that is not printable (strconv.IsPrint: the
// controls, newlines and tabs included, C1 controls, format characters
// such as bidirectional overrides, separators other than the space) is
// escaped as Go would quote it (\n, \x1b, \u0085, \u202e), and each byte
// that is not valid UTF-8 as \xNN. So a plugin's text is always one line,
// cannot forge a line of the host's own, and sends no escape sequence to
// the operator's terminal. Printable text, which is nearly all of it, is
// returned as it is, without copying.
func logText(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !strconv.IsPrint(r) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'x', hex[s[i]>>4], hex[s[i]&0xf])
		case !strconv.IsPrint(r):
			n := len(b)
			b = strconv.AppendQuoteRune(b, r)     // '\x1b'
			b = append(b[:n], b[n+1:len(b)-1]...) // without its quotes
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(b)
}

// maxPluginMessage bounds the error message a plugin answers: past it the
// message is cut, saying how much was. An error message reaches callers,
// the daemon's JSON errors and the host's log; the data a record holds
// has a place of its own.
const maxPluginMessage = 4 << 10

// maxTrapText bounds the text of a trap or a failed call the host logs
// and answers: a trap's stack names up to 30 of the plugin's functions.
const maxTrapText = 16 << 10

// maxQuoted bounds an identifier a refusal quotes: those a caller asks
// for are at most abi.MaxIDLength, those a plugin answers anything.
const maxQuoted = 600

// cutText returns s cut to at most n bytes (at a character's start),
// then saying how many bytes were cut.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "… (" + strconv.Itoa(len(s)-i) + " bytes more)"
}

// pluginMessage returns a plugin's error message made fit for callers and
// logs: cut to maxPluginMessage bytes, then made one printable line
// (logText).
func pluginMessage(s string) string { return logText(cutText(s, maxPluginMessage)) }

// trapText returns the text of err, a plugin's trap or failed call, made
// fit for callers and logs: cut to maxTrapText bytes, one printable line.
func trapText(err error) string { return oneLine(err.Error(), maxTrapText) }

// oneLine returns s as one printable line (logText) of at most n bytes
// and the note of what was cut: escaping makes a control byte four, so a
// text whose escaped cut is longer is cut at a quarter of n instead. The
// note counts the bytes of s cut.
func oneLine(s string, n int) string {
	if line := logText(cutText(s, n)); len(line) <= n+maxCutNote {
		return line
	}
	return logText(cutText(s, n/4))
}

// maxCutNote bounds the note cutText appends ("… (N bytes more)").
const maxCutNote = 32
