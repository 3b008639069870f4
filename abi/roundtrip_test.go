package abi_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// codec is one message type with one value of it: how to encode the value
// and how to decode a message into a fresh value. want is the value as
// decoding yields it (UTC times, nil for empty byte strings and labels).
type codec struct {
	name     string
	want     any
	encode   func(e *abi.Encoder)
	decode   func(d *abi.Decoder) any
	reencode func(e *abi.Encoder, v any) // encodes a value decode returned
}

// message is a pointer to a type with Encode and Decode methods.
type message[T any] interface {
	*T
	Encode(*abi.Encoder)
	Decode(*abi.Decoder)
}

func msgCodec[T any, P message[T]](name string, v T) codec {
	return codec{
		name:   name,
		want:   v,
		encode: func(e *abi.Encoder) { P(&v).Encode(e) },
		decode: func(d *abi.Decoder) any {
			var got T
			P(&got).Decode(d)
			return got
		},
		reencode: func(e *abi.Encoder, v any) {
			x := v.(T)
			P(&x).Encode(e)
		},
	}
}

func pageCodec[T any, P abi.Record[T]](name string, p abi.Page[T]) codec {
	return codec{
		name:   name,
		want:   p,
		encode: func(e *abi.Encoder) { abi.EncodePage[T, P](e, &p) },
		decode: func(d *abi.Decoder) any { return abi.DecodePage[T, P](d) },
		reencode: func(e *abi.Encoder, v any) {
			x := v.(abi.Page[T])
			abi.EncodePage[T, P](e, &x)
		},
	}
}

func optionsCodec(name string, o abi.Options) codec {
	return codec{
		name:     name,
		want:     o,
		encode:   func(e *abi.Encoder) { o.Encode(e) },
		decode:   func(d *abi.Decoder) any { return abi.DecodeOptions(d) },
		reencode: func(e *abi.Encoder, v any) { v.(abi.Options).Encode(e) },
	}
}

func batchCodec(name string, items []abi.BatchItem) codec {
	return codec{
		name:     name,
		want:     items,
		encode:   func(e *abi.Encoder) { abi.EncodeBatch(e, items) },
		decode:   func(d *abi.Decoder) any { return abi.DecodeBatch(d) },
		reencode: func(e *abi.Encoder, v any) { abi.EncodeBatch(e, v.([]abi.BatchItem)) },
	}
}

func batchResultsCodec(name string, rs []abi.BatchResult) codec {
	return codec{
		name:     name,
		want:     rs,
		encode:   func(e *abi.Encoder) { abi.EncodeBatchResults(e, rs) },
		decode:   func(d *abi.Decoder) any { return abi.DecodeBatchResults(d) },
		reencode: func(e *abi.Encoder, v any) { abi.EncodeBatchResults(e, v.([]abi.BatchResult)) },
	}
}

func kvEntryCodec(name string, en abi.KVEntry, withKey bool) codec {
	return codec{
		name:   name,
		want:   en,
		encode: func(e *abi.Encoder) { en.Encode(e, withKey) },
		decode: func(d *abi.Decoder) any {
			var got abi.KVEntry
			got.Decode(d, withKey)
			return got
		},
		reencode: func(e *abi.Encoder, v any) {
			x := v.(abi.KVEntry)
			x.Encode(e, withKey)
		},
	}
}

var (
	t0 = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	t1 = t0.Add(time.Hour)
	t2 = t0.Add(24 * time.Hour)
	// tOld is before 1970, so its Unix nanoseconds are negative.
	tOld = time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)
)

var (
	fullMetric = abi.Metric{
		AgentID: "agent-1", Name: "cpu.load", Value: -0.25, Timestamp: t0,
		Labels: map[string]string{"host": "h1", "region": "eu", "empty": ""}, ExpiresAt: t1,
	}
	fullAlert = abi.Alert{
		ID: "alert-42", AgentID: "agent-1", Severity: abi.SeverityCritical, Status: abi.AlertAcknowledged,
		Message: "disk ≥ 95 %", Labels: map[string]string{"disk": "/dev/sda"},
		CreatedAt: t0, UpdatedAt: t1, ExpiresAt: t2,
	}
	fullState = abi.AgentState{
		AgentID: "agent-1", State: []byte(`{"step":3,"memory":["a","b"]}`),
		Version: math.MaxUint64, UpdatedAt: t0, ExpiresAt: t1,
	}
	allMatchers = []abi.Matcher{
		{Label: "env", Op: abi.MatchEqual, Value: "prod"},
		{Label: "team", Op: abi.MatchNotEqual, Value: ""},
		{Label: "host", Op: abi.MatchRegexp, Value: "web-[0-9]+"},
		{Label: "zone", Op: abi.MatchNotRegexp, Value: "eu-.*"},
	}
)

