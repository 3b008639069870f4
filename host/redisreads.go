package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/storage-host/storage-host/abi"
)

// redisReads holds each record kind's declared redis read (abi.RedisRead),
// indexed by kind; nil where the plugin declared none.
type redisReads [abi.KindAgentState + 1]*abi.RedisRead

// setRedisReads takes the plugin's declared redis reads, once its
// capabilities are checked: a read with a guard has the kv store, whose
// capability the plugin declared (redisReadsFault) and the configuration
// granted.
func (p *plugin) setRedisReads() {
	if p.redis == nil {
		return
	}
	for _, r := range p.meta.RedisReads {
		p.redisReads[r.Kind] = &abi.RedisRead{Kind: r.Kind, KeyPrefix: bytes.Clone(r.KeyPrefix),
			KeySuffix: bytes.Clone(r.KeySuffix), Guard: bytes.Clone(r.Guard)}
	}
}

// The HMGET of a redis read: the command and each kind's fields, in
// abi.RedisStateFields and abi.RedisAlertFields order.
var (
	cmdHMGET         = []byte("HMGET")
	redisStateFields = fieldArgs(abi.RedisStateFields[:])
	redisAlertFields = fieldArgs(abi.RedisAlertFields[:])
)

func fieldArgs(names []string) [][]byte {
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = []byte(n)
	}
	return out
}

// readRedis answers the get of kind's record id with one HMGET of
// the hash the plugin declared it to be (abi.RedisRead), without entering
// the guest. decode reads the fields' replies (in the kind's field order)
// and says whether they hold a record, or why they are out of form
// (errPassed: the record's expiry has passed by the host's clock, which
// the plugin is left to answer); mismatch then says why the record
// decoded is not the one asked for, or "" (answers.go). served is false, and the plugin is to be called as
// without the declaration, when the plugin declared no such read, for an
// ID out of form or holding a byte a hash tag may escape, while the
// declared guard prefix has entries in the kv store, when the backend's
// configuration does not allow the read, when the answer would pass the
// response bound, and for a hash out of form (counted, and logged at most
// once a second). A read Redis fails or refuses for its own state is
// answered as the plugin's would be, UNAVAILABLE, without a second wait.
func (s *Store) readRedis(ctx context.Context, kind abi.RecordKind, id string, decode func(f []abi.Reply) (found bool, fault string), mismatch func() string) (served bool, err error) {
	r := s.p.redisReads[kind]
	if r == nil || !plainTag(id) || abi.CheckID("id", id) != nil {
		return false, nil
	}
	if len(r.Guard) > 0 && s.p.kv.HasPrefix(r.Guard) {
		return false, nil
	}
	if err := s.readBegins(ctx); err != nil {
		return true, err
	}
	defer s.calls.leave()
	sc := redisReadScratches.Get().(*redisReadScratch)
	defer redisReadScratches.Put(sc)
	sc.key = append(append(append(sc.key[:0], r.KeyPrefix...), id...), r.KeySuffix...)
	fields := redisStateFields
	if kind == abi.KindAlert {
		fields = redisAlertFields
	}
	sc.cmd = append(append(sc.cmd[:0], cmdHMGET, sc.key), fields...)
	sc.cmds[0] = sc.cmd
	sc.req = abi.RedisRequest{Mode: abi.RedisPipeline, Commands: sc.cmds[:]}
	sc.enc.Reset()
	rctx, cancel := context.WithTimeout(ctx, s.p.limits.CallTimeout)
	refused := s.p.redis.Do(rctx, &sc.req, &sc.enc)
	cancel()
	resp := sc.enc.Bytes()
	if refused != nil || len(resp) > int(s.p.limits.MaxResponseBytes) {
		return false, nil
	}
	body, err := abi.ParseResponse(resp)
	if errors.Is(err, abi.StatusUnavailable) || errors.Is(err, abi.StatusUnknown) {
		// Redis did not answer: the plugin's own read would meet the same
		// failure (what it keeps elsewhere is under its guard, which the
		// host looked at), and a second wait would double the get's.
		return true, fmt.Errorf("backend %s: %w", s.p.name, err)
	}
	if err != nil {
		// A record past the reply bound (LIMIT): the plugin says so in
		// its own words, or reads it another way.
		return false, nil
	}
	sc.dec.Reset(body)
	replies := sc.replies.Decode(&sc.dec)
	var fault string
	switch {
	case sc.dec.Finish() != nil || len(replies) != 1:
		fault = "the bridge's answer does not decode" // cannot happen
	case replies[0].Kind == abi.ReplyError && errors.Is(replies[0].Err(), abi.StatusUnavailable):
		// Redis refused the read for a state of its own (BUSY, LOADING):
		// no fault of the declaration, and the plugin would be refused
		// too.
		err := replies[0].Err()
		sc.dec.Reset(nil)
		return true, fmt.Errorf("backend %s: %w", s.p.name, err)
	case replies[0].Kind != abi.ReplyArray || len(replies[0].Array) != len(fields):
		fault = "Redis answered " + replyShown(&replies[0])
	}
	found := false
	if fault == "" {
		found, fault = decode(replies[0].Array)
	}
	sc.dec.Reset(nil)
	return s.readDone(&s.p.redisServed, &s.p.redisReadFaults, "a declared redis read found a hash that is not the record; the plugin serves such reads (abi/README.md, section 12.8)",
		kind, id, "key "+string(sc.key), found, fault, mismatch)
}

