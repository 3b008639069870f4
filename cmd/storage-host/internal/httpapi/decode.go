package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// maxBulkItems bounds the items of one bulk request, as abi.MaxQueryLimit
// bounds a page.
const maxBulkItems = abi.MaxQueryLimit

// bodyReadTimeout bounds the reading of one request body: a client that
// sends its headers and then a trickle (or nothing) holds a connection
// and a goroutine no longer than this. The server's own ReadTimeout would
// also end streams of events, which read nothing once started.
var bodyReadTimeout = time.Minute

// readBody reads the whole request body, refusing one over the limit with
// 413, an empty one or one that is not UTF-8 (as JSON text must be: RFC
// 8259; a state document is stored and served back as sent) with 400,
// and one not read within bodyReadTimeout with 408.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > h.maxBody {
		return nil, h.tooLarge()
	}
	// Set back once the body is read; left, when reading it failed, for
	// the server to give up on the connection rather than wait on it.
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(bodyReadTimeout)) == nil
	// A body of declared length ends there (the server reads no more), so
	// only a body of unknown length needs a reader that counts.
	var src io.Reader = r.Body
	if r.ContentLength <= 0 {
		src = http.MaxBytesReader(w, r.Body, h.maxBody)
	}
	body, err := readAll(src, r.ContentLength)
	if err == nil && deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, h.tooLarge()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, &apiError{status: http.StatusRequestTimeout, code: codeInvalid,
				msg: fmt.Sprintf("request body not read within %v", bodyReadTimeout)}
		}
		return nil, invalid("read request body: " + err.Error())
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("request body is empty; want a JSON document")
	}
	if !utf8.Valid(body) {
		return nil, invalid("request body is not valid UTF-8, as JSON text must be")
	}
	return body, nil
}

func (h *Handler) tooLarge() error {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge,
		msg: fmt.Sprintf("request body is larger than %d bytes", h.maxBody)}
}

// firstRead is the most readAll allocates for a body before any of it
// has arrived: with every connection of the daemon reading a body that
// does not come (ConnLimit), 64 MiB at the default bound.
const firstRead = 4 << 10

// readAll is io.ReadAll for a body of the declared length (when it is
// declared): its buffer grows from firstRead by doubling up to that
// length (and one byte, so that the read ends with io.EOF without
// growing it), so that a body is read in few allocations, and a client
// that declares a megabyte and sends nothing makes the daemon hold no
// more than firstRead for it.
func readAll(r io.Reader, declared int64) ([]byte, error) {
	if declared <= 0 || declared > 1<<20 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, min(declared+1, firstRead))
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			if c := int64(cap(b)); c <= declared {
				next := 2 * c
				if next >= declared {
					next = declared + 1
				}
				b = append(make([]byte, 0, next), b...)
			} else {
				b = append(b, 0)[:len(b)] // past the declared length: as io.ReadAll grows
			}
		}
	}
}

// maxDecoding bounds the request bodies decoded at once. Decoding
// builds values several times the size of their JSON text, so the
// bodies decoded together, not those read, set the memory a burst of
// requests takes; a request waits for its turn after reading its body.
const maxDecoding = 4

// decodeBody reads the request body into v strictly: exactly one JSON
// value, no unknown object members, within the size limit. At most
// maxDecoding bodies are decoded at once.
func (h *Handler) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return h.decodeBodyChecked(w, r, v, nil)
}

// decodeRecords is decodeBody for the body of a metric or alert put
// (batch: of a batch-put): a record with more labels than host.MaxLabels
// is refused, as the store would refuse it, before it is decoded.
func (h *Handler) decodeRecords(w http.ResponseWriter, r *http.Request, v any, batch bool) error {
	return h.decodeBodyChecked(w, r, v, func(body []byte) error {
		item, n := overLabels(body, batch)
		switch {
		case n == 0:
			return nil
		case item < 0:
			return invalid(fmt.Sprintf("%d labels; at most %d per record", n, host.MaxLabels))
		}
		return invalid(fmt.Sprintf("item %d: %d labels; at most %d per record", item, n, host.MaxLabels))
	})
}

