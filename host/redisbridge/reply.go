package redisbridge

import (
	"bytes"
	"errors"

	"github.com/storage-host/storage-host/abi"
)

// The bridge reads each reply as raw RESP (go-redis RawCmd) and transcodes
// it straight into the ABI encoding, so the kinds survive exactly: a simple
// string stays a status, a bulk string stays bulk (possibly empty), a nil
// bulk or nil array is nil, an error reply anywhere (inside an array too)
// is a ReplyError. The connections speak RESP2; RESP3 types, which a RESP2
// connection never receives, are mapped to the nearest RESP2 kind all the
// same (null → nil, double and big number → bulk text, boolean → int 1/0,
// verbatim → bulk without its format, blob error → error, set and push →
// array, map → array of keys and values, attributes dropped).

// maxDepth is the deepest array the ABI decoder accepts (abi's
// maxReplyDepth): an array nested deeper is replaced by an error reply.
const maxDepth = 16

// errMalformed is a RESP frame the transcoder cannot read; go-redis's raw
// reader has already checked the framing, so it means a bug.
var errMalformed = errors.New("redisbridge: malformed RESP reply")

// line splits the first CRLF-terminated line off raw: its type byte, its
// text and the rest.
func line(raw []byte) (typ byte, text, rest []byte, err error) {
	i := bytes.IndexByte(raw, '\n')
	if i < 2 || raw[i-1] != '\r' {
		return 0, nil, nil, errMalformed
	}
	return raw[0], raw[1 : i-1], raw[i+1:], nil
}

// atoi parses a RESP length or integer.
func atoi(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, errMalformed
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errMalformed
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// bulk splits a length-prefixed body of n bytes and its CRLF off raw.
func bulk(raw []byte, n int64) (body, rest []byte, err error) {
	if n < 0 || int64(len(raw)) < n+2 || raw[n] != '\r' || raw[n+1] != '\n' {
		return nil, nil, errMalformed
	}
	return raw[:n], raw[n+2:], nil
}

// skipReply returns what follows the first reply of raw, checking its
// framing.
func skipReply(raw []byte) ([]byte, error) {
	typ, text, rest, err := line(raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case ':':
		_, err := atoi(text)
		return rest, err
	case '+', '-', '_', ',', '#', '(':
		return rest, nil
	case '$', '=', '!':
		n, err := atoi(text)
		if err != nil || n == -1 && typ == '$' {
			return rest, err
		}
		_, rest, err = bulk(rest, n)
		return rest, err
	case '*', '~', '>', '%', '|':
		n, err := atoi(text)
		if err != nil || n == -1 {
			return rest, err
		}
		if typ == '%' || typ == '|' {
			n *= 2
		}
		if n < 0 || n > int64(len(rest)) {
			return nil, errMalformed
		}
		for ; n > 0 && err == nil; n-- {
			rest, err = skipReply(rest)
		}
		if err == nil && typ == '|' {
			return skipReply(rest)
		}
		return rest, err
	}
	return nil, errMalformed
}

// appendReply transcodes the first reply of raw, which skipReply has
// checked, into e, and returns the rest.
func appendReply(e *abi.Encoder, raw []byte, depth int) []byte {
	typ, text, rest, _ := line(raw)
	switch typ {
	case '+':
		e.U8(uint8(abi.ReplyStatus))
		e.BytesField(text)
	case '-':
		e.U8(uint8(abi.ReplyError))
		e.BytesField(text)
	case ':':
		n, _ := atoi(text)
		e.U8(uint8(abi.ReplyInt))
		e.Varint(n)
	case '_':
		e.U8(uint8(abi.ReplyNil))
	case ',', '(':
		e.U8(uint8(abi.ReplyBulk))
		e.BytesField(text)
	case '#':
		e.U8(uint8(abi.ReplyInt))
		if len(text) == 1 && text[0] == 't' {
			e.Varint(1)
		} else {
			e.Varint(0)
		}
	case '$', '=', '!':
		n, _ := atoi(text)
		if n == -1 {
			e.U8(uint8(abi.ReplyNil))
			return rest
		}
		var body []byte
		body, rest, _ = bulk(rest, n)
		switch typ {
		case '$':
			e.U8(uint8(abi.ReplyBulk))
		case '=':
			e.U8(uint8(abi.ReplyBulk))
			if len(body) >= 4 && body[3] == ':' {
				body = body[4:] // "txt:" format prefix
			}
		case '!':
			e.U8(uint8(abi.ReplyError))
		}
		e.BytesField(body)
	case '*', '~', '>', '%':
		n, _ := atoi(text)
		if n == -1 {
			e.U8(uint8(abi.ReplyNil))
			return rest
		}
		if typ == '%' {
			n *= 2
		}
		if depth >= maxDepth {
			rest, _ = skipReply(raw)
			e.U8(uint8(abi.ReplyError))
			e.BytesField(errTooDeep)
			return rest
		}
		e.U8(uint8(abi.ReplyArray))
		e.Uvarint(uint64(n))
		for ; n > 0; n-- {
			rest = appendReply(e, rest, depth+1)
		}
	case '|':
		n, _ := atoi(text)
		for n *= 2; n > 0; n-- {
			rest, _ = skipReply(rest)
		}
		return appendReply(e, rest, depth)
	}
	return rest
}

var errTooDeep = []byte("ERR redisbridge: reply nested deeper than 16 arrays")

// appendRaw transcodes one whole raw reply into e; a reply that does not
// parse becomes an error reply.
func appendRaw(e *abi.Encoder, raw []byte) {
	if rest, err := skipReply(raw); err != nil || len(rest) != 0 {
		e.U8(uint8(abi.ReplyError))
		e.String("ERR " + errMalformed.Error())
		return
	}
	appendReply(e, raw, 0)
}

// topError returns the message of raw when it is an error reply.
func topError(raw []byte) ([]byte, bool) {
	if len(raw) == 0 || raw[0] != '-' {
		return nil, false
	}
	_, text, _, err := line(raw)
	return text, err == nil
}
