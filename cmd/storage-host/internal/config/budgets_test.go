package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// The limits on what a plugin makes the host do and hold through its
// capabilities are read from the limits block; unset ones keep the
// defaults.
func TestBudgetLimits(t *testing.T) {
	f, err := parseChecked([]byte(`
backend "m" {
  plugin = "builtin:memory"
  limits {
    max_log_bytes_per_call = 4096
    max_kv_bytes           = 8589934592
    max_kv_entries         = 1000
    max_kv_scan_bytes      = 65536
    max_events_per_call    = 10
  }
}
backend "d" {
  plugin = "builtin:memory"
  limits {}
}
routes {
  metrics      = "m"
  alerts       = "m"
  agent_states = "d"
}
`), "budgets.hcl")
	require.NoError(t, err)
	l := f.Backends[0].Config.Limits
	require.Equal(t, uint32(4096), l.MaxLogBytesPerCall)
	require.Equal(t, uint64(8<<30), l.MaxKVBytes)
	require.Equal(t, uint32(1000), l.MaxKVEntries)
	require.Equal(t, uint32(65536), l.MaxKVScanBytes)
	require.Equal(t, uint32(10), l.MaxEventsPerCall)
	require.Equal(t, host.DefaultLimits, f.Backends[1].Config.Limits)

	for _, attr := range []string{"max_log_bytes_per_call", "max_kv_bytes", "max_kv_entries", "max_kv_scan_bytes", "max_events_per_call"} {
		_, err := parseChecked([]byte("backend \"m\" {\n  plugin = \"builtin:memory\"\n  limits {\n    "+attr+" = 0\n  }\n}\n"), "zero.hcl")
		require.ErrorContains(t, err, attr+" must be a whole number from 1", attr)
	}
}
