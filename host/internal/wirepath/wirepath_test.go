package wirepath_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/internal/wirepath"
)

func encode(f func(*abi.Encoder)) []byte {
	var e abi.Encoder
	f(&e)
	return e.Bytes()
}

var (
	when  = time.Unix(1_764_000_000, 5)
	state = abi.AgentState{AgentID: "agent-1", State: []byte(`{"step":1}`), Version: 3, UpdatedAt: when, ExpiresAt: when}
	alert = abi.Alert{ID: "a1", AgentID: "agent-1", Severity: 2, Status: 1, Message: "disk", Labels: map[string]string{"k": "v"},
		CreatedAt: when, UpdatedAt: when}
)

// A message cut short is placed in the field it ends in, by the Go
// decoder's error and the description alike, at every length.
func TestEveryCutIsNamed(t *testing.T) {
	for _, tc := range []struct {
		msg    string
		b      []byte
		decode func(*abi.Decoder)
	}{
		{"AgentState", encode(state.Encode), func(d *abi.Decoder) { new(abi.AgentState).Decode(d) }},
		{"Alert", encode(alert.Encode), func(d *abi.Decoder) { new(abi.Alert).Decode(d) }},
		{"AgentStatePage", encode(func(e *abi.Encoder) {
			abi.EncodePage(e, &abi.Page[abi.AgentState]{Items: []abi.AgentState{state, state}, Next: []byte("next")})
		}), func(d *abi.Decoder) { abi.DecodePage[abi.AgentState](d) }},
		{"TickResult", encode((&abi.TickResult{Pending: 2, Writes: []abi.TickWrite{{Op: abi.OpPutAgentState, State: state}}}).Encode),
			func(d *abi.Decoder) { new(abi.TickResult).Decode(d) }},
	} {
		for n := range len(tc.b) {
			d := abi.NewDecoder(tc.b[:n])
			tc.decode(d)
			require.Error(t, d.Finish(), "%s cut to %d bytes", tc.msg, n)
			text := wirepath.Fault(tc.msg, tc.b[:n], d)
			require.Regexp(t, `^abi: (truncated|malformed) message at byte \d+ of `+strconv.Itoa(n)+`, in `+tc.msg+`[.\[]`, text, "cut to %d bytes", n)
		}
		// One byte more: after the last field.
		long := append(append([]byte{}, tc.b...), 0)
		d := abi.NewDecoder(long)
		tc.decode(d)
		require.Error(t, d.Finish())
		require.Equal(t, "abi: malformed message at byte "+strconv.Itoa(len(tc.b))+" of "+strconv.Itoa(len(long))+
			", after the last field of "+tc.msg+", which ends at byte "+strconv.Itoa(len(tc.b)), wirepath.Fault(tc.msg, long, d))
	}
}

// The path names list elements and nested messages, and a value the
// description does not allow is named with its field.
func TestPaths(t *testing.T) {
	page := encode(func(e *abi.Encoder) {
		abi.EncodePage(e, &abi.Page[abi.AgentState]{Items: []abi.AgentState{state, state}})
	})
	one := len(encode(state.Encode))
	// The second item's updated_at: after the count (1 byte), the first
	// item, and the second's agent_id, state and version.
	at := 1 + one + 1 + len(state.AgentID) + 1 + len(state.State) + 1
	_, where := wirepath.Locate("AgentStatePage", page, at)
	require.Equal(t, "in AgentStatePage.items[1].updated_at (time, bytes "+strconv.Itoa(at)+" to "+strconv.Itoa(at+8)+")", where)

	put := encode((&abi.PutAgentState{State: state, Condition: abi.Condition{Mode: abi.IfVersion, Version: 2}}).Encode)
	put[len(put)-2] = 7 // the condition's mode
	d := abi.NewDecoder(put)
	new(abi.PutAgentState).Decode(d)
	require.Error(t, d.Finish())
	require.Equal(t, "abi: malformed message at byte "+strconv.Itoa(len(put)-2)+" of "+strconv.Itoa(len(put))+
		", in PutAgentState.condition.mode (u8): 7 is not one of [0 1 2]", wirepath.Fault("PutAgentState", put, d))

	// A message the description does not have: the byte alone.
	d = abi.NewDecoder([]byte{1})
	d.U8()
	d.U8()
	require.Equal(t, "abi: truncated message at byte 1 of 1", wirepath.Fault("NoSuchMessage", []byte{1}, d))
}

// A message whose u16 or u32 fields were written as fixed-width integers
// says so, when it reads whole that way; one that does not, does not.
func TestFixedWidthIntegersNamed(t *testing.T) {
	// The memory plugin's Metadata of abi/README.md, section 10.9, with
	// its features written as four bytes.
	fixed := []byte("\x01\x07\x06memory\x050.1.0\x04\x00\x00\x00\x01\x05clock")
	d := abi.NewDecoder(fixed)
	new(abi.Metadata).Decode(d)
	require.Error(t, d.Finish())
	text := wirepath.Fault("Metadata", fixed, d)
	require.Equal(t, "abi: malformed message at byte 17 of 26, after the last field of Metadata, which ends at byte 17; "+
		"the message reads whole with Metadata.features as a fixed-width little-endian integer, which a u32 is not: it is a uvarint (abi/README.md, section 7.1)", text)

	cut := []byte("\x01\x07\x06memory\x050.1.0\x04\x01\x05cl")
	d = abi.NewDecoder(cut)
	new(abi.Metadata).Decode(d)
	require.Error(t, d.Finish())
	require.NotContains(t, wirepath.Fault("Metadata", cut, d), "fixed-width")
}
