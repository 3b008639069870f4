package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/internal/rawcall"
)

// Protocol: what a plugin answers to requests the typed API of host.Store
// never sends (abi/README.md, sections 7 to 10). They reach the plugin
// as given, past the host's own checks, so these rules hold for every
// path a request can take, whatever language the plugin is written in:
//
//   - a body followed by trailing bytes, cut short, empty where the op
//     has fields, or with a varint over 10 bytes is INVALID (section 8:
//     "MUST be answered with INVALID");
//   - a write with an invalid ID (empty, over 512 bytes, not UTF-8, with a
//     NUL), a TTL or condition mode out of range, or an alert severity or
//     status out of range is INVALID (section 10.2);
//   - a write with a TTL mode other than default to a plugin without
//     `ttl`, or with a condition to one without `concurrency`, is
//     UNSUPPORTED (section 9, MUST);
//   - an op number the plugin does not know, or an op of a feature it does
//     not advertise, is refused: UNSUPPORTED (section 9, SHOULD), or
//     INVALID;
//   - the items of a batch are held to the same rules one by one, while
//     the batch itself succeeds;
//   - none of it traps the plugin, or changes a record: the store serves
//     as before afterwards.

// protocolCase is one request and the statuses it may be answered with.
type protocolCase struct {
	name string
	op   abi.Op
	body []byte
	want []abi.Status
}

func (c protocolCase) allows(s abi.Status) bool {
	for _, w := range c.want {
		if s == w {
			return true
		}
	}
	return false
}

func statusNames(ss []abi.Status) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = statusName(s)
	}
	return strings.Join(names, " or ")
}

var (
	invalid     = []abi.Status{abi.StatusInvalid}
	unsupported = []abi.Status{abi.StatusUnsupported}
	refused     = []abi.Status{abi.StatusUnsupported, abi.StatusInvalid}
)

// statusName is a status as the ABI names it: INVALID, UNSUPPORTED.
func statusName(s abi.Status) string { return strings.ToUpper(s.String()) }

// encode returns the encoding of one message.
func encode(f func(e *abi.Encoder)) []byte {
	var e abi.Encoder
	f(&e)
	return bytes.Clone(e.Bytes())
}

// validRequests returns a well-formed request of every record op of the
// kinds in f, on records of their own under prefix p. Each is a request
// the plugin must accept when it advertises its feature.
func validRequests(p string, f abi.Feature) []protocolCase {
	ts := time.Now().Truncate(time.Millisecond)
	var cs []protocolCase
	add := func(name string, op abi.Op, body []byte) {
		cs = append(cs, protocolCase{name: name, op: op, body: body})
	}
	if f.Has(abi.FeatureMetrics) {
		m := abi.Metric{AgentID: p + "agent", Name: "cpu", Value: 1.5, Timestamp: ts}
		k := abi.MetricKey{AgentID: m.AgentID, Name: m.Name, Timestamp: ts}
		add("PutMetric", abi.OpPutMetric, encode((&abi.PutMetric{Metric: m}).Encode))
		add("GetMetric", abi.OpGetMetric, encode(k.Encode))
		add("DeleteMetric", abi.OpDeleteMetric, encode(k.Encode))
	}
	if f.Has(abi.FeatureAlerts) {
		a := abi.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: "m"}
		add("PutAlert", abi.OpPutAlert, encode((&abi.PutAlert{Alert: a}).Encode))
		add("GetAlert", abi.OpGetAlert, encode(func(e *abi.Encoder) { e.String(a.ID) }))
		add("SetAlertStatus", abi.OpSetAlertStatus, encode((&abi.SetAlertStatus{ID: a.ID, Status: abi.AlertAcknowledged}).Encode))
		add("DeleteAlert", abi.OpDeleteAlert, encode(func(e *abi.Encoder) { e.String(a.ID) }))
	}
	if f.Has(abi.FeatureAgentStates) {
		st := abi.AgentState{AgentID: p + "agent", State: []byte(`{"n":1}`)}
		add("PutAgentState", abi.OpPutAgentState, encode((&abi.PutAgentState{State: st}).Encode))
		add("GetAgentState", abi.OpGetAgentState, encode(func(e *abi.Encoder) { e.String(st.AgentID) }))
		add("DeleteAgentState", abi.OpDeleteAgentState, encode((&abi.DeleteAgentState{AgentID: st.AgentID}).Encode))
	}
	return cs
}