// decodeBodyChecked is decodeBody, with check run on the body before it
// is decoded.
func (h *Handler) decodeBodyChecked(w http.ResponseWriter, r *http.Request, v any, check func([]byte) error) error {
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(body); err != nil {
			return err
		}
	}
	select {
	case h.decoding <- struct{}{}:
	case <-r.Context().Done():
		return r.Context().Err()
	}
	defer func() { <-h.decoding }()
	if err := decodeStrict(body, v); err != nil {
		return err
	}
	return checkMembers(body)
}

// checkMembers refuses, in a body that decoded, what encoding/json lets
// pass: a member name repeated in one object (the decoder keeps the last
// value, so a client and the daemon would read two different requests),
// and a member of the request's own objects not written exactly as its
// name (the decoder matches names without regard to case, Unicode
// folding included: "Agent_ID", "labelſ"). Free-form values (an agent
// state's document, a metric's value) are not looked into; label names
// keep their case, and must be distinct too.
func checkMembers(body []byte) error {
	type frame struct {
		object bool
		kind   byte // 's' the request's own object, 'l' labels, 'f' free-form
		first  int  // its member names are names[first:]
		next   byte // the kind of the value after the current name
		key    bool // the next string is a member name
	}
	var (
		t     = jsonTokens{body: body}
		stack []frame
		names [][2]int // the member names of the open objects, as byte ranges of body
	)
	kindOf := func(name []byte) byte {
		switch string(name) {
		case "labels":
			return 'l'
		case "state", "value":
			return 'f'
		}
		return 's'
	}
	for {
		c, more := t.next()
		if !more {
			return nil
		}
		top := len(stack) - 1
		switch c {
		case '{', '[':
			kind := byte('s')
			if top >= 0 {
				kind = stack[top].kind
				if stack[top].object {
					kind = stack[top].next
				}
			}
			if kind == 'f' || (top >= 0 && stack[top].kind == 'f') {
				kind = 'f'
			}
			stack = append(stack, frame{object: c == '{', kind: kind, key: c == '{', first: len(names)})
		case '}', ']':
			if top >= 0 {
				names = names[:stack[top].first]
				stack = stack[:top]
			}
		case ',':
			if top >= 0 && stack[top].object {
				stack[top].key = true
			}
		case ':':
			// A label's value is a string: encoding/json reads null as "".
			if top >= 0 && stack[top].kind == 'l' && nextByte(body, t.i) != '"' {
				return invalid(fmt.Sprintf("request body: label %s: want a string", quoted(string(memberName(body, names[len(names)-1])))))
			}
		case '"':
			if top >= 0 && stack[top].kind == 'f' {
				continue
			}
			if loneSurrogate(body[t.str[0]:t.str[1]]) {
				// encoding/json would store U+FFFD in its place.
				return invalid("request body: a string has an escaped UTF-16 surrogate (\\uD800 to \\uDFFF) that is not half of a pair, which no UTF-8 text holds")
			}
			if top < 0 || !stack[top].object || !stack[top].key {
				continue
			}
			f := &stack[top]
			f.key = false
			name := memberName(body, t.str)
			for _, r := range names[f.first:] {
				if string(memberName(body, r)) == string(name) {
					return invalid(fmt.Sprintf("request body: member %s appears twice in one object", quoted(string(name))))
				}
			}
			names = append(names, t.str)
			if f.kind == 's' {
				for _, b := range name {
					if (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '_' {
						return invalid(fmt.Sprintf("request body: member %s is not a member of this request (member names are lower case, as written in the API)", quoted(string(name))))
					}
				}
				f.next = kindOf(name)
			}
		}
	}
}

// nextByte returns the first byte of body from i that is not JSON white
// space, or 0.
func nextByte(body []byte, i int) byte {
	for ; i < len(body); i++ {
		switch body[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return body[i]
		}
	}
	return 0
}

// loneSurrogate reports whether the JSON string s (its bytes, quotes
// excluded) escapes a UTF-16 surrogate that is not half of a pair.
func loneSurrogate(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if i >= len(s) || s[i] != 'u' {
			continue
		}
		r, ok := hex4(s, i+1)
		switch {
		case !ok || r < 0xd800 || r > 0xdfff:
		case r >= 0xdc00:
			return true // a low half with no high half before it
		default:
			low, ok := uint32(0), false
			if i+6 < len(s) && s[i+5] == '\\' && s[i+6] == 'u' {
				low, ok = hex4(s, i+7)
			}
			if !ok || low < 0xdc00 || low > 0xdfff {
				return true
			}
			i += 6 // the low half is read
		}
		i += 4
	}
	return false
}

