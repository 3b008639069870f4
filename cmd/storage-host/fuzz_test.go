package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// FuzzPutAgentState drives PUT /v1/agents/{id}/state through the real
// handler and the built-in memory plugin with a fuzzer-chosen agent ID,
// body, If-Match header, If-None-Match: * and ttl parameter, optionally
// over a state stored first. The handler must not panic; it must answer
// with a status a client can act on, a JSON error body on failure, 400 for
// input that can never be valid and 200 for input that must succeed; and a
// state it accepted must read back unchanged, through the store and
// through GET.
//
// Run it with, for example:
//
//	go test ./cmd/storage-host -run='^$' -fuzz='^FuzzPutAgentState$' -fuzztime=100000x
//
// Crashers land in testdata/fuzz/FuzzPutAgentState/ and are then run by
// plain `go test` as regression cases: keep them.
func FuzzPutAgentState(f *testing.F) {
	// prior: bit 0 stores a state under the ID first; bit 1 replaces the
	// If-Match header with that state's version (so a conditional write
	// can succeed); bit 2 sends If-None-Match: *.
	f.Add("agent-1", []byte(`{"step":1}`), "", "", uint8(0))
	f.Add("agent-1", []byte(`{"step":2}`), "", "1h", uint8(1))
	f.Add("agent-1", []byte(`{"step":2}`), "", "persist", uint8(3))
	f.Add("agent-1", []byte(`{"step":2}`), `"999999"`, "keep", uint8(1))
	f.Add("agent-1", []byte(`{"step":2}`), "", "", uint8(4))
	f.Add("agent-1", []byte(`{"step":2}`), "", "", uint8(5))
	f.Add("a/b c%2F", []byte(`[1, 2.5e300, "<&>", null, true]`), "", "1ms", uint8(0))
	f.Add("ünïcødé", []byte(`"\u2028\ud800"`), "", "999us", uint8(0))
	f.Add("agent", []byte(`{"a":1,"a":2}`), "W/\"1\"", "-1s", uint8(1))
	f.Add("agent", []byte(`1e400`), "", "2000000h", uint8(0))
	f.Add("agent", []byte("{\"k\":\"\xff\"}"), "", "", uint8(0))
	f.Add("agent", []byte(`{`), "", "", uint8(0))
	f.Add("", []byte(`{}`), "", "", uint8(0))
	f.Add("..", []byte(`{}`), "", "", uint8(0))
	f.Add("nul\x00", []byte(`{}`), "", "", uint8(0))
	f.Add(strings.Repeat("x", abi.MaxIDLength+1), []byte(`{}`), "", "", uint8(0))
	f.Add("agent", []byte(`{}`), "18446744073709551616", "", uint8(0))

	ctx := context.Background()
	// A frozen clock: no state the fuzzer writes with a TTL of 1ms or
	// more may expire before it is read back.
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	st, err := host.Open(ctx, host.Config{Instances: 1}, host.WithCompilationCache(f.TempDir()), host.WithClock(func() time.Time { return now }))
	require.NoError(f, err)
	f.Cleanup(func() { _ = st.Close(ctx) })
	h := newHandler(st, hclog.NewNullLogger())
	mux, ok := h.(*http.ServeMux)
	require.True(f, ok, "newHandler returns the router itself")
	const putPattern = "PUT /v1/agents/{id}/state"

	f.Fuzz(func(t *testing.T, id string, body []byte, ifMatch, ttl string, prior uint8) {
		idValid := abi.CheckID("agent id", id) == nil
		var priorVersion uint64
		if prior&1 != 0 && idValid {
			s, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(`{"prior":true}`)})
			require.NoError(t, err)
			priorVersion = s.Version
		}
		// Every input starts from the same store: nothing of this
		// input's outlives it.
		defer func() {
			if idValid {
				_ = st.DeleteAgentState(ctx, id)
			}
		}()
		if prior&2 != 0 && prior&1 != 0 && idValid {
			ifMatch = strconv.Quote(strconv.FormatUint(priorVersion, 10))
		}

		target := "/v1/agents/" + url.PathEscape(id) + "/state"
		if ttl != "" {
			target += "?" + url.Values{"ttl": {ttl}}.Encode()
		}
		req := httptest.NewRequest(http.MethodPut, target, bytes.NewReader(body))
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		if prior&4 != 0 {
			req.Header.Set("If-None-Match", "*")
		}
		_, pattern := mux.Handler(req)
		escaped := req.URL.EscapedPath()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		code := rec.Code

		if pattern != putPattern || path.Clean(escaped) != escaped {
			// Paths the router does not route to the handler, which it
			// answers itself: IDs "", "." and ".." make unclean paths it
			// redirects; a lone "/" (escaped, %2F) matches no pattern.
			require.Contains(t, []int{http.StatusTemporaryRedirect, http.StatusNotFound}, code, "unrouted path %q", escaped)
			return
		}
		require.Contains(t, []int{200, 400, 404, 409, 412, 501, 503}, code, "status %d; body %s", code, rec.Body)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))

		// Input that can never be written is refused as invalid, and
		// input that must be written is.
		ttlValid, ifMatchValid := validTTL(ttl), validIfMatch(ifMatch)
		valid := json.Valid(body) && idValid && ttlValid && ifMatchValid
		if !valid {
			require.Equal(t, http.StatusBadRequest, code, "invalid input accepted; body %s", rec.Body)
		}
		conditional := ifMatch != "" || prior&4 != 0
		mustSucceed := valid && (!conditional ||
			ifMatch == "" && prior&1 == 0 || // create-only, with nothing stored
			prior&3 == 3 && prior&4 == 0) // If-Match the stored version
		if mustSucceed {
			require.Equal(t, http.StatusOK, code, "valid write refused; body %s", rec.Body)
		}

		if code != http.StatusOK {
			checkErrorBody(t, rec.Body.Bytes())
			return
		}
		var put agentStateJSON
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &put), "body %s", rec.Body)
		require.Equal(t, id, put.AgentID)
		require.Equal(t, strconv.Quote(put.Version), rec.Header().Get("ETag"))
		if prior&1 != 0 {
			require.NotEqual(t, strconv.FormatUint(priorVersion, 10), put.Version, "a write changes the version")
		}

		// The store holds exactly the body.
		stored, err := st.GetAgentState(ctx, id)
		require.NoError(t, err, "a state just written is readable (PUT answered %s)", rec.Body)
		require.Equal(t, body, stored.State, "the store holds the body as sent")
		require.Equal(t, put.Version, strconv.FormatUint(stored.Version, 10))

		// GET returns the same state.
		get := httptest.NewRequest(http.MethodGet, "/v1/agents/"+url.PathEscape(id)+"/state", nil)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, get)
		require.Equal(t, http.StatusOK, rec.Code, "GET of a state just written; body %s", rec.Body)
		var got agentStateJSON
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got), "body %s", rec.Body)
		require.Equal(t, put, got)
		require.True(t, sameJSON(t, body, got.State), "GET returned state %s for body %s", got.State, body)
	})
}

