package storetest_test

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/storetest"
)

// retention is the max_samples_per_series the policy tests give the
// memory backend.
const retention = "25"

// TestMemoryRetentionPolicy: the memory backend keeping 25 samples a
// series passes the suite once it declares that policy, which the suite
// then checks (Policy/Retention).
func TestMemoryRetentionPolicy(t *testing.T) {
	storetest.RunWithPolicy(t, func(t *testing.T) *host.Store {
		return openMemory(t, map[string]string{"max_samples_per_series": retention})
	}, storetest.Policy{MaxSamplesPerSeries: 25})
}

// TestUndeclaredPolicyFails: the same backend run without declaring its
// policy fails (in a child process), at the paging checks that write more
// samples to one series than it keeps; and one declaring a policy it does
// not keep fails the policy's own check.
func TestUndeclaredPolicyFails(t *testing.T) {
	switch os.Getenv("STORETEST_POLICY_CHILD") {
	case "undeclared":
		storetest.Run(t, func(t *testing.T) *host.Store {
			return openMemory(t, map[string]string{"max_samples_per_series": retention})
		})
		return
	case "unkept":
		storetest.RunWithPolicy(t, func(t *testing.T) *host.Store { return openMemory(t, nil) },
			storetest.Policy{MaxSamplesPerSeries: 25})
		return
	}
	for child, want := range map[string]string{
		"undeclared": "--- FAIL: TestUndeclaredPolicyFails/Query/Pagination/DefaultLimit",
		"unkept":     "--- FAIL: TestUndeclaredPolicyFails/Policy/Retention",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUndeclaredPolicyFails$", "-test.v", "-test.short")
		cmd.Env = append(os.Environ(), "STORETEST_POLICY_CHILD="+child)
		out, err := cmd.CombinedOutput()
		require.Error(t, err, "%s: the suite passed\n%s", child, out)
		require.Contains(t, string(out), want, child)
	}
}
