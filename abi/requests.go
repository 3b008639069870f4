package abi

import (
	"math"
	"regexp"
	"strconv"
	"time"
	"unsafe"
)

// TTLMode says how a write sets the record's expiry.
type TTLMode uint8

// TTL modes.
const (
	// TTLDefault applies the kind's default TTL from the backend options
	// (metric_ttl_seconds, alert_ttl_seconds, agent_state_ttl_seconds),
	// counted from this write; with no default the record never expires.
	// This is what an update without a TTL does: it does not keep the old
	// expiry.
	TTLDefault TTLMode = 0
	// TTLDuration expires the record Duration after this write.
	TTLDuration TTLMode = 1
	// TTLPersist removes any expiry: the record lives until deleted.
	TTLPersist TTLMode = 2
	// TTLKeep keeps the expiry the record had before this write (the kind
	// default when the record is new).
	TTLKeep TTLMode = 3
)

// TTL is the expiry a write asks for. The zero TTL is TTLDefault.
type TTL struct {
	Mode TTLMode
	// Duration is used by TTLDuration only; it must be at least a
	// millisecond and is carried in whole milliseconds.
	Duration time.Duration
}

// Encode appends t: mode u8, then for TTLDuration milliseconds uvarint.
func (t *TTL) Encode(e *Encoder) {
	e.U8(uint8(t.Mode))
	if t.Mode == TTLDuration {
		e.Uvarint(uint64(t.Duration / time.Millisecond))
	}
}

// Decode reads what Encode wrote.
func (t *TTL) Decode(d *Decoder) {
	t.Mode = TTLMode(d.U8())
	t.Duration = 0
	if t.Mode == TTLDuration {
		ms := d.Uvarint()
		if ms > math.MaxInt64/uint64(time.Millisecond) {
			d.fail(ErrMalformed) // would overflow a time.Duration
			return
		}
		t.Duration = time.Duration(ms) * time.Millisecond
	}
}

// MaxTTL is the longest TTLDuration: expiry times must stay representable
// (Unix nanoseconds end in 2262); longer-lived records use TTLPersist.
const MaxTTL = 100 * 365 * 24 * time.Hour

// Check returns a StatusInvalid error for a mode this ABI does not know or
// a TTLDuration shorter than a millisecond or longer than MaxTTL.
func (t *TTL) Check() error {
	switch t.Mode {
	case TTLDefault, TTLPersist, TTLKeep:
		return nil
	case TTLDuration:
		if t.Duration < time.Millisecond {
			return Errorf(StatusInvalid, "ttl duration %v is below 1ms", t.Duration)
		}
		if t.Duration > MaxTTL {
			return Errorf(StatusInvalid, "ttl duration %v is over 100 years; use persist", t.Duration)
		}
		return nil
	}
	return Errorf(StatusInvalid, "unknown ttl mode %d", t.Mode)
}

// ExpiresAt resolves t for a write at now, given the kind default def
// (0 = none) and, when the record exists, its current expiry prev (zero =
// never). The zero time means "never". TTLKeep keeps prev for an existing
// record and gives a new one the kind default.
func (t *TTL) ExpiresAt(now time.Time, def time.Duration, prev time.Time, exists bool) time.Time {
	switch t.Mode {
	case TTLDuration:
		return now.Add(t.Duration)
	case TTLPersist:
		return time.Time{}
	case TTLKeep:
		if exists {
			return prev
		}
	}
	if def > 0 {
		return now.Add(def)
	}
	return time.Time{}
}

// ConditionMode says what must hold for a conditional write to proceed.
type ConditionMode uint8

// Condition modes.
const (
	// Unconditional: the write always proceeds.
	Unconditional ConditionMode = 0
	// IfVersion: the record must exist with exactly Version.
	IfVersion ConditionMode = 1
	// IfAbsent: the record must not exist (create-only).
	IfAbsent ConditionMode = 2
)

// Condition is an optimistic-concurrency precondition. When it fails the
// backend answers StatusConflict and writes nothing.
type Condition struct {
	Mode    ConditionMode
	Version uint64
}