// hex4 reads four hexadecimal digits of s from i.
func hex4(s []byte, i int) (uint32, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r uint32
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | uint32(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | uint32(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// memberName returns the member name at r (the string's bytes, quotes
// excluded), unescaped when it has escapes.
func memberName(body []byte, r [2]int) []byte {
	raw := body[r[0]:r[1]]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	var s string
	if err := json.Unmarshal(body[r[0]-1:r[1]+1], &s); err != nil {
		return raw
	}
	return []byte(s)
}

// decodeStrict decodes body into v. A list of the top-level object over
// maxBulkItems is refused before anything is decoded, so that a refused
// body costs no more than its text.
func decodeStrict(body []byte, v any) error {
	if name, ok := overlongList(body); !ok {
		return invalid(fmt.Sprintf("request body: %s has more than %d items; at most %d per request", quoted(name), maxBulkItems, maxBulkItems))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid(fmt.Sprintf("request body: more than one JSON value (the first ends at byte %d)", dec.InputOffset()))
	}
	return nil
}

// jsonTokens walks the structure of a JSON text without decoding it: it
// yields the brackets, colons and commas outside strings, and the end of
// each string, whose bytes it keeps. It allocates nothing; malformed JSON
// is walked as far as it goes and left for the decoder to report.
type jsonTokens struct {
	body []byte
	i    int
	str  [2]int // the last string's bytes, quotes excluded
}

// next returns the next structural byte ('{', '}', '[', ']', ':', ',',
// or '"' at the end of a string) and true, or false at the end of the
// text or in a string it does not close.
func (t *jsonTokens) next() (byte, bool) {
	for t.i < len(t.body) {
		c := t.body[t.i]
		t.i++
		switch c {
		case '{', '}', '[', ']', ':', ',':
			return c, true
		case '"':
			return t.string()
		}
	}
	return 0, false
}

// string reads on to the quote that closes the string just opened.
func (t *jsonTokens) string() (byte, bool) {
	t.str[0] = t.i
	for ; t.i < len(t.body); t.i++ {
		switch t.body[t.i] {
		case '"':
			t.str[1] = t.i
			t.i++
			return '"', true
		case '\\':
			t.i++ // the escaped byte
		}
	}
	return 0, false
}

// overlongList scans body, without decoding it, for an array member of
// the top-level object with more than maxBulkItems elements, and returns
// its name and false if it finds one.
func overlongList(body []byte) (name string, ok bool) {
	var (
		t      = jsonTokens{body: body}
		depth  int  // containers open around the current token
		inList bool // in an array member of the top-level object
		commas int  // separators of that array seen so far
		key    [2]int
	)
	for {
		c, more := t.next()
		if !more {
			return "", true
		}
		switch c {
		case '"':
			if depth == 1 {
				key = t.str // a member name, or a value followed by one
			}
		case '{', '[':
			depth++
			if depth == 2 {
				inList, commas = c == '[', 0
			}
		case '}', ']':
			depth--
		case ',':
			// n separators, n+1 elements.
			if inList && depth == 2 {
				if commas++; commas >= maxBulkItems {
					return string(body[key[0]:key[1]]), false
				}
			}
		}
	}
}

// The roles of the containers overLabels follows.
const (
	rolePlain   = iota
	roleTop     // a batch-put's top-level object
	roleItems   // its "items" array
	roleRecord  // a record: a single put's top-level object, or an element of items
	roleLabels  // a record's "labels" object
	roleDepths  = 6
	maxNameScan = 64 // the longest member name compared: "labels" escaped is 36 bytes
)

var (
	labelsName = []byte("labels")
	itemsName  = []byte("items")
)

// overLabels scans the body of a metric or alert put (batch: of a
// batch-put, whose records are its top-level "items"), without decoding
// it, for a record with more labels than host.MaxLabels. It returns the
// record's index in items (-1 for a single put) and its number of labels,
// or n 0 when every record is within the bound. A record's labels are the
// members of its "labels" objects as written: a repeated name counts each
// time, and repeated labels members, which decoding merges, count
// together. Member names match as encoding/json matches them to fields,
// case-insensitively and after escapes. It allocates nothing but for an
// escaped name; malformed JSON is left for the decoder to report, which
// reads the whole value before it decodes any of it.
func overLabels(body []byte, batch bool) (item, n int) {
	var (
		t       = jsonTokens{body: body}
		depth   int
		role    [roleDepths]uint8 // of the container open at each depth
		pending uint8             // the role of the value after the member name just read
		elem    int               // elements of items before the current one
		count   int               // labels of the current record
	)
	item = -1
	roleAt := func(d int) uint8 {
		if d < roleDepths {
			return role[d]
		}
		return rolePlain
	}
	for {
		c, more := t.next()
		if !more {
			return -1, 0
		}
		switch c {
		case '"':
			pending = rolePlain
		case ':':
			pending = rolePlain
			switch roleAt(depth) {
			case roleLabels:
				count++
			case roleRecord:
				if memberIs(body, t.str, labelsName) {
					pending = roleLabels
				}
			case roleTop:
				if memberIs(body, t.str, itemsName) {
					pending = roleItems
				}
			}
		case '{', '[':
			r := uint8(rolePlain)
			switch {
			case depth == 0 && c == '{' && batch:
				r = roleTop
			case depth == 0 && c == '{':
				r = roleRecord
			case pending == roleLabels && c == '{', pending == roleItems && c == '[':
				r = pending
				if r == roleItems {
					elem = 0
				}
			case roleAt(depth) == roleItems && c == '{':
				r, item, count = roleRecord, elem, 0
			}
			depth++
			if depth < roleDepths {
				role[depth] = r
			}
			pending = rolePlain
		case '}', ']':
			if roleAt(depth) == roleRecord && count > host.MaxLabels {
				return item, count
			}
			if depth > 0 {
				depth--
			}
			pending = rolePlain
		case ',':
			if roleAt(depth) == roleItems {
				elem++
			}
			pending = rolePlain
		}
	}
}

// memberIs reports whether the member name at str in body is want, as
// encoding/json matches a name to a field.
func memberIs(body []byte, str [2]int, want []byte) bool {
	raw := body[str[0]:str[1]]
	if len(raw) > maxNameScan {
		return false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return bytes.EqualFold(raw, want)
	}
	var name string
	if json.Unmarshal(body[str[0]-1:str[1]+1], &name) != nil {
		return false
	}
	return strings.EqualFold(name, string(want))
}

// jsonError turns a decoding error into a 400 that says what and where.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return invalid(fmt.Sprintf("request body: malformed JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: ")))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("request body: JSON ends early")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalid(fmt.Sprintf("request body: want %s, got %s", jsonType(typ.Type), typ.Value))
		}
		return invalid(fmt.Sprintf("request body: field %q: want %s, got %s", typ.Field, jsonType(typ.Type), typ.Value))
	}
	msg := err.Error()
	if field, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return invalid("request body: unknown field " + field)
	}
	return invalid("request body: " + strings.TrimPrefix(msg, "json: "))
}

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonType(t.Elem())
	}
	return "a JSON value"
}

