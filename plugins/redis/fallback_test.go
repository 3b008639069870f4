package main

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// The fallback buffer end to end is tested against a real Redis in
// host/storetest/redis_outage_test.go; these tests pin its encodings.

func TestQueueKeysSortBySeq(t *testing.T) {
	seqs := []uint64{1, 2, 15, 16, 255, 256, 1 << 32, 1<<63 + 1, ^uint64(0)}
	var keys [][]byte
	for _, s := range seqs {
		k := appendQueueKey(nil, s)
		got, ok := parseQueueKey(k)
		require.True(t, ok)
		require.Equal(t, s, got)
		keys = append(keys, k)
	}
	require.True(t, slices.IsSortedFunc(keys, bytes.Compare), "queue keys sort like their numbers")
	for _, bad := range []string{"q/", "q/123", "q/000000000000000g", "x/0000000000000001", "q/00000000000000010"} {
		_, ok := parseQueueKey([]byte(bad))
		require.False(t, ok, "%q", bad)
	}
}

// TestBufferedRequestRoundTrip checks that a queued write decodes, as the
// replay reads it, into the write that was buffered.
func TestBufferedRequestRoundTrip(t *testing.T) {
	ts := time.Date(2024, 5, 1, 2, 3, 4, 5, time.UTC)
	items := []item{
		{op: abi.OpPutMetric, ttl: abi.TTL{Mode: abi.TTLDuration, Duration: time.Minute},
			metric: abi.Metric{AgentID: "a}", Name: "cpu", Value: 0.5, Timestamp: ts, Labels: map[string]string{"k": "v"}}},
		{op: abi.OpDeleteMetric, metric: abi.Metric{AgentID: "a", Name: "cpu", Timestamp: ts}},
		{op: abi.OpPutAlert, ttl: abi.TTL{Mode: abi.TTLKeep},
			alert: abi.Alert{ID: "al", AgentID: "a", Severity: abi.SeverityCritical, Status: abi.AlertResolved, Message: "m", CreatedAt: ts}},
		{op: abi.OpDeleteAlert, alert: abi.Alert{ID: "al"}},
		{op: abi.OpPutAgentState, ttl: abi.TTL{Mode: abi.TTLPersist}, state: abi.AgentState{AgentID: "s", State: []byte(`{"x":1}`)}},
		{op: abi.OpDeleteAgentState, state: abi.AgentState{AgentID: "s"}},
	}
	b := &backend{}
	for _, want := range items {
		var e abi.Encoder
		encodeRequest(&want, &e)
		got := item{op: want.op}
		b.decodeItem(&got, e.Bytes())
		require.NoError(t, got.err, "%s", want.op)
		require.Equal(t, want.ttl, got.ttl, "%s", want.op)
		require.Equal(t, want.cond, got.cond, "%s", want.op)
		require.Equal(t, string(appendRecordKey(nil, &want)), string(appendRecordKey(nil, &got)), "%s", want.op)
		switch want.op {
		case abi.OpPutMetric:
			require.Equal(t, want.metric, got.metric)
		case abi.OpPutAlert:
			require.Equal(t, want.alert, got.alert)
		case abi.OpPutAgentState:
			require.Equal(t, want.state, got.state)
		}
	}
}

func TestBufferedRecordKeysAreDistinct(t *testing.T) {
	ts := time.Unix(0, 1)
	keys := map[string]string{}
	for _, it := range []item{
		{op: abi.OpPutMetric, metric: abi.Metric{AgentID: "a", Name: "b", Timestamp: ts}},
		{op: abi.OpPutMetric, metric: abi.Metric{AgentID: "a", Name: "b", Timestamp: ts.Add(1)}},
		{op: abi.OpPutAlert, alert: abi.Alert{ID: "a"}},
		{op: abi.OpPutAgentState, state: abi.AgentState{AgentID: "a"}},
		{op: abi.OpPutAgentState, state: abi.AgentState{AgentID: "m/a"}},
	} {
		k := string(appendRecordKey(nil, &it))
		_, dup := keys[k]
		require.False(t, dup, "%q", k)
		keys[k] = it.op.String()
	}
}
