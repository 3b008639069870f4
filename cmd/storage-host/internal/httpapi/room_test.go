package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/host"
)

// TestBigResponsesShareTheRoom: a response whose JSON may be tens of MiB
// (an alert whose message is 6 MiB of control characters, 36 MiB once
// escaped) is written only when the room has space for it. While one such
// response is held by a client that does not read it, a second waits, and
// is written whole once the first is taken.
func TestBigResponsesShareTheRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two responses of 36 MiB; skipped with -short")
	}
	// A put of a 6 MiB alert takes the memory plugin a second or two, more
	// on a loaded machine.
	e := newEnvWith(t, openStore(t, host.Config{Plugin: "builtin:memory", Limits: host.Limits{CallTimeout: time.Minute}}))
	msg := strings.Repeat("\x01", 6<<20)
	_, err := e.be.stores[abi.KindAlert].PutAlert(t.Context(), host.Alert{ID: "big", AgentID: "a", Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: msg})
	require.NoError(t, err)
	require.Greater(t, 2*6*len(msg), httpapi.MaxResponseRoom, "two responses must not fit at once")

	get := func() *http.Response {
		req := httptest.NewRequest("GET", e.srv.URL+"/v1/alerts/big", nil)
		req.RequestURI = ""
		res, err := e.srv.Client().Do(req)
		require.NoError(t, err)
		return res
	}
	first := get() // its headers came; its body waits in the connection
	defer first.Body.Close()
	require.Equal(t, 200, first.StatusCode)

	second := make(chan *http.Response, 1)
	go func() { second <- get() }()
	select {
	case res := <-second:
		res.Body.Close()
		t.Fatal("a second big response was written while the first held the room")
	case <-time.After(500 * time.Millisecond):
	}

	var a struct{ Message string }
	require.NoError(t, json.NewDecoder(first.Body).Decode(&a))
	require.Equal(t, msg, a.Message)
	res := <-second
	defer res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	require.NoError(t, json.NewDecoder(res.Body).Decode(&a))
	require.Equal(t, msg, a.Message)
}