// checkQuery parses the query string and refuses parameters the route
// does not accept and single-valued ones given twice.
func checkQuery(r *http.Request, accepted []queryParam) (url.Values, error) {
	if r.URL.RawQuery == "" {
		return nil, nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, invalid("query string: " + err.Error())
	}
	for name, vs := range q {
		i := -1
		for j := range accepted {
			if accepted[j].name == name {
				i = j
				break
			}
		}
		if i < 0 {
			if len(accepted) == 0 {
				return nil, invalid(fmt.Sprintf("unknown query parameter %s: this route takes none", quoted(name)))
			}
			names := make([]string, len(accepted))
			for j := range accepted {
				names[j] = accepted[j].name
			}
			return nil, invalid(fmt.Sprintf("unknown query parameter %s; this route takes %s", quoted(name), strings.Join(names, ", ")))
		}
		if len(vs) > 1 && !accepted[i].repeatable {
			return nil, invalid(fmt.Sprintf("query parameter %s is given %d times", quoted(name), len(vs)))
		}
	}
	return q, nil
}

// parseTTL reads a TTL as the ttl parameter and bulk bodies give it: a Go
// duration ("90s", "1h30m"), "persist" or "keep"; empty is the backend's
// default.
func parseTTL(what, s string) ([]host.WriteOption, error) {
	switch s {
	case "":
		return nil, nil
	case "persist":
		return []host.WriteOption{host.WithPersist()}, nil
	case "keep":
		return []host.WriteOption{host.WithKeepTTL()}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, invalid(fmt.Sprintf("%s %s: want a duration such as 90s or 1h, \"persist\" or \"keep\"", what, quoted(s)))
	}
	if d < time.Millisecond || d > abi.MaxTTL {
		return nil, invalid(fmt.Sprintf("%s %s: a duration must be at least 1ms and at most %s", what, quoted(s), abi.MaxTTL))
	}
	return []host.WriteOption{host.WithTTL(d)}, nil
}

