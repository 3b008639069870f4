package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// restoreTime is the timestamp of the metrics, and the creation time of
// the alerts, the restore checks write: long past, so that nothing a
// backend sets by itself could match it by chance.
var restoreTime = time.Date(2023, 5, 6, 7, 8, 9, 123456789, time.UTC)

// restoreKind drives one record kind through the restore checks. A record
// is named by an ID (the agent ID of metrics and states, the alert ID,
// also its agent's, of alerts) and carries a content string.
type restoreKind struct {
	name    string
	kind    host.RecordKind
	feature abi.Feature
	// record returns the full record id would have in a backup: every
	// field set, backend fields included.
	record func(id, content string, expires time.Time) host.Restore
	// get reads id's record back.
	get func(ctx context.Context, st *host.Store, id string) (host.Restore, error)
	// put writes id's record the normal way, with content.
	put func(ctx context.Context, st *host.Store, id, content string, opts ...host.WriteOption) error
	// find lists id's record with a query whose filters all match the
	// record (labels, severity and status, time range, ID prefix) and
	// returns it; found is false if the query does not list it.
	find func(t *testing.T, st *host.Store, id string) (r host.Restore, found bool)
	// miss lists records with a query one of whose filters excludes id's
	// record, and reports whether it was listed anyway.
	miss func(t *testing.T, st *host.Store, id string) bool
}

var restoreKinds = []restoreKind{
	{
		name: "Metric", kind: host.KindMetric, feature: abi.FeatureMetrics,
		record: func(id, content string, expires time.Time) host.Restore {
			return host.Restore{Kind: host.KindMetric, Metric: host.Metric{
				AgentID: id, Name: "restored", Value: -12.625, Timestamp: restoreTime,
				Labels: map[string]string{"content": content, "restore": id}, ExpiresAt: expires,
			}}
		},
		get: func(ctx context.Context, st *host.Store, id string) (host.Restore, error) {
			m, err := st.GetMetric(ctx, host.MetricKey{AgentID: id, Name: "restored", Timestamp: restoreTime})
			return host.Restore{Kind: host.KindMetric, Metric: m}, err
		},
		put: func(ctx context.Context, st *host.Store, id, content string, opts ...host.WriteOption) error {
			_, err := st.PutMetric(ctx, host.Metric{AgentID: id, Name: "restored", Value: 1, Timestamp: restoreTime,
				Labels: map[string]string{"content": content, "restore": id}}, opts...)
			return err
		},
		find: func(t *testing.T, st *host.Store, id string) (host.Restore, bool) {
			// No agent: the query goes through the backend's index of
			// agents, not only through the agent's own records.
			q := host.MetricQuery{Name: "restored", From: restoreTime, To: restoreTime.Add(time.Nanosecond),
				Labels: []host.Matcher{{Label: "restore", Op: abi.MatchEqual, Value: id}}}
			for _, m := range queryMetrics(t, st, q, 1) {
				if m.AgentID == id {
					return host.Restore{Kind: host.KindMetric, Metric: m}, true
				}
			}
			return host.Restore{}, false
		},
		miss: func(t *testing.T, st *host.Store, id string) bool {
			q := host.MetricQuery{AgentID: id, From: restoreTime.Add(time.Nanosecond)}
			return len(queryMetrics(t, st, q, 0)) > 0
		},
	},
	{
		name: "Alert", kind: host.KindAlert, feature: abi.FeatureAlerts,
		record: func(id, content string, expires time.Time) host.Restore {
			// Acknowledged: a status a put could not move a resolved alert to.
			return host.Restore{Kind: host.KindAlert, Alert: host.Alert{
				ID: id, AgentID: id, Severity: abi.SeverityCritical, Status: abi.AlertAcknowledged,
				Message: content, Labels: map[string]string{"restore": id},
				CreatedAt: restoreTime, UpdatedAt: restoreTime.Add(time.Hour + time.Nanosecond), ExpiresAt: expires,
			}}
		},
		get: func(ctx context.Context, st *host.Store, id string) (host.Restore, error) {
			a, err := st.GetAlert(ctx, id)
			return host.Restore{Kind: host.KindAlert, Alert: a}, err
		},
		put: func(ctx context.Context, st *host.Store, id, content string, opts ...host.WriteOption) error {
			_, err := st.PutAlert(ctx, host.Alert{ID: id, AgentID: id, Severity: abi.SeverityInfo, Status: abi.AlertResolved,
				Message: content, Labels: map[string]string{"restore": id}}, opts...)
			return err
		},
		find: func(t *testing.T, st *host.Store, id string) (host.Restore, bool) {
			q := host.AlertQuery{
				Severities: []abi.Severity{abi.SeverityCritical}, Statuses: []abi.AlertStatus{abi.AlertAcknowledged},
				Labels: []host.Matcher{{Label: "restore", Op: abi.MatchEqual, Value: id}},
				From:   restoreTime, To: restoreTime.Add(time.Nanosecond),
			}
			for _, a := range queryAlerts(t, st, q, 1) {
				if a.ID == id {
					return host.Restore{Kind: host.KindAlert, Alert: a}, true
				}
			}
			return host.Restore{}, false
		},
		miss: func(t *testing.T, st *host.Store, id string) bool {
			for _, q := range []host.AlertQuery{
				{AgentID: id, Statuses: []abi.AlertStatus{abi.AlertFiring, abi.AlertResolved}},
				{AgentID: id, Severities: []abi.Severity{abi.SeverityInfo, abi.SeverityWarning}},
				{AgentID: id, From: restoreTime.Add(time.Nanosecond)},
			} {
				for _, a := range queryAlerts(t, st, q, 0) {
					if a.ID == id {
						return true
					}
				}
			}
			return false
		},
	},
	{
		name: "AgentState", kind: host.KindAgentState, feature: abi.FeatureAgentStates,
		record: func(id, content string, expires time.Time) host.Restore {
			return host.Restore{Kind: host.KindAgentState, State: host.AgentState{
				AgentID: id, State: []byte(content + "\xff\x00"), Version: 4242,
				UpdatedAt: restoreTime, ExpiresAt: expires,
			}}
		},
		get: func(ctx context.Context, st *host.Store, id string) (host.Restore, error) {
			s, err := st.GetAgentState(ctx, id)
			return host.Restore{Kind: host.KindAgentState, State: s}, err
		},
		put: func(ctx context.Context, st *host.Store, id, content string, opts ...host.WriteOption) error {
			_, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(content)}, opts...)
			return err
		},
		find: func(t *testing.T, st *host.Store, id string) (host.Restore, bool) {
			for _, s := range queryStates(t, st, host.AgentStateQuery{AgentIDPrefix: id}, 1) {
				if s.AgentID == id {
					return host.Restore{Kind: host.KindAgentState, State: s}, true
				}
			}
			return host.Restore{}, false
		},
		miss: func(t *testing.T, st *host.Store, id string) bool {
			return len(queryStates(t, st, host.AgentStateQuery{AgentIDPrefix: id + "-other"}, 0)) > 0
		},
	},
}

