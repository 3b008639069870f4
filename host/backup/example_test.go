package backup_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/backup"
)

// Example_format writes the backup of FORMAT.md's worked example — one
// agent state with an hour to live — and prints it, field by field.
func Example_format() {
	var buf bytes.Buffer
	w, _ := backup.NewWriter(&buf, backup.Header{
		Created: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC),
		Backend: "agents", Plugin: "redis", PluginVersion: "1.0.0", ABI: abi.Version{Major: 1, Minor: 2},
	})
	_ = w.Write(&backup.Record{Kind: abi.KindAgentState, TTL: time.Hour, State: abi.AgentState{
		AgentID: "a1", State: []byte(`{"x":1}`), Version: 7, UpdatedAt: time.Date(2026, 11, 26, 9, 59, 0, 0, time.UTC),
	}})
	sum, _ := w.Close()
	b := buf.Bytes()
	fields := []struct {
		n    int
		what string
	}{
		{8, `magic "SHBACKUP"`}, {1, "format version 2"},
		{1, "header: 30 bytes"}, {9, "  created 2026-11-26T10:00:00Z (varint ns)"}, {7, `  backend "agents"`},
		{6, `  plugin "redis"`}, {6, `  plugin version "1.0.0"`}, {2, "  ABI 1.2"},
		{1, "frame: kind 3 (agent state)"}, {1, "  body: 26 bytes"}, {3, `  agent_id "a1"`}, {8, `  state {"x":1}`},
		{1, "  version 7"}, {9, "  updated_at 2026-11-26T09:59:00Z"}, {1, "  expires_at 0 (the TTL says)"},
		{4, "  ttl 3600000 ms"},
		{1, "end of frames"}, {3, "counts: 0 metrics, 0 alerts, 1 agent state"},
		{2, "0 overrides, 0 tombstones"}, {1, `position "" (not settled: no event log)`}, {32, "sha256 of everything above"},
	}
	for _, f := range fields {
		shown := fmt.Sprintf("%x", b[:min(f.n, 12)])
		if f.n > 12 {
			shown += "…"
		}
		fmt.Printf("%-28s %s\n", shown, f.what)
		b = b[f.n:]
	}
	fmt.Println(len(b) == 0, sum.Bytes)
	// Output:
	// 53484241434b5550             magic "SHBACKUP"
	// 02                           format version 2
	// 1e                           header: 30 bytes
	// 8080babbd2ffc7eb31             created 2026-11-26T10:00:00Z (varint ns)
	// 066167656e7473                 backend "agents"
	// 057265646973                   plugin "redis"
	// 05312e302e30                   plugin version "1.0.0"
	// 0102                           ABI 1.2
	// 03                           frame: kind 3 (agent state)
	// 1a                             body: 26 bytes
	// 026131                         agent_id "a1"
	// 077b2278223a317d               state {"x":1}
	// 07                             version 7
	// 80a0ffb693fcc7eb31             updated_at 2026-11-26T09:59:00Z
	// 00                             expires_at 0 (the TTL says)
	// 80dddb01                       ttl 3600000 ms
	// 00                           end of frames
	// 000001                       counts: 0 metrics, 0 alerts, 1 agent state
	// 0000                         0 overrides, 0 tombstones
	// 00                           position "" (not settled: no event log)
	// 4040fe8c2b017770e51a5f04…    sha256 of everything above
	// true 107
}
