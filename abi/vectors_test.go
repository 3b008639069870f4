package abi_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/vectors.json from the encoders")

// vectorsPath holds golden wire vectors for SDKs in other languages: the
// AssemblyScript SDK's tests (sdk/assemblyscript) decode every valid
// vector, compare its fields and re-encode it to the same bytes, and
// check that every invalid vector is refused as it says.
var vectorsPath = filepath.Join("testdata", "vectors.json")

// vectorFile is the layout of testdata/vectors.json.
type vectorFile struct {
	Comment []string        `json:"comment"`
	Valid   []validVector   `json:"valid"`
	Invalid []invalidVector `json:"invalid"`
}

// validVector is a message, its exact bytes and its decoded fields.
type validVector struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Hex    string `json:"hex"`
	Fields any    `json:"fields"`
	// Canonical, when set, is what a writer emits for Fields: the
	// shortest form of a padded varint.
	Canonical string `json:"canonical,omitempty"`
}

// invalidVector is bytes a reader of Type refuses, and how: "truncated"
// or "malformed" (it does not decode), or "invalid" (it decodes but breaks
// a rule of section 10.2 or 7.3, answered INVALID).
type invalidVector struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Hex   string `json:"hex"`
	Error string `json:"error"`
}

var vectorsComment = []string{
	"Golden vectors of the plugin ABI's wire encoding (abi/README.md, section 7 and 10), made by the Go encoders of package abi.",
	"Regenerate with: go test ./abi -run TestVectorsFile -update",
	"fields: times, u64 numbers (version, revision, uvarint) and varints are decimal strings; f64 is its 64 bits in hex; bytes, label values, messages, state documents and cursors are hex; identifiers and option values are text.",
	"invalid: error is truncated or malformed (the message does not decode) or invalid (it decodes, but a field breaks a rule: an identifier, a ttl, an enum).",
}

func ns(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func f64hex(v float64) string { return fmt.Sprintf("%016x", math.Float64bits(v)) }

func labelFields(l map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		out[k] = hx([]byte(v))
	}
	return out
}

func metricFields(m *abi.Metric) map[string]any {
	return map[string]any{"agent_id": m.AgentID, "name": m.Name, "value": f64hex(m.Value), "timestamp": ns(m.Timestamp), "labels": labelFields(m.Labels), "expires_at": ns(m.ExpiresAt)}
}

func alertFields(a *abi.Alert) map[string]any {
	return map[string]any{"id": a.ID, "agent_id": a.AgentID, "severity": a.Severity, "status": a.Status, "message": hx([]byte(a.Message)), "labels": labelFields(a.Labels), "created_at": ns(a.CreatedAt), "updated_at": ns(a.UpdatedAt), "expires_at": ns(a.ExpiresAt)}
}

func stateFields(s *abi.AgentState) map[string]any {
	return map[string]any{"agent_id": s.AgentID, "state": hx(s.State), "version": strconv.FormatUint(s.Version, 10), "updated_at": ns(s.UpdatedAt), "expires_at": ns(s.ExpiresAt)}
}

func ttlFields(t *abi.TTL) map[string]any {
	return map[string]any{"mode": t.Mode, "duration_ms": strconv.FormatUint(uint64(t.Duration/time.Millisecond), 10)}
}

func condFields(c *abi.Condition) map[string]any {
	return map[string]any{"mode": c.Mode, "version": strconv.FormatUint(c.Version, 10)}
}

func matcherFields(ms []abi.Matcher) []any {
	out := []any{}
	for _, m := range ms {
		out = append(out, map[string]any{"label": m.Label, "op": m.Op, "value": hx([]byte(m.Value))})
	}
	return out
}

func u8s[T ~uint8](s []T) []int {
	out := []int{}
	for _, v := range s {
		out = append(out, int(v))
	}
	return out
}

func kvFields(r *abi.KVRequest) map[string]any {
	return map[string]any{"op": r.Op, "key": hx(r.Key), "end": hx(r.End), "value": hx(r.Value), "revision": strconv.FormatUint(r.Revision, 10), "expires_at": ns(r.ExpiresAt), "keep_ttl": r.KeepTTL, "condition": condFields(&r.Condition), "limit": r.Limit}
}

func entryFields(en *abi.KVEntry) map[string]any {
	return map[string]any{"key": hx(en.Key), "revision": strconv.FormatUint(en.Revision, 10), "expires_at": ns(en.ExpiresAt), "value": hx(en.Value)}
}

