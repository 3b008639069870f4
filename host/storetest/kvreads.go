package storetest

import (
	"context"
	"fmt"
	"strings"
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
	var declared []declaredRead
	for _, r := range s.st.Metadata().KVReads {
		declared = append(declared, declaredRead{r.Kind, fmt.Sprintf("the declared kv read of %s at prefix %q", r.Kind.Name(), r.Prefix)})
	}
	s.testDeclaredReads(t, declared, "kv entry", func(st host.Stats) (uint64, uint64) { return st.KVReads, st.KVReadFaults })
}

// RedisReads: a plugin that declares redis reads (ABI 1.9, abi/README.md
// section 10.9) keeps what it declared, as KVReads checks for kv reads:
// the host's answer from its own HMGET is the plugin's, and no hash at a
// declared key is out of the layout of section 12.8
// (Stats.RedisReadFaults).
func (s *suite) testRedisReads(t *testing.T) {
	var declared []declaredRead
	for _, r := range s.st.Metadata().RedisReads {
		declared = append(declared, declaredRead{r.Kind, fmt.Sprintf("the declared redis read of %s at key %q+id+%q", r.Kind.Name(), r.KeyPrefix, r.KeySuffix)})
	}
	s.testDeclaredReads(t, declared, "hash", func(st host.Stats) (uint64, uint64) { return st.RedisReads, st.RedisReadFaults })
}

// PGReads: a plugin that declares postgres reads (ABI 1.9, abi/README.md
// section 10.9) keeps what it declared, as KVReads checks for kv reads:
// the host's answer from the declared statement is the plugin's, and no
// answer of it is out of the row form of section 16.7
// (Stats.PGReadFaults).
func (s *suite) testPGReads(t *testing.T) {
	var declared []declaredRead
	for _, r := range s.st.Metadata().PGReads {
		declared = append(declared, declaredRead{r.Kind, fmt.Sprintf("the declared postgres read of %s", r.Kind.Name())})
	}
	s.testDeclaredReads(t, declared, "statement's row", func(st host.Stats) (uint64, uint64) { return st.PGReads, st.PGReadFaults })
}

// declaredRead is one kind's declared read, and how a failure names it.
type declaredRead struct {
	kind  abi.RecordKind
	where string
}

// testDeclaredReads compares, for each declared read, the host's answers
// with the plugin's own; counts reads the host's Stats counters of those
// served and of those found not to be the record. what names where the
// host reads a record.
func (s *suite) testDeclaredReads(t *testing.T, declared []declaredRead, what string, counts func(host.Stats) (served, faults uint64)) {
	ctx := t.Context()
	st := s.st
	servedBefore, _ := counts(st.Stats())
	var opts [][]host.WriteOption
	opts = append(opts, nil)
	if s.has(abi.FeatureTTL) {
		opts = append(opts, []host.WriteOption{host.WithTTL(time.Hour)})
	}
	notThere := fmt.Sprintf("a record the plugin wrote is not found there: does the plugin write the %s it declared?", what)
	notOwn := fmt.Sprintf("the host's answer from the %s is not the plugin's own", what)
	// check reads id, which the plugin holds, through the host and then
	// from the plugin itself: the same record, and no fault on the way.
	check := func(r declaredRead, id string, host func() (any, error), own func() any) {
		t.Helper()
		_, before := counts(st.Stats())
		got, err := host()
		require.NoError(t, err, "%s: %q: %s", r.where, id, notThere)
		if _, after := counts(st.Stats()); after != before {
			t.Fatalf("%s: the %s of %q is not in the promised form: the host called the plugin instead (the host's log names the key and why)", r.where, what, id)
		}
		require.Equal(t, own(), got, "%s: %q: %s", r.where, id, notOwn)
	}
	// Records of several shapes: IDs of upper- and lower-case letters,
	// digits, punctuation and non-ASCII, the longest ID; states empty,
	// small and large; alerts with and without labels, of every status.
	large := make([]byte, 64<<10)
	for i := range large {
		large[i] = 'a' + byte(i%26)
	}
	for _, r := range declared {
		p := s.prefix()
		// Each ID is written once per option, with its number appended:
		// the last is then the longest an ID may be.
		ids := []string{p + "declared", p + "Declared-UPPER.9", p + "déclaré/ü", p + strings.Repeat("l", abi.MaxIDLength-len(p)-1)}
		for i, o := range opts {
			for j, id := range ids {
				id := fmt.Sprint(id, i)
				switch r.kind {
				case abi.KindAgentState:
					doc := [][]byte{nil, []byte(`{"declared":1}`), large, []byte("x")}[j%4]
					_, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: doc}, o...)
					require.NoError(t, err)
					check(r, id, func() (any, error) { return st.GetAgentState(ctx, id) }, func() any {
						var own abi.AgentState
						pluginGet(ctx, t, st, abi.OpGetAgentState, id, own.Decode)
						return own
					})
				case abi.KindAlert:
					a := host.Alert{ID: id, AgentID: p + "agent", Severity: abi.Severity(1 + j%3), Status: abi.AlertStatus(1 + j%3), Message: "declared"}
					if j%2 == 1 {
						a.Labels = map[string]string{"team": "db", "dc": "eu-1"}
						a.Message = ""
					}
					_, err := st.PutAlert(ctx, a, o...)
					require.NoError(t, err)
					check(r, id, func() (any, error) { return st.GetAlert(ctx, id) }, func() any {
						var own abi.Alert
						pluginGet(ctx, t, st, abi.OpGetAlert, id, own.Decode)
						return own
					})
				}
			}
		}
		first := ids[0] + "0"
		var err error
		switch r.kind {
		case abi.KindAgentState:
			require.NoError(t, st.DeleteAgentState(ctx, first))
			_, err = st.GetAgentState(ctx, first)
			require.ErrorIs(t, err, host.ErrNotFound, "%s: a deleted record", r.where)
			_, err = st.GetAgentState(ctx, p+"declared-absent")
		case abi.KindAlert:
			require.NoError(t, st.DeleteAlert(ctx, first))
			_, err = st.GetAlert(ctx, first)
			require.ErrorIs(t, err, host.ErrNotFound, "%s: a deleted record", r.where)
			_, err = st.GetAlert(ctx, p+"declared-absent")
		}
		require.ErrorIs(t, err, host.ErrNotFound, "%s: an absent record", r.where)
	}
	if served, _ := counts(st.Stats()); served == servedBefore {
		t.Fatal("the host answered none of the declared gets itself")
	}
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