// requireRestored requires got, read back, to be want, every field kept;
// the expiry may be truncated to the millisecond (a Redis backend keeps
// expiries to the millisecond), never moved later.
func requireRestored(t *testing.T, want, got host.Restore, what string) {
	t.Helper()
	require.Equal(t, want.Kind, got.Kind)
	w, g := want.ExpiresAt(), got.ExpiresAt()
	if w.IsZero() != g.IsZero() || g.After(w) || w.Sub(g) >= time.Millisecond {
		t.Fatalf("%s: ExpiresAt is %v, want %v (to the millisecond)", what, utc(g), utc(w))
	}
	switch want.Kind {
	case host.KindMetric:
		got.Metric.ExpiresAt = want.Metric.ExpiresAt
		requireMetric(t, want.Metric, got.Metric, what)
	case host.KindAlert:
		got.Alert.ExpiresAt = want.Alert.ExpiresAt
		requireAlert(t, want.Alert, got.Alert, what)
	case host.KindAgentState:
		got.State.ExpiresAt = want.State.ExpiresAt
		requireState(t, want.State, got.State, what)
	}
}

// restoreOne restores r alone and returns its written flag and error.
func restoreOne(t *testing.T, st *host.Store, r host.Restore, mode host.RestoreMode) (bool, error) {
	t.Helper()
	r.Mode = mode
	rs, err := st.Restore(t.Context(), []host.Restore{r})
	require.NoError(t, err, "the call as a whole")
	require.Len(t, rs, 1)
	return rs[0].Value, rs[0].Err
}

