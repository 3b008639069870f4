package abi_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// The machine-readable description of the messages (messages.json), as
// this test reads it.
type (
	messageSchema struct {
		ABI      string                `json:"abi"`
		Messages map[string]messageDef `json:"messages"`
	}
	messageDef struct {
		Fields []fieldDef       `json:"fields"`
		Alias  *json.RawMessage `json:"alias"`
	}
	fieldDef struct {
		Name   string          `json:"name"`
		Type   json.RawMessage `json:"type"`
		Values []uint64        `json:"values"`
		When   *struct {
			Field string   `json:"field"`
			In    []uint64 `json:"in"`
			From  *uint64  `json:"from"`
		} `json:"when"`
	}
)

// loadSchema reads messages.json.
func loadSchema(t *testing.T) *messageSchema {
	t.Helper()
	raw, err := os.ReadFile("messages.json")
	if err != nil {
		t.Fatal(err)
	}
	var s messageSchema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("messages.json: %v", err)
	}
	return &s
}

// schemaReader decodes bytes with the description alone, as a generated
// decoder would: every field it reads is named, so the values can be
// compared with what the Go encoder was given.
type schemaReader struct {
	s   *messageSchema
	buf []byte
}

func (r *schemaReader) fail(format string, args ...any) error {
	return fmt.Errorf(format+" (at %d bytes left)", append(args, len(r.buf))...)
}

func (r *schemaReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		return 0, r.fail("bad uvarint")
	}
	r.buf = r.buf[n:]
	return v, nil
}

func (r *schemaReader) bytesField() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.buf)) {
		return nil, r.fail("bytes of %d past the end", n)
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b, nil
}

