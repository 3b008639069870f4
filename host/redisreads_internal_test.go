package host

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// openRedisReads opens the built-in redis plugin, which declares its gets
// redis reads, on a prefix of its own; direct reaches the same Redis.
func openRedisReads(t *testing.T, calls *callCounter) (st *Store, direct *redis.Client, prefix string) {
	t.Helper()
	addr := redistest.Addr(t)
	prefix = redistest.Prefix(t, addr)
	st, err := Open(t.Context(), Config{Plugin: "builtin:redis", Redis: &redisbridge.Config{
		Addrs: []string{addr}, KeyPrefix: prefix, Scripts: true,
	}}, WithObserver(calls), WithCompilationCache(""))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	require.NotNil(t, st.p.redisReads[abi.KindAgentState])
	require.NotNil(t, st.p.redisReads[abi.KindAlert])
	direct = redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = direct.Close() })
	return st, direct, prefix
}

// TestRedisReadsAnswerAsThePluginDoes: the redis plugin declares its
// alert and agent-state gets redis reads; the host answers them with an
// HMGET of its own, without entering the plugin, with what the plugin's
// own get answers: records, versions, expiries, labels, NOT_FOUND for
// absent and deleted records (a tombstone hash) alike.
func TestRedisReadsAnswerAsThePluginDoes(t *testing.T) {
	ctx := t.Context()
	calls := &callCounter{}
	st, _, _ := openRedisReads(t, calls)

	_, err := st.PutAgentState(ctx, AgentState{AgentID: "a1", State: []byte(`{"step":1}`)})
	require.NoError(t, err)
	second, err := st.PutAgentState(ctx, AgentState{AgentID: "a1", State: []byte(`{"step":2}`)})
	require.NoError(t, err)
	_, err = st.PutAgentState(ctx, AgentState{AgentID: "a2"}, WithTTL(time.Hour)) // an empty state
	require.NoError(t, err)
	_, err = st.PutAgentState(ctx, AgentState{AgentID: "gone", State: []byte("x")})
	require.NoError(t, err)
	require.NoError(t, st.DeleteAgentState(ctx, "gone"))
	_, err = st.PutAlert(ctx, Alert{ID: "x1", AgentID: "a1", Severity: abi.SeverityCritical, Status: abi.AlertFiring,
		Message: "disk", Labels: map[string]string{"dc": "eu", "team": "db"}}, WithTTL(time.Hour))
	require.NoError(t, err)
	_, err = st.PutAlert(ctx, Alert{ID: "x2", AgentID: "a2", Severity: abi.SeverityInfo, Status: abi.AlertResolved})
	require.NoError(t, err)

	for _, id := range []string{"a1", "a2", "gone", "never"} {
		before, gets := st.p.redisServed.Load(), calls.gets.Load()
		got, err := st.GetAgentState(ctx, id)
		require.Equal(t, before+1, st.p.redisServed.Load(), "%s is read by the host", id)
		require.Equal(t, gets, calls.gets.Load(), "%s: the plugin is not called", id)
		own, ownErr := fromPlugin(ctx, st.agentStateFromPlugin, id)
		require.Equal(t, gets+1, calls.gets.Load(), "%s: the plugin answers itself", id)
		assert.Equal(t, own, got, id)
		if ownErr != nil {
			assert.ErrorIs(t, ownErr, ErrNotFound, id)
			assert.ErrorIs(t, err, ErrNotFound, id)
		} else {
			assert.NoError(t, err, id)
		}
	}
	for _, id := range []string{"x1", "x2", "never"} {
		before := st.p.redisServed.Load()
		got, err := st.GetAlert(ctx, id)
		require.Equal(t, before+1, st.p.redisServed.Load(), "%s is read by the host", id)
		own, ownErr := fromPlugin(ctx, st.alertFromPlugin, id)
		assert.Equal(t, own, got, id)
		assert.Equal(t, ownErr == nil, err == nil, "%s: %v / %v", id, ownErr, err)
	}
	got, err := st.GetAgentState(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, second.Version, got.Version)
	assert.Equal(t, `{"step":2}`, string(got.State))
	alert, err := st.GetAlert(ctx, "x1")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"dc": "eu", "team": "db"}, alert.Labels)
	assert.False(t, alert.ExpiresAt.IsZero())
	assert.Zero(t, st.p.redisReadFaults.Load())
}