// Encode appends c: mode u8, then for IfVersion version uvarint.
func (c *Condition) Encode(e *Encoder) {
	e.U8(uint8(c.Mode))
	if c.Mode == IfVersion {
		e.Uvarint(c.Version)
	}
}

// Decode reads what Encode wrote.
func (c *Condition) Decode(d *Decoder) {
	c.Mode = ConditionMode(d.U8())
	c.Version = 0
	if c.Mode == IfVersion {
		c.Version = d.Uvarint()
	}
	if c.Mode > IfAbsent {
		d.fail(ErrMalformed)
	}
}

// PutMetric is the body of OpPutMetric: metric, ttl.
type PutMetric struct {
	Metric Metric
	TTL    TTL
}

// Encode appends r.
func (r *PutMetric) Encode(e *Encoder) { r.Metric.Encode(e); r.TTL.Encode(e) }

// Decode reads what Encode wrote.
func (r *PutMetric) Decode(d *Decoder) { r.Metric.Decode(d); r.TTL.Decode(d) }

// PutAlert is the body of OpPutAlert: alert, ttl. Writing an alert that
// exists must respect AlertStatus.CanTransition.
type PutAlert struct {
	Alert Alert
	TTL   TTL
}

// Encode appends r.
func (r *PutAlert) Encode(e *Encoder) { r.Alert.Encode(e); r.TTL.Encode(e) }

// Decode reads what Encode wrote.
func (r *PutAlert) Decode(d *Decoder) { r.Alert.Decode(d); r.TTL.Decode(d) }

// PutAgentState is the body of OpPutAgentState: state, ttl, condition.
type PutAgentState struct {
	State     AgentState
	TTL       TTL
	Condition Condition
}

// Encode appends r.
func (r *PutAgentState) Encode(e *Encoder) { r.State.Encode(e); r.TTL.Encode(e); r.Condition.Encode(e) }

// Decode reads what Encode wrote.
func (r *PutAgentState) Decode(d *Decoder) {
	r.State.Decode(d)
	r.TTL.Decode(d)
	r.Condition.Decode(d)
}

// DecodeView is Decode with the agent ID and the document aliasing d's
// input instead of copies of it: for a caller done with them before the
// input changes (one that keeps the agent ID longer copies it with
// strings.Clone).
func (r *PutAgentState) DecodeView(d *Decoder) {
	id := d.View()
	r.State.AgentID = unsafe.String(unsafe.SliceData(id), len(id))
	r.State.State = d.View()
	r.State.Version = d.Uvarint()
	r.State.UpdatedAt = d.Time()
	r.State.ExpiresAt = d.Time()
	r.TTL.Decode(d)
	r.Condition.Decode(d)
}

// DeleteAgentState is the body of OpDeleteAgentState: agent_id, condition
// (Unconditional or IfVersion).
type DeleteAgentState struct {
	AgentID   string
	Condition Condition
}

// Encode appends r.
func (r *DeleteAgentState) Encode(e *Encoder) { e.String(r.AgentID); r.Condition.Encode(e) }

// Decode reads what Encode wrote.
func (r *DeleteAgentState) Decode(d *Decoder) { r.AgentID = d.String(); r.Condition.Decode(d) }

// SetAlertStatus is the body of OpSetAlertStatus: id string, status u8.
type SetAlertStatus struct {
	ID     string
	Status AlertStatus
}

// Encode appends r.
func (r *SetAlertStatus) Encode(e *Encoder) { e.String(r.ID); e.U8(uint8(r.Status)) }

// Decode reads what Encode wrote.
func (r *SetAlertStatus) Decode(d *Decoder) { r.ID = d.String(); r.Status = AlertStatus(d.U8()) }

// Query limits. A backend serves at most MaxQueryLimit items a page, and
// DefaultQueryLimit when the query's limit is 0.
const (
	DefaultQueryLimit = 100
	MaxQueryLimit     = 1000
)

// PageLimit resolves a query's requested limit against the defaults.
func PageLimit(requested uint32) int {
	switch {
	case requested == 0:
		return DefaultQueryLimit
	case requested > MaxQueryLimit:
		return MaxQueryLimit
	}
	return int(requested)
}