// vectorTypes decodes a message of each type the vectors hold and checks
// it as the ABI requires a reader to: it returns the decoded fields and
// "" when the message is accepted, or the way it is refused.
var vectorTypes = map[string]func(d *abi.Decoder) (fields any, check error){
	"u8":   func(d *abi.Decoder) (any, error) { return map[string]any{"value": d.U8()}, nil },
	"bool": func(d *abi.Decoder) (any, error) { return map[string]any{"value": d.Bool()}, nil },
	"uvarint": func(d *abi.Decoder) (any, error) {
		return map[string]any{"value": strconv.FormatUint(d.Uvarint(), 10)}, nil
	},
	"varint": func(d *abi.Decoder) (any, error) {
		return map[string]any{"value": strconv.FormatInt(d.Varint(), 10)}, nil
	},
	"f64":   func(d *abi.Decoder) (any, error) { return map[string]any{"value": f64hex(d.F64())}, nil },
	"bytes": func(d *abi.Decoder) (any, error) { return map[string]any{"value": hx(d.BytesField())}, nil },
	"time":  func(d *abi.Decoder) (any, error) { return map[string]any{"value": ns(d.Time())}, nil },
	"ID": func(d *abi.Decoder) (any, error) {
		id := d.String()
		return map[string]any{"value": id}, abi.CheckID("id", id)
	},
	"TTL": func(d *abi.Decoder) (any, error) {
		var t abi.TTL
		t.Decode(d)
		return ttlFields(&t), t.Check()
	},
	"Condition": func(d *abi.Decoder) (any, error) {
		var c abi.Condition
		c.Decode(d)
		return condFields(&c), nil
	},
	"Metric": func(d *abi.Decoder) (any, error) {
		var m abi.Metric
		m.Decode(d)
		return metricFields(&m), m.Check()
	},
	"MetricKey": func(d *abi.Decoder) (any, error) {
		var k abi.MetricKey
		k.Decode(d)
		return map[string]any{"agent_id": k.AgentID, "name": k.Name, "timestamp": ns(k.Timestamp)}, k.Check()
	},
	"Alert": func(d *abi.Decoder) (any, error) {
		var a abi.Alert
		a.Decode(d)
		return alertFields(&a), a.Check()
	},
	"AgentState": func(d *abi.Decoder) (any, error) {
		var s abi.AgentState
		s.Decode(d)
		return stateFields(&s), s.Check()
	},
	"PutMetric": func(d *abi.Decoder) (any, error) {
		var r abi.PutMetric
		r.Decode(d)
		return map[string]any{"metric": metricFields(&r.Metric), "ttl": ttlFields(&r.TTL)}, errors.Join(r.Metric.Check(), r.TTL.Check())
	},
	"PutAlert": func(d *abi.Decoder) (any, error) {
		var r abi.PutAlert
		r.Decode(d)
		return map[string]any{"alert": alertFields(&r.Alert), "ttl": ttlFields(&r.TTL)}, errors.Join(r.Alert.Check(), r.TTL.Check())
	},
	"PutAgentState": func(d *abi.Decoder) (any, error) {
		var r abi.PutAgentState
		r.Decode(d)
		return map[string]any{"state": stateFields(&r.State), "ttl": ttlFields(&r.TTL), "condition": condFields(&r.Condition)}, errors.Join(r.State.Check(), r.TTL.Check())
	},
	"DeleteAgentState": func(d *abi.Decoder) (any, error) {
		var r abi.DeleteAgentState
		r.Decode(d)
		err := abi.CheckID("agent id", r.AgentID)
		if err == nil && r.Condition.Mode == abi.IfAbsent {
			err = abi.Errorf(abi.StatusInvalid, "delete cannot be create-only")
		}
		return map[string]any{"agent_id": r.AgentID, "condition": condFields(&r.Condition)}, err
	},
	"SetAlertStatus": func(d *abi.Decoder) (any, error) {
		var r abi.SetAlertStatus
		r.Decode(d)
		err := abi.CheckID("alert id", r.ID)
		if err == nil && !r.Status.Valid() {
			err = abi.Errorf(abi.StatusInvalid, "unknown alert status %d", r.Status)
		}
		return map[string]any{"id": r.ID, "status": r.Status}, err
	},
	"Options": func(d *abi.Decoder) (any, error) {
		o := abi.DecodeOptions(d)
		out := map[string]string{}
		for k, v := range o {
			out[k] = v
		}
		return out, nil
	},
	"MetricQuery": func(d *abi.Decoder) (any, error) {
		var q abi.MetricQuery
		q.Decode(d)
		return map[string]any{"agent_id": q.AgentID, "name": q.Name, "from": ns(q.From), "to": ns(q.To), "labels": matcherFields(q.Labels), "limit": q.Limit, "cursor": hx(q.Cursor)}, nil
	},
	"AlertQuery": func(d *abi.Decoder) (any, error) {
		var q abi.AlertQuery
		q.Decode(d)
		return map[string]any{"agent_id": q.AgentID, "severities": u8s(q.Severities), "statuses": u8s(q.Statuses), "labels": matcherFields(q.Labels), "from": ns(q.From), "to": ns(q.To), "limit": q.Limit, "cursor": hx(q.Cursor)}, nil
	},
	"AgentStateQuery": func(d *abi.Decoder) (any, error) {
		var q abi.AgentStateQuery
		q.Decode(d)
		return map[string]any{"agent_id_prefix": q.AgentIDPrefix, "limit": q.Limit, "cursor": hx(q.Cursor)}, nil
	},
	"MetricPage": func(d *abi.Decoder) (any, error) {
		p := abi.DecodePage[abi.Metric](d)
		items := []any{}
		for i := range p.Items {
			items = append(items, metricFields(&p.Items[i]))
		}
		return map[string]any{"items": items, "next": hx(p.Next)}, nil
	},
	"AlertPage": func(d *abi.Decoder) (any, error) {
		p := abi.DecodePage[abi.Alert](d)
		items := []any{}
		for i := range p.Items {
			items = append(items, alertFields(&p.Items[i]))
		}
		return map[string]any{"items": items, "next": hx(p.Next)}, nil
	},
	"AgentStatePage": func(d *abi.Decoder) (any, error) {
		p := abi.DecodePage[abi.AgentState](d)
		items := []any{}
		for i := range p.Items {
			items = append(items, stateFields(&p.Items[i]))
		}
		return map[string]any{"items": items, "next": hx(p.Next)}, nil
	},
	"Batch": func(d *abi.Decoder) (any, error) {
		items := []any{}
		for _, it := range abi.DecodeBatch(d) {
			items = append(items, map[string]any{"op": it.Op, "payload": hx(it.Payload)})
		}
		return map[string]any{"items": items}, nil
	},
	"BatchResults": func(d *abi.Decoder) (any, error) {
		rs := []any{}
		for _, r := range abi.DecodeBatchResults(d) {
			rs = append(rs, map[string]any{"status": r.Status, "body": hx(r.Body)})
		}
		return map[string]any{"results": rs}, nil
	},
	"Metadata": func(d *abi.Decoder) (any, error) {
		// Decoded as written: Metadata.Decode masks the features to the
		// bits the host knows, which an SDK does not do.
		major, minor := d.Uint16(), d.Uint16()
		name, version := d.String(), d.String()
		features := d.Uint32()
		caps := []string{}
		for n := d.Count(1); n > 0; n-- {
			caps = append(caps, d.String())
		}
		return map[string]any{"abi_major": major, "abi_minor": minor, "name": name, "version": version, "features": features, "capabilities": caps}, nil
	},
	"Restore": func(d *abi.Decoder) (any, error) {
		var r abi.Restore
		r.Decode(d)
		var rec any
		switch r.Kind {
		case abi.KindMetric:
			rec = metricFields(&r.Metric)
		case abi.KindAlert:
			rec = alertFields(&r.Alert)
		case abi.KindAgentState:
			rec = stateFields(&r.State)
		}
		return map[string]any{"kind": r.Kind, "record": rec, "mode": r.Mode}, nil
	},
	"PluginEvent": func(d *abi.Decoder) (any, error) {
		var ev abi.PluginEvent
		ev.Decode(d)
		return map[string]any{"kind": ev.Kind, "op": ev.Op, "agent_id": ev.AgentID, "key": ev.Key, "data": hx(ev.Data)}, nil
	},
	"KVRequest": func(d *abi.Decoder) (any, error) {
		var r abi.KVRequest
		r.Decode(d)
		return kvFields(&r), nil
	},
	"KVEntry": func(d *abi.Decoder) (any, error) {
		var en abi.KVEntry
		en.Decode(d, false)
		return entryFields(&en), nil
	},
	"KVEntryWithKey": func(d *abi.Decoder) (any, error) {
		var en abi.KVEntry
		en.Decode(d, true)
		return entryFields(&en), nil
	},
}