// TestRedisReadsLeaveThePluginWhatItKeeps: the host calls the plugin, and
// answers what it answers, for a hash out of the declared layout (counted
// as a fault), for an ID a hash tag would escape, and while the plugin's
// guard prefix has kv entries (its fallback buffer's queue).
func TestRedisReadsLeaveThePluginWhatItKeeps(t *testing.T) {
	ctx := t.Context()
	calls := &callCounter{}
	st, direct, prefix := openRedisReads(t, calls)
	_, err := st.PutAgentState(ctx, AgentState{AgentID: "old", State: []byte("doc")})
	require.NoError(t, err)
	want, err := st.GetAgentState(ctx, "old")
	require.NoError(t, err)

	pluginAnswers := func(what string, id string) {
		t.Helper()
		served, gets := st.p.redisServed.Load(), calls.gets.Load()
		got, err := st.GetAgentState(ctx, id)
		require.NoError(t, err, what)
		assert.Equal(t, want.State, got.State, what)
		assert.Equal(t, served, st.p.redisServed.Load(), "%s: not served by the host", what)
		assert.Equal(t, gets+1, calls.gets.Load(), "%s: the plugin serves", what)
	}

	// A record as a plugin from before the stored expiry kept it (no e):
	// the plugin reads it another way.
	key := prefix + "s:{old}"
	require.NoError(t, direct.HDel(ctx, key, "e").Err())
	pluginAnswers("a hash without e", "old")
	assert.Equal(t, uint64(1), st.p.redisReadFaults.Load(), "a hash out of the layout is a fault")
	require.NoError(t, direct.HSet(ctx, key, "e", "-1").Err())

	// The guard: while the fallback buffer's queue holds writes, the
	// plugin's gets see them; the host leaves every get to it.
	var out abi.Encoder
	st.p.kv.Do(&abi.KVRequest{Op: abi.KVPut, Key: []byte("q/0000000000000001"), Value: []byte("held")}, &out)
	require.Equal(t, byte(abi.StatusOK), out.Bytes()[0])
	pluginAnswers("while the guard prefix has an entry", "old")
	require.True(t, st.p.kv.HasPrefix([]byte("q/")))

	// An ID with a brace goes to the plugin, whose key escapes it.
	_, err = st.PutAgentState(ctx, AgentState{AgentID: "br}ce", State: []byte("doc")})
	require.NoError(t, err)
	out.Reset()
	st.p.kv.Do(&abi.KVRequest{Op: abi.KVDelete, Key: []byte("q/0000000000000001")}, &out)
	require.False(t, st.p.kv.HasPrefix([]byte("q/")))
	pluginAnswers("an ID with a brace", "br}ce")

	// An expiry passed by the host's clock (a hash without PEXPIREAT):
	// whether the record is gone is the plugin's to say; no fault.
	require.NoError(t, direct.HSet(ctx, key, "e", "1000").Err())
	served, gets, faults := st.p.redisServed.Load(), calls.gets.Load(), st.p.redisReadFaults.Load()
	_, _ = st.GetAgentState(ctx, "old")
	assert.Equal(t, served, st.p.redisServed.Load(), "a passed expiry is not served by the host")
	assert.Equal(t, gets+1, calls.gets.Load(), "the plugin answers a passed expiry")
	assert.Equal(t, faults, st.p.redisReadFaults.Load(), "a passed expiry is no fault")
	require.NoError(t, direct.HSet(ctx, key, "e", "-1").Err())

	// Back to the host once the guard is clear and the hash in form.
	served = st.p.redisServed.Load()
	_, err = st.GetAgentState(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, served+1, st.p.redisServed.Load())
}

// TestHashFieldForms: the numbers of a record hash are decimal, with an
// optional '-' and no other sign, space or leading zero (abi/README.md
// section 12.8); anything else is out of form.
func TestHashFieldForms(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1": 1, "-1": -1, "1733400000000": 1733400000000, "9223372036854775807": 1<<63 - 1} {
		got, ok := hashInt(&abi.Reply{Kind: abi.ReplyBulk, Str: []byte(in)})
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-", "+1", " 1", "1 ", "01", "-0", "-01", "1.0", "1e3", "0x10", "9223372036854775808", "99999999999999999999"} {
		_, ok := hashInt(&abi.Reply{Kind: abi.ReplyBulk, Str: []byte(in)})
		assert.False(t, ok, "%q", in)
	}
	_, ok := hashInt(&abi.Reply{Kind: abi.ReplyInt, Int: 1})
	assert.False(t, ok, "a field is a bulk string")
	for in, ok := range map[string]bool{"-1": true, "0": true, "1733400000000": true, "-2": false, "-0": false} {
		_, got := hashExpiry(&abi.Reply{Kind: abi.ReplyBulk, Str: []byte(in)})
		assert.Equal(t, ok, got, in)
	}
}