// testRestore checks Store.Restore: with FeatureRestore every field of a
// restored record is kept, the modes do what they say, an expired record
// is not restored, and restored records are found by queries and expire;
// without it the call is refused.
func (s *suite) testRestore(t *testing.T) {
	if !s.has(abi.FeatureRestore) || !s.has(abi.FeatureBatch) {
		t.Run("Refused", s.refuseRestore)
		return
	}
	var ks []restoreKind
	for _, k := range restoreKinds {
		if s.has(k.feature) {
			ks = append(ks, k)
			continue
		}
		t.Run(k.name+"/Refused", func(t *testing.T) {
			_, err := restoreOne(t, s.st, k.record(s.prefix()+"r", "x", time.Time{}), host.RestoreOverwrite)
			requireUnsupported(t, err, "restoring a kind the backend does not store")
		})
	}
	ttl := s.has(abi.FeatureTTL)
	for _, k := range ks {
		t.Run(k.name, func(t *testing.T) {
			t.Run("Exact", func(t *testing.T) { s.restoreExact(t, k, ttl) })
			t.Run("Modes", func(t *testing.T) { s.restoreModes(t, k) })
			if ttl {
				t.Run("Expired", func(t *testing.T) { s.restoreExpired(t, k) })
				t.Run("Expires", func(t *testing.T) { s.restoreExpires(t, k) })
			} else {
				t.Run("ExpiryRefused", func(t *testing.T) {
					_, err := restoreOne(t, s.st, k.record(s.prefix()+"r", "x", time.Now().Add(time.Hour)), host.RestoreFail)
					requireUnsupported(t, err, "restoring an expiry on a backend without TTLs")
				})
			}
		})
	}
	if s.has(abi.FeatureAgentStates) {
		t.Run("Versions", s.restoreVersions)
	}
	t.Run("Invalid", func(t *testing.T) { s.restoreInvalid(t, ks) })
	t.Run("Batch", func(t *testing.T) { s.restoreBatch(t, ks) })
}

func (s *suite) refuseRestore(t *testing.T) {
	p := s.prefix()
	items := []host.Restore{
		restoreKinds[0].record(p+"m", "x", time.Time{}),
		restoreKinds[1].record(p+"a", "x", time.Time{}),
		restoreKinds[2].record(p+"s", "x", time.Time{}),
	}
	for i := range items {
		items[i].Mode = host.RestoreOverwrite
	}
	_, err := s.st.Restore(t.Context(), items)
	requireUnsupported(t, err, "Restore")
	if s.has(abi.FeatureAgentStates) {
		_, err = s.st.GetAgentState(t.Context(), p+"s")
		require.ErrorIs(t, err, host.ErrNotFound, "a refused restore wrote a state")
	}
}

// restoreExact restores a record with every field set and reads it back
// by get and by a query whose every filter holds for it.
func (s *suite) restoreExact(t *testing.T, k restoreKind, ttl bool) {
	ctx := t.Context()
	id := s.prefix() + "exact"
	var expires time.Time
	if ttl {
		expires = time.Now().Add(time.Hour).Add(123456 * time.Nanosecond) // not a whole millisecond
	}
	want := k.record(id, "restored", expires)
	written, err := restoreOne(t, s.st, want, host.RestoreFail)
	require.NoError(t, err)
	require.True(t, written, "nothing had the key")

	got, err := k.get(ctx, s.st, id)
	require.NoError(t, err)
	requireRestored(t, want, got, "get")
	if !s.has(abi.FeatureQuery) {
		return
	}
	got, found := k.find(t, s.st, id)
	require.True(t, found, "a query whose filters all hold does not list the restored record")
	requireRestored(t, want, got, "query")
	require.False(t, k.miss(t, s.st, id), "a query one of whose filters excludes the restored record lists it")
}

// restoreModes restores over a live record in each mode.
func (s *suite) restoreModes(t *testing.T, k restoreKind) {
	ctx := t.Context()
	p := s.prefix()
	var opts []host.WriteOption
	if s.has(abi.FeatureTTL) {
		opts = append(opts, host.WithTTL(time.Hour))
	}
	existing := func(t *testing.T, id string) host.Restore {
		t.Helper()
		require.NoError(t, k.put(ctx, s.st, id, "existing", opts...))
		r, err := k.get(ctx, s.st, id)
		require.NoError(t, err)
		return r
	}

	t.Run("Fail", func(t *testing.T) {
		id := p + "fail"
		before := existing(t, id)
		_, err := restoreOne(t, s.st, k.record(id, "restored", time.Time{}), host.RestoreFail)
		require.ErrorIs(t, err, host.ErrConflict, "restore over a live record in mode fail")
		after, err := k.get(ctx, s.st, id)
		require.NoError(t, err)
		requireRestored(t, before, after, "the record after a refused restore")
	})
	t.Run("Skip", func(t *testing.T) {
		id := p + "skip"
		before := existing(t, id)
		written, err := restoreOne(t, s.st, k.record(id, "restored", time.Time{}), host.RestoreSkip)
		require.NoError(t, err)
		require.False(t, written, "restore over a live record in mode skip writes nothing")
		after, err := k.get(ctx, s.st, id)
		require.NoError(t, err)
		requireRestored(t, before, after, "the record after a skipped restore")

		// Absent, skip writes.
		want := k.record(p+"skip-absent", "restored", time.Time{})
		written, err = restoreOne(t, s.st, want, host.RestoreSkip)
		require.NoError(t, err)
		require.True(t, written)
		got, err := k.get(ctx, s.st, p+"skip-absent")
		require.NoError(t, err)
		requireRestored(t, want, got, "get")
	})
	t.Run("Overwrite", func(t *testing.T) {
		id := p + "overwrite"
		existing(t, id) // with an expiry, if the backend has TTLs
		want := k.record(id, "restored", time.Time{})
		written, err := restoreOne(t, s.st, want, host.RestoreOverwrite)
		require.NoError(t, err)
		require.True(t, written)
		got, err := k.get(ctx, s.st, id)
		require.NoError(t, err)
		requireRestored(t, want, got, "the record after an overwrite, its expiry included")
		if s.has(abi.FeatureQuery) {
			got, found := k.find(t, s.st, id)
			require.True(t, found, "the indexes follow the overwrite")
			requireRestored(t, want, got, "query")
		}
	})
}

