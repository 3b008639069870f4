package sdk

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// What a plugin wraps around a host's error (the kv store's, say) is what
// its caller reads; the status stays the wrapped one's.
func TestStatusOfKeepsTheWrapping(t *testing.T) {
	kv := &abi.Error{Status: abi.StatusNotFound, Message: "no such key"}
	for _, tc := range []struct {
		err    error
		status abi.Status
		msg    string
	}{
		{kv, abi.StatusNotFound, "no such key"},
		{fmt.Errorf("agent state %q: %w", "a1", kv), abi.StatusNotFound, `agent state "a1": no such key`},
		{fmt.Errorf("agent state %q: %w", "a1", ErrNotFound), abi.StatusNotFound, `agent state "a1"`},
		{fmt.Errorf("kv: %w (after 3 tries)", kv), abi.StatusNotFound, "no such key"},
	} {
		status, msg := statusOf(tc.err)
		require.Equal(t, tc.status, status, "%v", tc.err)
		require.Equal(t, tc.msg, msg, "%v", tc.err)
	}
}