// malformedRequests derives, from each valid request, the same body with a
// trailing byte, cut short by one byte, empty, and with its first field's
// length (every request starts with an ID or a record's) written as an
// 11-byte LEB128, past the 10 bytes a reader accepts (section 7.1).
func malformedRequests(valid []protocolCase) []protocolCase {
	var cs []protocolCase
	for _, v := range valid {
		overlong := append([]byte{v.body[0] | 0x80}, bytes.Repeat([]byte{0x80}, 9)...)
		overlong = append(append(overlong, 0), v.body[1:]...)
		cs = append(cs,
			protocolCase{v.name + "/TrailingByte", v.op, append(bytes.Clone(v.body), 0), invalid},
			protocolCase{v.name + "/CutShort", v.op, v.body[:len(v.body)-1], invalid},
			protocolCase{v.name + "/Empty", v.op, nil, invalid},
			protocolCase{v.name + "/OverlongVarint", v.op, overlong, invalid},
		)
	}
	return cs
}

// invalidWrites returns writes that decode but break a rule of section
// 10.2, for the kinds in f.
func invalidWrites(p string, f abi.Feature) []protocolCase {
	ts := time.Now().Truncate(time.Millisecond)
	badIDs := map[string]string{
		"EmptyID":   "",
		"LongID":    p + strings.Repeat("x", 513),
		"NotUTF8ID": p + "\xff\xfe",
		"NULInID":   p + "a\x00b",
	}
	var cs []protocolCase
	for name, id := range badIDs {
		if f.Has(abi.FeatureMetrics) {
			m := abi.Metric{AgentID: id, Name: "cpu", Timestamp: ts}
			cs = append(cs, protocolCase{"PutMetric/" + name + "/Agent", abi.OpPutMetric, encode((&abi.PutMetric{Metric: m}).Encode), invalid})
			m = abi.Metric{AgentID: p + "agent", Name: id, Timestamp: ts}
			cs = append(cs, protocolCase{"PutMetric/" + name + "/Name", abi.OpPutMetric, encode((&abi.PutMetric{Metric: m}).Encode), invalid})
			m = abi.Metric{AgentID: p + "agent", Name: "cpu", Timestamp: ts, Labels: map[string]string{id: "v"}}
			cs = append(cs, protocolCase{"PutMetric/" + name + "/LabelName", abi.OpPutMetric, encode((&abi.PutMetric{Metric: m}).Encode), invalid})
		}
		if f.Has(abi.FeatureAlerts) {
			a := abi.Alert{ID: id, AgentID: p + "agent", Severity: abi.SeverityInfo, Status: abi.AlertFiring}
			cs = append(cs, protocolCase{"PutAlert/" + name, abi.OpPutAlert, encode((&abi.PutAlert{Alert: a}).Encode), invalid})
		}
		if f.Has(abi.FeatureAgentStates) {
			st := abi.AgentState{AgentID: id, State: []byte("{}")}
			cs = append(cs, protocolCase{"PutAgentState/" + name, abi.OpPutAgentState, encode((&abi.PutAgentState{State: st}).Encode), invalid})
		}
	}
	if f.Has(abi.FeatureMetrics) {
		m := abi.Metric{AgentID: p + "agent", Name: "cpu"}
		cs = append(cs, protocolCase{"PutMetric/NoTimestamp", abi.OpPutMetric, encode((&abi.PutMetric{Metric: m}).Encode), invalid})
	}
	if f.Has(abi.FeatureAlerts) {
		for _, a := range []abi.Alert{
			{ID: p + "sev0", AgentID: p + "agent", Severity: 0, Status: abi.AlertFiring},
			{ID: p + "sev4", AgentID: p + "agent", Severity: 4, Status: abi.AlertFiring},
			{ID: p + "status0", AgentID: p + "agent", Severity: abi.SeverityInfo, Status: 0},
			{ID: p + "status4", AgentID: p + "agent", Severity: abi.SeverityInfo, Status: 4},
		} {
			cs = append(cs, protocolCase{"PutAlert/OutOfRange/" + strings.TrimPrefix(a.ID, p), abi.OpPutAlert, encode((&abi.PutAlert{Alert: a}).Encode), invalid})
		}
		cs = append(cs, protocolCase{"SetAlertStatus/OutOfRange", abi.OpSetAlertStatus,
			encode((&abi.SetAlertStatus{ID: p + "alert", Status: 9}).Encode), invalid})
	}
	if f.Has(abi.FeatureAgentStates) {
		st := abi.AgentState{AgentID: p + "agent", State: []byte("{}")}
		// A TTL or condition mode out of range: INVALID, or UNSUPPORTED
		// from a plugin without the feature the mode would need.
		ttlWant, condWant := invalid, invalid
		if !f.Has(abi.FeatureTTL) {
			ttlWant = refused
		}
		if !f.Has(abi.FeatureConcurrency) {
			condWant = refused
		}
		put := func(ttl, cond []byte) []byte {
			return encode(func(e *abi.Encoder) { st.Encode(e); e.Raw(ttl); e.Raw(cond) })
		}
		cs = append(cs,
			protocolCase{"PutAgentState/TTLModeOutOfRange", abi.OpPutAgentState, put([]byte{4}, []byte{0}), ttlWant},
			protocolCase{"PutAgentState/TTLDurationZero", abi.OpPutAgentState, put([]byte{1, 0}, []byte{0}), ttlWant},
			// Past 100 years (section 7.3): invalid; past what a signed
			// 64-bit nanosecond count holds: malformed.
			protocolCase{"PutAgentState/TTLDurationPast100Years", abi.OpPutAgentState, put(binary.AppendUvarint([]byte{1}, 3_153_600_000_001), []byte{0}), ttlWant},
			protocolCase{"PutAgentState/TTLDurationPastNanoseconds", abi.OpPutAgentState, put(binary.AppendUvarint([]byte{1}, 9_223_372_036_855), []byte{0}), ttlWant},
			protocolCase{"PutAgentState/ConditionModeOutOfRange", abi.OpPutAgentState, put([]byte{0}, []byte{3}), condWant},
			protocolCase{"DeleteAgentState/ConditionModeOutOfRange", abi.OpDeleteAgentState,
				encode(func(e *abi.Encoder) { e.String(st.AgentID); e.U8(7) }), condWant},
		)
	}
	return cs
}

