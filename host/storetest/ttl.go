package storetest

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// expiryTTL is the TTL of the records the expiry checks watch vanish.
const expiryTTL = 300 * time.Millisecond

func (s *suite) testTTL(t *testing.T) {
	ks := s.kinds()
	if len(ks) == 0 {
		t.Skip("the backend advertises no record kind")
	}
	ctx := t.Context()
	st := s.st

	t.Run("DefaultIsNone", func(t *testing.T) {
		// Run's stores have no default TTLs (see Opener), so a write without
		// a TTL option never expires, whatever the record's ExpiresAt field
		// says: the field is the backend's answer, not an option.
		p := s.prefix()
		later := time.Now().Add(time.Hour)
		if s.has(abi.FeatureMetrics) {
			m, err := st.PutMetric(ctx, host.Metric{AgentID: p + "agent", Name: "n", Value: 1, Timestamp: kindMetricTime, ExpiresAt: later})
			require.NoError(t, err)
			require.True(t, m.ExpiresAt.IsZero(), "metric: ExpiresAt is %v; want zero: a write without a TTL option got an expiry (these rules expect no default TTL: is option metric_ttl_seconds set?)", m.ExpiresAt)
			m, err = st.GetMetric(ctx, m.Key())
			require.NoError(t, err)
			require.True(t, m.ExpiresAt.IsZero(), "metric: get returns ExpiresAt %v; want zero", m.ExpiresAt)
		}
		if s.has(abi.FeatureAlerts) {
			a, err := st.PutAlert(ctx, host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityInfo,
				Status: abi.AlertFiring, ExpiresAt: later})
			require.NoError(t, err)
			require.True(t, a.ExpiresAt.IsZero(), "alert: ExpiresAt is %v; want zero: a write without a TTL option got an expiry (these rules expect no default TTL: is option alert_ttl_seconds set?)", a.ExpiresAt)
			a, err = st.GetAlert(ctx, a.ID)
			require.NoError(t, err)
			require.True(t, a.ExpiresAt.IsZero(), "alert: get returns ExpiresAt %v; want zero", a.ExpiresAt)
		}
		if s.has(abi.FeatureAgentStates) {
			a, err := st.PutAgentState(ctx, host.AgentState{AgentID: p + "agent", State: []byte("x"), ExpiresAt: later})
			require.NoError(t, err)
			require.True(t, a.ExpiresAt.IsZero(), "agent state: ExpiresAt is %v; want zero: a write without a TTL option got an expiry (these rules expect no default TTL: is option agent_state_ttl_seconds set?)", a.ExpiresAt)
			a, err = st.GetAgentState(ctx, a.AgentID)
			require.NoError(t, err)
			require.True(t, a.ExpiresAt.IsZero(), "agent state: get returns ExpiresAt %v; want zero", a.ExpiresAt)
		}
	})

	if !s.has(abi.FeatureTTL) {
		t.Run("Refused", func(t *testing.T) {
			for _, k := range ks {
				t.Run(k.name, func(t *testing.T) {
					id := s.prefix() + "ttl"
					for _, o := range []struct {
						name string
						opt  host.WriteOption
					}{
						{"WithTTL", host.WithTTL(time.Hour)}, {"WithPersist", host.WithPersist()}, {"WithKeepTTL", host.WithKeepTTL()},
					} {
						_, err := k.put(ctx, st, id, "x", o.opt)
						requireUnsupported(t, err, o.name)
					}
					_, err := k.get(ctx, st, id)
					require.ErrorIs(t, err, host.ErrNotFound, "a refused write stored a record")
				})
			}
		})
		return
	}

	t.Run("Invalid", func(t *testing.T) {
		for _, k := range ks {
			t.Run(k.name, func(t *testing.T) {
				id := s.prefix() + "ttl"
				for _, d := range []time.Duration{0, 500 * time.Microsecond, 999 * time.Microsecond, -time.Second} {
					_, err := k.put(ctx, st, id, "x", host.WithTTL(d))
					require.ErrorIs(t, err, host.ErrInvalid, "WithTTL(%v): a TTL below 1ms", d)
				}
				_, err := k.get(ctx, st, id)
				require.ErrorIs(t, err, host.ErrNotFound, "a refused write stored a record")
			})
		}
	})

	t.Run("WithTTL", func(t *testing.T) {
		for _, k := range ks {
			t.Run(k.name, func(t *testing.T) {
				id := s.prefix() + "ttl"
				before := time.Now()
				put, err := k.put(ctx, st, id, "x", host.WithTTL(time.Hour))
				after := time.Now()
				require.NoError(t, err)
				requireExpiry(t, put.expiresAt, before, after, time.Hour, "put")
				got, err := k.get(ctx, st, id)
				require.NoError(t, err)
				requireSameTime(t, put.expiresAt, got.expiresAt, "ExpiresAt read back")
				if s.has(abi.FeatureQuery) {
					got, found := k.find(t, st, id)
					require.True(t, found)
					requireSameTime(t, put.expiresAt, got.expiresAt, "ExpiresAt in a query result")
				}
			})
		}
	})

	t.Run("WithPersist", func(t *testing.T) {
		for _, k := range ks {
			t.Run(k.name, func(t *testing.T) {
				id := s.prefix() + "ttl"
				_, err := k.put(ctx, st, id, "x", host.WithTTL(time.Hour))
				require.NoError(t, err)
				put, err := k.put(ctx, st, id, "y", host.WithPersist())
				require.NoError(t, err)
				require.True(t, put.expiresAt.IsZero(), "WithPersist must remove the expiry; ExpiresAt is %v", put.expiresAt)
				got, err := k.get(ctx, st, id)
				require.NoError(t, err)
				require.True(t, got.expiresAt.IsZero(), "get after WithPersist: ExpiresAt is %v", got.expiresAt)
			})
		}
	})

	t.Run("UpdateAppliesDefault", func(t *testing.T) {
		// An update without a TTL option applies the kind default (none on
		// Run's stores); it does not keep the old expiry (abi.TTLDefault).
		for _, k := range ks {
			t.Run(k.name, func(t *testing.T) {
				id := s.prefix() + "ttl"
				_, err := k.put(ctx, st, id, "x", host.WithTTL(time.Hour))
				require.NoError(t, err)
				put, err := k.put(ctx, st, id, "y")
				require.NoError(t, err)
				require.True(t, put.expiresAt.IsZero(), "an update without a TTL option kept an expiry (%v); want the default, none", put.expiresAt)
				got, err := k.get(ctx, st, id)
				require.NoError(t, err)
				require.True(t, got.expiresAt.IsZero(), "get after the update: ExpiresAt is %v", got.expiresAt)
			})
		}
	})

	t.Run("WithKeepTTL", func(t *testing.T) {
		for _, k := range ks {
			t.Run(k.name, func(t *testing.T) {
				id := s.prefix() + "ttl"
				first, err := k.put(ctx, st, id, "x", host.WithTTL(time.Hour))
				require.NoError(t, err)
				put, err := k.put(ctx, st, id, "y", host.WithKeepTTL())
				require.NoError(t, err)
				require.Equal(t, "y", put.content)
				requireSameTime(t, first.expiresAt, put.expiresAt, "ExpiresAt after WithKeepTTL")
				got, err := k.get(ctx, st, id)
				require.NoError(t, err)
				require.Equal(t, "y", got.content)
				requireSameTime(t, first.expiresAt, got.expiresAt, "ExpiresAt read back after WithKeepTTL")

				// On a new record, TTLKeep gives the kind default: none here.
				put, err = k.put(ctx, st, id+"-new", "x", host.WithKeepTTL())
				require.NoError(t, err)
				require.True(t, put.expiresAt.IsZero(), "WithKeepTTL on a new record: ExpiresAt is %v, want the kind default (none)", put.expiresAt)
			})
		}
	})

	if s.has(abi.FeatureAlerts) {
		t.Run("SetAlertStatusKeepsExpiry", func(t *testing.T) {
			p := s.prefix()
			put, err := st.PutAlert(ctx, host.Alert{ID: p + "alert", AgentID: p + "agent", Severity: abi.SeverityInfo, Status: abi.AlertFiring},
				host.WithTTL(time.Hour))
			require.NoError(t, err)
			set, err := st.SetAlertStatus(ctx, p+"alert", abi.AlertAcknowledged)
			require.NoError(t, err)
			requireSameTime(t, put.ExpiresAt, set.ExpiresAt, "ExpiresAt after SetAlertStatus")
			got, err := st.GetAlert(ctx, p+"alert")
			require.NoError(t, err)
			requireSameTime(t, put.ExpiresAt, got.ExpiresAt, "ExpiresAt read back after SetAlertStatus")
		})
	}

	t.Run("Expiry", func(t *testing.T) { s.testExpiry(t, ks) })
}

