package abi_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/storage-host/storage-host/abi"
)

// The host decodes these messages from guest memory, which a plugin
// controls entirely. Every target checks two things: decoding never
// panics, and a message that decodes cleanly (Finish() == nil) re-encodes
// into a message that decodes to the same value and encodes to the same
// bytes again (the encoding is canonical after one round).
//
// Run one target with, for example:
//
//	go test ./abi -run='^$' -fuzz='^FuzzDecodeMetadata$' -fuzztime=5s
//
// Crashers the fuzzer finds land in testdata/fuzz/<Target>/ and are then
// run by plain `go test` as regression cases: keep them.

// bodyCodec decodes and encodes one message type through `any`.
type bodyCodec struct {
	decode func(d *abi.Decoder) any
	encode func(e *abi.Encoder, v any)
}

func recordCodec[T any, P message[T]]() bodyCodec {
	return bodyCodec{
		decode: func(d *abi.Decoder) any {
			var v T
			P(&v).Decode(d)
			return v
		},
		encode: func(e *abi.Encoder, v any) {
			x := v.(T)
			P(&x).Encode(e)
		},
	}
}

func pageBodyCodec[T any, P abi.Record[T]]() bodyCodec {
	return bodyCodec{
		decode: func(d *abi.Decoder) any { return abi.DecodePage[T, P](d) },
		encode: func(e *abi.Encoder, v any) {
			p := v.(abi.Page[T])
			abi.EncodePage[T, P](e, &p)
		},
	}
}

// emptyBody is the body of ops that answer with nothing.
var emptyBody = bodyCodec{
	decode: func(d *abi.Decoder) any { return struct{}{} },
	encode: func(e *abi.Encoder, v any) {},
}

var (
	metricBody     = recordCodec[abi.Metric]()
	alertBody      = recordCodec[abi.Alert]()
	agentStateBody = recordCodec[abi.AgentState]()
	metadataBody   = recordCodec[abi.Metadata]()
	kvRequestBody  = recordCodec[abi.KVRequest]()
	restoreBody    = recordCodec[abi.Restore]()
	eventBody      = recordCodec[abi.PluginEvent]()
	// boolBody is the body of an OpRestore response: written bool.
	boolBody = bodyCodec{
		decode: func(d *abi.Decoder) any { return d.Bool() },
		encode: func(e *abi.Encoder, v any) { e.Bool(v.(bool)) },
	}
	batchBody = bodyCodec{
		decode: func(d *abi.Decoder) any { return abi.DecodeBatch(d) },
		encode: func(e *abi.Encoder, v any) { abi.EncodeBatch(e, v.([]abi.BatchItem)) },
	}
	batchResultsBody = bodyCodec{
		decode: func(d *abi.Decoder) any { return abi.DecodeBatchResults(d) },
		encode: func(e *abi.Encoder, v any) { abi.EncodeBatchResults(e, v.([]abi.BatchResult)) },
	}
	optionsBody = bodyCodec{
		decode: func(d *abi.Decoder) any { return abi.DecodeOptions(d) },
		encode: func(e *abi.Encoder, v any) { v.(abi.Options).Encode(e) },
	}
)

// The redis capability (ABI 1.1): the host decodes RedisRequests from
// guest memory, the guest decodes the replies.
var (
	redisRequestBody = recordCodec[abi.RedisRequest]()
	repliesBody      = bodyCodec{
		decode: func(d *abi.Decoder) any { return abi.DecodeReplies(d) },
		encode: func(e *abi.Encoder, v any) { abi.EncodeReplies(e, v.([]abi.Reply)) },
	}
)

// responseBodies maps every op to the body of its OK response.
var responseBodies = map[abi.Op]bodyCodec{
	abi.OpPing:             emptyBody,
	abi.OpConfigure:        emptyBody,
	abi.OpPutMetric:        metricBody,
	abi.OpGetMetric:        metricBody,
	abi.OpDeleteMetric:     emptyBody,
	abi.OpQueryMetrics:     pageBodyCodec[abi.Metric](),
	abi.OpPutAlert:         alertBody,
	abi.OpGetAlert:         alertBody,
	abi.OpDeleteAlert:      emptyBody,
	abi.OpQueryAlerts:      pageBodyCodec[abi.Alert](),
	abi.OpSetAlertStatus:   alertBody,
	abi.OpPutAgentState:    agentStateBody,
	abi.OpGetAgentState:    agentStateBody,
	abi.OpDeleteAgentState: emptyBody,
	abi.OpQueryAgentStates: pageBodyCodec[abi.AgentState](),
	abi.OpBatch:            batchResultsBody,
	abi.OpRestore:          boolBody,
	abi.OpTick:             tickBody,
}

