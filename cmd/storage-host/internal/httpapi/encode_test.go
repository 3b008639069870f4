package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/storage-host/storage-host/host"
)

// encodingJSON is what writeJSON writes for agentStateOut(s): the bytes
// appendAgentState must reproduce.
func encodingJSON(t testing.TB, s host.AgentState) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(agentStateOut(s)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func checkAgentStateEncoding(t testing.TB, s host.AgentState) {
	var got bytes.Buffer
	appendAgentState(&got, s)
	if want := encodingJSON(t, s); !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("appendAgentState(%+v)\n got %q\nwant %q", s, got.Bytes(), want)
	}
}

var encodingCases = []host.AgentState{
	{AgentID: "agent-1", State: []byte(`{"a":1}`), Version: 1, UpdatedAt: time.Unix(1700000000, 123456789)},
	{AgentID: "a", State: []byte(" {\n \"a\" : [1, 2,\t3], \"b\": \"x y\" }\n"), Version: 18446744073709551615,
		UpdatedAt: time.Unix(0, 0), ExpiresAt: time.Unix(1700000000, 5e8).In(time.FixedZone("X", 3600))},
	{AgentID: "q\"b\\s/<>&\x00\x01\x1f\b\f\n\r\t\x7f", State: []byte(`"<&>\u2028"`), Version: 7, UpdatedAt: time.Unix(1, 1)},
	{AgentID: "bad\xffutf8\xe2\x80\xa8sep\xe2\x80\xa9é😀", State: []byte(`[]`), UpdatedAt: time.Unix(1, 0)},
	{AgentID: "no-state", State: nil, UpdatedAt: time.Unix(1, 0)},
	{AgentID: "empty-state", State: []byte{}, UpdatedAt: time.Unix(1, 0)},
	{AgentID: "not-json", State: []byte("{\"a\":1} trailing \x00\xff"), UpdatedAt: time.Unix(1, 0)},
	{AgentID: "two-docs", State: []byte(`1 2`), UpdatedAt: time.Unix(1, 0)},
	{AgentID: "", State: []byte(` null `), UpdatedAt: time.Time{}, ExpiresAt: time.Unix(4102444800, 1)},
}

func TestAgentStateEncodingMatchesEncodingJSON(t *testing.T) {
	for _, s := range encodingCases {
		checkAgentStateEncoding(t, s)
	}
}

func FuzzAgentStateEncoding(f *testing.F) {
	for _, s := range encodingCases {
		f.Add(s.AgentID, s.State, s.Version, s.UpdatedAt.UnixNano(), s.ExpiresAt.UnixNano())
	}
	f.Fuzz(func(t *testing.T, id string, state []byte, version uint64, updated, expires int64) {
		s := host.AgentState{AgentID: id, State: state, Version: version, UpdatedAt: time.Unix(0, updated)}
		if expires%3 != 0 {
			s.ExpiresAt = time.Unix(0, expires)
		}
		checkAgentStateEncoding(t, s)
	})
}

// TestAgentStateEncodingAllocates checks that encoding an agent state
// into a pooled buffer allocates nothing.
func TestAgentStateEncodingAllocates(t *testing.T) {
	s := encodingCases[1]
	var buf bytes.Buffer
	appendAgentState(&buf, s)
	// The fewest of five rounds: AllocsPerRun counts every goroutine's
	// allocations, the package's parallel tests' too.
	n := math.Inf(1)
	for range 5 {
		n = min(n, testing.AllocsPerRun(100, func() {
			buf.Reset()
			appendAgentState(&buf, s)
		}))
	}
	if n != 0 {
		t.Errorf("appendAgentState allocates %v times; want 0", n)
	}
}
