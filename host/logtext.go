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

// pluginMessage returns a plugin's error message made fit for callers and
// logs: cut to maxPluginMessage bytes (at a character's start), then made
// one printable line (logText).
func pluginMessage(s string) string {
	if len(s) > maxPluginMessage {
		i := maxPluginMessage
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "… (" + strconv.Itoa(len(s)-i) + " bytes more)"
	}
	return logText(s)
}
