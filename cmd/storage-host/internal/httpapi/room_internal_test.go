package httpapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// TestJSONBoundHoldsTheEncoding: the bound a response takes room for is
// never below the length of the JSON written for it, whatever its strings
// hold: control characters (six bytes each), U+2028 (six for three),
// invalid UTF-8 (six for one), quotes and backslashes.
func TestJSONBoundHoldsTheEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"\x01", "\u2028", "\xff", `"`, `\`, "é", "a", "\n", "<"}
	text := func() string {
		var b strings.Builder
		for range rng.IntN(200) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	labels := func() map[string]string {
		l := map[string]string{}
		for range rng.IntN(4) {
			l[text()] = text()
		}
		return l
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	check := func(v any) {
		t.Helper()
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(v))
		require.LessOrEqual(t, buf.Len(), jsonBound(v), "%s", buf.Bytes())
	}
	for range 300 {
		state := host.AgentState{AgentID: text(), Version: rng.Uint64(), UpdatedAt: t0, ExpiresAt: t0}
		if rng.IntN(2) == 0 {
			doc, _ := json.Marshal(map[string]string{"s": text()})
			state.State = bytes.ReplaceAll(doc, []byte(`\u2028`), []byte("\u2028")) // raw U+2028, which Compact escapes
		} else {
			state.State = []byte(text()) // not JSON: base64
		}
		alert := host.Alert{ID: text(), AgentID: text(), Message: text(), Labels: labels(), CreatedAt: t0, UpdatedAt: t0, ExpiresAt: t0}
		metric := host.Metric{AgentID: text(), Name: text(), Value: rng.Float64(), Timestamp: t0, Labels: labels()}
		errBody := &errorBody{Code: codeInvalid, Message: text()}

		check(agentStateOut(state))
		check(alertOut(alert))
		check(metricOut(metric))
		check(metricKeyOut(host.MetricKey{AgentID: metric.AgentID, Name: metric.Name, Timestamp: t0}))
		check(agentIDJSON{AgentID: text()})
		check(alertIDJSON{ID: text()})
		check(errorResponse{Error: *errBody})
		check(pageOut(host.Page[host.Alert]{Items: []host.Alert{alert, alert}, Next: []byte(text())}, alertOut))
		check(pageOut(host.Page[host.AgentState]{Items: []host.AgentState{state}}, agentStateOut))
		check(resultsJSON{Results: []resultJSON{{Value: metricOut(metric)}, {Error: errBody}, {Value: agentStateOut(state), Stale: true}}})

		// writeAgentState's own encoding, with its bound.
		var buf bytes.Buffer
		appendAgentState(&buf, state)
		require.LessOrEqual(t, buf.Len(), agentStateBound(state))
	}
}
