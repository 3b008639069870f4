package abi_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/storage-host/storage-host/abi"
)

func TestRecordKindNames(t *testing.T) {
	assert.Equal(t, []abi.RecordKind{abi.KindMetric, abi.KindAlert, abi.KindAgentState}, abi.RecordKinds())
	for k, name := range map[abi.RecordKind]string{abi.KindMetric: "metrics", abi.KindAlert: "alerts", abi.KindAgentState: "agent_states"} {
		assert.Equal(t, name, k.Name())
		got, ok := abi.ParseRecordKind(name)
		assert.True(t, ok)
		assert.Equal(t, k, got)
		ev := abi.PluginEvent{Kind: name, Op: "x"}
		assert.ErrorContains(t, ev.Check(), "reserved", "kind %s", name)
	}
	for _, name := range []string{"", "metric", "*", "Metrics"} {
		_, ok := abi.ParseRecordKind(name)
		assert.False(t, ok, name)
	}
	assert.Empty(t, abi.RecordKind(0).Name())
	assert.Empty(t, abi.RecordKind(4).Name())
}