// validTTL reports whether the ttl parameter names a TTL a write accepts:
// none, a keyword, or a duration from a millisecond to abi.MaxTTL.
func validTTL(ttl string) bool {
	switch ttl {
	case "", "persist", "keep":
		return true
	}
	d, err := time.ParseDuration(ttl)
	return err == nil && d >= time.Millisecond && d <= abi.MaxTTL
}

// validIfMatch reports whether an If-Match header holds a version.
func validIfMatch(m string) bool {
	if m == "" {
		return true
	}
	_, err := strconv.ParseUint(strings.Trim(m, `"`), 10, 64)
	return err == nil
}

// checkErrorBody requires the JSON error body: a code and a message.
func checkErrorBody(t *testing.T, b []byte) {
	t.Helper()
	var e map[string]any
	require.NoError(t, json.Unmarshal(b, &e), "error body %s", b)
	code, ok := e["code"].(string)
	require.True(t, ok && code != "", "error body %s has no code", b)
	msg, ok := e["message"].(string)
	require.True(t, ok && msg != "", "error body %s has no message", b)
}

// sameJSON reports whether two JSON documents hold the same values
// (numbers compared as written, duplicate keys resolved alike).
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	decode := func(b []byte) any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		require.NoError(t, d.Decode(&v), "%s", b)
		_, err := d.Token()
		require.True(t, errors.Is(err, io.EOF), "trailing data after %s", b)
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}