// restoreExpired restores records whose expiry has passed: nothing is
// written, whatever the mode, and nothing is removed.
func (s *suite) restoreExpired(t *testing.T, k restoreKind) {
	ctx := t.Context()
	p := s.prefix()
	past := time.Now().Add(-time.Second)
	for _, mode := range []host.RestoreMode{host.RestoreFail, host.RestoreSkip, host.RestoreOverwrite} {
		written, err := restoreOne(t, s.st, k.record(p+"absent", "restored", past), mode)
		require.NoError(t, err, "mode %s", mode)
		require.False(t, written, "mode %s: a record already expired is not restored", mode)
	}
	_, err := k.get(ctx, s.st, p+"absent")
	require.ErrorIs(t, err, host.ErrNotFound, "an expired record was restored")
	if s.has(abi.FeatureQuery) {
		_, found := k.find(t, s.st, p+"absent")
		require.False(t, found, "an expired record was restored into the indexes")
	}

	id := p + "live"
	require.NoError(t, k.put(ctx, s.st, id, "existing"))
	before, err := k.get(ctx, s.st, id)
	require.NoError(t, err)
	written, err := restoreOne(t, s.st, k.record(id, "restored", past), host.RestoreOverwrite)
	require.NoError(t, err)
	require.False(t, written)
	after, err := k.get(ctx, s.st, id)
	require.NoError(t, err, "an expired record overwrote, or removed, a live one")
	requireRestored(t, before, after, "the live record")
}

// restoreExpires restores a record that expires soon and watches it go;
// once it has, the key is free again.
func (s *suite) restoreExpires(t *testing.T, k restoreKind) {
	ctx := t.Context()
	id := s.prefix() + "expires"
	want := k.record(id, "restored", time.Now().Add(expiryTTL))
	written, err := restoreOne(t, s.st, want, host.RestoreFail)
	require.NoError(t, err)
	require.True(t, written)
	got, err := k.get(ctx, s.st, id)
	require.NoError(t, err, "a restored record must be readable before it expires")
	requireRestored(t, want, got, "get")
	require.Eventually(t, func() bool {
		_, err := k.get(ctx, s.st, id)
		return errors.Is(err, host.ErrNotFound)
	}, 10*time.Second, 20*time.Millisecond, "a record restored with an expiry %v away must expire", expiryTTL)
	if s.has(abi.FeatureQuery) {
		_, found := k.find(t, s.st, id)
		require.False(t, found, "an expired restored record is still listed by a query")
	}
	again := k.record(id, "again", time.Time{})
	written, err = restoreOne(t, s.st, again, host.RestoreFail)
	require.NoError(t, err, "an expired record is absent: mode fail restores over it")
	require.True(t, written)
	got, err = k.get(ctx, s.st, id)
	require.NoError(t, err)
	requireRestored(t, again, got, "get")
}