// tickBody is the body of an OpTick response (ABI 1.3).
var tickBody = recordCodec[abi.TickResult]()

// idBody is the body of the requests that carry one ID.
var idBody = bodyCodec{
	decode: func(d *abi.Decoder) any { return d.String() },
	encode: func(e *abi.Encoder, v any) { e.String(v.(string)) },
}

// requestBodies maps every op to its request body, as the guest decodes it.
var requestBodies = map[abi.Op]bodyCodec{
	abi.OpPing:             emptyBody,
	abi.OpConfigure:        optionsBody,
	abi.OpPutMetric:        recordCodec[abi.PutMetric](),
	abi.OpGetMetric:        recordCodec[abi.MetricKey](),
	abi.OpDeleteMetric:     recordCodec[abi.MetricKey](),
	abi.OpQueryMetrics:     recordCodec[abi.MetricQuery](),
	abi.OpPutAlert:         recordCodec[abi.PutAlert](),
	abi.OpGetAlert:         idBody,
	abi.OpDeleteAlert:      idBody,
	abi.OpQueryAlerts:      recordCodec[abi.AlertQuery](),
	abi.OpSetAlertStatus:   recordCodec[abi.SetAlertStatus](),
	abi.OpPutAgentState:    recordCodec[abi.PutAgentState](),
	abi.OpGetAgentState:    idBody,
	abi.OpDeleteAgentState: recordCodec[abi.DeleteAgentState](),
	abi.OpQueryAgentStates: recordCodec[abi.AgentStateQuery](),
	abi.OpBatch:            batchBody,
	abi.OpRestore:          restoreBody,
	abi.OpTick:             emptyBody,
}

// checkRoundTrip decodes data with c and, if that succeeds cleanly, checks
// that the value survives re-encoding. It reports whether data decoded.
func checkRoundTrip(t *testing.T, data []byte, c bodyCodec) bool {
	t.Helper()
	d := abi.NewDecoder(data)
	v1 := c.decode(d)
	if err := d.Finish(); err != nil {
		if !errors.Is(err, abi.ErrTruncated) && !errors.Is(err, abi.ErrMalformed) {
			t.Fatalf("decode error %v is neither ErrTruncated nor ErrMalformed", err)
		}
		return false
	}
	var e abi.Encoder
	c.encode(&e, v1)
	b1 := append([]byte(nil), e.Bytes()...)

	d = abi.NewDecoder(b1)
	v2 := c.decode(d)
	if err := d.Finish(); err != nil {
		t.Fatalf("re-encoded message does not decode: %v\ninput:      %x\nre-encoded: %x\nvalue: %#v", err, data, b1, v1)
	}
	if !sameValue(reflect.ValueOf(v1), reflect.ValueOf(v2)) {
		t.Fatalf("value changed across a round trip\ninput:      %x\nre-encoded: %x\nfirst:  %#v\nsecond: %#v", data, b1, v1, v2)
	}
	e.Reset()
	c.encode(&e, v2)
	if !bytes.Equal(b1, e.Bytes()) {
		t.Fatalf("encoding is not stable\ninput:  %x\nfirst:  %x\nsecond: %x", data, b1, e.Bytes())
	}
	return true
}

// sameValue is reflect.DeepEqual with floats compared bit for bit, so a
// NaN metric value equals itself.
func sameValue(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.String:
		return a.String() == b.String()
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		it := a.MapRange()
		for it.Next() {
			bv := b.MapIndex(it.Key())
			if !bv.IsValid() || !sameValue(it.Value(), bv) {
				return false
			}
		}
		return true
	case reflect.Pointer:
		if a.Pointer() == b.Pointer() {
			return true
		}
		if a.IsNil() || b.IsNil() {
			return false
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Interface:
		return sameValue(a.Elem(), b.Elem())
	}
	panic(fmt.Sprintf("sameValue: unsupported kind %s", a.Kind()))
}