// codecs lists every message type of the ABI with representative values.
func codecs() []codec {
	return append([]codec{
		// Records.
		msgCodec("metric/full", fullMetric),
		msgCodec("metric/zero", abi.Metric{}),
		msgCodec("metric/infinite value before 1970", abi.Metric{AgentID: "a", Name: "n", Value: math.Inf(1), Timestamp: tOld}),
		msgCodec("metric key", fullMetric.Key()),
		msgCodec("metric key/zero", abi.MetricKey{}),
		msgCodec("alert/full", fullAlert),
		msgCodec("alert/zero", abi.Alert{}),
		msgCodec("agent state/full", fullState),
		msgCodec("agent state/empty document", abi.AgentState{AgentID: "a"}),

		// TTLs and conditions.
		msgCodec("ttl/default", abi.TTL{Mode: abi.TTLDefault}),
		msgCodec("ttl/duration", abi.TTL{Mode: abi.TTLDuration, Duration: 90 * time.Second}),
		msgCodec("ttl/duration 1ms", abi.TTL{Mode: abi.TTLDuration, Duration: time.Millisecond}),
		msgCodec("ttl/persist", abi.TTL{Mode: abi.TTLPersist}),
		msgCodec("ttl/keep", abi.TTL{Mode: abi.TTLKeep}),
		msgCodec("ttl/unknown mode", abi.TTL{Mode: 9}),
		msgCodec("condition/unconditional", abi.Condition{Mode: abi.Unconditional}),
		msgCodec("condition/if version", abi.Condition{Mode: abi.IfVersion, Version: 1 << 40}),
		msgCodec("condition/if version 0", abi.Condition{Mode: abi.IfVersion}),
		msgCodec("condition/if absent", abi.Condition{Mode: abi.IfAbsent}),

		// Requests.
		msgCodec("put metric", abi.PutMetric{Metric: fullMetric, TTL: abi.TTL{Mode: abi.TTLDuration, Duration: time.Minute}}),
		msgCodec("put alert", abi.PutAlert{Alert: fullAlert, TTL: abi.TTL{Mode: abi.TTLPersist}}),
		msgCodec("put agent state/if version keep", abi.PutAgentState{
			State: fullState, TTL: abi.TTL{Mode: abi.TTLKeep}, Condition: abi.Condition{Mode: abi.IfVersion, Version: 7},
		}),
		msgCodec("put agent state/if absent", abi.PutAgentState{
			State: abi.AgentState{AgentID: "a1", State: []byte(`{"x":1}`)}, Condition: abi.Condition{Mode: abi.IfAbsent},
		}),
		msgCodec("delete agent state/unconditional", abi.DeleteAgentState{AgentID: "a1"}),
		msgCodec("delete agent state/if version", abi.DeleteAgentState{
			AgentID: "a1", Condition: abi.Condition{Mode: abi.IfVersion, Version: 3},
		}),
		msgCodec("set alert status", abi.SetAlertStatus{ID: "alert-42", Status: abi.AlertResolved}),
		msgCodec("metric query/full", abi.MetricQuery{
			AgentID: "agent-1", Name: "cpu.load", From: tOld, To: t1, Labels: allMatchers,
			Limit: math.MaxUint32, Cursor: []byte{0, 1, 0xff},
		}),
		msgCodec("metric query/zero", abi.MetricQuery{}),
		msgCodec("alert query/full", abi.AlertQuery{
			AgentID:    "agent-1",
			Severities: []abi.Severity{abi.SeverityWarning, abi.SeverityCritical},
			Statuses:   []abi.AlertStatus{abi.AlertFiring, abi.AlertAcknowledged, abi.AlertResolved},
			Labels:     allMatchers[:2], From: t0, To: t2, Limit: 10, Cursor: []byte("next"),
		}),
		msgCodec("alert query/zero", abi.AlertQuery{}),
		msgCodec("agent state query/full", abi.AgentStateQuery{AgentIDPrefix: "agent-", Limit: 1000, Cursor: []byte("c")}),
		msgCodec("agent state query/zero", abi.AgentStateQuery{}),
		optionsCodec("options/full", abi.Options{
			"metric_ttl_seconds": "86400", "alert_ttl_seconds": "172800", "agent_state_ttl_seconds": "3600",
		}),
		optionsCodec("options/empty", nil),
		batchCodec("batch/full", []abi.BatchItem{
			{Op: abi.OpPutMetric, Payload: encoded(func(e *abi.Encoder) {
				(&abi.PutMetric{Metric: fullMetric}).Encode(e)
			})},
			{Op: abi.OpPing},
			{Op: abi.OpGetAlert, Payload: encoded(func(e *abi.Encoder) { e.String("alert-42") })},
		}),
		batchCodec("batch/empty", []abi.BatchItem{}),

		// Responses.
		pageCodec("metric page/full", abi.Page[abi.Metric]{
			Items: []abi.Metric{fullMetric, {AgentID: "a", Name: "n", Timestamp: t1}}, Next: []byte("cursor"),
		}),
		pageCodec("metric page/empty", abi.Page[abi.Metric]{Items: []abi.Metric{}}),
		pageCodec("alert page/full", abi.Page[abi.Alert]{Items: []abi.Alert{fullAlert}, Next: []byte{1}}),
		pageCodec("alert page/empty", abi.Page[abi.Alert]{Items: []abi.Alert{}}),
		pageCodec("agent state page/full", abi.Page[abi.AgentState]{
			Items: []abi.AgentState{fullState, {AgentID: "b", Version: 1}},
		}),
		pageCodec("agent state page/empty", abi.Page[abi.AgentState]{Items: []abi.AgentState{}, Next: []byte("x")}),
		msgCodec("metadata/full", abi.Metadata{
			ABI: abi.Version{Major: 1, Minor: 65535}, Name: "redis", Version: "1.2.3",
			Features: abi.FeatureMetrics | abi.FeatureAlerts | abi.FeatureAgentStates | abi.FeatureQuery |
				abi.FeatureBatch | abi.FeatureTTL | abi.FeatureConcurrency,
			Capabilities: []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV, abi.CapabilityRedis},
		}),
		msgCodec("metadata/zero", abi.Metadata{}),
		batchResultsCodec("batch results/full", []abi.BatchResult{
			{Status: abi.StatusOK, Body: encoded(func(e *abi.Encoder) { fullMetric.Encode(e) })},
			{Status: abi.StatusOK},
			{Status: abi.StatusNotFound, Body: []byte("no alert alert-42")},
			{Status: abi.StatusConflict},
		}),
		batchResultsCodec("batch results/empty", []abi.BatchResult{}),

		// The kv capability.
		msgCodec("kv get", abi.KVRequest{Op: abi.KVGet, Key: []byte("k")}),
		msgCodec("kv get/empty key", abi.KVRequest{Op: abi.KVGet}),
		msgCodec("kv put/full", abi.KVRequest{
			Op: abi.KVPut, Key: []byte("k"), Value: []byte("v"), ExpiresAt: t1, KeepTTL: true,
			Condition: abi.Condition{Mode: abi.IfVersion, Version: 12},
		}),
		msgCodec("kv put/plain", abi.KVRequest{Op: abi.KVPut, Key: []byte("k"), Value: []byte{0}}),
		msgCodec("kv put/if absent", abi.KVRequest{Op: abi.KVPut, Key: []byte("k"), Condition: abi.Condition{Mode: abi.IfAbsent}}),
		msgCodec("kv delete", abi.KVRequest{Op: abi.KVDelete, Key: []byte("k")}),
		msgCodec("kv delete/if version", abi.KVRequest{
			Op: abi.KVDelete, Key: []byte("k"), Condition: abi.Condition{Mode: abi.IfVersion, Version: 1},
		}),
		msgCodec("kv scan", abi.KVRequest{Op: abi.KVScan, Key: []byte("a"), End: []byte("b"), Limit: 50}),
		msgCodec("kv scan/unbounded", abi.KVRequest{Op: abi.KVScan}),
		kvEntryCodec("kv entry/with key", abi.KVEntry{Key: []byte("k"), Revision: 3, ExpiresAt: t1, Value: []byte("v")}, true),
		kvEntryCodec("kv entry/without key", abi.KVEntry{Revision: 3, Value: []byte("v")}, false),
		kvEntryCodec("kv entry/empty", abi.KVEntry{}, true),
		msgCodec("kv restore/full", abi.KVRequest{
			Op: abi.KVRestore, Key: []byte("k"), Value: []byte("v"), Revision: math.MaxUint64, ExpiresAt: tOld,
			Condition: abi.Condition{Mode: abi.IfAbsent},
		}),
		msgCodec("kv restore/plain", abi.KVRequest{Op: abi.KVRestore, Key: []byte("k"), Revision: 1}),
		msgCodec("kv restore/if version", abi.KVRequest{
			Op: abi.KVRestore, Key: []byte("k"), Revision: 9, Condition: abi.Condition{Mode: abi.IfVersion, Version: 3},
		}),

		// ABI 1.2: restores and plugin events.
		msgCodec("restore/metric", abi.Restore{Kind: abi.KindMetric, Metric: fullMetric, Mode: abi.RestoreFail}),
		msgCodec("restore/alert", abi.Restore{Kind: abi.KindAlert, Alert: fullAlert, Mode: abi.RestoreSkip}),
		msgCodec("restore/agent state", abi.Restore{Kind: abi.KindAgentState, State: fullState, Mode: abi.RestoreOverwrite}),
		msgCodec("restore/zero metric", abi.Restore{Kind: abi.KindMetric}),
		msgCodec("restore/unknown mode", abi.Restore{Kind: abi.KindAgentState, State: abi.AgentState{AgentID: "a", Version: 1}, Mode: 9}),
		msgCodec("plugin event/full", abi.PluginEvent{
			Kind: "workflow", Op: "step.done", AgentID: "agent-1", Key: "run-7", Data: []byte{0, 1, 0xff},
		}),
		msgCodec("plugin event/zero", abi.PluginEvent{}),

		// ABI 1.3: tick results.
		msgCodec("tick result/full", abi.TickResult{More: true, Pending: 1 << 40, Writes: []abi.TickWrite{
			{Op: abi.OpPutMetric, Metric: fullMetric},
			{Op: abi.OpDeleteMetric, Metric: abi.Metric{AgentID: "agent-1", Name: "cpu.load", Timestamp: tOld}},
			{Op: abi.OpPutAlert, Alert: fullAlert},
			{Op: abi.OpSetAlertStatus, Alert: abi.Alert{ID: "x", Status: abi.AlertResolved}},
			{Op: abi.OpDeleteAlert, Alert: abi.Alert{ID: "alert-42", AgentID: "agent-1"}},
			{Op: abi.OpDeleteAlert, Alert: abi.Alert{ID: "alert-43"}},
			{Op: abi.OpPutAgentState, State: fullState},
			{Op: abi.OpDeleteAgentState, State: abi.AgentState{AgentID: "agent-1"}},
		}}),
		msgCodec("tick result/idle", abi.TickResult{Writes: []abi.TickWrite{}}),
	}, redisCodecs()...) // the redis capability (ABI 1.1), in redis_test.go
}

