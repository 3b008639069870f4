package httpapi

// maxJSONDepth is the deepest nesting of arrays and objects encoding/json
// accepts; a deeper document is not valid to it, nor here.
const maxJSONDepth = 10000

// validJSON reports whether src is one JSON value, surrounded by
// whitespace at most: what json.Valid reports, byte for byte the same
// grammar (invalid UTF-8 inside strings is accepted, as there).
func validJSON(src []byte) bool {
	_, ok := scanJSON(nil, src, false)
	return ok
}

// appendCompactJSON appends src to dst with the whitespace between its
// tokens removed and reports whether src is valid (validJSON). The bytes
// are those json.Compact writes; when src is not valid, dst is returned
// as it was.
//
// It is json.Compact without its per-byte state machine: the agent-state
// answer checks and copies the state through it on every request.
func appendCompactJSON(dst, src []byte) ([]byte, bool) {
	return scanJSON(dst, src, true)
}

// jsonScanner walks one JSON document: i is the next byte to read, and
// with out set, src[start:i] is what is still to be copied to dst.
type jsonScanner struct {
	src      []byte
	dst      []byte
	i, start int
	out      bool
}

// isJSONSpace reports the whitespace JSON allows between tokens.
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// space skips whitespace, leaving it out of the copy.
func (s *jsonScanner) space() {
	j := s.i
	for j < len(s.src) && isJSONSpace(s.src[j]) {
		j++
	}
	if j == s.i {
		return
	}
	if s.out {
		s.dst = append(s.dst, s.src[s.start:s.i]...)
	}
	s.i, s.start = j, j
}

// plainStringByte marks the bytes that a JSON string holds as they are:
// everything but control characters, '"' and '\\'.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads the string starting at s.i (a '"').
func (s *jsonScanner) str() bool {
	src, i := s.src, s.i+1
	for {
		for i < len(src) && plainStringByte[src[i]] {
			i++
		}
		if i >= len(src) {
			return false
		}
		switch src[i] {
		case '"':
			s.i = i + 1
			return true
		case '\\':
			if i+1 >= len(src) {
				return false
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(src) {
					return false
				}
				for _, h := range src[i+2 : i+6] {
					if !isHex(h) {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		default: // a control character
			return false
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// digits skips the digits at j and returns where they end.
func digits(src []byte, j int) int {
	for j < len(src) && isDigit(src[j]) {
		j++
	}
	return j
}

// number reads the number starting at s.i: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() bool {
	src, j := s.src, s.i
	if src[j] == '-' {
		j++
	}
	switch {
	case j >= len(src):
		return false
	case src[j] == '0':
		j++
	case isDigit(src[j]):
		j = digits(src, j+1)
	default:
		return false
	}
	if j < len(src) && src[j] == '.' {
		j++
		if j >= len(src) || !isDigit(src[j]) {
			return false
		}
		j = digits(src, j+1)
	}
	if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		j++
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j >= len(src) || !isDigit(src[j]) {
			return false
		}
		j = digits(src, j+1)
	}
	s.i = j
	return true
}

// literal reads word (true, false or null) at s.i.
func (s *jsonScanner) literal(word string) bool {
	if len(s.src)-s.i < len(word) || string(s.src[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// scanJSON checks src and, with out, appends its compacted bytes to dst.
// It keeps the open arrays and objects on a stack, so that deep documents
// cost no recursion.
func scanJSON(dst, src []byte, out bool) ([]byte, bool) {
	s := jsonScanner{src: src, dst: dst, out: out}
	var stackSpace [64]byte
	stack := stackSpace[:0] // '{' or '[' per open container
	const (
		wantValue = iota
		wantKey   // a member's name, after '{' or ','
		afterValue
	)
	state := wantValue
	for {
		s.space()
		if s.i >= len(src) {
			if state != afterValue || len(stack) > 0 {
				return dst, false
			}
			break
		}
		c := src[s.i]
		switch state {
		case wantKey:
			if c != '"' || !s.str() {
				return dst, false
			}
			s.space()
			if s.i >= len(src) || src[s.i] != ':' {
				return dst, false
			}
			s.i++
			state = wantValue
		case wantValue:
			ok := true
			state = afterValue
			switch c {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return dst, false
				}
				stack = append(stack, c)
				s.i++
				s.space()
				if s.i < len(src) && src[s.i] == c+2 { // '}' or ']'
					s.i++
					stack = stack[:len(stack)-1]
				} else if c == '{' {
					state = wantKey
				} else {
					state = wantValue
				}
			case '"':
				ok = s.str()
			case 't':
				ok = s.literal("true")
			case 'f':
				ok = s.literal("false")
			case 'n':
				ok = s.literal("null")
			default:
				ok = s.number()
			}
			if !ok {
				return dst, false
			}
		case afterValue:
			if len(stack) == 0 {
				return dst, false // a second value
			}
			open := stack[len(stack)-1]
			switch {
			case c == ',':
				s.i++
				state = wantValue
				if open == '{' {
					state = wantKey
				}
			case c == open+2:
				s.i++
				stack = stack[:len(stack)-1]
			default:
				return dst, false
			}
		}
	}
	if out {
		s.dst = append(s.dst, src[s.start:]...)
	}
	return s.dst, true
}
