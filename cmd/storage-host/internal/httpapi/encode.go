package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/storage-host/storage-host/host"
)

// Response headers every JSON answer carries. The value slices are
// shared, never modified: assigning them saves Header.Set's allocation
// and canonicalisation on every response.
var (
	jsonContentType = []string{"application/json"}
	noSniff         = []string{"nosniff"}
	trueValue       = []string{"true"}
)

// etagHeader is "ETag" in its canonical form, to assign the header
// without Header.Set's canonicalisation.
const etagHeader = "Etag"

// encoder is a response buffer and the JSON encoder writing into it,
// pooled so that a response allocates neither.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// maxPooledBuffer bounds the buffers put back in the pool, so that one
// huge response (a page of big documents) is not kept for ever.
const maxPooledBuffer = 64 << 10

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

func getEncoder() *encoder {
	e := encoders.Get().(*encoder)
	e.buf.Reset()
	return e
}

func putEncoder(e *encoder) {
	if e.buf.Cap() <= maxPooledBuffer {
		encoders.Put(e)
	}
}

// writeBody writes a JSON response whose body is already encoded.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeAgentState writes s as a 200 response: the body writeJSON would
// write for agentStateOut(s), encoded without reflection and with one
// pass over the state (which checks and compacts it at once).
func writeAgentState(ctx context.Context, w http.ResponseWriter, s host.AgentState, stale bool) {
	room, err := takeRoom(ctx, agentStateBound(s))
	if errors.Is(err, errNoRoom) {
		answerNoRoom(w)
		return
	}
	if err != nil {
		return // the client left while the response waited
	}
	defer giveRoom(room)
	if stale {
		w.Header()[staleHeader] = trueValue
	}
	e := getEncoder()
	defer putEncoder(e)
	appendAgentState(&e.buf, s)
	writeBody(w, http.StatusOK, e.buf.Bytes())
}

// appendAgentState appends the JSON of agentStateOut(s) to buf as
// encoding/json's Encoder (HTML escaping off) writes it, final newline
// included: the tests hold the two byte for byte.
func appendAgentState(buf *bytes.Buffer, s host.AgentState) {
	buf.WriteString(`{"agent_id":`)
	buf.Write(appendJSONString(buf.AvailableBuffer(), s.AgentID))
	// The state is a JSON document, written compacted, or, when it is
	// not one (a backend's bytes are not trusted), its bytes in base64.
	// Compact checks the document as it copies it and leaves buf as it
	// was when it is not valid.
	buf.WriteString(`,"state":`)
	if len(s.State) == 0 || json.Compact(buf, s.State) != nil {
		buf.Truncate(buf.Len() - len(`"state":`))
		buf.WriteString(`"state_base64":"`)
		n := base64.StdEncoding.EncodedLen(len(s.State))
		buf.Grow(n)
		b := buf.AvailableBuffer()[:n]
		base64.StdEncoding.Encode(b, s.State)
		buf.Write(b)
		buf.WriteByte('"')
	}
	buf.WriteString(`,"version":"`)
	buf.Write(strconv.AppendUint(buf.AvailableBuffer(), s.Version, 10))
	buf.WriteString(`","updated_at":"`)
	buf.Write(appendTime(buf.AvailableBuffer(), s.UpdatedAt))
	if !s.ExpiresAt.IsZero() {
		buf.WriteString(`","expires_at":"`)
		buf.Write(appendTime(buf.AvailableBuffer(), s.ExpiresAt))
	}
	buf.WriteString("\"}\n")
}

// appendTime appends formatTime(t). Its characters need no escaping in
// a JSON string.
func appendTime(dst []byte, t time.Time) []byte { return t.UTC().AppendFormat(dst, time.RFC3339Nano) }

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes a string with HTML escaping off: '"', '\\' and control
// characters escaped, invalid UTF-8 replaced by \ufffd, U+2028 and U+2029
// escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