func TestRoundTrip(t *testing.T) {
	for _, c := range codecs() {
		t.Run(c.name, func(t *testing.T) {
			msg := encoded(c.encode)
			d := abi.NewDecoder(msg)
			got := c.decode(d)
			require.NoError(t, d.Finish())
			assert.Equal(t, c.want, got)

			// Encoding is deterministic: the decoded value encodes to the
			// same bytes.
			again := encoded(func(e *abi.Encoder) { c.reencode(e, got) })
			assert.Equal(t, msg, again)
		})
	}
}

// TestTruncated cuts every message at every byte offset: decoding must
// report an error and never panic.
func TestTruncated(t *testing.T) {
	for _, c := range codecs() {
		t.Run(c.name, func(t *testing.T) {
			msg := encoded(c.encode)
			for n := 0; n < len(msg); n++ {
				d := abi.NewDecoder(msg[:n:n])
				require.NotPanics(t, func() { c.decode(d) }, "prefix of %d bytes", n)
				err := d.Finish()
				require.Error(t, err, "prefix of %d of %d bytes decoded without error", n, len(msg))
				if !assert.True(t, isDecodeError(err), "prefix of %d bytes: %v", n, err) {
					return
				}
			}
		})
	}
}

// TestTrailingBytes appends one byte to every message: Finish must notice.
func TestTrailingBytes(t *testing.T) {
	for _, c := range codecs() {
		t.Run(c.name, func(t *testing.T) {
			msg := append(encoded(c.encode), 0)
			d := abi.NewDecoder(msg)
			c.decode(d)
			assert.NoError(t, d.Err(), "the message itself decodes")
			assert.ErrorIs(t, d.Finish(), abi.ErrMalformed)
		})
	}
}