// TestRedisReadOfAnUnansweringRedis: a redis read that Redis does not
// answer (a paused server) is UNAVAILABLE at once, as the plugin's own
// read would be after a second wait: the plugin is not called.
func TestRedisReadOfAnUnansweringRedis(t *testing.T) {
	ctx := t.Context()
	s := redistest.NewServer(t)
	calls := &callCounter{}
	st, err := Open(ctx, Config{Plugin: "builtin:redis", Redis: &redisbridge.Config{
		Addrs: []string{s.Addr()}, KeyPrefix: "rr:", Scripts: true, ReadTimeout: 200 * time.Millisecond,
	}}, WithObserver(calls), WithCompilationCache(""))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	_, err = st.PutAgentState(ctx, AgentState{AgentID: "a1", State: []byte("doc")})
	require.NoError(t, err)

	s.Pause()
	t.Cleanup(s.Resume)
	gets := calls.gets.Load()
	_, err = st.GetAgentState(ctx, "a1")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Equal(t, gets, calls.gets.Load(), "the plugin is not called after the host's read failed")
	assert.Zero(t, st.p.redisReadFaults.Load(), "an outage is no fault of the declaration")
	s.Resume()
	got, err := st.GetAgentState(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, "doc", string(got.State))
}

// TestRedisAlertFieldRanges: an alert hash whose severity or status is
// not 1 to 3, or whose expiry is past what a time holds, is out of form.
func TestRedisAlertFieldRanges(t *testing.T) {
	bulk := func(s string) abi.Reply { return abi.Reply{Kind: abi.ReplyBulk, Str: []byte(s)} }
	fields := func(severity, status, expiry string) []abi.Reply {
		return []abi.Reply{bulk("agent"), bulk(severity), bulk(status), bulk("m"), bulk("\x00"), bulk("1"), bulk("1"), bulk(expiry)}
	}
	var a Alert
	found, fault := decodeRedisAlert(fields("2", "1", "-1"), "x", time.Now(), &a)
	require.True(t, found)
	require.Empty(t, fault)
	for _, f := range [][3]string{{"258", "1", "-1"}, {"0", "1", "-1"}, {"2", "259", "-1"}, {"2", "-254", "-1"}, {"2", "1", "9223372036854775807"}} {
		found, fault := decodeRedisAlert(fields(f[0], f[1], f[2]), "x", time.Now(), &a)
		assert.False(t, found, "%v", f)
		assert.NotEmpty(t, fault, "%v", f)
	}
}

// TestDeclaredReadsBoundLabels: a declared get's labels are a record's,
// within its bounds (abi.MaxLabels, abi.MaxLabelBytes), however the
// plugin stored them: past them the read is the plugin's fault, and the
// plugin serves the get (its answer is checked as every answer is).
func TestDeclaredReadsBoundLabels(t *testing.T) {
	many := map[string]string{}
	for i := range abi.MaxLabels + 1 {
		many[fmt.Sprintf("l%d", i)] = "v"
	}
	var e abi.Encoder
	abi.EncodeLabels(&e, many)
	tooMany := e.Bytes()
	e = abi.Encoder{}
	abi.EncodeLabels(&e, map[string]string{"big": strings.Repeat("x", abi.MaxLabelBytes)})
	tooBig := e.Bytes()

	bulk := func(s []byte) abi.Reply { return abi.Reply{Kind: abi.ReplyBulk, Str: s} }
	for name, labels := range map[string][]byte{"too many": tooMany, "too large": tooBig} {
		var a Alert
		fields := []abi.Reply{bulk([]byte("agent")), bulk([]byte("2")), bulk([]byte("1")), bulk([]byte("m")), bulk(labels), bulk([]byte("1")), bulk([]byte("1")), bulk([]byte("-1"))}
		found, fault := decodeRedisAlert(fields, "x", time.Now(), &a)
		assert.False(t, found, name)
		assert.Contains(t, fault, "l (labels) does not decode", name)
		assert.Nil(t, a.Labels, name)

		row := []abi.PGValue{{Kind: abi.PGText, Bytes: []byte("agent")}, {Kind: abi.PGInt, Int: 2}, {Kind: abi.PGInt, Int: 1},
			{Kind: abi.PGText, Bytes: []byte("m")}, {Kind: abi.PGBytea, Bytes: labels}, {Kind: abi.PGInt, Int: 1}, {Kind: abi.PGInt, Int: 1}, {Kind: abi.PGInt}}
		a = Alert{}
		assert.Contains(t, decodePGAlert(row, "x", time.Now(), &a), "labels do not decode", name)
		assert.Nil(t, a.Labels, name)
	}
}
