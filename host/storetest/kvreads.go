package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/internal/rawcall"
)

// KVReads: a plugin that declares kv reads (ABI 1.8, abi/README.md section
// 10.9) keeps what it declared. For records written through it, with and
// without a TTL, the host's answer from the kv store is the plugin's own
// answer, field for field; an absent record is NOT_FOUND; and no entry
// at the declared key is found not to be the record (Stats.KVReadFaults).
// A prefix that is not where the plugin writes fails here, naming it.
func (s *suite) testKVReads(t *testing.T) {
	ctx := t.Context()
	st := s.st
	before := st.Stats()
	var opts [][]host.WriteOption
	opts = append(opts, nil)
	if s.has(abi.FeatureTTL) {
		opts = append(opts, []host.WriteOption{host.WithTTL(time.Hour)})
	}
	for _, r := range st.Metadata().KVReads {
		p := s.prefix()
		where := fmt.Sprintf("the declared kv read of %s at prefix %q", r.Kind.Name(), r.Prefix)
		for i, o := range opts {
			id := fmt.Sprintf("%skv-%d", p, i)
			switch r.Kind {
			case abi.KindAgentState:
				_, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(`{"kv":1}`)}, o...)
				require.NoError(t, err)
				got, err := st.GetAgentState(ctx, id)
				require.NoError(t, err, "%s: a record the plugin wrote is not found there: does the plugin write them at that prefix followed by the ID?", where)
				var own abi.AgentState
				pluginGet(ctx, t, st, abi.OpGetAgentState, id, own.Decode)
				require.Equal(t, own, got, "%s: the host's answer from the kv entry is not the plugin's own", where)
			case abi.KindAlert:
				_, err := st.PutAlert(ctx, host.Alert{ID: id, AgentID: p + "agent", Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: "kv"}, o...)
				require.NoError(t, err)
				got, err := st.GetAlert(ctx, id)
				require.NoError(t, err, "%s: a record the plugin wrote is not found there: does the plugin write them at that prefix followed by the ID?", where)
				var own abi.Alert
				pluginGet(ctx, t, st, abi.OpGetAlert, id, own.Decode)
				require.Equal(t, own, got, "%s: the host's answer from the kv entry is not the plugin's own", where)
			}
		}
		var err error
		switch r.Kind {
		case abi.KindAgentState:
			_, err = st.GetAgentState(ctx, p+"kv-absent")
		case abi.KindAlert:
			_, err = st.GetAlert(ctx, p+"kv-absent")
		}
		require.ErrorIs(t, err, host.ErrNotFound, "%s: an absent record", where)
	}
	after := st.Stats()
	require.Equal(t, before.KVReadFaults, after.KVReadFaults,
		"entries at a declared prefix are not the record: the host called the plugin instead (its log names the first key and why)")
	require.Greater(t, after.KVReads, before.KVReads, "the host answered none of the declared gets from the kv store")
}

// pluginGet asks the plugin itself for the record id with op, past the
// host's kv reads, and decodes its OK answer with decode.
func pluginGet(ctx context.Context, t *testing.T, st *host.Store, op abi.Op, id string, decode func(*abi.Decoder)) {
	t.Helper()
	var e abi.Encoder
	e.String(id)
	status, body, err := rawcall.Call(ctx, st, op, e.Bytes())
	require.NoError(t, err)
	require.Equal(t, abi.StatusOK, status, "the plugin's own %s of %q: %s", op, id, body)
	d := abi.NewDecoder(body)
	decode(d)
	require.NoError(t, d.Finish(), "the plugin's own %s answer", op)
}