func isDecodeError(err error) bool {
	return err == abi.ErrTruncated || err == abi.ErrMalformed
}

// TestOversizedCounts gives each counted list a count far beyond what the
// message holds: the decoder must refuse it before allocating.
func TestOversizedCounts(t *testing.T) {
	huge := func(e *abi.Encoder) { e.Uvarint(1 << 40) }
	tests := []struct {
		name   string
		msg    []byte
		decode func(d *abi.Decoder)
	}{
		{"metric labels", encoded(func(e *abi.Encoder) {
			e.String("a")
			e.String("n")
			e.F64(1)
			e.Time(t0)
			huge(e)
		}), func(d *abi.Decoder) { (&abi.Metric{}).Decode(d) }},
		{"options", encoded(huge), func(d *abi.Decoder) { abi.DecodeOptions(d) }},
		{"severities just over 1<<24", encoded(func(e *abi.Encoder) {
			e.String("")
			e.Uvarint(1<<24 + 1)
			e.Raw(make([]byte, 1<<24+1)) // enough input: only the cap refuses it
		}), func(d *abi.Decoder) { (&abi.AlertQuery{}).Decode(d) }},
		{"metric query matchers", encoded(func(e *abi.Encoder) {
			e.String("")
			e.String("")
			e.Time(time.Time{})
			e.Time(time.Time{})
			e.Uvarint(10) // ten matchers need at least 30 bytes
			e.Raw(make([]byte, 29))
		}), func(d *abi.Decoder) { (&abi.MetricQuery{}).Decode(d) }},
		{"alert query severities", encoded(func(e *abi.Encoder) { e.String(""); huge(e) }),
			func(d *abi.Decoder) { (&abi.AlertQuery{}).Decode(d) }},
		{"alert query statuses", encoded(func(e *abi.Encoder) { e.String(""); e.Uvarint(0); huge(e) }),
			func(d *abi.Decoder) { (&abi.AlertQuery{}).Decode(d) }},
		{"metric page", encoded(huge), func(d *abi.Decoder) { abi.DecodePage[abi.Metric](d) }},
		{"alert page", encoded(func(e *abi.Encoder) { e.Uvarint(3); e.Raw(make([]byte, 11)) }),
			func(d *abi.Decoder) { abi.DecodePage[abi.Alert](d) }},
		{"agent state page", encoded(huge), func(d *abi.Decoder) { abi.DecodePage[abi.AgentState](d) }},
		{"metadata capabilities", encoded(func(e *abi.Encoder) {
			e.Uvarint(1)
			e.Uvarint(0)
			e.String("x")
			e.String("1")
			e.Uvarint(0)
			huge(e)
		}), func(d *abi.Decoder) { (&abi.Metadata{}).Decode(d) }},
		{"batch", encoded(huge), func(d *abi.Decoder) { abi.DecodeBatch(d) }},
		{"batch results", encoded(func(e *abi.Encoder) { e.Uvarint(2); e.Raw([]byte{0, 0, 0}) }),
			func(d *abi.Decoder) { abi.DecodeBatchResults(d) }},
		{"tick writes", encoded(func(e *abi.Encoder) { e.Bool(false); e.Uvarint(0); huge(e) }),
			func(d *abi.Decoder) { (&abi.TickResult{}).Decode(d) }},
		{"tick writes over MaxTickWrites", encoded(func(e *abi.Encoder) {
			e.Bool(false)
			e.Uvarint(0)
			e.Uvarint(abi.MaxTickWrites + 1)
			for range abi.MaxTickWrites + 1 {
				(&abi.TickWrite{Op: abi.OpDeleteAgentState, State: abi.AgentState{AgentID: "a"}}).Encode(e)
			}
		}), func(d *abi.Decoder) { (&abi.TickResult{}).Decode(d) }},
		{"tick write of a read", encoded(func(e *abi.Encoder) {
			e.Bool(false)
			e.Uvarint(0)
			e.Uvarint(1)
			e.Uvarint(uint64(abi.OpGetAgentState))
			e.String("a")
		}), func(d *abi.Decoder) { (&abi.TickResult{}).Decode(d) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := abi.NewDecoder(tt.msg)
			require.NotPanics(t, func() { tt.decode(d) })
			assert.ErrorIs(t, d.Finish(), abi.ErrMalformed)
		})
	}
}