// redisReadScratch is a redis read's request, response and decoding
// buffers, kept between reads.
type redisReadScratch struct {
	key     []byte
	cmd     [][]byte
	cmds    [1][][]byte
	req     abi.RedisRequest
	enc     abi.Encoder
	dec     abi.Decoder
	replies abi.ReplyBuffer
}

var redisReadScratches = sync.Pool{New: func() any { return new(redisReadScratch) }}

// plainTag reports whether id holds no byte that a plugin keeping it in a
// hash tag may escape: '{', '}' or a control byte.
func plainTag(id string) bool {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == '{' || c == '}' || c < 0x20 {
			return false
		}
	}
	return true
}

// replyShown names a reply's kind, with an error reply's text.
func replyShown(r *abi.Reply) string {
	switch r.Kind {
	case abi.ReplyError:
		return "the error " + quote(string(r.Str))
	case abi.ReplyArray:
		return fmt.Sprintf("an array of %d", len(r.Array))
	case abi.ReplyNil:
		return "nil"
	}
	return fmt.Sprintf("a reply of kind %d", r.Kind)
}

// decodeRedisState reads an agent state's hash fields (v, u, d, e:
// abi.RedisStateFields) into out, the state of id.
func decodeRedisState(f []abi.Reply, id string, now time.Time, out *AgentState) (found bool, fault string) {
	if f[0].Kind == abi.ReplyNil {
		return false, ""
	}
	v, ok := hashInt(&f[0])
	if !ok || v < 1 {
		return false, "v (version) is " + replyText(&f[0])
	}
	updated, ok := hashTime(&f[1])
	if !ok {
		return false, "u (updated_at) is " + replyText(&f[1])
	}
	expires, ok := hashExpiry(&f[3])
	if !ok {
		return false, "e (expires_at) is " + replyText(&f[3])
	}
	if passed(expires, now) {
		return false, errPassed
	}
	*out = AgentState{AgentID: id, Version: uint64(v), UpdatedAt: updated, ExpiresAt: expires}
	switch f[2].Kind {
	case abi.ReplyNil:
	case abi.ReplyBulk:
		if len(f[2].Str) > 0 {
			out.State = bytes.Clone(f[2].Str)
		}
	default:
		return false, "d (state) is " + replyText(&f[2])
	}
	return true, ""
}

