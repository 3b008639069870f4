package main

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
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
		{BatchOp: sdk.BatchOp{Op: abi.OpPutMetric, TTL: abi.TTL{Mode: abi.TTLDuration, Duration: time.Minute}, Metric: abi.Metric{AgentID: "a}", Name: "cpu", Value: 0.5, Timestamp: ts, Labels: map[string]string{"k": "v"}}}},
		{BatchOp: sdk.BatchOp{Op: abi.OpDeleteMetric, Metric: abi.Metric{AgentID: "a", Name: "cpu", Timestamp: ts}}},
		{BatchOp: sdk.BatchOp{Op: abi.OpPutAlert, TTL: abi.TTL{Mode: abi.TTLKeep}, Alert: abi.Alert{ID: "al", AgentID: "a", Severity: abi.SeverityCritical, Status: abi.AlertResolved, Message: "m", CreatedAt: ts}}},
		{BatchOp: sdk.BatchOp{Op: abi.OpDeleteAlert, Alert: abi.Alert{ID: "al"}}},
		{BatchOp: sdk.BatchOp{Op: abi.OpPutAgentState, TTL: abi.TTL{Mode: abi.TTLPersist}, State: abi.AgentState{AgentID: "s", State: []byte(`{"x":1}`)}}},
		{BatchOp: sdk.BatchOp{Op: abi.OpDeleteAgentState, State: abi.AgentState{AgentID: "s"}}},
	}
	b := &backend{}
	for _, want := range items {
		var e abi.Encoder
		encodeRequest(&want, &e)
		var got item
		b.decodeItem(&got, abi.BatchItem{Op: want.Op, Payload: e.Bytes()})
		require.NoError(t, got.Err, "%s", want.Op)
		require.Equal(t, want.TTL, got.TTL, "%s", want.Op)
		require.Equal(t, want.Condition, got.Condition, "%s", want.Op)
		require.Equal(t, string(appendRecordKey(nil, &want)), string(appendRecordKey(nil, &got)), "%s", want.Op)
		switch want.Op {
		case abi.OpPutMetric:
			require.Equal(t, want.Metric, got.Metric)
		case abi.OpPutAlert:
			require.Equal(t, want.Alert, got.Alert)
		case abi.OpPutAgentState:
			require.Equal(t, want.State, got.State)
		}
	}
}

func TestBufferedRecordKeysAreDistinct(t *testing.T) {
	ts := time.Unix(0, 1)
	keys := map[string]string{}
	for _, it := range []item{
		{BatchOp: sdk.BatchOp{Op: abi.OpPutMetric, Metric: abi.Metric{AgentID: "a", Name: "b", Timestamp: ts}}},
		{BatchOp: sdk.BatchOp{Op: abi.OpPutMetric, Metric: abi.Metric{AgentID: "a", Name: "b", Timestamp: ts.Add(1)}}},
		{BatchOp: sdk.BatchOp{Op: abi.OpPutAlert, Alert: abi.Alert{ID: "a"}}},
		{BatchOp: sdk.BatchOp{Op: abi.OpPutAgentState, State: abi.AgentState{AgentID: "a"}}},
		{BatchOp: sdk.BatchOp{Op: abi.OpPutAgentState, State: abi.AgentState{AgentID: "m/a"}}},
	} {
		k := string(appendRecordKey(nil, &it))
		_, dup := keys[k]
		require.False(t, dup, "%q", k)
		keys[k] = it.Op.String()
	}
}