// TestDecodeAtMost: a page or batch answer that claims more than its
// reader asked for is not decoded (a 5-byte agent state is a 96-byte
// record in memory), only its count reported, for the reader to refuse.
func TestDecodeAtMost(t *testing.T) {
	page := encoded(func(e *abi.Encoder) {
		p := abi.Page[abi.AgentState]{Items: make([]abi.AgentState, 11)}
		abi.EncodePage(e, &p)
	})
	d := abi.NewDecoder(page)
	p, claimed := abi.DecodePageAtMost[abi.AgentState](d, 10)
	require.NoError(t, d.Finish())
	assert.Equal(t, 11, claimed)
	assert.Nil(t, p.Items)
	d = abi.NewDecoder(page)
	p, claimed = abi.DecodePageAtMost[abi.AgentState](d, 11)
	require.NoError(t, d.Finish())
	assert.Equal(t, 11, claimed)
	assert.Len(t, p.Items, 11)

	batch := encoded(func(e *abi.Encoder) { abi.EncodeBatchResults(e, make([]abi.BatchResult, 3)) })
	d = abi.NewDecoder(batch)
	rs, claimed := abi.DecodeBatchResultsAtMost(d, 2)
	require.NoError(t, d.Finish())
	assert.Equal(t, 3, claimed)
	assert.Nil(t, rs)

	// Three million minimal records in 16 MiB: nothing is allocated for them.
	huge := encoded(func(e *abi.Encoder) {
		e.Uvarint(3 << 20)
		e.Raw(make([]byte, 5*(3<<20)))
		e.BytesField(nil)
	})
	allocs := testing.AllocsPerRun(3, func() {
		_, n := abi.DecodePageAtMost[abi.AgentState](abi.NewDecoder(huge), 1000)
		if n != 3<<20 {
			t.Fatal(n)
		}
	})
	assert.LessOrEqual(t, allocs, 1.0)
}