// decodeRedisAlert reads an alert's hash fields (g, s, t, m, l, c, u, x:
// abi.RedisAlertFields) into out, the alert id.
func decodeRedisAlert(f []abi.Reply, id string, now time.Time, out *Alert) (found bool, fault string) {
	if f[2].Kind == abi.ReplyNil {
		return false, ""
	}
	status, ok := hashInt(&f[2])
	if !ok || status < 1 || status > 3 {
		return false, "t (status) is " + replyText(&f[2])
	}
	severity, ok := hashInt(&f[1])
	if !ok || severity < 1 || severity > 3 {
		return false, "s (severity) is " + replyText(&f[1])
	}
	if f[0].Kind != abi.ReplyBulk {
		return false, "g (agent_id) is " + replyText(&f[0])
	}
	created, ok := hashTime(&f[5])
	if !ok {
		return false, "c (created_at) is " + replyText(&f[5])
	}
	updated, ok := hashTime(&f[6])
	if !ok {
		return false, "u (updated_at) is " + replyText(&f[6])
	}
	expires, ok := hashExpiry(&f[7])
	if !ok {
		return false, "x (expires_at) is " + replyText(&f[7])
	}
	if passed(expires, now) {
		return false, errPassed
	}
	if f[3].Kind != abi.ReplyNil && f[3].Kind != abi.ReplyBulk {
		return false, "m (message) is " + replyText(&f[3])
	}
	*out = Alert{ID: id, AgentID: string(f[0].Str), Severity: abi.Severity(severity), Status: abi.AlertStatus(status),
		Message: string(f[3].Str), CreatedAt: created, UpdatedAt: updated, ExpiresAt: expires}
	switch f[4].Kind {
	case abi.ReplyNil:
	case abi.ReplyBulk:
		d := abi.NewDecoder(f[4].Str)
		if labels := abi.DecodeLabels(d); d.Finish() != nil {
			return false, "l (labels) does not decode: " + d.Err().Error()
		} else if len(labels) > 0 {
			out.Labels = labels
		}
	default:
		return false, "l (labels) is " + replyText(&f[4])
	}
	return true, ""
}

// hashInt reads a decimal integer field: an optional '-', then 1 to 19
// digits, the first not 0 unless it is the only one ("-0" is out of
// form).
func hashInt(r *abi.Reply) (int64, bool) {
	if r.Kind != abi.ReplyBulk {
		return 0, false
	}
	b := r.Str
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 || b[0] == '0' && (len(b) > 1 || neg) {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// hashTime reads a time field in Unix nanoseconds, 0 for unset.
func hashTime(r *abi.Reply) (time.Time, bool) {
	n, ok := hashInt(r)
	return nsTime(n), ok
}

// errPassed is decode's fault for a record whose expiry has passed by
// the host's clock: whether it is gone (Redis removes it on its own
// clock) is the plugin's to answer, and no fault of the declaration.
const errPassed = "its expiry has passed"

// passed reports whether expires, a record's expiry, is not after now.
func passed(expires, now time.Time) bool { return !expires.IsZero() && !expires.After(now) }

// hashExpiry reads an expiry field in Unix milliseconds, -1 for none; 0,
// the epoch, which the wire cannot carry (it means unset), reads as
// 1 ms, long passed. An expiry past what a time in nanoseconds holds
// (the year 2262) is out of form.
func hashExpiry(r *abi.Reply) (time.Time, bool) {
	n, ok := hashInt(r)
	switch {
	case !ok || n < -1 || n > math.MaxInt64/int64(time.Millisecond):
		return time.Time{}, false
	case n == -1:
		return time.Time{}, true
	case n == 0:
		n = 1
	}
	return time.UnixMilli(n).UTC(), true
}

// replyText shows a field's reply in a fault.
func replyText(r *abi.Reply) string {
	if r.Kind == abi.ReplyBulk {
		return quote(cutText(string(r.Str), 64))
	}
	return replyShown(r)
}