func TestSameValue(t *testing.T) {
	nan := math.NaN()
	if !sameValue(reflect.ValueOf(abi.Metric{Value: nan}), reflect.ValueOf(abi.Metric{Value: nan})) {
		t.Error("NaN metrics must compare equal")
	}
	if sameValue(reflect.ValueOf(abi.Metric{Value: 0}), reflect.ValueOf(abi.Metric{Value: math.Copysign(0, -1)})) {
		t.Error("0 and -0 differ on the wire")
	}
	if sameValue(reflect.ValueOf(abi.Metric{Labels: map[string]string{"a": ""}}), reflect.ValueOf(abi.Metric{Labels: map[string]string{"b": ""}})) {
		t.Error("different labels must differ")
	}
	if sameValue(reflect.ValueOf(abi.Page[abi.Metric]{}), reflect.ValueOf(abi.Page[abi.Metric]{Items: []abi.Metric{}})) {
		t.Error("nil and empty slices differ, as in reflect.DeepEqual")
	}
	if !sameValue(reflect.ValueOf(t0), reflect.ValueOf(t0.Add(0))) {
		t.Error("equal times must compare equal")
	}
	if sameValue(reflect.ValueOf(t0), reflect.ValueOf(t1)) {
		t.Error("different times must differ")
	}
}

// seed encodes values with their codec.
func seed(f *testing.F, c bodyCodec, values ...any) {
	for _, v := range values {
		var e abi.Encoder
		c.encode(&e, v)
		f.Add(append([]byte(nil), e.Bytes()...))
	}
}

func seedRaw(f *testing.F, msgs ...[]byte) {
	for _, m := range msgs {
		f.Add(m)
	}
}

var (
	sampleMetrics = []abi.Metric{fullMetric, {}, {AgentID: "a", Name: "n", Value: math.NaN(), Timestamp: tOld}}
	sampleAlerts  = []abi.Alert{fullAlert, {}, {ID: "x", Severity: 9, Status: 0}}
	sampleStates  = []abi.AgentState{fullState, {}, {AgentID: "a1", State: []byte(`{"x":1}`), Version: 7, UpdatedAt: t0}}
)

func FuzzDecodeMetric(f *testing.F) {
	for _, m := range sampleMetrics {
		seed(f, metricBody, m)
	}
	seedRaw(f, nil, []byte{0}, []byte{1, 'a', 1, 'n'})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, metricBody) })
}

func FuzzDecodeAlert(f *testing.F) {
	for _, a := range sampleAlerts {
		seed(f, alertBody, a)
	}
	seedRaw(f, nil, []byte{0, 0, 1, 1, 0, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, alertBody) })
}

func FuzzDecodeAgentState(f *testing.F) {
	for _, s := range sampleStates {
		seed(f, agentStateBody, s)
	}
	seedRaw(f, nil, []byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, agentStateBody) })
}

func FuzzDecodeMetricPage(f *testing.F) {
	c := pageBodyCodec[abi.Metric]()
	seed(f, c,
		abi.Page[abi.Metric]{Items: sampleMetrics, Next: []byte("cursor")},
		abi.Page[abi.Metric]{Items: []abi.Metric{}},
		abi.Page[abi.Metric]{Items: sampleMetrics[:1]},
	)
	seedRaw(f, nil, []byte{0xff, 0xff, 0x03, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, c) })
}

func FuzzDecodeAlertPage(f *testing.F) {
	c := pageBodyCodec[abi.Alert]()
	seed(f, c,
		abi.Page[abi.Alert]{Items: sampleAlerts, Next: []byte{0}},
		abi.Page[abi.Alert]{Items: []abi.Alert{}},
	)
	seedRaw(f, nil, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, c) })
}

func FuzzDecodeAgentStatePage(f *testing.F) {
	c := pageBodyCodec[abi.AgentState]()
	seed(f, c,
		abi.Page[abi.AgentState]{Items: sampleStates, Next: []byte("agent-2")},
		abi.Page[abi.AgentState]{Items: []abi.AgentState{}},
	)
	seedRaw(f, nil, []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, c) })
}

func FuzzDecodeMetadata(f *testing.F) {
	seed(f, metadataBody,
		abi.Metadata{
			ABI: abi.Current, Name: "redis", Version: "1.0.0",
			Features:     abi.FeatureMetrics | abi.FeatureAlerts | abi.FeatureAgentStates | abi.FeatureQuery | abi.FeatureTTL,
			Capabilities: []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV},
		},
		abi.Metadata{ABI: abi.Version{Major: 2, Minor: 7}, Name: "memory", Version: "0.1.0", Features: abi.FeatureAgentStates},
		abi.Metadata{},
	)
	seedRaw(f, nil, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, metadataBody) })
}