// value reads one value of type t; earlier holds the fields of the
// message being read, for switch types.
func (r *schemaReader) value(t json.RawMessage, earlier map[string]any) (any, error) {
	var name string
	if json.Unmarshal(t, &name) == nil {
		return r.named(name)
	}
	var composite struct {
		List   json.RawMessage   `json:"list"`
		Switch string            `json:"switch"`
		Cases  map[string]string `json:"cases"`
	}
	if err := json.Unmarshal(t, &composite); err != nil {
		return nil, err
	}
	if composite.List != nil {
		n, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		out := []any{}
		for range n {
			v, err := r.value(composite.List, nil)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	sel, ok := earlier[composite.Switch].(uint64)
	if !ok {
		return nil, fmt.Errorf("switch on %q, which is not an earlier integer field", composite.Switch)
	}
	c, ok := composite.Cases[strconv.FormatUint(sel, 10)]
	if !ok {
		return nil, r.fail("%s %d has no case", composite.Switch, sel)
	}
	return r.named(c)
}

func (r *schemaReader) named(name string) (any, error) {
	switch name {
	case "u8":
		if len(r.buf) < 1 {
			return nil, r.fail("u8 past the end")
		}
		v := r.buf[0]
		r.buf = r.buf[1:]
		return uint64(v), nil
	case "bool":
		if len(r.buf) < 1 || r.buf[0] > 1 {
			return nil, r.fail("bad bool")
		}
		v := r.buf[0] == 1
		r.buf = r.buf[1:]
		return v, nil
	case "uvarint", "u16", "u32":
		v, err := r.uvarint()
		if err == nil && (name == "u16" && v > math.MaxUint16 || name == "u32" && v > math.MaxUint32) {
			err = r.fail("%d does not fit %s", v, name)
		}
		return v, err
	case "varint", "time":
		v, n := binary.Varint(r.buf)
		if n <= 0 {
			return nil, r.fail("bad varint")
		}
		r.buf = r.buf[n:]
		return v, nil
	case "f64":
		if len(r.buf) < 8 {
			return nil, r.fail("f64 past the end")
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(r.buf))
		r.buf = r.buf[8:]
		return v, nil
	case "bytes":
		return r.bytesField()
	case "string":
		b, err := r.bytesField()
		return string(b), err
	}
	def, ok := r.s.Messages[name]
	if !ok {
		return nil, fmt.Errorf("unknown type %q", name)
	}
	if def.Alias != nil {
		return r.value(*def.Alias, nil)
	}
	fields := map[string]any{}
	for _, f := range def.Fields {
		if f.When != nil {
			sel, ok := fields[f.When.Field].(uint64)
			if !ok {
				return nil, fmt.Errorf("%s.%s: when on %q, which is not an earlier integer field", name, f.Name, f.When.Field)
			}
			if from := f.When.From; from != nil && sel < *from || from == nil && !slices.Contains(f.When.In, sel) {
				continue
			}
		}
		v, err := r.value(f.Type, fields)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", name, f.Name, err)
		}
		if f.Values != nil && !slices.Contains(f.Values, v.(uint64)) {
			return nil, fmt.Errorf("%s.%s: %v is not one of %v", name, f.Name, v, f.Values)
		}
		fields[f.Name] = v
	}
	return fields, nil
}

// Distinctive sample values. Every string and bytes field of a sample
// holds its own name in the description ("agent_id", "state"), and every
// time and number field the value named here, so that fields read in
// the wrong order or with the wrong type show.
var (
	sampleTimes = map[string]int64{
		"timestamp": 1001e9, "created_at": 1002e9, "updated_at": 1003e9,
		"expires_at": 1004e9, "from": 1005e9, "to": 1006e9, "int": -1007,
	}
	sampleNumbers = map[string]any{
		"value": 1.5, "severity": uint64(2), "status": uint64(3), "version": uint64(77),
		"duration_ms": uint64(60000), "limit": uint64(42), "abi_major": uint64(1),
		"abi_minor": uint64(3), "features": uint64(5), "revision": uint64(88),
		"pending": uint64(9), "more": true, "resumed": true, "keep_ttl": true, "written": true,
		"float": 2.5, "bool": true, "rows_affected": uint64(3), "columns": uint64(2),
	}
	// Fields that select a layout: each sample sets them as its case needs.
	selectors = []string{"mode", "op", "kind", "ok", "abi_minor"}
)

func at(name string) time.Time { return time.Unix(0, sampleTimes[name]) }

var (
	sMetric    = abi.Metric{AgentID: "agent_id", Name: "name", Value: 1.5, Timestamp: at("timestamp"), Labels: map[string]string{"key": "value"}, ExpiresAt: at("expires_at")}
	sMetricKey = abi.MetricKey{AgentID: "agent_id", Name: "name", Timestamp: at("timestamp")}
	sAlert     = abi.Alert{ID: "id", AgentID: "agent_id", Severity: 2, Status: 3, Message: "message", Labels: map[string]string{"key": "value"},
		CreatedAt: at("created_at"), UpdatedAt: at("updated_at"), ExpiresAt: at("expires_at")}
	sState    = abi.AgentState{AgentID: "agent_id", State: []byte("state"), Version: 77, UpdatedAt: at("updated_at"), ExpiresAt: at("expires_at")}
	sMatchers = []abi.Matcher{{Label: "label", Op: abi.MatchRegexp, Value: "value"}, {Label: "label", Op: abi.MatchEqual, Value: "value"}}
)

func enc(f func(e *abi.Encoder)) []byte {
	var e abi.Encoder
	f(&e)
	return bytes.Clone(e.Bytes())
}

// messageSamples are Go encodings of every message of the description, in
// each of its layouts.
func messageSamples() []struct {
	msg     string
	variant string
	b       []byte
} {
	type sample = struct {
		msg     string
		variant string
		b       []byte
	}
	var out []sample
	add := func(msg, c string, b []byte) { out = append(out, sample{msg, c, b}) }
	add("Metric", "", enc(sMetric.Encode))
	add("MetricKey", "", enc(sMetricKey.Encode))
	add("Alert", "", enc(sAlert.Encode))
	add("AgentState", "", enc(sState.Encode))
	add("ID", "", enc(func(e *abi.Encoder) { e.String("id") }))
	for _, ttl := range []abi.TTL{{}, {Mode: abi.TTLDuration, Duration: time.Minute}, {Mode: abi.TTLPersist}, {Mode: abi.TTLKeep}} {
		add("TTL", fmt.Sprint("mode ", ttl.Mode), enc(ttl.Encode))
		add("PutMetric", fmt.Sprint("ttl mode ", ttl.Mode), enc((&abi.PutMetric{Metric: sMetric, TTL: ttl}).Encode))
		add("PutAlert", fmt.Sprint("ttl mode ", ttl.Mode), enc((&abi.PutAlert{Alert: sAlert, TTL: ttl}).Encode))
	}
	for _, c := range []abi.Condition{{}, {Mode: abi.IfVersion, Version: 77}, {Mode: abi.IfAbsent}} {
		add("Condition", fmt.Sprint("mode ", c.Mode), enc(c.Encode))
		add("PutAgentState", fmt.Sprint("condition mode ", c.Mode), enc((&abi.PutAgentState{State: sState, TTL: abi.TTL{Mode: abi.TTLDuration, Duration: time.Minute}, Condition: c}).Encode))
		add("DeleteAgentState", fmt.Sprint("condition mode ", c.Mode), enc((&abi.DeleteAgentState{AgentID: "agent_id", Condition: c}).Encode))
	}
	add("SetAlertStatus", "", enc((&abi.SetAlertStatus{ID: "id", Status: 3}).Encode))
	add("MetricQuery", "", enc((&abi.MetricQuery{AgentID: "agent_id", Name: "name", From: at("from"), To: at("to"), Labels: sMatchers, Limit: 42, Cursor: []byte("cursor")}).Encode))
	add("AlertQuery", "", enc((&abi.AlertQuery{AgentID: "agent_id", Severities: []abi.Severity{1, 3}, Statuses: []abi.AlertStatus{2}, Labels: sMatchers, From: at("from"), To: at("to"), Limit: 42, Cursor: []byte("cursor")}).Encode))
	add("AgentStateQuery", "", enc((&abi.AgentStateQuery{AgentIDPrefix: "agent_id_prefix", Limit: 42, Cursor: []byte("cursor")}).Encode))
	add("MetricPage", "", enc(func(e *abi.Encoder) {
		abi.EncodePage(e, &abi.Page[abi.Metric]{Items: []abi.Metric{sMetric, sMetric}, Next: []byte("next")})
	}))
	add("AlertPage", "", enc(func(e *abi.Encoder) {
		abi.EncodePage(e, &abi.Page[abi.Alert]{Items: []abi.Alert{sAlert}, Next: []byte("next")})
	}))
	add("AgentStatePage", "", enc(func(e *abi.Encoder) {
		abi.EncodePage(e, &abi.Page[abi.AgentState]{Items: []abi.AgentState{sState}, Next: []byte("next")})
	}))
	add("Options", "", enc(abi.Options{"key": "value"}.Encode))
	add("Metadata", "ABI 1.3", enc((&abi.Metadata{ABI: abi.Version{Major: 1, Minor: 3}, Name: "name", Version: "version", Features: 5, Capabilities: []abi.Capability{"log", "kv"}}).Encode))
	add("Metadata", "ABI 1.8", enc((&abi.Metadata{ABI: abi.Version{Major: 1, Minor: 8}, Name: "name", Version: "version", Features: 5, Capabilities: []abi.Capability{"log", "kv"},
		KVReads: []abi.KVRead{{Kind: abi.KindAgentState, Prefix: []byte("prefix")}}}).Encode))
	add("Metadata", "ABI 1.9", enc((&abi.Metadata{ABI: abi.Version{Major: 1, Minor: 9}, Name: "name", Version: "version", Features: 5, Capabilities: []abi.Capability{"redis", "kv"},
		RedisReads: []abi.RedisRead{{Kind: abi.KindAlert, KeyPrefix: []byte("key_prefix"), KeySuffix: []byte("key_suffix"), Guard: []byte("guard")}},
		PGReads:    []abi.PGRead{{Kind: abi.KindAgentState, SQL: "sql"}}}).Encode))
	add("Batch", "", enc(func(e *abi.Encoder) {
		abi.EncodeBatch(e, []abi.BatchItem{{Op: abi.OpGetAgentState, Payload: []byte("payload")}, {Op: abi.OpPing, Payload: []byte("payload")}})
	}))
	add("BatchResults", "", enc(func(e *abi.Encoder) {
		abi.EncodeBatchResults(e, []abi.BatchResult{{Status: 3, Body: []byte("body")}})
	}))
	for _, r := range []abi.Restore{{Kind: abi.KindMetric, Metric: sMetric}, {Kind: abi.KindAlert, Alert: sAlert}, {Kind: abi.KindAgentState, State: sState}} {
		r.Mode = abi.RestoreSkip
		add("Restore", fmt.Sprint("kind ", r.Kind), enc(r.Encode))
	}
	add("RestoreResult", "", enc(func(e *abi.Encoder) { e.Bool(true) }))
	for _, w := range []abi.TickWrite{
		{Op: abi.OpPutMetric, Metric: sMetric}, {Op: abi.OpDeleteMetric, Metric: sMetric},
		{Op: abi.OpPutAlert, Alert: sAlert}, {Op: abi.OpSetAlertStatus, Alert: sAlert}, {Op: abi.OpDeleteAlert, Alert: sAlert},
		{Op: abi.OpPutAgentState, State: sState}, {Op: abi.OpDeleteAgentState, State: abi.AgentState{AgentID: "id"}},
	} {
		add("TickWrite", w.Op.String(), enc(w.Encode))
	}
	add("TickRequest", "", enc((&abi.TickRequest{Resumed: true}).Encode))
	add("TickResult", "", enc((&abi.TickResult{More: true, Pending: 9, Writes: []abi.TickWrite{{Op: abi.OpPutAgentState, State: sState}}}).Encode))
	add("PluginEvent", "", enc((&abi.PluginEvent{Kind: "kind", Op: "op", AgentID: "agent_id", Key: "key", Data: []byte("data")}).Encode))
	cond := abi.Condition{Mode: abi.IfVersion, Version: 77}
	for _, r := range []abi.KVRequest{
		{Op: abi.KVGet, Key: []byte("key")},
		{Op: abi.KVPut, Key: []byte("key"), Value: []byte("value"), ExpiresAt: at("expires_at"), KeepTTL: true, Condition: cond},
		{Op: abi.KVDelete, Key: []byte("key"), Condition: cond},
		{Op: abi.KVScan, Key: []byte("key"), End: []byte("end"), Limit: 42},
		{Op: abi.KVRestore, Key: []byte("key"), Value: []byte("value"), Revision: 88, ExpiresAt: at("expires_at"), Condition: cond},
	} {
		add("KVRequest", fmt.Sprint("op ", r.Op), enc(r.Encode))
	}
	// The kv capability's answers (section 11), after their status byte.
	entry := abi.KVEntry{Key: []byte("key"), Revision: 88, ExpiresAt: at("expires_at"), Value: []byte("value")}
	add("KVEntry", "get", enc(func(e *abi.Encoder) { entry.Encode(e, false) }))
	add("KVScanPage", "scan", enc(func(e *abi.Encoder) {
		e.Uvarint(1)
		entry.Encode(e, true)
		e.BytesField([]byte("next"))
	}))
	add("KVWritten", "put, restore", enc(func(e *abi.Encoder) {
		e.Uvarint(88)
		e.Time(at("expires_at"))
	}))
	pgValues := []abi.PGValue{{Kind: abi.PGNull}, {Kind: abi.PGInt, Int: sampleTimes["int"]}, {Kind: abi.PGFloat, Float: 2.5},
		{Kind: abi.PGText, Bytes: []byte("text")}, {Kind: abi.PGBytea, Bytes: []byte("bytea")}, {Kind: abi.PGBool, Bool: true}}
	for _, mode := range []abi.PGMode{abi.PGBatch, abi.PGTransaction} {
		add("PGRequest", fmt.Sprint("mode ", mode), enc((&abi.PGRequest{Mode: mode, Statements: []abi.PGStatement{{SQL: "sql", Params: pgValues}}}).Encode))
	}
	add("PGResults", "", enc(func(e *abi.Encoder) {
		abi.EncodePGResults(e, []abi.PGResult{
			{OK: true, RowsAffected: 3, Columns: 2, Values: append(pgValues[:2:2], pgValues[2:]...)},
			{SQLState: "sqlstate", Message: "message"},
		})
	}))
	add("Migrations", "", enc(abi.Migrations{{Version: 77, SQL: "sql"}}.Encode))
	return out
}

// checkNamed requires every field of a decoded value to hold its sample:
// strings and bytes their own name, times and numbers the values above.
func checkNamed(t *testing.T, where string, v any) {
	t.Helper()
	switch v := v.(type) {
	case []any:
		for i, e := range v {
			checkNamed(t, fmt.Sprintf("%s[%d]", where, i), e)
		}
	case map[string]any:
		for name, fv := range v {
			at := where + "." + name
			switch fv := fv.(type) {
			case string:
				if fv != name {
					t.Errorf("%s is %q, want %q: a field out of place", at, fv, name)
				}
			case []byte:
				if string(fv) != name {
					t.Errorf("%s is %q, want %q: a field out of place", at, fv, name)
				}
			case int64:
				if want, ok := sampleTimes[name]; !ok || fv != want {
					t.Errorf("%s is %d, want the sample time of %q", at, fv, name)
				}
			case map[string]any, []any:
				checkNamed(t, at, fv)
			default:
				if slices.Contains(selectors, name) {
					continue
				}
				if want, ok := sampleNumbers[name]; !ok || fv != want {
					t.Errorf("%s is %v (%T), want %v", at, fv, fv, want)
				}
			}
		}
	}
}

// TestMessagesMatchEncoders reads the Go encoders' output of every message,
// in every layout, with messages.json alone: each decodes to its last
// byte, with every field in its place.
func TestMessagesMatchEncoders(t *testing.T) {
	s := loadSchema(t)
	if s.ABI != abi.Current.String() {
		t.Errorf("messages.json describes ABI %s; this package speaks %s", s.ABI, abi.Current)
	}
	described := map[string]bool{}
	for _, smp := range messageSamples() {
		described[smp.msg] = true
		r := &schemaReader{s: s, buf: smp.b}
		v, err := r.named(smp.msg)
		if err != nil {
			t.Errorf("%s (%s): %v", smp.msg, smp.variant, err)
			continue
		}
		if len(r.buf) != 0 {
			t.Errorf("%s (%s): %d bytes left after the described fields", smp.msg, smp.variant, len(r.buf))
		}
		checkNamed(t, smp.msg+"("+smp.variant+")", v)
	}
	for name := range s.Messages {
		switch name {
		case "Label", "Labels", "Matcher", "Matchers", "BatchItem", "BatchResult", "DeletedAlert",
			"PGValue", "PGStatement", "PGResult", "Migration", "KVRead", "RedisRead", "PGRead", "KVScanEntry":
			continue // parts of the messages sampled
		}
		if !described[name] {
			t.Errorf("messages.json describes %s, which no sample checks", name)
		}
	}
}

// TestMessagesRefuseWhatTheDecodersRefuse: the "values" of a field are
// the ones the Go decoders accept.
func TestMessagesRefuseWhatTheDecodersRefuse(t *testing.T) {
	s := loadSchema(t)
	for _, c := range []struct {
		msg    string
		b      []byte
		decode func(d *abi.Decoder)
	}{
		{"Condition", []byte{3}, func(d *abi.Decoder) { var c abi.Condition; c.Decode(d) }},
		{"KVRequest", []byte{6, 0}, func(d *abi.Decoder) { var r abi.KVRequest; r.Decode(d) }},
		{"Restore", []byte{4, 0}, func(d *abi.Decoder) { var r abi.Restore; r.Decode(d) }},
		{"TickWrite", []byte{1}, func(d *abi.Decoder) { var w abi.TickWrite; w.Decode(d) }},
	} {
		d := abi.NewDecoder(c.b)
		c.decode(d)
		if d.Finish() == nil {
			t.Errorf("%s % x: the Go decoder accepts it", c.msg, c.b)
		}
		r := &schemaReader{s: s, buf: c.b}
		if _, err := r.named(c.msg); err == nil {
			t.Errorf("%s % x: messages.json accepts it", c.msg, c.b)
		}
	}
}

// fieldTable renders the description as the table of abi/README.md's
// section 10.0: one row per message, its fields in order.
func fieldTable(s *messageSchema) string {
	typeName := func(t json.RawMessage) string {
		var name string
		if json.Unmarshal(t, &name) == nil {
			return name
		}
		var c struct {
			List   json.RawMessage   `json:"list"`
			Switch string            `json:"switch"`
			Cases  map[string]string `json:"cases"`
		}
		_ = json.Unmarshal(t, &c)
		if c.List != nil {
			var elem string
			_ = json.Unmarshal(c.List, &elem)
			return "list of " + elem
		}
		keys := make([]string, 0, len(c.Cases))
		for k := range c.Cases {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+": "+c.Cases[k])
		}
		return "by " + c.Switch + " (" + joinWith(parts, ", ") + ")"
	}
	names := make([]string, 0, len(s.Messages))
	for n := range s.Messages {
		names = append(names, n)
	}
	slices.Sort(names)
	var b bytes.Buffer
	b.WriteString("| message | fields, in order |\n|---|---|\n")
	for _, n := range names {
		def := s.Messages[n]
		var cells []string
		if def.Alias != nil {
			cells = append(cells, typeName(*def.Alias))
		}
		for _, f := range def.Fields {
			c := "`" + f.Name + "` " + typeName(f.Type)
			if f.When != nil {
				var in []string
				for _, v := range f.When.In {
					in = append(in, strconv.FormatUint(v, 10))
				}
				if f.When.From != nil {
					in = append(in, strconv.FormatUint(*f.When.From, 10)+" or more")
				}
				c += " (when " + f.When.Field + " is " + joinWith(in, " or ") + ")"
			}
			cells = append(cells, c)
		}
		fmt.Fprintf(&b, "| %s | %s |\n", n, joinWith(cells, " · "))
	}
	return b.String()
}