// MatchOp is a label matcher's operator.
type MatchOp uint8

// Label matcher operators, as in Prometheus. Regular expressions are RE2,
// anchored at both ends; an absent label matches as the empty string.
const (
	MatchEqual     MatchOp = 1 // =
	MatchNotEqual  MatchOp = 2 // !=
	MatchRegexp    MatchOp = 3 // =~
	MatchNotRegexp MatchOp = 4 // !~
)

// Matcher selects records by one label.
type Matcher struct {
	Label string
	Op    MatchOp
	Value string
}

func (e *Encoder) matchers(ms []Matcher) {
	e.Uvarint(uint64(len(ms)))
	for i := range ms {
		e.String(ms[i].Label)
		e.U8(uint8(ms[i].Op))
		e.String(ms[i].Value)
	}
}

func (d *Decoder) matchers() []Matcher {
	n := d.Count(3)
	if n == 0 {
		return nil
	}
	ms := prealloc[Matcher](n)
	for i := 0; i < n && d.err == nil; i++ {
		label := d.String()
		op := MatchOp(d.U8())
		ms = append(ms, Matcher{Label: label, Op: op, Value: d.String()})
	}
	return ms
}

// LabelFilter is a compiled set of matchers; the zero LabelFilter matches
// everything.
type LabelFilter struct {
	ms []Matcher
	re []*regexp.Regexp
}

// CompileMatchers checks ms and compiles their regular expressions.
func CompileMatchers(ms []Matcher) (LabelFilter, error) {
	f := LabelFilter{ms: ms, re: make([]*regexp.Regexp, len(ms))}
	for i, m := range ms {
		switch m.Op {
		case MatchEqual, MatchNotEqual:
		case MatchRegexp, MatchNotRegexp:
			// Compile the value alone first: a valid expression has balanced
			// groups, so wrapping it cannot break out of the anchors.
			_, err := regexp.Compile(m.Value)
			var re *regexp.Regexp
			if err == nil {
				re, err = regexp.Compile("^(?:" + m.Value + ")$")
			}
			if err != nil {
				return LabelFilter{}, Errorf(StatusInvalid, "label matcher %s: %v", m.Label, err)
			}
			f.re[i] = re
		default:
			return LabelFilter{}, Errorf(StatusInvalid, "label matcher %s: unknown operator %d", m.Label, m.Op)
		}
	}
	return f, nil
}

// Match reports whether labels satisfy every matcher.
func (f *LabelFilter) Match(labels map[string]string) bool {
	for i, m := range f.ms {
		v := labels[m.Label]
		var ok bool
		switch m.Op {
		case MatchEqual:
			ok = v == m.Value
		case MatchNotEqual:
			ok = v != m.Value
		case MatchRegexp:
			ok = f.re[i].MatchString(v)
		case MatchNotRegexp:
			ok = !f.re[i].MatchString(v)
		}
		if !ok {
			return false
		}
	}
	return true
}

// InRange reports whether t lies in [from, to); a zero bound is open.
func InRange(t, from, to time.Time) bool {
	return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
}

// MetricQuery is the body of OpQueryMetrics: agent_id string, name string,
// from time, to time, matchers, limit uvarint, cursor bytes. Empty strings
// and zero times match everything; the range is [from, to). Results are
// ordered by agent, name, timestamp.
type MetricQuery struct {
	AgentID string
	Name    string
	From    time.Time
	To      time.Time
	Labels  []Matcher
	Limit   uint32
	// Cursor is the Next of the previous page; empty for the first page.
	Cursor []byte
}

// Encode appends q.
func (q *MetricQuery) Encode(e *Encoder) {
	e.String(q.AgentID)
	e.String(q.Name)
	e.Time(q.From)
	e.Time(q.To)
	e.matchers(q.Labels)
	e.Uvarint(uint64(q.Limit))
	e.BytesField(q.Cursor)
}