func FuzzDecodeBatchResults(f *testing.F) {
	seed(f, batchResultsBody,
		[]abi.BatchResult{
			{Status: abi.StatusOK, Body: encoded(func(e *abi.Encoder) { fullState.Encode(e) })},
			{Status: abi.StatusNotFound, Body: []byte("no such agent")},
			{Status: abi.StatusOK},
		},
		[]abi.BatchResult{},
	)
	seedRaw(f, nil, []byte{1, 200, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, batchResultsBody) })
}

func FuzzDecodeBatch(f *testing.F) {
	seed(f, batchBody,
		[]abi.BatchItem{
			{Op: abi.OpPutAgentState, Payload: encoded(func(e *abi.Encoder) {
				(&abi.PutAgentState{State: fullState, Condition: abi.Condition{Mode: abi.IfVersion, Version: 3}}).Encode(e)
			})},
			{Op: abi.OpGetAlert, Payload: []byte("\x08alert-42")},
			{Op: abi.OpPing},
		},
		[]abi.BatchItem{},
	)
	seedRaw(f, nil, []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, batchBody) })
}

func FuzzDecodeKVRequest(f *testing.F) {
	seed(f, kvRequestBody,
		abi.KVRequest{Op: abi.KVGet, Key: []byte("m/agent-1")},
		abi.KVRequest{
			Op: abi.KVPut, Key: []byte("k"), Value: []byte("v"), ExpiresAt: t1, KeepTTL: true,
			Condition: abi.Condition{Mode: abi.IfVersion, Version: 12},
		},
		abi.KVRequest{Op: abi.KVPut, Key: []byte("k"), Condition: abi.Condition{Mode: abi.IfAbsent}},
		abi.KVRequest{Op: abi.KVDelete, Key: []byte("k"), Condition: abi.Condition{Mode: abi.IfVersion, Version: 1}},
		abi.KVRequest{Op: abi.KVScan, Key: []byte("a"), End: []byte("b"), Limit: 50},
		abi.KVRequest{Op: abi.KVScan},
	)
	seed(f, kvRequestBody,
		abi.KVRequest{Op: abi.KVRestore, Key: []byte("k"), Value: []byte("v"), Revision: 7, ExpiresAt: t1},
		abi.KVRequest{Op: abi.KVRestore, Key: []byte("k"), Revision: 1, Condition: abi.Condition{Mode: abi.IfAbsent}},
	)
	seedRaw(f, nil, []byte{0, 0}, []byte{2, 0, 0, 0, 2, 0}, []byte{5, 0, 0, 0, 0, 3}, []byte{6, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, kvRequestBody) })
}

func FuzzDecodeRestore(f *testing.F) {
	for _, m := range sampleMetrics {
		seed(f, restoreBody, abi.Restore{Kind: abi.KindMetric, Metric: m, Mode: abi.RestoreFail})
	}
	for _, a := range sampleAlerts {
		seed(f, restoreBody, abi.Restore{Kind: abi.KindAlert, Alert: a, Mode: abi.RestoreSkip})
	}
	for _, s := range sampleStates {
		seed(f, restoreBody, abi.Restore{Kind: abi.KindAgentState, State: s, Mode: abi.RestoreOverwrite})
	}
	seedRaw(f, nil, []byte{0}, []byte{4, 0}, []byte{3, 0, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, restoreBody) })
}

func FuzzDecodePluginEvent(f *testing.F) {
	seed(f, eventBody,
		abi.PluginEvent{Kind: "workflow", Op: "step.done", AgentID: "agent-1", Key: "run-7", Data: []byte(`{"step":3}`)},
		abi.PluginEvent{},
	)
	seedRaw(f, nil, []byte{0, 0, 0, 0, 0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, data []byte) {
		if checkRoundTrip(t, data, eventBody) {
			var ev abi.PluginEvent
			ev.Decode(abi.NewDecoder(data))
			if err := ev.Check(); err != nil && !errors.Is(err, abi.StatusInvalid) && !errors.Is(err, abi.StatusLimit) {
				t.Fatalf("Check returned %v, neither INVALID nor LIMIT", err)
			}
		}
	})
}