// refusal says how a reader of typ refuses b: "" when it accepts it.
func refusal(typ string, b []byte) (fields any, how string) {
	d := abi.NewDecoder(b)
	fields, check := vectorTypes[typ](d)
	switch err := d.Finish(); {
	case errors.Is(err, abi.ErrTruncated):
		return nil, "truncated"
	case err != nil:
		return nil, "malformed"
	case check != nil:
		return nil, "invalid"
	}
	return fields, ""
}

func vecEnc(f func(e *abi.Encoder)) []byte {
	var e abi.Encoder
	f(&e)
	return append([]byte(nil), e.Bytes()...)
}

func vecAt(s int64) time.Time { return time.Unix(0, s).UTC() }

// buildVectors makes the vectors from the Go encoders.
func buildVectors(t *testing.T) vectorFile {
	t.Helper()
	metric := abi.Metric{AgentID: "agent-1", Name: "cpu.load", Value: 1.5, Timestamp: vecAt(1_700_000_000_123_456_789), Labels: map[string]string{"zone": "eu-1", "host": "h\x00\xff", "b": ""}, ExpiresAt: vecAt(1_700_000_060_000_000_000)}
	alert := abi.Alert{ID: "alert-7", AgentID: "agent-1", Severity: abi.SeverityCritical, Status: abi.AlertAcknowledged, Message: "disk \xff full", Labels: map[string]string{"team": "ops"}, CreatedAt: vecAt(1_000_000_000), UpdatedAt: vecAt(2_000_000_000)}
	state := abi.AgentState{AgentID: "héllo", State: []byte(`{"x":1}`), Version: 1 << 40, UpdatedAt: vecAt(-1), ExpiresAt: vecAt(math.MaxInt64)}
	ttl1 := abi.TTL{Mode: abi.TTLDuration, Duration: 90 * time.Second}
	ifv := abi.Condition{Mode: abi.IfVersion, Version: 300}

	var vf vectorFile
	vf.Comment = vectorsComment
	valid := func(name, typ string, b []byte) {
		fields, how := refusal(typ, b)
		require.Empty(t, how, "valid vector %s (%s) is refused", name, typ)
		vf.Valid = append(vf.Valid, validVector{Name: name, Type: typ, Hex: hx(b), Fields: fields})
	}
	padded := func(name, typ string, b, canonical []byte) {
		valid(name, typ, b)
		vf.Valid[len(vf.Valid)-1].Canonical = hx(canonical)
	}
	invalid := func(name, typ string, b []byte) {
		_, how := refusal(typ, b)
		require.NotEmpty(t, how, "invalid vector %s (%s) is accepted", name, typ)
		vf.Invalid = append(vf.Invalid, invalidVector{Name: name, Type: typ, Hex: hx(b), Error: how})
	}

	// Primitives: the examples of section 7.1 and the edges.
	for _, v := range []uint64{0, 1, 127, 128, 300, math.MaxUint32, math.MaxUint64} {
		valid("uvarint "+strconv.FormatUint(v, 10), "uvarint", vecEnc(func(e *abi.Encoder) { e.Uvarint(v) }))
	}
	padded("uvarint 1 padded", "uvarint", []byte{0x81, 0x80, 0x80, 0x00}, []byte{1})
	padded("uvarint 0 padded to 10 bytes", "uvarint", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, []byte{0})
	for _, v := range []int64{0, -1, 1, 64, -65, math.MinInt64, math.MaxInt64} {
		valid("varint "+strconv.FormatInt(v, 10), "varint", vecEnc(func(e *abi.Encoder) { e.Varint(v) }))
	}
	for _, v := range []float64{1.5, math.Copysign(0, -1), math.Inf(-1), math.Float64frombits(0x7ff8_0000_dead_beef)} {
		valid("f64 "+f64hex(v), "f64", vecEnc(func(e *abi.Encoder) { e.F64(v) }))
	}
	valid("bool false", "bool", []byte{0})
	valid("bool true", "bool", []byte{1})
	valid("u8 255", "u8", []byte{255})
	valid("string héllo", "bytes", vecEnc(func(e *abi.Encoder) { e.String("héllo") }))
	valid("bytes empty", "bytes", []byte{0})
	valid("time 1s", "time", vecEnc(func(e *abi.Encoder) { e.Time(vecAt(1_000_000_000)) }))
	valid("time unset", "time", vecEnc(func(e *abi.Encoder) { e.Time(time.Time{}) }))
	valid("time before 1970", "time", vecEnc(func(e *abi.Encoder) { e.Time(vecAt(-5)) }))
	valid("id of 512 bytes", "ID", vecEnc(func(e *abi.Encoder) { e.String(strings.Repeat("é", 256)) }))
	valid("id of 4-byte UTF-8", "ID", vecEnc(func(e *abi.Encoder) { e.String("a\U0010FFFF😀") }))

	// Composite fields and records.
	for _, tt := range []abi.TTL{{}, ttl1, {Mode: abi.TTLPersist}, {Mode: abi.TTLKeep}} {
		valid(fmt.Sprintf("ttl mode %d", tt.Mode), "TTL", vecEnc(tt.Encode))
	}
	for _, c := range []abi.Condition{{}, ifv, {Mode: abi.IfAbsent}} {
		valid(fmt.Sprintf("condition mode %d", c.Mode), "Condition", vecEnc(c.Encode))
	}
	valid("metric", "Metric", vecEnc(metric.Encode))
	mk := metric.Key()
	valid("metric key", "MetricKey", vecEnc(mk.Encode))
	valid("alert", "Alert", vecEnc(alert.Encode))
	valid("agent state", "AgentState", vecEnc(state.Encode))
	valid("agent state empty", "AgentState", vecEnc((&abi.AgentState{AgentID: "a"}).Encode))

	// Requests.
	valid("put metric", "PutMetric", vecEnc((&abi.PutMetric{Metric: metric, TTL: ttl1}).Encode))
	valid("put alert", "PutAlert", vecEnc((&abi.PutAlert{Alert: alert, TTL: abi.TTL{Mode: abi.TTLKeep}}).Encode))
	valid("put agent state", "PutAgentState", vecEnc((&abi.PutAgentState{State: state, TTL: ttl1, Condition: ifv}).Encode))
	valid("put agent state if absent", "PutAgentState", vecEnc((&abi.PutAgentState{State: state, Condition: abi.Condition{Mode: abi.IfAbsent}}).Encode))
	valid("delete agent state", "DeleteAgentState", vecEnc((&abi.DeleteAgentState{AgentID: "a1", Condition: ifv}).Encode))
	valid("set alert status", "SetAlertStatus", vecEnc((&abi.SetAlertStatus{ID: "alert-7", Status: abi.AlertResolved}).Encode))
	valid("options", "Options", vecEnc(abi.Options{"agent_state_ttl_seconds": "3600", "a": ""}.Encode))
	valid("options empty", "Options", vecEnc(abi.Options{}.Encode))
	valid("metric query", "MetricQuery", vecEnc((&abi.MetricQuery{AgentID: "a1", Name: "cpu", From: vecAt(10), To: vecAt(20), Labels: []abi.Matcher{{Label: "zone", Op: abi.MatchRegexp, Value: "eu-.*"}, {Label: "x", Op: abi.MatchNotEqual}}, Limit: 1000, Cursor: []byte{1, 2, 0}}).Encode))
	valid("alert query", "AlertQuery", vecEnc((&abi.AlertQuery{AgentID: "a1", Severities: []abi.Severity{1, 3}, Statuses: []abi.AlertStatus{2}, Labels: []abi.Matcher{{Label: "team", Op: abi.MatchEqual, Value: "ops"}}, From: vecAt(5), Limit: 7}).Encode))
	valid("agent state query", "AgentStateQuery", vecEnc((&abi.AgentStateQuery{AgentIDPrefix: "web-", Limit: math.MaxUint32, Cursor: []byte("c")}).Encode))

	// Responses and batches.
	valid("metric page", "MetricPage", vecEnc(func(e *abi.Encoder) {
		abi.EncodePage(e, &abi.Page[abi.Metric]{Items: []abi.Metric{metric, {AgentID: "b", Name: "n", Timestamp: vecAt(1)}}, Next: []byte("next")})
	}))
	valid("alert page", "AlertPage", vecEnc(func(e *abi.Encoder) { abi.EncodePage(e, &abi.Page[abi.Alert]{Items: []abi.Alert{alert}}) }))
	valid("agent state page empty", "AgentStatePage", vecEnc(func(e *abi.Encoder) { abi.EncodePage(e, &abi.Page[abi.AgentState]{}) }))
	valid("agent state page", "AgentStatePage", vecEnc(func(e *abi.Encoder) {
		abi.EncodePage(e, &abi.Page[abi.AgentState]{Items: []abi.AgentState{state, {AgentID: "z"}}})
	}))
	getA1 := vecEnc(func(e *abi.Encoder) { e.String("a1") })
	valid("batch", "Batch", vecEnc(func(e *abi.Encoder) {
		abi.EncodeBatch(e, []abi.BatchItem{{Op: abi.OpGetAgentState, Payload: getA1}, {Op: abi.OpPing}, {Op: 1 << 31}})
	}))
	valid("batch results", "BatchResults", vecEnc(func(e *abi.Encoder) {
		abi.EncodeBatchResults(e, []abi.BatchResult{{Status: abi.StatusOK, Body: vecEnc(state.Encode)}, {Status: abi.StatusNotFound, Body: []byte("no such agent")}})
	}))
	meta := abi.Metadata{ABI: abi.Version{Major: 1, Minor: 3}, Name: "memory", Version: "0.1.0", Features: abi.FeatureAgentStates, Capabilities: []abi.Capability{abi.CapabilityClock}}
	metaBytes := vecEnc(meta.Encode)
	// The example of section 10.9, byte for byte.
	want, err := hex.DecodeString(strings.ReplaceAll("01 03 06 6d 65 6d 6f 72 79 05 30 2e 31 2e 30 04 01 05 63 6c 6f 63 6b", " ", ""))
	require.NoError(t, err)
	require.Equal(t, want, metaBytes)
	valid("metadata of section 10.9", "Metadata", metaBytes)
	valid("metadata, every feature", "Metadata", vecEnc((&abi.Metadata{ABI: abi.Version{Major: 1, Minor: 3}, Name: "x", Version: "1", Features: 0x1ff, Capabilities: []abi.Capability{"log", "kv", "events"}}).Encode))

	// Restore (ABI 1.2) and plugin events.
	valid("restore metric", "Restore", vecEnc((&abi.Restore{Kind: abi.KindMetric, Metric: metric, Mode: abi.RestoreFail}).Encode))
	valid("restore alert", "Restore", vecEnc((&abi.Restore{Kind: abi.KindAlert, Alert: alert, Mode: abi.RestoreSkip}).Encode))
	valid("restore agent state", "Restore", vecEnc((&abi.Restore{Kind: abi.KindAgentState, State: state, Mode: abi.RestoreOverwrite}).Encode))
	valid("plugin event", "PluginEvent", vecEnc((&abi.PluginEvent{Kind: "cache.flush", Op: "done", AgentID: "a1", Data: []byte{0, 255}}).Encode))

	// The kv capability's messages.
	for _, r := range []abi.KVRequest{
		{Op: abi.KVGet, Key: []byte("k")},
		{Op: abi.KVPut, Key: []byte("k"), Value: []byte{0, 1}, ExpiresAt: vecAt(99), KeepTTL: true, Condition: ifv},
		{Op: abi.KVDelete, Key: []byte("k"), Condition: abi.Condition{Mode: abi.IfVersion, Version: 1}},
		{Op: abi.KVScan, Key: []byte("a"), End: []byte("b"), Limit: 50},
		{Op: abi.KVRestore, Key: []byte("k"), Value: []byte("v"), Revision: 12, Condition: abi.Condition{Mode: abi.IfAbsent}},
	} {
		valid(fmt.Sprintf("kv request op %d", r.Op), "KVRequest", vecEnc(r.Encode))
	}
	entry := abi.KVEntry{Key: []byte("key"), Revision: 42, ExpiresAt: vecAt(77), Value: []byte("value")}
	valid("kv entry", "KVEntry", vecEnc(func(e *abi.Encoder) { entry.Encode(e, false) }))
	valid("kv entry with key", "KVEntryWithKey", vecEnc(func(e *abi.Encoder) { entry.Encode(e, true) }))

	// Refused: the reader rules of sections 7 and 10.2.
	invalid("uvarint truncated", "uvarint", []byte{0x80})
	invalid("uvarint empty", "uvarint", nil)
	invalid("uvarint of 11 bytes", "uvarint", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00})
	invalid("uvarint over 64 bits", "uvarint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})
	invalid("uvarint trailing byte", "uvarint", []byte{0x01, 0x00})
	invalid("varint over 64 bits", "varint", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02})
	invalid("bool 2", "bool", []byte{2})
	invalid("bool empty", "bool", nil)
	invalid("f64 of 7 bytes", "f64", make([]byte, 7))
	invalid("bytes cut short", "bytes", []byte{5, 'a', 'b'})
	invalid("bytes length overlong", "bytes", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	invalid("id empty", "ID", []byte{0})
	invalid("id of 513 bytes", "ID", vecEnc(func(e *abi.Encoder) { e.String(strings.Repeat("a", 513)) }))
	invalid("id not UTF-8", "ID", vecEnc(func(e *abi.Encoder) { e.String("a\xffb") }))
	invalid("id of a surrogate", "ID", vecEnc(func(e *abi.Encoder) { e.String("\xed\xa0\x80") }))
	invalid("id overlong UTF-8", "ID", vecEnc(func(e *abi.Encoder) { e.String("\xc0\xaf") }))
	invalid("id cut UTF-8", "ID", vecEnc(func(e *abi.Encoder) { e.String("ab\xe2\x82") }))
	invalid("id with NUL", "ID", vecEnc(func(e *abi.Encoder) { e.String("a\x00b") }))
	invalid("ttl mode 4", "TTL", []byte{4})
	invalid("ttl duration 0", "TTL", []byte{1, 0})
	invalid("ttl duration over int64 ns", "TTL", vecEnc(func(e *abi.Encoder) { e.U8(1); e.Uvarint(math.MaxInt64/1_000_000 + 1) }))
	invalid("ttl duration over 100 years", "TTL", vecEnc(func(e *abi.Encoder) { e.U8(1); e.Uvarint(uint64(abi.MaxTTL/time.Millisecond) + 1) }))
	invalid("condition mode 3", "Condition", []byte{3})
	invalid("condition version cut", "Condition", []byte{1})

	metricBytes := vecEnc(metric.Encode)
	invalid("metric truncated", "Metric", metricBytes[:len(metricBytes)-1])
	invalid("metric trailing byte", "Metric", append(append([]byte(nil), metricBytes...), 0))
	invalid("metric timestamp unset", "Metric", vecEnc((&abi.Metric{AgentID: "a", Name: "n"}).Encode))
	invalid("metric empty label name", "Metric", vecEnc((&abi.Metric{AgentID: "a", Name: "n", Timestamp: vecAt(1), Labels: map[string]string{"": "v"}}).Encode))
	manyLabels := make(map[string]string, abi.MaxLabels+1)
	for i := range abi.MaxLabels + 1 {
		manyLabels[fmt.Sprintf("l%02d", i)] = ""
	}
	invalid("metric of 65 labels", "Metric", vecEnc((&abi.Metric{AgentID: "a", Name: "n", Timestamp: vecAt(1), Labels: manyLabels}).Encode))
	invalid("alert of 65 labels", "Alert", vecEnc((&abi.Alert{ID: "x", AgentID: "a", Severity: abi.SeverityInfo, Status: abi.AlertFiring, Labels: manyLabels}).Encode))
	invalid("metric label count over the bytes left", "Metric", vecEnc(func(e *abi.Encoder) {
		e.String("a")
		e.String("n")
		e.F64(0)
		e.Time(vecAt(1))
		e.Uvarint(3)
		e.String("k")
		e.String("v")
		e.Time(time.Time{})
	}))
	invalid("metric label count over 2^24", "Metric", vecEnc(func(e *abi.Encoder) {
		e.String("a")
		e.String("n")
		e.F64(0)
		e.Time(vecAt(1))
		e.Uvarint(1<<24 + 1)
	}))
	invalid("metric key empty name", "MetricKey", vecEnc((&abi.MetricKey{AgentID: "a", Timestamp: vecAt(1)}).Encode))
	invalid("alert severity 0", "Alert", vecEnc((&abi.Alert{ID: "x", AgentID: "a", Status: 1}).Encode))
	invalid("alert status 4", "Alert", vecEnc((&abi.Alert{ID: "x", AgentID: "a", Severity: 1, Status: 4}).Encode))
	invalid("alert id not UTF-8", "Alert", vecEnc((&abi.Alert{ID: "\xff", AgentID: "a", Severity: 1, Status: 1}).Encode))
	invalid("agent state id with NUL", "AgentState", vecEnc((&abi.AgentState{AgentID: "a\x00"}).Encode))
	invalid("agent state id of 513 bytes", "AgentState", vecEnc((&abi.AgentState{AgentID: strings.Repeat("x", 513)}).Encode))
	invalid("put agent state condition mode 3", "PutAgentState", append(vecEnc((&abi.PutAgentState{State: abi.AgentState{AgentID: "a"}}).Encode)[:len(vecEnc((&abi.PutAgentState{State: abi.AgentState{AgentID: "a"}}).Encode))-1], 3))
	invalid("put agent state empty id", "PutAgentState", vecEnc((&abi.PutAgentState{}).Encode))
	invalid("put metric ttl mode 9", "PutMetric", append(vecEnc(metric.Encode), 9))
	invalid("put alert truncated ttl", "PutAlert", append(vecEnc(alert.Encode), 1))
	invalid("delete agent state if absent", "DeleteAgentState", vecEnc((&abi.DeleteAgentState{AgentID: "a", Condition: abi.Condition{Mode: abi.IfAbsent}}).Encode))
	invalid("delete agent state empty id", "DeleteAgentState", vecEnc((&abi.DeleteAgentState{}).Encode))
	invalid("set alert status 0", "SetAlertStatus", vecEnc((&abi.SetAlertStatus{ID: "x"}).Encode))
	invalid("options truncated", "Options", []byte{1, 1, 'a'})
	invalid("metric query limit over 32 bits", "MetricQuery", vecEnc(func(e *abi.Encoder) {
		e.String("")
		e.String("")
		e.Time(time.Time{})
		e.Time(time.Time{})
		e.Uvarint(0)
		e.Uvarint(1 << 32)
		e.BytesField(nil)
	}))
	invalid("alert query severities over the bytes left", "AlertQuery", []byte{0, 5, 1})
	invalid("agent state query trailing byte", "AgentStateQuery", []byte{0, 0, 0, 0})
	invalid("metric page count over the bytes left", "MetricPage", []byte{2, 0, 0, 0, 0})
	invalid("batch op over 32 bits", "Batch", vecEnc(func(e *abi.Encoder) { e.Uvarint(1); e.Uvarint(1 << 32); e.BytesField(nil) }))
	invalid("batch truncated", "Batch", []byte{2, 1, 0})
	invalid("batch results truncated", "BatchResults", []byte{1, 0, 3, 'a'})
	invalid("metadata major over 16 bits", "Metadata", vecEnc(func(e *abi.Encoder) {
		e.Uvarint(1 << 16)
		e.Uvarint(3)
		e.String("x")
		e.String("1")
		e.Uvarint(0)
		e.Uvarint(0)
	}))
	invalid("metadata features over 32 bits", "Metadata", vecEnc(func(e *abi.Encoder) {
		e.Uvarint(1)
		e.Uvarint(3)
		e.String("x")
		e.String("1")
		e.Uvarint(1 << 32)
		e.Uvarint(0)
	}))
	invalid("restore kind 4", "Restore", []byte{4, 1})
	invalid("restore without mode", "Restore", append([]byte{byte(abi.KindAgentState)}, vecEnc((&abi.AgentState{AgentID: "a"}).Encode)...))
	invalid("kv request op 6", "KVRequest", []byte{6, 0})
	invalid("kv put keep_ttl 2", "KVRequest", []byte{2, 1, 'k', 0, 0, 2, 0})
	invalid("kv entry trailing byte", "KVEntry", append(vecEnc(func(e *abi.Encoder) { entry.Encode(e, false) }), 0))
	return vf
}

// TestVectorsFile: testdata/vectors.json is what the Go encoders make of
// the vectors, each valid one decodes whole to its fields, and each
// invalid one is refused as it says. Run with -update to rewrite it.
func TestVectorsFile(t *testing.T) {
	vf := buildVectors(t)
	got, err := json.MarshalIndent(vf, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	if *updateVectors {
		require.NoError(t, os.WriteFile(vectorsPath, got, 0o644))
	}
	have, err := os.ReadFile(vectorsPath)
	require.NoError(t, err, "run: go test ./abi -run TestVectorsFile -update")
	require.True(t, bytes.Equal(have, got), "%s is out of date; run: go test ./abi -run TestVectorsFile -update", vectorsPath)
}