// parseTime reads an RFC 3339 time and checks it is representable by the
// ABI (Unix nanoseconds in 64 bits: 1677-09-21 to 2262-04-11).
func parseTime(what, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !rfc3339Form(s) {
		return time.Time{}, invalid(fmt.Sprintf("%s %s is not an RFC 3339 time such as 2025-01-02T15:04:05.123456789Z (at most nine fractional digits, an offset within ±23:59)", what, quoted(s)))
	}
	if !time.Unix(0, t.UnixNano()).Equal(t) {
		return time.Time{}, invalid(fmt.Sprintf("%s %s is out of range (about 1677-09-21 to 2262-04-11: nanoseconds since 1970 in 64 bits)", what, quoted(s)))
	}
	return t, nil
}

// rfc3339Form checks what time.Parse lets through of a time it parsed:
// more than nine fractional digits (cut, so that two times would name one
// metric) and an offset hour past 23 (RFC 3339 allows 00 to 23).
func rfc3339Form(s string) bool {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		n := 0
		for j := i + 1; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
			n++
		}
		if n > 9 {
			return false
		}
	}
	if len(s) >= 6 && (s[len(s)-6] == '+' || s[len(s)-6] == '-') && s[len(s)-3] == ':' {
		return s[len(s)-5:len(s)-3] <= "23"
	}
	return true
}

// parseMetricTime reads a metric's timestamp (parseTime), which cannot be
// the Unix epoch itself: the storage ABI carries times as nanoseconds
// since it, and reads 0 as no time.
func parseMetricTime(what, s string) (time.Time, error) {
	t, err := parseTime(what, s)
	if err == nil && t.UnixNano() == 0 {
		return time.Time{}, invalid(fmt.Sprintf("%s %s is the Unix epoch itself, which no metric may have (the storage ABI reads 0 as no time); use a nanosecond later", what, quoted(s)))
	}
	return t, err
}

// formatTime writes t in UTC, RFC 3339 with as many fractional digits as
// it needs (up to nanoseconds).
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// optionalTime formats t, or "" for the zero time (omitted from JSON).
func optionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

// parseVersion reads a version as JSON carries it: a decimal string.
func parseVersion(what, s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, invalid(fmt.Sprintf("%s %s is not a version (a decimal string such as \"42\")", what, quoted(s)))
	}
	return v, nil
}

func formatVersion(v uint64) string { return strconv.FormatUint(v, 10) }

// etag is the entity tag of a version: the version quoted.
func etag(v uint64) string { return `"` + formatVersion(v) + `"` }

// parseETag reads the single strong entity tag of an If-Match header.
// The bare version, unquoted, is accepted too.
func parseETag(header, s string) (uint64, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "*":
		return 0, invalid(header + ": * is not supported; give the version to match")
	case strings.HasPrefix(s, "W/"):
		return 0, invalid(header + ": weak entity tags cannot make a write conditional")
	case strings.Contains(s, ","):
		return 0, invalid(header + ": give one entity tag")
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, invalid(fmt.Sprintf("%s %s is not an entity tag this API issued (a quoted version such as \"42\")", header, quoted(s)))
	}
	return v, nil
}

// noneMatch reports whether an If-None-Match header of a GET matches the
// current version: * or any listed tag, weak or strong.
func noneMatch(header string, v uint64) bool {
	want := etag(v)
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == want {
			return true
		}
	}
	return false
}

// parseLimit reads the limit parameter: 1 to abi.MaxQueryLimit, absent
// for the backend's default.
func parseLimit(q url.Values) (uint32, error) {
	s := q.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > abi.MaxQueryLimit {
		return 0, invalid(fmt.Sprintf("limit %s: want a whole number from 1 to %d", quoted(s), abi.MaxQueryLimit))
	}
	return uint32(n), nil
}