// testExpiry writes two records of every kind with a short TTL, watches
// them vanish, and checks that an expired record is absent to every
// operation.
func (s *suite) testExpiry(t *testing.T, ks []kind) {
	ctx := t.Context()
	st := s.st
	type pair struct{ gone, revived string }
	ids := make([]pair, len(ks))
	for i, k := range ks {
		p := s.prefix()
		ids[i] = pair{p + "gone", p + "revived"}
		for _, id := range []string{ids[i].gone, ids[i].revived} {
			before := time.Now()
			put, err := k.put(ctx, st, id, "x", host.WithTTL(expiryTTL))
			after := time.Now()
			require.NoError(t, err)
			requireExpiry(t, put.expiresAt, before, after, expiryTTL, k.name)
			_, err = k.get(ctx, st, id)
			require.NoError(t, err, "%s: a record must be readable before it expires (%v after the write)", k.name, time.Since(before))
			if s.has(abi.FeatureQuery) {
				_, found := k.find(t, st, id)
				require.True(t, found, "%s: a record must be listed before it expires", k.name)
			}
		}
	}
	require.Eventually(t, func() bool {
		for i, k := range ks {
			for _, id := range []string{ids[i].gone, ids[i].revived} {
				if _, err := k.get(ctx, st, id); !errors.Is(err, host.ErrNotFound) {
					return false
				}
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "records written with a %v TTL must become invisible to get (ErrNotFound)", expiryTTL)

	for i, k := range ks {
		t.Run(k.name, func(t *testing.T) {
			gone, revived := ids[i].gone, ids[i].revived
			if s.has(abi.FeatureQuery) {
				_, found := k.find(t, st, gone)
				require.False(t, found, "an expired record is still listed by a query")
			}
			require.ErrorIs(t, k.del(ctx, st, gone), host.ErrNotFound, "delete of an expired record")

			opts := []host.WriteOption{host.WithKeepTTL()}
			switch k.feature {
			case abi.FeatureAlerts:
				_, err := st.SetAlertStatus(ctx, revived, abi.AlertResolved)
				require.ErrorIs(t, err, host.ErrNotFound, "SetAlertStatus of an expired alert")
			case abi.FeatureAgentStates:
				if s.has(abi.FeatureConcurrency) {
					opts = append(opts, host.IfAbsent()) // an expired state is absent
				}
			}
			// An expired record is absent: TTLKeep on it is a new record's,
			// the kind default (none here).
			put, err := k.put(ctx, st, revived, "again", opts...)
			require.NoError(t, err, "writing again over an expired record")
			require.True(t, put.expiresAt.IsZero(), "WithKeepTTL over an expired record kept its expiry (%v); want the kind default (none)", put.expiresAt)
			got, err := k.get(ctx, st, revived)
			require.NoError(t, err)
			require.Equal(t, "again", got.content)
		})
	}
}

// OptionsOpener opens a store on the backend under test as an Opener does,
// with options for the backend (host.Config.Options). Each call must return
// a store on a separate namespace; the store is closed by RunDefaultTTLs.
type OptionsOpener func(t *testing.T, options map[string]string) *host.Store

// The per-kind default TTL options abi.TTLDefault names, and the defaults
// RunDefaultTTLs sets: different for every kind, so a backend that mixes
// them up fails.
var defaultTTLs = []struct {
	feature abi.Feature
	option  string
	ttl     time.Duration
}{
	{abi.FeatureMetrics, "metric_ttl_seconds", time.Hour},
	{abi.FeatureAlerts, "alert_ttl_seconds", 2 * time.Hour},
	{abi.FeatureAgentStates, "agent_state_ttl_seconds", 3 * time.Hour},
}

// IsDefaultTTLOption reports whether name is one of the per-kind default
// TTL options that abi.TTLDefault names (metric_ttl_seconds,
// alert_ttl_seconds, agent_state_ttl_seconds). Run expects stores without
// them; RunDefaultTTLs sets them itself.
func IsDefaultTTLOption(name string) bool {
	for _, d := range defaultTTLs {
		if d.option == name {
			return true
		}
	}
	return false
}

// RunDefaultTTLs checks the per-kind default TTLs a backend takes from its
// options (metric_ttl_seconds, alert_ttl_seconds, agent_state_ttl_seconds,
// in whole seconds): a write without a TTL option expires the default
// after the write, an update without one applies the default again rather
// than keeping the old expiry, a new record written with WithKeepTTL gets
// the default, and WithTTL, WithPersist, WithKeepTTL and SetAlertStatus
// override it; with defaults of one second, records written without a TTL
// option vanish. It opens stores with options only for the kinds the
// backend advertises, and skips (with a message) a backend that does not
// advertise abi.FeatureTTL.
//
// That the default counts from the update, not from the record's creation,
// needs a clock under the test's control (host.WithClock), which an
// OptionsOpener does not offer; it belongs to backend-specific tests.
func RunDefaultTTLs(t *testing.T, open OptionsOpener) {
	s := &suite{open: func(t *testing.T) *host.Store { return open(t, nil) }, run: newRunPrefix()}
	probe := s.openStore(t)
	s.features = probe.Metadata().Features
	if !s.has(abi.FeatureTTL) {
		t.Skipf("the backend does not advertise ttl (it advertises [%s]): default TTLs do not apply", s.features)
	}
	options := map[string]string{}
	defaults := map[abi.Feature]time.Duration{}
	for _, d := range defaultTTLs {
		if s.has(d.feature) {
			options[d.option] = strconv.Itoa(int(d.ttl / time.Second))
			defaults[d.feature] = d.ttl
		}
	}
	s.open = func(t *testing.T) *host.Store { return open(t, options) }
	s.st = s.openStore(t)
	t.Logf("options %v; record IDs of this run start with %q", options, s.run)
	ctx := t.Context()
	st := s.st

	for _, k := range s.kinds() {
		def := defaults[k.feature]
		// putAbout writes and requires an expiry of about d after the write.
		putAbout := func(t *testing.T, id, content string, d time.Duration, what string, opts ...host.WriteOption) record {
			t.Helper()
			before := time.Now()
			put, err := k.put(ctx, st, id, content, opts...)
			after := time.Now()
			require.NoError(t, err, what)
			requireExpiry(t, put.expiresAt, before, after, d, what)
			return put
		}
		t.Run(k.name, func(t *testing.T) {
			t.Run("Default", func(t *testing.T) {
				id := s.prefix() + "ttl"
				put := putAbout(t, id, "x", def, "a write without a TTL option (the kind default)")
				got, err := k.get(ctx, st, id)
				require.NoError(t, err)
				requireSameTime(t, put.expiresAt, got.expiresAt, "ExpiresAt read back")
			})
			t.Run("UpdateAppliesDefault", func(t *testing.T) {
				id := s.prefix() + "ttl"
				putAbout(t, id, "x", time.Minute, "WithTTL(1m)", host.WithTTL(time.Minute))
				putAbout(t, id, "y", def, "an update without a TTL option (the kind default, not the old expiry)")
			})
			t.Run("WithTTL", func(t *testing.T) {
				putAbout(t, s.prefix()+"ttl", "x", 10*time.Minute, "WithTTL(10m) over the default", host.WithTTL(10*time.Minute))
			})
			t.Run("WithPersist", func(t *testing.T) {
				put, err := k.put(ctx, st, s.prefix()+"ttl", "x", host.WithPersist())
				require.NoError(t, err)
				require.True(t, put.expiresAt.IsZero(), "WithPersist over the default: ExpiresAt is %v, want zero", put.expiresAt)
			})
			t.Run("WithKeepTTL", func(t *testing.T) {
				id := s.prefix() + "ttl"
				putAbout(t, id, "x", def, "WithKeepTTL on a new record (the kind default)", host.WithKeepTTL())
				first := putAbout(t, id, "y", 10*time.Minute, "WithTTL(10m)", host.WithTTL(10*time.Minute))
				put, err := k.put(ctx, st, id, "z", host.WithKeepTTL())
				require.NoError(t, err)
				requireSameTime(t, first.expiresAt, put.expiresAt, "ExpiresAt after WithKeepTTL (not the default)")
			})
			if k.feature == abi.FeatureAlerts {
				t.Run("SetAlertStatusKeepsExpiry", func(t *testing.T) {
					id := s.prefix() + "ttl"
					first := putAbout(t, id, "x", 10*time.Minute, "WithTTL(10m)", host.WithTTL(10*time.Minute))
					set, err := st.SetAlertStatus(ctx, id, abi.AlertResolved)
					require.NoError(t, err)
					requireSameTime(t, first.expiresAt, set.ExpiresAt, "ExpiresAt after SetAlertStatus (not the default)")
				})
			}
		})
	}

	// The default must be applied, not only reported: on a store whose
	// defaults are one second, records written without a TTL option vanish.
	t.Run("Expires", func(t *testing.T) {
		short := map[string]string{}
		for option := range options {
			short[option] = "1"
		}
		s.open = func(t *testing.T) *host.Store { return open(t, short) }
		st := s.openStore(t)
		ks := s.kinds()
		ids := make([]string, len(ks))
		for i, k := range ks {
			ids[i] = s.prefix() + "expiring"
			before := time.Now()
			put, err := k.put(ctx, st, ids[i], "x")
			after := time.Now()
			require.NoError(t, err)
			requireExpiry(t, put.expiresAt, before, after, time.Second, k.name+" with a default of 1s")
			_, err = k.get(ctx, st, ids[i])
			require.NoError(t, err, "%s: a record must be readable before it expires", k.name)
		}
		require.Eventually(t, func() bool {
			for i, k := range ks {
				if _, err := k.get(ctx, st, ids[i]); !errors.Is(err, host.ErrNotFound) {
					return false
				}
			}
			return true
		}, 10*time.Second, 50*time.Millisecond, "records written without a TTL option on a store with 1s defaults must vanish")
		if s.has(abi.FeatureQuery) {
			for i, k := range ks {
				_, found := k.find(t, st, ids[i])
				require.False(t, found, "%s: an expired record is still listed by a query", k.name)
			}
		}
	})
}