// unadvertised returns requests that need a feature the plugin does not
// advertise, and op numbers no ABI version defines.
func unadvertised(p string, f abi.Feature) []protocolCase {
	var cs []protocolCase
	for _, v := range validRequests(p, (abi.FeatureMetrics|abi.FeatureAlerts|abi.FeatureAgentStates)&^f) {
		v.want = refused
		cs = append(cs, v)
	}
	if !f.Has(abi.FeatureBatch) {
		cs = append(cs, protocolCase{"Batch", abi.OpBatch, []byte{0}, refused})
	}
	if f.Has(abi.FeatureAgentStates) {
		st := abi.AgentState{AgentID: p + "agent", State: []byte("{}")}
		if !f.Has(abi.FeatureTTL) {
			for _, ttl := range []abi.TTL{{Mode: abi.TTLDuration, Duration: time.Hour}, {Mode: abi.TTLPersist}, {Mode: abi.TTLKeep}} {
				cs = append(cs, protocolCase{fmt.Sprintf("PutAgentState/TTLMode%dWithoutTTL", ttl.Mode), abi.OpPutAgentState,
					encode((&abi.PutAgentState{State: st, TTL: ttl}).Encode), unsupported})
			}
		}
		if !f.Has(abi.FeatureConcurrency) {
			cs = append(cs,
				protocolCase{"PutAgentState/IfAbsentWithoutConcurrency", abi.OpPutAgentState,
					encode((&abi.PutAgentState{State: st, Condition: abi.Condition{Mode: abi.IfAbsent}}).Encode), unsupported},
				protocolCase{"DeleteAgentState/IfVersionWithoutConcurrency", abi.OpDeleteAgentState,
					encode((&abi.DeleteAgentState{AgentID: st.AgentID, Condition: abi.Condition{Mode: abi.IfVersion, Version: 1}}).Encode), unsupported},
			)
		}
	}
	for _, op := range []abi.Op{0, 4, 9, 99, 255, 1 << 20} {
		cs = append(cs, protocolCase{fmt.Sprintf("UnknownOp%d", op), op, nil, refused})
	}
	return cs
}