// TestDecodeResets checks that decoding into a used value leaves nothing of
// the old value behind.
func TestDecodeResets(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) { (&abi.KVRequest{Op: abi.KVGet, Key: []byte("k")}).Encode(e) })
	r := abi.KVRequest{Op: abi.KVPut, Value: []byte("old"), KeepTTL: true, Limit: 9, End: []byte("e")}
	d := abi.NewDecoder(msg)
	r.Decode(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, abi.KVRequest{Op: abi.KVGet, Key: []byte("k")}, r)

	msg = encoded(func(e *abi.Encoder) { (&abi.Metadata{Name: "m"}).Encode(e) })
	m := abi.Metadata{Capabilities: []abi.Capability{abi.CapabilityKV}}
	d = abi.NewDecoder(msg)
	m.Decode(d)
	require.NoError(t, d.Finish())
	assert.Nil(t, m.Capabilities)

	msg = encoded(func(e *abi.Encoder) { (&abi.Restore{Kind: abi.KindMetric, Metric: abi.Metric{AgentID: "a"}}).Encode(e) })
	rs := abi.Restore{Kind: abi.KindAgentState, State: fullState, Alert: fullAlert, Mode: abi.RestoreSkip}
	d = abi.NewDecoder(msg)
	rs.Decode(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, abi.Restore{Kind: abi.KindMetric, Metric: abi.Metric{AgentID: "a"}}, rs, "the other kinds' records are zero")

	msg = encoded(func(e *abi.Encoder) { (&abi.TTL{Mode: abi.TTLPersist}).Encode(e) })
	ttl := abi.TTL{Mode: abi.TTLDuration, Duration: time.Hour}
	d = abi.NewDecoder(msg)
	ttl.Decode(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, abi.TTL{Mode: abi.TTLPersist}, ttl)
}

