package host

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// TestUnknownStatusGating: StatusUnknown reaches a caller only from a
// write of a plugin of ABI 1.3 or later, where it matches
// ErrOutcomeUnknown; from a read, a query, a ping or an older plugin it is
// INTERNAL, a status that plugin may not answer. A plugin of ABI 1.2 or
// older is never answered it by the redis capability: it gets UNAVAILABLE.
func TestUnknownStatusGating(t *testing.T) {
	plugin := func(minor uint16) *plugin {
		return &plugin{name: "p", meta: abi.Metadata{ABI: abi.Version{Major: 1, Minor: minor}}}
	}
	lost := &abi.Error{Status: abi.StatusUnknown, Message: "no reply in time"}
	for _, op := range []abi.Op{abi.OpPutMetric, abi.OpDeleteMetric, abi.OpPutAlert, abi.OpDeleteAlert,
		abi.OpSetAlertStatus, abi.OpPutAgentState, abi.OpDeleteAgentState, abi.OpRestore} {
		err := plugin(3).unknownAnswer(op, lost)
		require.ErrorIs(t, err, ErrOutcomeUnknown, "%s", op)
		assert.NotErrorIs(t, err, ErrUnavailable)
		for _, minor := range []uint16{0, 1, 2} {
			err := plugin(minor).unknownAnswer(op, lost)
			require.ErrorIs(t, err, ErrInternal, "%s from ABI 1.%d", op, minor)
			assert.NotErrorIs(t, err, ErrOutcomeUnknown)
			assert.Contains(t, err.Error(), "unknown status 9: no reply in time")
		}
	}
	for _, op := range []abi.Op{abi.OpGetMetric, abi.OpQueryMetrics, abi.OpGetAlert, abi.OpQueryAlerts,
		abi.OpGetAgentState, abi.OpQueryAgentStates, abi.OpPing, abi.OpConfigure, abi.OpBatch} {
		err := plugin(3).unknownAnswer(op, lost)
		require.ErrorIs(t, err, ErrInternal, "%s", op)
		assert.NotErrorIs(t, err, ErrOutcomeUnknown)
	}

	for minor, want := range map[uint16]abi.Status{1: abi.StatusUnavailable, 2: abi.StatusUnavailable, 3: abi.StatusUnknown} {
		resp := []byte{byte(abi.StatusUnknown), 'x'}
		plugin(minor).redisStatusFor(resp)
		assert.Equal(t, byte(want), resp[0], "redis answer to a plugin of ABI 1.%d", minor)
	}
	ok := []byte{byte(abi.StatusOK)}
	plugin(2).redisStatusFor(ok)
	assert.Equal(t, byte(abi.StatusOK), ok[0])
}

// TestOutcomeUnknownMatchesBothWays: ErrOutcomeUnknown is the status, so
// a plugin's answer and a call Close cut short both match it, and the
// latter still matches ErrClosed.
func TestOutcomeUnknownMatchesBothWays(t *testing.T) {
	assert.ErrorIs(t, abi.Errorf(abi.StatusUnknown, "lost"), ErrOutcomeUnknown)
	assert.ErrorIs(t, ErrOutcomeUnknown, abi.StatusUnknown)
	cut := errors.Join(ErrOutcomeUnknown, ErrClosed)
	assert.ErrorIs(t, cut, ErrOutcomeUnknown)
	assert.ErrorIs(t, cut, ErrClosed)
	assert.NotErrorIs(t, abi.Errorf(abi.StatusUnavailable, "down"), ErrOutcomeUnknown)
}
