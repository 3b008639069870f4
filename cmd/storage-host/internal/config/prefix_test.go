package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// redisBackend is a backend block on a Redis at addr, database db, with
// key prefix p.
func redisBackend(name, addr string, db int, p string) string {
	return fmt.Sprintf("backend %q {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs = [%q]\n    db = %d\n    key_prefix = %q\n  }\n}\n", name, addr, db, p)
}

// Backends whose key prefixes overlap on one Redis would read, delete and
// forge each other's records and events: the second is refused, at its
// key_prefix.
func TestOverlappingKeyPrefixesAreRefused(t *testing.T) {
	const addr = "127.0.0.1:6379"
	for _, tc := range []struct{ first, second string }{
		{"app", "app:billing:"}, // nested
		{"app:billing:", "app"}, // covering
		{"app:", "app:"},        // equal
	} {
		src := redisBackend("a", addr, 0, tc.first) + redisBackend("b", addr, 0, tc.second) + "routes {\n  metrics = \"a\"\n  alerts = \"a\"\n  agent_states = \"b\"\n}\n"
		_, err := parseChecked([]byte(src), "bad.hcl")
		require.Error(t, err, "%v", tc)
		var cerr *config.Error
		require.ErrorAs(t, err, &cerr)
		assert.Contains(t, err.Error(), "bad.hcl:14:18: Overlapping key prefixes", "%v", tc)
		assert.Contains(t, err.Error(), `Backend "b"'s key_prefix`, "%v", tc)
	}
	// Another database of the same Redis does not set them apart: a
	// backend's scripts reach its prefix in every database.
	src := redisBackend("a", addr, 0, "app:") + redisBackend("b", addr, 1, "app:") + "routes {\n  metrics = \"a\"\n  alerts = \"a\"\n  agent_states = \"b\"\n}\n"
	_, err := parseChecked([]byte(src), "db.hcl")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "db.hcl:14:18: Overlapping key prefixes")
	assert.Contains(t, err.Error(), "every db")
	// One server written two ways is one Redis.
	src = redisBackend("a", addr, 0, "app:") + redisBackend("b", "localhost:6379", 0, "app:") + "routes {\n  metrics = \"a\"\n  alerts = \"a\"\n  agent_states = \"b\"\n}\n"
	_, err = parseChecked([]byte(src), "names.hcl")
	require.Error(t, err, "localhost and 127.0.0.1")
	assert.Contains(t, err.Error(), "names.hcl:14:18: Overlapping key prefixes")
	// Apart, or on another Redis: fine.
	for _, src := range []string{
		redisBackend("a", addr, 0, "app:") + redisBackend("b", addr, 0, "billing:"),
		redisBackend("a", addr, 0, "app:") + redisBackend("b", addr, 1, "billing:"),
		redisBackend("a", addr, 0, "app:") + redisBackend("b", "127.0.0.1:6380", 0, "app:"),
	} {
		src += "routes {\n  metrics = \"a\"\n  alerts = \"a\"\n  agent_states = \"b\"\n}\n"
		_, err := parseChecked([]byte(src), "ok.hcl")
		assert.NoError(t, err, src)
	}
}

// A prefix that covers the host's own keys is refused.
func TestHostKeyPrefixIsRefused(t *testing.T) {
	_, err := parseChecked([]byte(redisBackend("a", "127.0.0.1:6379", 0, "__host")), "bad.hcl")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "are the host's"), "%v", err)
}