// TestDuplicateLabels records what decoders do with a key sent twice: the
// last value wins (encoders never send duplicates).
func TestDuplicateLabels(t *testing.T) {
	msg := encoded(func(e *abi.Encoder) {
		e.Uvarint(2)
		e.String("k")
		e.String("first")
		e.String("k")
		e.String("second")
	})
	d := abi.NewDecoder(msg)
	o := abi.DecodeOptions(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, abi.Options{"k": "second"}, o)
}

func TestNaNMetricRoundTrip(t *testing.T) {
	nan := math.Float64frombits(0x7ff8_0000_dead_beef)
	msg := encoded(func(e *abi.Encoder) { (&abi.Metric{AgentID: "a", Value: nan}).Encode(e) })
	var m abi.Metric
	d := abi.NewDecoder(msg)
	m.Decode(d)
	require.NoError(t, d.Finish())
	assert.Equal(t, uint64(0x7ff8_0000_dead_beef), math.Float64bits(m.Value), "NaN payload survives")
}

// TestRecordLabelsBounded: a metric or alert with more than MaxLabels
// labels, or labels of more than MaxLabelBytes, is malformed when decoded,
// and the decoder stops before it builds the map; at the bounds it
// decodes. Options, with the same layout, are not bounded.
func TestRecordLabelsBounded(t *testing.T) {
	labels := func(n, size int) map[string]string {
		l := make(map[string]string, n)
		for i := range n {
			l[string(rune('a'+i/26))+string(rune('a'+i%26))] = string(make([]byte, size))
		}
		return l
	}
	decodeMetric := func(l map[string]string) (abi.Metric, error) {
		msg := encoded(func(e *abi.Encoder) { (&abi.Metric{AgentID: "a", Name: "n", Labels: l}).Encode(e) })
		var m abi.Metric
		d := abi.NewDecoder(msg)
		m.Decode(d)
		return m, d.Finish()
	}
	decodeAlert := func(l map[string]string) error {
		msg := encoded(func(e *abi.Encoder) { (&abi.Alert{ID: "x", AgentID: "a", Labels: l}).Encode(e) })
		var a abi.Alert
		d := abi.NewDecoder(msg)
		a.Decode(d)
		return d.Finish()
	}

	m, err := decodeMetric(labels(abi.MaxLabels, abi.MaxLabelBytes/abi.MaxLabels-2))
	require.NoError(t, err, "at the bounds")
	assert.Len(t, m.Labels, abi.MaxLabels)

	_, err = decodeMetric(labels(abi.MaxLabels+1, 0))
	require.ErrorIs(t, err, abi.ErrMalformed)
	assert.ErrorContains(t, err, "65 labels; at most 64 per record")
	require.ErrorIs(t, decodeAlert(labels(500, 0)), abi.ErrMalformed)

	_, err = decodeMetric(labels(2, abi.MaxLabelBytes/2))
	require.ErrorIs(t, err, abi.ErrMalformed)
	assert.ErrorContains(t, err, "labels of more than 1048576 bytes")

	// A count far past the bound is refused before anything is allocated
	// for it (the message holds 100 000 labels: 200 000 bytes at least).
	msg := encoded(func(e *abi.Encoder) {
		e.String("a")
		e.String("n")
		e.F64(1)
		e.Time(time.Unix(1, 0))
		e.Uvarint(100_000)
		for range 100_000 {
			e.String("")
			e.String("")
		}
		e.Time(time.Time{})
	})
	allocs := testing.AllocsPerRun(10, func() {
		var m abi.Metric
		m.Decode(abi.NewDecoder(msg))
	})
	assert.LessOrEqual(t, allocs, float64(5), "the map is not built")

	o := make(abi.Options, 200)
	for k := range labels(200, 1) {
		o[k] = "v"
	}
	d := abi.NewDecoder(encoded(o.Encode))
	require.Len(t, abi.DecodeOptions(d), 200)
	require.NoError(t, d.Finish(), "options are not labels")
}
