package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
)

// benchState is the agent state the handler benchmarks write: the
// 201-byte document of host/httpbench_test.go.
var benchState = []byte(`{"step":42,"goal":"benchmark the daemon","plan":["observe","decide","act"],` +
	`"memory":{"last_tool":"search","tokens_used":1234,"cursor":"c-000001"},"flags":{"dry_run":false,"verbose":true},"score":0.875}`)

// discardWriter is a ResponseWriter that keeps the status and the body's
// length: the handler's own work, without a network.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += len(b)
	return len(b), nil
}

func (w *discardWriter) reset() {
	clear(w.header)
	w.code, w.n = 0, 0
}

// BenchmarkHandler measures the Handler's own work on the hot routes,
// GET and PUT of one agent state, called directly (no network) over a
// memory backend, with metrics on as the daemon has them. "store" is the
// store call alone, so handler - store is what httpapi adds.
//
//	go test ./cmd/storage-host/internal/httpapi -run '^$' -bench Handler -benchmem
func BenchmarkHandler(b *testing.B) {
	st := openStore(b, host.Config{Plugin: "builtin:memory"})
	h, err := httpapi.New(httpapi.Options{Backends: newBackends(st), Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.PutAgentState(ctx, host.AgentState{AgentID: "agent-1", State: benchState}); err != nil {
		b.Fatal(err)
	}
	w := &discardWriter{header: http.Header{}}

	b.Run("Get/store", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.GetAgentState(ctx, "agent-1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get/handler", func(b *testing.B) {
		r := httptest.NewRequest(http.MethodGet, "/v1/agents/agent-1/state", nil)
		for b.Loop() {
			w.reset()
			h.ServeHTTP(w, r)
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
		}
	})
	b.Run("Put/store", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.PutAgentState(ctx, host.AgentState{AgentID: "agent-1", State: benchState}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Put/handler", func(b *testing.B) {
		body := bytes.NewReader(benchState)
		r := httptest.NewRequest(http.MethodPut, "/v1/agents/agent-1/state", body)
		r.Header.Set("Content-Type", "application/json")
		for b.Loop() {
			body.Reset(benchState)
			r.Body = io.NopCloser(body)
			w.reset()
			h.ServeHTTP(w, r)
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
		}
	})
}