func FuzzDecodeTickResult(f *testing.F) {
	seed(f, tickBody,
		abi.TickResult{More: true, Pending: 9, Writes: []abi.TickWrite{
			{Op: abi.OpPutMetric, Metric: fullMetric}, {Op: abi.OpDeleteMetric, Metric: abi.Metric{AgentID: "a", Name: "n", Timestamp: t0}},
			{Op: abi.OpPutAlert, Alert: fullAlert}, {Op: abi.OpSetAlertStatus, Alert: fullAlert},
			{Op: abi.OpDeleteAlert, Alert: abi.Alert{ID: "x", AgentID: "a"}},
			{Op: abi.OpPutAgentState, State: fullState}, {Op: abi.OpDeleteAgentState, State: abi.AgentState{AgentID: "s"}},
		}},
		abi.TickResult{},
	)
	seedRaw(f, nil, []byte{0, 0, 0}, []byte{1, 5, 1, 11, 1, 'a'}, []byte{0, 0, 1, 32, 1, 'a'}, []byte{2, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, tickBody) })
}

func FuzzDecodeRedisRequest(f *testing.F) {
	seed(f, redisRequestBody, samplePipeline, sampleTransaction, sampleScript)
	for _, r := range emptyRedisRequests {
		seed(f, redisRequestBody, r)
	}
	seed(f, redisRequestBody,
		abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{args("GET", "k")}},
		abi.RedisRequest{Mode: abi.RedisScript, Script: []byte("return 1"), Calls: []abi.ScriptCall{{}, {Keys: args("k")}}},
	)
	seedRaw(f, nil, []byte{0, 0}, []byte{4, 0}, []byte{1, 0xff, 0xff, 0x03, 0}, []byte{3, 0, 2, 0, 0, 0}, []byte{3, 0, 1, 0, 0, 7})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, redisRequestBody) })
}

func FuzzDecodeReplies(f *testing.F) {
	seed(f, repliesBody,
		sampleReplies,
		[]abi.Reply{},
		[]abi.Reply{replyOK, {Kind: abi.ReplyBulk, Str: []byte("v")}, replyNil},
		[]abi.Reply{replyMixed, replyNoPerm},
		[]abi.Reply{nestedReply(abi.MaxReplyDepth, replyEmptyBulk), nestedReply(abi.MaxReplyDepth-1, replyEmptyArray)},
	)
	deep := encoded(func(e *abi.Encoder) { abi.EncodeReplies(e, []abi.Reply{nestedReply(abi.MaxReplyDepth+1, replyNil)}) })
	seedRaw(f, nil, deep, []byte{1, 6}, []byte{1, 5, 0xff, 0xff, 0x03}, []byte{1, 4, 0}, []byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, data, repliesBody) })
}

// FuzzDecodeResponse is what the host does with the region storage_call
// returns: split off the status, then decode the body the op promises.
func FuzzDecodeResponse(f *testing.F) {
	okResponse := func(op abi.Op, v any) {
		var e abi.Encoder
		e.U8(uint8(abi.StatusOK))
		responseBodies[op].encode(&e, v)
		f.Add(append([]byte(nil), e.Bytes()...), uint32(op))
	}
	for _, op := range []abi.Op{abi.OpPing, abi.OpConfigure, abi.OpDeleteMetric, abi.OpDeleteAlert, abi.OpDeleteAgentState} {
		okResponse(op, struct{}{})
	}
	okResponse(abi.OpPutMetric, fullMetric)
	okResponse(abi.OpGetMetric, abi.Metric{})
	okResponse(abi.OpPutAlert, fullAlert)
	okResponse(abi.OpSetAlertStatus, abi.Alert{ID: "x", Status: abi.AlertResolved})
	okResponse(abi.OpPutAgentState, fullState)
	okResponse(abi.OpGetAgentState, sampleStates[2])
	okResponse(abi.OpQueryMetrics, abi.Page[abi.Metric]{Items: sampleMetrics, Next: []byte("n")})
	okResponse(abi.OpQueryAlerts, abi.Page[abi.Alert]{Items: sampleAlerts})
	okResponse(abi.OpQueryAgentStates, abi.Page[abi.AgentState]{Items: []abi.AgentState{}})
	okResponse(abi.OpBatch, []abi.BatchResult{{Status: abi.StatusOK}, {Status: abi.StatusConflict, Body: []byte("stale")}})
	okResponse(abi.OpRestore, true)
	okResponse(abi.OpRestore, false)
	okResponse(abi.OpTick, abi.TickResult{More: true, Pending: 3, Writes: []abi.TickWrite{
		{Op: abi.OpPutMetric, Metric: fullMetric}, {Op: abi.OpDeleteAlert, Alert: abi.Alert{ID: "a"}},
		{Op: abi.OpPutAgentState, State: fullState}, {Op: abi.OpDeleteAgentState, State: abi.AgentState{AgentID: "s"}},
	}})
	okResponse(abi.OpTick, abi.TickResult{})
	for s := abi.StatusNotFound; s <= abi.StatusLimit+1; s++ {
		var e abi.Encoder
		abi.AppendError(&e, s, "message for "+s.String())
		f.Add(append([]byte(nil), e.Bytes()...), uint32(abi.OpGetAgentState))
	}
	f.Add([]byte{}, uint32(abi.OpPing))
	f.Add([]byte{0}, uint32(99))

	f.Fuzz(func(t *testing.T, resp []byte, op uint32) {
		body, err := abi.ParseResponse(resp)
		if err != nil {
			var ae *abi.Error
			if !errors.As(err, &ae) {
				t.Fatalf("ParseResponse error %T is not *abi.Error", err)
			}
			if ae.Status == abi.StatusOK || !ae.Status.Known() {
				t.Fatalf("ParseResponse returned status %d", ae.Status)
			}
			if !errors.Is(err, ae.Status) {
				t.Fatal("errors.Is does not match the status")
			}
			var e abi.Encoder
			abi.AppendError(&e, ae.Status, ae.Message)
			_, err2 := abi.ParseResponse(e.Bytes())
			if !reflect.DeepEqual(err, err2) {
				t.Fatalf("error changed across a round trip: %#v then %#v", err, err2)
			}
			return
		}
		if len(resp) == 0 || resp[0] != uint8(abi.StatusOK) || !bytes.Equal(body, resp[1:]) {
			t.Fatalf("ParseResponse(%x) accepted with body %x", resp, body)
		}
		if c, ok := responseBodies[abi.Op(op)]; ok {
			checkRoundTrip(t, body, c)
		}
	})
}