// restoreVersions checks that a restored agent state has exactly its
// version, that IfVersion holds with it, and that later writes get larger
// versions, whether the restored version is above or below the ones the
// backend gives.
func (s *suite) restoreVersions(t *testing.T) {
	ctx := t.Context()
	st := s.st
	p := s.prefix()
	for _, tc := range []struct {
		name    string
		version uint64
	}{
		{"Small", 3},
		{"Large", 1 << 52},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := p + tc.name
			// A live state with a version of the backend's own first, so
			// that an overwrite may lower it.
			put, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte("existing")})
			require.NoError(t, err)
			r := restoreKinds[2].record(id, "restored", time.Time{})
			r.State.Version = tc.version
			written, err := restoreOne(t, st, r, host.RestoreOverwrite)
			require.NoError(t, err)
			require.True(t, written)
			got, err := st.GetAgentState(ctx, id)
			require.NoError(t, err)
			require.Equal(t, tc.version, got.Version, "the restored version, exactly (it was %d before)", put.Version)

			last := tc.version
			if s.has(abi.FeatureConcurrency) {
				next, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte("cas")}, host.IfVersion(tc.version))
				require.NoError(t, err, "IfVersion with the restored version")
				require.Greater(t, next.Version, tc.version, "the write after the restore")
				_, err = st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte("stale")}, host.IfVersion(tc.version))
				require.ErrorIs(t, err, host.ErrConflict, "IfVersion with the restored version, once replaced")
				last = next.Version
			}
			next, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte("plain")})
			require.NoError(t, err)
			require.Greater(t, next.Version, last, "a normal write after the restore")
		})
	}
}

// restoreInvalid restores records that cannot be restored.
func (s *suite) restoreInvalid(t *testing.T, ks []restoreKind) {
	p := s.prefix()
	for _, k := range ks {
		r := k.record(p+k.name, "x", time.Time{})
		_, err := restoreOne(t, s.st, r, 9)
		require.ErrorIs(t, err, host.ErrInvalid, "%s: unknown mode", k.name)
	}
	for name, r := range map[string]host.Restore{
		"metric without timestamp": {Kind: host.KindMetric, Metric: host.Metric{AgentID: p + "m", Name: "n"}},
		"alert without created_at": {Kind: host.KindAlert, Alert: host.Alert{ID: p + "a", AgentID: p + "a",
			Severity: abi.SeverityInfo, Status: abi.AlertFiring, UpdatedAt: restoreTime}},
		"agent state version 0": {Kind: host.KindAgentState, State: host.AgentState{AgentID: p + "s", UpdatedAt: restoreTime}},
		"empty agent ID":        {Kind: host.KindAgentState, State: host.AgentState{Version: 1, UpdatedAt: restoreTime}},
		"unknown kind":          {Kind: 7},
	} {
		if r.Kind.Valid() && !s.has(r.Kind.Feature()) {
			continue
		}
		_, err := restoreOne(t, s.st, r, host.RestoreOverwrite)
		require.ErrorIs(t, err, host.ErrInvalid, name)
	}
	if s.has(abi.FeatureAgentStates) {
		_, err := s.st.GetAgentState(t.Context(), p+"s")
		require.ErrorIs(t, err, host.ErrNotFound, "an invalid restore wrote a state")
	}
}

// restoreBatch restores records of every kind in one call: each item has
// its own outcome, in request order.
func (s *suite) restoreBatch(t *testing.T, ks []restoreKind) {
	ctx := t.Context()
	p := s.prefix()
	var items []host.Restore
	var want []error
	var written []bool
	for _, k := range ks {
		require.NoError(t, k.put(ctx, s.st, p+k.name+"-live", "existing"))
		fresh := k.record(p+k.name+"-new", "restored", time.Time{})
		fresh.Mode = host.RestoreFail
		live := k.record(p+k.name+"-live", "restored", time.Time{})
		live.Mode = host.RestoreFail
		skip := live
		skip.Mode = host.RestoreSkip
		over := live
		over.Mode = host.RestoreOverwrite
		items = append(items, fresh, live, skip, over)
		want = append(want, nil, host.ErrConflict, nil, nil)
		written = append(written, true, false, false, true)
	}
	bad := host.Restore{Kind: host.KindMetric, Mode: host.RestoreFail}
	items = append(items, bad)
	want = append(want, host.ErrInvalid)
	written = append(written, false)
	if !s.has(abi.FeatureMetrics) {
		want[len(want)-1] = host.ErrUnsupported
	}

	rs, err := s.st.Restore(ctx, items)
	require.NoError(t, err)
	requireItems(t, want, errsOf(rs), "Restore")
	for i := range rs {
		require.Equal(t, written[i], rs[i].Value, "item %d: written", i)
	}
	for _, k := range ks {
		for _, id := range []string{p + k.name + "-new", p + k.name + "-live"} {
			got, err := k.get(ctx, s.st, id)
			require.NoError(t, err)
			requireRestored(t, k.record(id, "restored", time.Time{}), got, id)
		}
	}
}
