package host_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// The echo plugin (testdata/plugins/gohostile/echo.wat) answers a request
// carrying one string with exactly that string's bytes, so
// st.GetAgentState(ctx, string(b)) makes the host read b as the plugin's
// response. FuzzPluginResponse uses it to feed the host's response path
// (status byte, body decoding, error mapping, instance handling) whatever
// a hostile plugin could return.
//
// Run it with, for example:
//
//	go test ./host -run='^$' -fuzz='^FuzzPluginResponse$' -fuzztime=100000x
//
// Crashers land in testdata/fuzz/FuzzPluginResponse/ and are then run by
// plain `go test` as regression cases: keep them.

const echoDir = "../testdata/plugins/gohostile"

// Times for the seed records: not the zero time, with nanoseconds.
var (
	echoT0 = time.Date(2024, 5, 1, 12, 0, 0, 123, time.UTC)
	echoT1 = echoT0.Add(36 * time.Hour)
)

// TestEchoWASMMatchesSource requires the committed echo.wasm to be what
// its source builds to, as TestForeignWASMMatchesSource does for the
// fixtures in testdata/plugins.
func TestEchoWASMMatchesSource(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		msg := "wat2wasm not found: apt install wabt to check testdata/plugins/gohostile/echo.wasm against its source"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out := filepath.Join(t.TempDir(), "echo.wasm")
	msg, err := exec.Command(wat2wasm, filepath.Join(echoDir, "echo.wat"), "-o", out).CombinedOutput()
	require.NoError(t, err, "%s", msg)
	built, err := os.ReadFile(out)
	require.NoError(t, err)
	committed, err := os.ReadFile(filepath.Join(echoDir, "echo.wasm"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(built, committed),
		"testdata/plugins/gohostile/echo.wasm is stale: run `wat2wasm echo.wat -o echo.wasm` there and commit it")
}

// TestEchoPlugin checks the fuzz harness itself: what goes in as an ID
// comes back as the response. A record that decodes is never the one
// asked for (the ID asked for holds the whole response), so the host
// refuses it, naming the agent it decoded.
func TestEchoPlugin(t *testing.T) {
	ctx := context.Background()
	st := openEcho(t)
	require.NoError(t, st.Ping(ctx))

	want := abi.AgentState{AgentID: "a1", State: []byte(`{"x":1}`), Version: 7, UpdatedAt: echoT0}
	got, err := st.GetAgentState(ctx, string(echoOK(want.Encode)))
	require.ErrorIs(t, err, host.ErrInternal)
	require.ErrorContains(t, err, `answer refused: asked for the state of agent "\x00\x02a1`)
	require.ErrorContains(t, err, `answered agent "a1"`)
	require.Zero(t, got)

	_, err = st.GetAlert(ctx, "\x01no such alert")
	require.ErrorIs(t, err, host.ErrNotFound)
	require.EqualError(t, err, "not found: no such alert")
}

func openEcho(t testing.TB) *host.Store {
	t.Helper()
	wasm, err := os.ReadFile(filepath.Join(echoDir, "echo.wasm"))
	require.NoError(t, err)
	st, err := host.Open(context.Background(), host.Config{WASM: wasm, Instances: 1}, host.WithCompilationCache(""))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// echoOK is a whole OK response with the body encode writes.
func echoOK(encode func(*abi.Encoder)) []byte {
	var e abi.Encoder
	e.U8(uint8(abi.StatusOK))
	encode(&e)
	return append([]byte(nil), e.Bytes()...)
}

func echoErr(s abi.Status, msg string) []byte {
	var e abi.Encoder
	abi.AppendError(&e, s, msg)
	return append([]byte(nil), e.Bytes()...)
}

// FuzzPluginResponse sends, through the echo plugin, a fuzzer-chosen
// response to GetAgentState (op 0) or GetAlert (op 1). The host must not
// panic, must answer every response with either the value the body
// decodes to or an error matching the status the response carries (or
// ErrInternal for a response that is empty, has an unknown status or a
// body that does not decode), and must not hand out memory the plugin can
// overwrite.
func FuzzPluginResponse(f *testing.F) {
	state := abi.AgentState{AgentID: "agent-1", State: []byte(`{"step":3}`), Version: 42, UpdatedAt: echoT0, ExpiresAt: echoT1}
	alert := abi.Alert{
		ID: "alert-1", AgentID: "agent-1", Severity: abi.SeverityCritical, Status: abi.AlertFiring,
		Message: "disk full", Labels: map[string]string{"disk": "/dev/sda", "host": "h1"},
		CreatedAt: echoT0, UpdatedAt: echoT1,
	}
	for _, op := range []uint8{0, 1} {
		f.Add(op, echoOK(state.Encode))
		f.Add(op, echoOK((&abi.AgentState{}).Encode))
		f.Add(op, echoOK(alert.Encode))
		f.Add(op, echoOK((&abi.Alert{}).Encode))
		f.Add(op, append(echoOK(state.Encode), 0)) // trailing byte
		f.Add(op, echoOK(state.Encode)[:10])       // truncated
		f.Add(op, echoErr(abi.StatusNotFound, `agent state "agent-1": not found`))
		f.Add(op, echoErr(abi.StatusConflict, ""))
		f.Add(op, echoErr(abi.StatusLimit, "document too large"))
		f.Add(op, echoErr(abi.StatusInternal, "plugin panic: boom"))
		f.Add(op, echoErr(200, "a status from the future"))
		f.Add(op, []byte{})
		f.Add(op, []byte{uint8(abi.StatusOK)})
	}

	ctx := context.Background()
	st := openEcho(f)
	f.Fuzz(func(t *testing.T, op uint8, resp []byte) {
		var (
			got     any
			err     error
			decode  func(*abi.Decoder) any
			refetch func() any
		)
		switch op % 2 {
		case 0:
			var v abi.AgentState
			v, err = st.GetAgentState(ctx, string(resp))
			got = v
			decode = func(d *abi.Decoder) any { var v abi.AgentState; v.Decode(d); return v }
			refetch = func() any { return v }
		case 1:
			var v abi.Alert
			v, err = st.GetAlert(ctx, string(resp))
			got = v
			decode = func(d *abi.Decoder) any { var v abi.Alert; v.Decode(d); return v }
			refetch = func() any { return v }
		}
		checkEchoResponse(t, resp, got, err, decode)

		if (err == nil || errors.Is(err, host.ErrStale)) && len(resp) > 0 {
			// Another response of the same length overwrites the region
			// the first one was read from; the value must not change.
			other := bytes.Repeat([]byte{0xff}, len(resp))
			_, _ = st.GetAgentState(ctx, string(other))
			require.Equal(t, got, refetch(), "the decoded value aliases plugin memory")
		}
	})
}

// checkEchoResponse checks what a Get call made of the plugin response resp.
func checkEchoResponse(t *testing.T, resp []byte, got any, err error, decode func(*abi.Decoder) any) {
	t.Helper()
	if err != nil {
		var s abi.Status
		require.True(t, errors.As(err, &s), "error %v carries no status", err)
		require.True(t, s.Known() && s != abi.StatusOK, "error %v carries status %d", err, s)
	}
	switch {
	case len(resp) == 0:
		require.ErrorIs(t, err, host.ErrInternal, "an empty response")
	case resp[0] == uint8(abi.StatusOK), resp[0] == uint8(abi.StatusStale):
		// A stale response carries a result exactly as an OK one does.
		d := abi.NewDecoder(resp[1:])
		decode(d)
		if derr := d.Finish(); derr != nil {
			require.ErrorIs(t, err, host.ErrInternal, "a response whose body does not decode (%v)", derr)
			require.ErrorContains(t, err, "response")
			return
		}
		// The record decodes, but is never the one asked for: the ID asked
		// for is the whole response, longer than any ID inside it.
		require.ErrorIs(t, err, host.ErrInternal, "a record other than the one asked for")
		require.ErrorContains(t, err, "answer refused")
		require.Zero(t, got)
	case resp[0] == uint8(abi.StatusUnknown):
		// Only writes may answer an unknown outcome; these are reads.
		require.ErrorIs(t, err, host.ErrInternal, "a read answering UNKNOWN")
		require.ErrorContains(t, err, "only writes may answer")
	case abi.Status(resp[0]).Known():
		var ae *abi.Error
		require.True(t, errors.As(err, &ae), "error %v is not the plugin's *abi.Error", err)
		require.Equal(t, abi.Status(resp[0]), ae.Status)
		require.Equal(t, host.LogText(string(resp[1:])), ae.Message, "the plugin's message, its non-printable characters escaped")
	default:
		require.ErrorIs(t, err, host.ErrInternal, "an unknown status")
		require.ErrorContains(t, err, "unknown status")
	}
}

// TestPluginErrorMessageIsBounded: a plugin's error message reaches the
// caller cut to a few KiB, saying how much was cut, and made one
// printable line, however long the plugin made it: it is text for
// callers and logs, not data.
func TestPluginErrorMessageIsBounded(t *testing.T) {
	st := openEcho(t)
	// A multi-byte character straddles the cut; control characters are
	// escaped after it.
	msg := strings.Repeat("x", 4095) + "é" + strings.Repeat("\x01", 1<<20)
	_, err := st.GetAlert(context.Background(), string(echoErr(abi.StatusInvalid, msg)))
	require.ErrorIs(t, err, host.ErrInvalid)
	var ae *abi.Error
	require.ErrorAs(t, err, &ae)
	require.Less(t, len(ae.Message), 4200, "the message is cut")
	require.Equal(t, strings.Repeat("x", 4095)+"… ("+strconv.Itoa(len(msg)-4095)+" bytes more)", ae.Message)
}

// TestRefusalQuotesAreBounded: a refused answer's message quotes the
// identifiers asked for and answered cut to a few hundred bytes each,
// however long the plugin made them.
func TestRefusalQuotesAreBounded(t *testing.T) {
	st := openEcho(t)
	state := abi.AgentState{AgentID: strings.Repeat("\x01", 1<<20), State: []byte(`1`), Version: 1, UpdatedAt: echoT0}
	_, err := st.GetAgentState(context.Background(), string(echoOK(state.Encode)))
	require.ErrorIs(t, err, host.ErrInternal)
	require.ErrorContains(t, err, "answer refused: asked for the state of agent")
	require.ErrorContains(t, err, " bytes more)")
	require.Less(t, len(err.Error()), 16<<10)
}