// Decode reads what Encode wrote.
func (q *MetricQuery) Decode(d *Decoder) {
	q.AgentID = d.String()
	q.Name = d.String()
	q.From = d.Time()
	q.To = d.Time()
	q.Labels = d.matchers()
	q.Limit = d.Uint32()
	q.Cursor = d.BytesField()
}

// AlertQuery is the body of OpQueryAlerts: agent_id string, severities
// (count, u8 each), statuses (count, u8 each), matchers, from time, to time
// (on CreatedAt), limit uvarint, cursor bytes. Empty sets match all.
// Results are ordered by alert ID.
type AlertQuery struct {
	AgentID    string
	Severities []Severity
	Statuses   []AlertStatus
	Labels     []Matcher
	From       time.Time
	To         time.Time
	Limit      uint32
	Cursor     []byte
}

// Encode appends q.
func (q *AlertQuery) Encode(e *Encoder) {
	e.String(q.AgentID)
	e.Uvarint(uint64(len(q.Severities)))
	for _, s := range q.Severities {
		e.U8(uint8(s))
	}
	e.Uvarint(uint64(len(q.Statuses)))
	for _, s := range q.Statuses {
		e.U8(uint8(s))
	}
	e.matchers(q.Labels)
	e.Time(q.From)
	e.Time(q.To)
	e.Uvarint(uint64(q.Limit))
	e.BytesField(q.Cursor)
}

// Decode reads what Encode wrote.
func (q *AlertQuery) Decode(d *Decoder) {
	q.AgentID = d.String()
	q.Severities = nil
	for n := d.Count(1); n > 0; n-- {
		q.Severities = append(q.Severities, Severity(d.U8()))
	}
	q.Statuses = nil
	for n := d.Count(1); n > 0; n-- {
		q.Statuses = append(q.Statuses, AlertStatus(d.U8()))
	}
	q.Labels = d.matchers()
	q.From = d.Time()
	q.To = d.Time()
	q.Limit = d.Uint32()
	q.Cursor = d.BytesField()
}

// Match reports whether a passes the query's agent, severity, status,
// label and time filters; lf is the compiled q.Labels.
func (q *AlertQuery) Match(a *Alert, lf *LabelFilter) bool {
	if q.AgentID != "" && a.AgentID != q.AgentID {
		return false
	}
	if len(q.Severities) > 0 && !contains(q.Severities, a.Severity) {
		return false
	}
	if len(q.Statuses) > 0 && !contains(q.Statuses, a.Status) {
		return false
	}
	return InRange(a.CreatedAt, q.From, q.To) && lf.Match(a.Labels)
}

