package httpapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// TestClassifyWriteThatFailedAfterReachingTheStore: a write whose plugin
// failed after it wrote to its store (the host wraps ErrOutcomeUnknown
// around the failure) is a 504 outcome_unknown, so a client reads the
// record back; the failure's detail is logged, never sent, as a 500's is.
func TestClassifyWriteThatFailedAfterReachingTheStore(t *testing.T) {
	failure := abi.Errorf(abi.StatusInternal, "backend b: plugin failed: wasm stack trace: secret detail")
	err := fmt.Errorf("backend b: %w: the plugin failed after it wrote to its store or sent it requests: %w", host.ErrOutcomeUnknown, failure)

	status, body, internal := classify(err)
	require.Equal(t, http.StatusGatewayTimeout, status)
	require.Equal(t, codeOutcomeUnknown, body.Code)
	require.True(t, internal, "logged under a request ID")
	require.Equal(t, internalMessage, body.Message)

	status, body, internal = classify(fmt.Errorf("backend b: %w: stopped after it wrote to its store (deadline)", host.ErrOutcomeUnknown))
	require.Equal(t, http.StatusGatewayTimeout, status)
	require.False(t, internal, "a lost reply is no internal failure")
	require.Contains(t, body.Message, "stopped after it wrote")
}