// rawCall sends one request past the host's checks; a plugin that traps,
// or answers a status the case does not allow, fails t.
func (s *suite) rawCall(t *testing.T, c protocolCase) (abi.Status, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, body, err := rawcall.Call(ctx, s.st, c.op, c.body)
	if err != nil {
		t.Errorf("%s (op %d, %d-byte body): no answer: %v", c.name, c.op, len(c.body), err)
		return 0, nil
	}
	if c.want != nil && !c.allows(status) {
		t.Errorf("%s (op %d, %d-byte body %s): answered %s %q, want %s",
			c.name, c.op, len(c.body), shortHex(c.body), statusName(status), shorten(body), statusNames(c.want))
	}
	return status, body
}

// shortHex shows at most the first 24 bytes of b in hex.
func shortHex(b []byte) string {
	if len(b) > 24 {
		return fmt.Sprintf("%x…", b[:24])
	}
	return fmt.Sprintf("%x", b)
}

// shorten cuts a message to 200 bytes.
func shorten(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func (s *suite) testProtocol(t *testing.T) {
	p := s.prefix()
	valid := validRequests(p, s.features)
	t.Run("Malformed", func(t *testing.T) {
		for _, c := range malformedRequests(valid) {
			s.rawCall(t, c)
		}
	})
	t.Run("InvalidWrites", func(t *testing.T) {
		for _, c := range invalidWrites(p, s.features) {
			s.rawCall(t, c)
		}
		// Nothing of an invalid write was stored.
		for _, v := range valid {
			if v.op == abi.OpGetAgentState || v.op == abi.OpGetAlert || v.op == abi.OpGetMetric {
				v.want = []abi.Status{abi.StatusNotFound}
				s.rawCall(t, v)
			}
		}
	})
	t.Run("Unadvertised", func(t *testing.T) {
		for _, c := range unadvertised(p, s.features) {
			s.rawCall(t, c)
		}
	})
	if s.has(abi.FeatureBatch) {
		t.Run("BatchItems", func(t *testing.T) { s.testProtocolBatch(t, p, valid) })
	}
	// The plugin still serves: every valid request, in order (a put, a
	// get of what it put, ..., a delete), answers OK.
	t.Run("ServesAfterwards", func(t *testing.T) {
		for _, v := range valid {
			v.want = []abi.Status{abi.StatusOK}
			s.rawCall(t, v)
		}
	})
}

// testProtocolBatch: a batch of a valid write, the malformed and invalid
// forms of the requests, and unknown ops succeeds as a whole, with one
// result per item, each held to the rule of its request.
func (s *suite) testProtocolBatch(t *testing.T, p string, valid []protocolCase) {
	items := append(malformedRequests(valid), invalidWrites(p, s.features)...)
	for _, c := range unadvertised(p, s.features) {
		if c.op != abi.OpBatch {
			items = append(items, c)
		}
	}
	body := encode(func(e *abi.Encoder) {
		e.Uvarint(uint64(len(items)))
		for _, it := range items {
			e.Uvarint(uint64(it.op))
			e.BytesField(it.body)
		}
	})
	status, resp := s.rawCall(t, protocolCase{name: "Batch", op: abi.OpBatch, body: body, want: []abi.Status{abi.StatusOK}})
	if status != abi.StatusOK {
		return
	}
	d := abi.NewDecoder(resp)
	results := abi.DecodeBatchResults(d)
	if err := d.Finish(); err != nil {
		t.Fatalf("batch results do not decode: %v", err)
	}
	if len(results) != len(items) {
		t.Fatalf("batch of %d items answered %d results", len(items), len(results))
	}
	for i, r := range results {
		if !items[i].allows(r.Status) {
			t.Errorf("batch item %d, %s (op %d, %d-byte body %s): answered %s %q, want %s",
				i, items[i].name, items[i].op, len(items[i].body), shortHex(items[i].body), statusName(r.Status), shorten(r.Body), statusNames(items[i].want))
		}
	}
}