func joinWith(parts []string, sep string) string {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(p)
	}
	return b.String()
}

// TestReadmeFieldTable: the table of every message's fields in
// abi/README.md is the one messages.json gives (STORAGE_HOST_UPDATE=1
// rewrites it).
func TestReadmeFieldTable(t *testing.T) {
	s := loadSchema(t)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- fields: generated from messages.json -->\n", "<!-- end of fields -->\n"
	i, j := bytes.Index(readme, []byte(begin)), bytes.Index(readme, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q section", begin, end)
	}
	want := fieldTable(s)
	if got := string(readme[i+len(begin) : j]); got != want {
		if os.Getenv("STORAGE_HOST_UPDATE") != "" {
			out := append(append(bytes.Clone(readme[:i+len(begin)]), want...), readme[j:]...)
			if err := os.WriteFile("README.md", out, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md's field table differs from messages.json; run STORAGE_HOST_UPDATE=1 go test ./abi -run TestReadmeFieldTable\nwant:\n%s", want)
	}
}

// TestMetadataListBounds: a Metadata listing more reads of a kind list
// than there are kinds to serve, or more capabilities than the bound, is
// malformed before its elements are decoded.
func TestMetadataListBounds(t *testing.T) {
	decode := func(m abi.Metadata) error {
		var e abi.Encoder
		m.Encode(&e)
		var got abi.Metadata
		d := abi.NewDecoder(e.Bytes())
		got.Decode(d)
		return d.Finish()
	}
	v19 := abi.Version{Major: 1, Minor: 9}
	base := abi.Metadata{ABI: v19, Name: "n", Version: "1"}
	ok := base
	ok.KVReads = make([]abi.KVRead, abi.MaxMetadataReads)
	ok.RedisReads = make([]abi.RedisRead, abi.MaxMetadataReads)
	ok.PGReads = make([]abi.PGRead, abi.MaxMetadataReads)
	ok.Capabilities = make([]abi.Capability, abi.MaxMetadataCapabilities)
	for i := range ok.Capabilities {
		ok.Capabilities[i] = "c"
	}
	require.NoError(t, decode(ok))
	for name, m := range map[string]func(*abi.Metadata){
		"kv_reads":     func(m *abi.Metadata) { m.KVReads = make([]abi.KVRead, abi.MaxMetadataReads+1) },
		"redis_reads":  func(m *abi.Metadata) { m.RedisReads = make([]abi.RedisRead, abi.MaxMetadataReads+1) },
		"pg_reads":     func(m *abi.Metadata) { m.PGReads = make([]abi.PGRead, abi.MaxMetadataReads+1) },
		"capabilities": func(m *abi.Metadata) { m.Capabilities = append(ok.Capabilities, "c") },
	} {
		bad := base
		m(&bad)
		require.ErrorIs(t, decode(bad), abi.ErrMalformed, name)
	}
}
