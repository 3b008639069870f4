package abi_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// A time the wire cannot carry is the encoder's error, never a wrapped
// value: 9999 would read back as 1815, and the epoch itself as unset.
func TestEncoderRefusesTimesTheWireCannotCarry(t *testing.T) {
	for _, bad := range []time.Time{
		time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2262, 4, 11, 23, 47, 16, 854775808, time.UTC),
		time.Date(1677, 9, 21, 0, 12, 43, 145224191, time.UTC),
		time.Unix(0, 0),
	} {
		var e abi.Encoder
		e.Time(bad)
		require.ErrorIs(t, e.Err(), abi.StatusInvalid, "%v", bad)
		require.ErrorContains(t, e.Err(), bad.UTC().Format(time.RFC3339Nano))
		e.Reset()
		require.NoError(t, e.Err(), "Reset clears the error")
	}
	for _, good := range []time.Time{
		{},
		time.Unix(0, 1),
		time.Date(1677, 9, 21, 0, 12, 43, 145224192, time.UTC),
		time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC),
		time.Unix(0, -1),
		time.Date(2026, 12, 7, 3, 30, 0, 123, time.UTC),
	} {
		var e abi.Encoder
		e.Time(good)
		require.NoError(t, e.Err(), "%v", good)
		d := abi.NewDecoder(e.Bytes())
		got := d.Time()
		require.NoError(t, d.Finish())
		require.True(t, got.Equal(good), "%v read back as %v", good, got)
	}
}
