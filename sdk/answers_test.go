package sdk

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
)

// panickingStates panics in GetAgentState: on purpose with a value, or
// by indexing past a slice, as a bug would.
type panickingStates struct{ stubStates }

func (panickingStates) GetAgentState(id string) (abi.AgentState, error) {
	if id == "explicit" {
		panic("boom")
	}
	var none []int
	return abi.AgentState{Version: uint64(none[len(id)])}, nil
}

// A store's panic is answered INTERNAL with where it was raised, so the
// author reading the host's log finds the line.
func TestPanicAnswerNamesItsSite(t *testing.T) {
	d := newDispatcher(Plugin{Name: "p", AgentStates: panickingStates{}})
	for _, id := range []string{"explicit", "index"} {
		var e abi.Encoder
		e.String(id)
		status, body := call(t, d, abi.OpGetAgentState, e.Bytes())
		require.Equal(t, abi.StatusInternal, status, id)
		msg := string(body)
		assert.Contains(t, msg, "plugin panic: ", id)
		assert.Regexp(t, `at .*answers_test\.go:\d+ \(.*panickingStates\.GetAgentState\)$`, msg, id)
	}
}

// Configure's plain errors are the operator's options refused: INVALID,
// as the ABI asks; an error with a status keeps it.
func TestConfigureRefusalIsInvalid(t *testing.T) {
	for _, c := range []struct {
		err  error
		want abi.Status
		msg  string
	}{
		{errors.New(`unknown option "colour"`), abi.StatusInvalid, `unknown option "colour"`},
		{fmt.Errorf("redis: %w", ErrUnavailable), abi.StatusUnavailable, "redis"},
		{fmt.Errorf("cache: %w", ErrLimit), abi.StatusLimit, "cache"},
		{abi.Errorf(abi.StatusInternal, "bug"), abi.StatusInternal, "bug"},
		{nil, abi.StatusOK, ""},
	} {
		d := newDispatcher(Plugin{Name: "p", AgentStates: stubStates{}, Configure: func(abi.Options) error { return c.err }})
		var e abi.Encoder
		abi.Options{}.Encode(&e)
		status, body := call(t, d, abi.OpConfigure, e.Bytes())
		assert.Equal(t, c.want, status, "%v", c.err)
		if c.err != nil {
			assert.Equal(t, c.msg, string(body))
		}
	}
}

// A plugin without Configure takes no option: one given is refused,
// INVALID, naming it, never ignored; none given is OK.
func TestNoConfigureRefusesOptions(t *testing.T) {
	d := newDispatcher(Plugin{Name: "p", AgentStates: stubStates{}})
	var e abi.Encoder
	abi.Options{"metric_ttl_secnds": "60", "colour": "blue"}.Encode(&e)
	status, body := call(t, d, abi.OpConfigure, e.Bytes())
	assert.Equal(t, abi.StatusInvalid, status)
	assert.Equal(t, "plugin p takes no options; given colour, metric_ttl_secnds", string(body))

	e.Reset()
	abi.Options{}.Encode(&e)
	status, _ = call(t, d, abi.OpConfigure, e.Bytes())
	assert.Equal(t, abi.StatusOK, status)
}