// FuzzDecodeRequest covers the other direction: request bodies as a guest
// (the Go SDK) decodes them from the region the host wrote.
func FuzzDecodeRequest(f *testing.F) {
	for _, c := range codecs() {
		var op abi.Op
		switch c.want.(type) {
		case abi.PutMetric:
			op = abi.OpPutMetric
		case abi.MetricKey:
			op = abi.OpGetMetric
		case abi.MetricQuery:
			op = abi.OpQueryMetrics
		case abi.PutAlert:
			op = abi.OpPutAlert
		case abi.AlertQuery:
			op = abi.OpQueryAlerts
		case abi.SetAlertStatus:
			op = abi.OpSetAlertStatus
		case abi.PutAgentState:
			op = abi.OpPutAgentState
		case abi.DeleteAgentState:
			op = abi.OpDeleteAgentState
		case abi.AgentStateQuery:
			op = abi.OpQueryAgentStates
		case abi.Options:
			op = abi.OpConfigure
		case []abi.BatchItem:
			op = abi.OpBatch
		case abi.Restore:
			op = abi.OpRestore
		default:
			continue
		}
		f.Add(encoded(c.encode), uint32(op))
	}
	f.Add([]byte("\x02a1"), uint32(abi.OpGetAgentState))
	f.Add([]byte{}, uint32(abi.OpPing))

	f.Fuzz(func(t *testing.T, data []byte, op uint32) {
		if c, ok := requestBodies[abi.Op(op)]; ok {
			checkRoundTrip(t, data, c)
		}
	})
}

// FuzzReplyBuffer: a ReplyBuffer decodes what DecodeReplies decodes, and
// fails where it fails, also when it reuses the storage of the response
// before (each input is decoded twice with one buffer, kept across
// inputs).
func FuzzReplyBuffer(f *testing.F) {
	seed(f, repliesBody,
		sampleReplies,
		[]abi.Reply{},
		[]abi.Reply{replyMixed, replyNoPerm},
		[]abi.Reply{nestedReply(abi.MaxReplyDepth, replyEmptyBulk), nestedReply(abi.MaxReplyDepth-1, replyEmptyArray)},
	)
	seedRaw(f, nil, []byte{1, 6}, []byte{1, 5, 0xff, 0xff, 0x03}, []byte{1, 4, 0}, []byte{1, 0, 0})
	var buf abi.ReplyBuffer
	f.Fuzz(func(t *testing.T, data []byte) {
		d := abi.NewDecoder(data)
		want := abi.DecodeReplies(d)
		wantErr := d.Finish()
		for range 2 {
			d := abi.NewDecoder(data)
			got := buf.Decode(d)
			if err := d.Finish(); !errors.Is(err, wantErr) && err != wantErr {
				t.Fatalf("error %v, DecodeReplies %v", err, wantErr)
			}
			if wantErr == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %#v, DecodeReplies %#v", got, want)
			}
		}
	})
}