// parseCursor reads the cursor parameter, the next_cursor of the previous
// page: the backend's cursor bytes in unpadded base64url.
func parseCursor(q url.Values) ([]byte, error) {
	s := q.Get("cursor")
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, invalid(fmt.Sprintf("cursor %s is not a cursor this API issued (copy next_cursor from the previous page)", quoted(s)))
	}
	return b, nil
}

func formatCursor(next []byte) string { return base64.RawURLEncoding.EncodeToString(next) }

// parseRange reads the from and to parameters: [from, to), either open.
func parseRange(q url.Values) (from, to time.Time, err error) {
	if s := q.Get("from"); s != "" {
		if from, err = parseTime("from", s); err != nil {
			return from, to, err
		}
	}
	if s := q.Get("to"); s != "" {
		if to, err = parseTime("to", s); err != nil {
			return from, to, err
		}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return from, to, invalid(fmt.Sprintf("to %s is before from %s", formatTime(to), formatTime(from)))
	}
	return from, to, nil
}

// matcherOps are the label matcher operators, two-character ones first so
// that "=~" is not read as "=" followed by "~".
var matcherOps = []struct {
	text string
	op   abi.MatchOp
}{
	{"!=", abi.MatchNotEqual},
	{"=~", abi.MatchRegexp},
	{"!~", abi.MatchNotRegexp},
	{"=", abi.MatchEqual},
}

// parseMatchers reads the label parameters, each "name=value",
// "name!=value", "name=~regexp" or "name!~regexp" (the first operator in
// the text splits it), and checks them as a backend would.
func parseMatchers(q url.Values) ([]abi.Matcher, error) {
	labels := q["label"]
	if len(labels) > host.MaxMatchers {
		return nil, invalid(fmt.Sprintf("label is given %d times; at most %d label matchers per query", len(labels), host.MaxMatchers))
	}
	var ms []abi.Matcher
	for _, s := range labels {
		m, ok := parseMatcher(s)
		if !ok {
			return nil, invalid(fmt.Sprintf("label %s: want name=value, name!=value, name=~regexp or name!~regexp", quoted(s)))
		}
		ms = append(ms, m)
	}
	if err := host.CheckMatchers(ms); err != nil {
		return nil, invalid(message(err))
	}
	for i, m := range ms {
		if err := abi.CheckID("label name", m.Label); err != nil {
			return nil, invalid(fmt.Sprintf("label %s: %s", quoted(labels[i]), message(err)))
		}
		if _, err := abi.CompileMatchers([]abi.Matcher{m}); err != nil {
			return nil, invalid(fmt.Sprintf("label %s: %s", quoted(labels[i]), message(err)))
		}
	}
	return ms, nil
}

func parseMatcher(s string) (abi.Matcher, bool) {
	for i := 0; i < len(s); i++ {
		for _, o := range matcherOps {
			if strings.HasPrefix(s[i:], o.text) {
				if i == 0 {
					return abi.Matcher{}, false
				}
				return abi.Matcher{Label: s[:i], Op: o.op, Value: s[i+len(o.text):]}, true
			}
		}
	}
	return abi.Matcher{}, false
}

// splitList reads a parameter that is a comma-separated list, possibly
// given several times.
func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// maxEcho bounds the bytes of a client's input an error message quotes.
const maxEcho = 64

// quoted quotes s for an error message, cut to maxEcho bytes (at a rune
// boundary) and marked as cut: a message need not carry back a megabyte
// the client sent.
// idFilter reads a query's filter by an ID (an agent ID, a metric name):
// absent is no filter, and an empty value is refused, not taken for none
// (a client that built its URL from an empty ID would get every agent's
// records).
func idFilter(q url.Values, name string) (string, error) {
	vs, ok := q[name]
	if !ok {
		return "", nil
	}
	if vs[0] == "" {
		return "", invalid(fmt.Sprintf("%s: empty value; leave the parameter out to match every %s", name, strings.ReplaceAll(name, "_", " ")))
	}
	return vs[0], nil
}

func quoted(s string) string {
	if len(s) <= maxEcho {
		return strconv.Quote(s)
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}

// itemPath names item i of the list name in the request body.
func itemPath(name string, i int) string { return fmt.Sprintf("%s[%d]", name, i) }
