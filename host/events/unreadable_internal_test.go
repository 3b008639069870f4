package events

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// TestUnreadableIsNotAnUnknownOutcome: a read of the log that lost its
// connection ends subscriptions as unavailable, saying what happened, and
// not as a write whose outcome is unknown.
func TestUnreadableIsNotAnUnknownOutcome(t *testing.T) {
	err := unreadable(abi.Errorf(abi.StatusUnknown, "postgres: conn closed"))
	require.ErrorIs(t, err, ErrUnavailable)
	require.NotErrorIs(t, err, abi.StatusUnknown)
	require.EqualError(t, err, "events: the event log cannot be read: postgres: conn closed")

	other := errors.New("dial tcp: connection refused")
	require.ErrorIs(t, unreadable(other), other)
	require.ErrorIs(t, unreadable(other), ErrUnavailable)
}