// Match reports whether m passes the query's filters; lf is the compiled
// q.Labels.
func (q *MetricQuery) Match(m *Metric, lf *LabelFilter) bool {
	return (q.AgentID == "" || m.AgentID == q.AgentID) &&
		(q.Name == "" || m.Name == q.Name) &&
		InRange(m.Timestamp, q.From, q.To) && lf.Match(m.Labels)
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// AgentStateQuery is the body of OpQueryAgentStates: agent_id_prefix
// string, limit uvarint, cursor bytes. Results are ordered by agent ID.
type AgentStateQuery struct {
	AgentIDPrefix string
	Limit         uint32
	Cursor        []byte
}

// Encode appends q.
func (q *AgentStateQuery) Encode(e *Encoder) {
	e.String(q.AgentIDPrefix)
	e.Uvarint(uint64(q.Limit))
	e.BytesField(q.Cursor)
}

// Decode reads what Encode wrote.
func (q *AgentStateQuery) Decode(d *Decoder) {
	q.AgentIDPrefix = d.String()
	q.Limit = d.Uint32()
	q.Cursor = d.BytesField()
}

// Page is one page of query results: count, each item, then next bytes.
// An empty Next means there are no more pages.
type Page[T any] struct {
	Items []T
	Next  []byte
}

// Record is implemented by the pointer types of the three record kinds.
type Record[T any] interface {
	*T
	Encode(*Encoder)
	Decode(*Decoder)
}

// EncodePage appends p.
func EncodePage[T any, P Record[T]](e *Encoder, p *Page[T]) {
	e.Uvarint(uint64(len(p.Items)))
	for i := range p.Items {
		P(&p.Items[i]).Encode(e)
	}
	e.BytesField(p.Next)
}

// DecodePage reads what EncodePage wrote.
func DecodePage[T any, P Record[T]](d *Decoder) Page[T] {
	p, _ := DecodePageAtMost[T, P](d, maxCount)
	return p
}

// DecodePageAtMost is DecodePage for a reader that takes at most most
// records (a query's PageLimit), and returns how many the page claims. A
// page that claims more is not decoded: it is returned empty, the rest of
// the message skipped, for the reader to refuse by that count. A record
// may take a few bytes on the wire and a hundred in memory, so a reader
// that checked the count after decoding would have paid for it already.
func DecodePageAtMost[T any, P Record[T]](d *Decoder, most int) (Page[T], int) {
	var p Page[T]
	n := d.Count(4)
	if n > most {
		d.off = len(d.buf)
		return p, n
	}
	p.Items = prealloc[T](n)
	for i := 0; i < n && d.err == nil; i++ {
		var item T
		P(&item).Decode(d)
		p.Items = append(p.Items, item)
	}
	p.Next = d.BytesField()
	return p, n
}

// Options is the body of OpConfigure: count, then key string, value string
// pairs. Values are the backend's options from the host configuration.
type Options map[string]string

// Encode appends o.
func (o Options) Encode(e *Encoder) { e.labels(o) }

// TTL reads the option name as a TTL in whole seconds, from 0 (none) to
// MaxTTL: ok is false when o has no such option, and err (INVALID, naming
// the option and the bounds) when its value is not one.
func (o Options) TTL(name string) (d time.Duration, ok bool, err error) {
	v, ok := o[name]
	if !ok {
		return 0, false, nil
	}
	secs, perr := strconv.ParseUint(v, 10, 64)
	if perr != nil || secs > uint64(MaxTTL/time.Second) {
		return 0, true, Errorf(StatusInvalid, "option %s: %q is not a whole number of seconds from 0 to %d (100 years)", name, v, uint64(MaxTTL/time.Second))
	}
	return time.Duration(secs) * time.Second, true, nil
}

// DecodeOptions reads what Options.Encode wrote.
func DecodeOptions(d *Decoder) Options { return d.pairs() }

// Metadata describes a plugin; storage_metadata returns it encoded as:
// abi major u16 (uvarint), abi minor (uvarint), name string, version
// string, features uvarint, capabilities (count, string each), since
// ABI 1.8 its kv reads (count, then kind u8 and prefix bytes each), and
// since ABI 1.9 its redis reads (count, then kind u8, key prefix, key
// suffix and guard bytes each) and its postgres reads (count, then kind
// u8 and sql string each).
type Metadata struct {
	ABI          Version
	Name         string
	Version      string
	Features     Feature
	Capabilities []Capability
	// KVReads (ABI 1.8) are the point reads the host may serve from the
	// backend's kv store without calling the plugin; see KVRead.
	KVReads []KVRead
	// RedisReads (ABI 1.9) are the point reads the host may serve with
	// one HMGET of its own; see RedisRead.
	RedisReads []RedisRead
	// PGReads (ABI 1.9) are the point reads the host may serve with one
	// statement of the plugin's on its PostgreSQL; see PGRead.
	PGReads []PGRead
}

// KVRead declares, since ABI 1.8, that the get of one record kind is a kv
// lookup: the record with ID id is the kv entry at Prefix followed by id,
// its value holding the record encoded as the get's answer carries it,
// and the entry's expiry being the record's (for an agent state, the
// entry's revision being its version too). The host then answers such a
// get from the kv store itself, without entering the plugin; it calls the
// plugin as before for a value that does not decode as the record.
type KVRead struct {
	Kind   RecordKind // KindAlert or KindAgentState
	Prefix []byte
}

// RedisRead declares, since ABI 1.9, that the get of one record kind is
// one HMGET the host can make itself: the record with ID id is the Redis
// hash at KeyPrefix ‖ id ‖ KeySuffix (a key in the backend's namespace, as
// the keys of its own commands are), its fields those RedisStateFields or
// RedisAlertFields name, in the form abi/README.md section 12.8 gives.
// The host then answers such a get with that HMGET, without entering the
// plugin. It calls the plugin as before for a hash whose fields are not
// in that form, for an ID holding a byte a hash tag escapes, and while the
// backend's kv store holds an entry whose key starts with Guard (when not
// empty): writes the plugin keeps outside Redis, such as a fallback
// buffer's, that its gets must see. A read Redis does not answer is
// UNAVAILABLE, as the plugin's own would be.
type RedisRead struct {
	Kind      RecordKind // KindAlert or KindAgentState
	KeyPrefix []byte
	KeySuffix []byte
	Guard     []byte
}

// PGRead declares, since ABI 1.9, that the get of one record kind is one
// SELECT the host can run itself: SQL, run as the plugin's own statements
// are (its role, its schema) with $1 the ID (text) and $2 the host's
// clock (bigint, Unix nanoseconds), answers no row when the record does
// not exist or has expired, else one row of the columns the ABI fixes
// for the kind (abi/README.md section 16.7). The host then answers such
// a get with that statement, without entering the plugin; it calls the
// plugin as before for an answer out of that form and when PostgreSQL
// refuses the statement (an error result). A statement PostgreSQL cannot
// run (UNAVAILABLE) or cancels at the call's timeout is UNAVAILABLE, as
// the plugin's own get would be.
type PGRead struct {
	Kind RecordKind // KindAlert or KindAgentState
	SQL  string
}

// The fields of a record's hash that a RedisRead reads, in the order the
// host's HMGET names them (abi/README.md section 12.8). Of an agent state:
// v its version (decimal, at least 1; absent: no record), u its
// updated_at (decimal Unix nanoseconds, 0 for unset), d its state (absent:
// empty) and e its expires_at (decimal Unix milliseconds, -1 for none). Of
// an alert: g its agent_id, s its severity and t its status (decimal; t
// absent: no record), m its message, l its labels (encoded as in a
// record), c and u its created_at and updated_at (as u above), x its
// expires_at (as e above).
var (
	RedisStateFields = [...]string{"v", "u", "d", "e"}
	RedisAlertFields = [...]string{"g", "s", "t", "m", "l", "c", "u", "x"}
)

// Bounds on the lists of a Metadata: a longer list is malformed, before
// any of it is decoded. No valid Metadata comes near them (there are
// seven capabilities, and each kind of read serves two record kinds).
const (
	MaxMetadataCapabilities = 16
	MaxMetadataReads        = 2
)

// kvReadsSince and redisReadsSince are the ABI 1.x minors that added
// Metadata.KVReads, and Metadata.RedisReads and PGReads.
const (
	kvReadsSince    = 8
	redisReadsSince = 9
)

// Encode appends m.
func (m *Metadata) Encode(e *Encoder) {
	e.Uvarint(uint64(m.ABI.Major))
	e.Uvarint(uint64(m.ABI.Minor))
	e.String(m.Name)
	e.String(m.Version)
	e.Uvarint(uint64(m.Features))
	e.Uvarint(uint64(len(m.Capabilities)))
	for _, c := range m.Capabilities {
		e.String(string(c))
	}
	if m.ABI.Major == 1 && m.ABI.Minor >= kvReadsSince {
		e.Uvarint(uint64(len(m.KVReads)))
		for _, r := range m.KVReads {
			e.U8(uint8(r.Kind))
			e.BytesField(r.Prefix)
		}
	}
	if m.ABI.Major == 1 && m.ABI.Minor >= redisReadsSince {
		e.Uvarint(uint64(len(m.RedisReads)))
		for _, r := range m.RedisReads {
			e.U8(uint8(r.Kind))
			e.BytesField(r.KeyPrefix)
			e.BytesField(r.KeySuffix)
			e.BytesField(r.Guard)
		}
		e.Uvarint(uint64(len(m.PGReads)))
		for _, r := range m.PGReads {
			e.U8(uint8(r.Kind))
			e.String(r.SQL)
		}
	}
}

// Decode reads what Encode wrote.
func (m *Metadata) Decode(d *Decoder) {
	m.ABI.Major = d.Uint16()
	m.ABI.Minor = d.Uint16()
	m.Name = d.String()
	m.Version = d.String()
	// Bits this ABI version does not define are dropped: a host never
	// routes an op to a feature it does not know.
	m.Features = Feature(d.Uint32()) & knownFeatures
	m.Capabilities = nil
	for n := d.countAtMost(1, MaxMetadataCapabilities); n > 0; n-- {
		m.Capabilities = append(m.Capabilities, Capability(d.String()))
	}
	m.KVReads = nil
	if m.ABI.Major == 1 && m.ABI.Minor >= kvReadsSince {
		for n := d.countAtMost(2, MaxMetadataReads); n > 0; n-- {
			m.KVReads = append(m.KVReads, KVRead{Kind: RecordKind(d.U8()), Prefix: d.BytesField()})
		}
	}
	m.RedisReads = nil
	if m.ABI.Major == 1 && m.ABI.Minor >= redisReadsSince {
		for n := d.countAtMost(4, MaxMetadataReads); n > 0; n-- {
			m.RedisReads = append(m.RedisReads, RedisRead{Kind: RecordKind(d.U8()), KeyPrefix: d.BytesField(), KeySuffix: d.BytesField(), Guard: d.BytesField()})
		}
	}
	m.PGReads = nil
	if m.ABI.Major == 1 && m.ABI.Minor >= redisReadsSince {
		for n := d.countAtMost(2, MaxMetadataReads); n > 0; n-- {
			m.PGReads = append(m.PGReads, PGRead{Kind: RecordKind(d.U8()), SQL: d.String()})
		}
	}
}

// BatchItem is one request inside an OpBatch body.
type BatchItem struct {
	Op      Op
	Payload []byte
}

// BatchResult is one response inside an OpBatch response body.
type BatchResult struct {
	Status Status
	// Body is the op's result when Status is StatusOK, else the error
	// message.
	Body []byte
}

// EncodeBatch appends an OpBatch body: count, then op uvarint and payload
// bytes per item.
func EncodeBatch(e *Encoder, items []BatchItem) {
	e.Uvarint(uint64(len(items)))
	for i := range items {
		e.Uvarint(uint64(items[i].Op))
		e.BytesField(items[i].Payload)
	}
}

// DecodeBatch reads what EncodeBatch wrote. Payloads alias the decoder's
// input: a plugin serves them within the call that brought them.
func DecodeBatch(d *Decoder) []BatchItem {
	n := d.Count(2)
	items := prealloc[BatchItem](n)
	for i := 0; i < n && d.err == nil; i++ {
		op := Op(d.Uint32())
		items = append(items, BatchItem{Op: op, Payload: d.View()})
	}
	return items
}

// EncodeBatchResults appends an OpBatch response body: count, then status
// u8 and body bytes per item, in request order.
func EncodeBatchResults(e *Encoder, rs []BatchResult) {
	e.Uvarint(uint64(len(rs)))
	for i := range rs {
		e.U8(uint8(rs[i].Status))
		e.BytesField(rs[i].Body)
	}
}

// DecodeBatchResults reads what EncodeBatchResults wrote.
func DecodeBatchResults(d *Decoder) []BatchResult {
	rs, _ := DecodeBatchResultsAtMost(d, maxCount)
	return rs
}

// DecodeBatchResultsAtMost is DecodeBatchResults for a reader that sent
// most items, and returns how many results the answer claims: one that
// claims more is not decoded (nil, the rest of the message skipped), for
// the reader to refuse by that count.
func DecodeBatchResultsAtMost(d *Decoder, most int) ([]BatchResult, int) {
	n := d.Count(2)
	if n > most {
		d.off = len(d.buf)
		return nil, n
	}
	rs := prealloc[BatchResult](n)
	for i := 0; i < n && d.err == nil; i++ {
		status := Status(d.U8())
		rs = append(rs, BatchResult{Status: status, Body: d.BytesField()})
	}
	return rs, n
}
