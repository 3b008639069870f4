// Package storetest checks that a storage backend keeps the storage-host
// contract, in the spirit of testing/fstest: a plugin author opens a store
// on the backend and hands it to Run, and every rule of the contract is a
// named subtest, so a failure says which rule broke.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) *host.Store {
//			st, err := host.Open(t.Context(), host.Config{Plugin: "mybackend.wasm"})
//			require.NoError(t, err)
//			return st
//		})
//	}
//
// Run checks the contract every backend keeps (abi/README.md; README.md,
// "Write a plugin") for every feature the backend advertises in its
// Metadata, and checks that
// every feature it does not advertise is refused with host.ErrUnsupported:
//
//   - Metrics, Alerts, AgentStates: CRUD round trips with every field
//     preserved (labels, negative and extreme values, timestamps to the
//     nanosecond, opaque non-UTF-8 state bytes); missing records are
//     host.ErrNotFound, never an empty success; invalid input is
//     host.ErrInvalid. NewInstances: a record is read back after the host
//     replaced every instance (host.Store.Recycle): records live in the
//     backend's stores, not in an instance's memory.
//   - Alerts/Transitions: the status transitions abi.AlertStatus.CanTransition
//     allows succeed through SetAlertStatus and PutAlert; the others are
//     host.ErrConflict and change nothing. CreatedAt is kept, UpdatedAt
//     advances.
//   - Concurrency: versions change on every write; IfVersion and IfAbsent
//     conflict when stale and write nothing; a hammer of concurrent
//     read-modify-write loops loses no update.
//   - TTL: per-record TTLs, persist, keep, what an update without a TTL
//     option does, and expired records invisible to reads and queries.
//   - Query: filters (agent, name, time range, label matchers, severity,
//     status, creation time, ID prefix), result order, cursor pagination and
//     the server-side page limits.
//   - Restore: every field of a restored record is kept (an agent state's
//     version, with later writes above it; an alert's creation and update
//     times; the absolute expiry, to the millisecond), the modes fail, skip
//     and overwrite, records already expired are not restored, and
//     restored records are found by queries and expire.
//   - Protocol: requests the typed API never sends, sent to the plugin as
//     given: malformed bodies (trailing bytes, cut short), invalid IDs and
//     out-of-range modes, ops of features not advertised and unknown op
//     numbers, alone and as batch items, are refused with the status the
//     ABI names, and leave the plugin serving (protocol.go).
//   - Isolation: two stores from two Opener calls do not see each other.
//   - Closed: every method of a closed store returns host.ErrClosed.
//
// # Sharing a backend
//
// A backend under test may hold other data and serve other runs at the same
// time (a real Redis). Every ID Run writes starts with a random per-run
// prefix (logged at the start), and every query Run makes is filtered by
// those IDs or by a label carrying the prefix, so Run never assumes a store
// is empty. Run deletes only what it needs to delete for a check and leaves
// the rest of what it wrote; an Opener on a shared backend should remove
// its namespace in a t.Cleanup.
//
// # What the Opener must do
//
// Each call returns a store on a namespace of its own (for the memory
// backend a new host.Open, for a Redis backend a new key prefix), opened
// with no per-kind default TTLs (no metric_ttl_seconds, alert_ttl_seconds
// or agent_state_ttl_seconds), so that a write without a TTL option never
// expires: Run checks exactly that. The backend's clock must be the wall
// clock (host.WithClock unset), since TTLs are checked against time.Now
// within a second. Run closes every store it opens in a t.Cleanup; an
// Opener may close it too, as Close may be called twice.
//
// # What Run does not check
//
// Per-kind default TTLs need options Run's stores must not have:
// RunDefaultTTLs checks them with an OptionsOpener. That a default counts
// from the update rather than from the record's creation, and that the TTL
// is applied atomically with the write, need a controlled clock or fault
// injection and belong to backend-specific tests (see memory_test.go for
// the former on the built-in memory backend).
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// Opener opens a store on the backend under test. Run may call it more
// than once; each call must return a store on a separate namespace (for the
// memory backend: a new host.Open; for a Redis backend: a new key prefix),
// so Run can check that namespaces are isolated. The store must have no
// per-kind default TTLs. The store is closed by Run (t.Cleanup).
type Opener func(t *testing.T) *host.Store

// tolerance bounds how far an expiry may be from the one computed from
// this machine's clock around the write.
const tolerance = time.Second

// Run checks every feature the backend advertises (st.Metadata().Features),
// and checks that every feature it does not advertise is refused with
// host.ErrUnsupported. A write_events backend (abi.FeatureWriteEvents)
// writes its writes' events itself: their events are checked too
// (RunEvents), when the store has events enabled.
func Run(t *testing.T, open Opener) { RunWithPolicy(t, open, Policy{}) }

// Policy is what a backend declares of a legitimate policy of its own
// that changes what the suite may expect of it. The suite then checks the
// policy (the Policy rules) instead of failing the backend for it, and
// keeps its other checks within it.
type Policy struct {
	// MaxSamplesPerSeries, when not 0, is the most samples of one series
	// (an agent's metric of one name) the backend keeps: the newest by
	// timestamp, the older ones dropped as newer ones are written. The
	// other checks then write at most that many samples to one series
	// (the paging checks spread theirs over several), so it must be at
	// least MinSamplesPerSeries.
	MaxSamplesPerSeries int
}

// MinSamplesPerSeries is the least Policy.MaxSamplesPerSeries the suite
// can work within: a bulk check writes 20 samples to one series.
const MinSamplesPerSeries = 20

// RunWithPolicy is Run for a backend with the policy p.
func RunWithPolicy(t *testing.T, open Opener, p Policy) {
	if p.MaxSamplesPerSeries != 0 && p.MaxSamplesPerSeries < MinSamplesPerSeries {
		t.Fatalf("Policy.MaxSamplesPerSeries %d is below %d, the most samples one series of the suite holds", p.MaxSamplesPerSeries, MinSamplesPerSeries)
	}
	s := &suite{open: open, run: newRunPrefix(), policy: p}
	s.st = s.openStore(t)
	s.features = s.st.Metadata().Features
	t.Logf("backend %s %s advertises [%s]; record IDs of this run start with %q",
		s.st.Metadata().Name, s.st.Metadata().Version, s.features, s.run)

	t.Run("Metrics", s.testMetrics)
	t.Run("Alerts", s.testAlerts)
	t.Run("AgentStates", s.testAgentStates)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("TTL", s.testTTL)
	t.Run("Query", s.testQuery)
	t.Run("Bulk", s.testBulk)
	t.Run("Restore", s.testRestore)
	t.Run("Protocol", s.testProtocol)
	if p != (Policy{}) {
		t.Run("Policy", s.testPolicy)
	}
	t.Run("Isolation", s.testIsolation)
	if len(s.st.Metadata().KVReads) > 0 {
		t.Run("KVReads", s.testKVReads)
	}
	if len(s.st.Metadata().RedisReads) > 0 {
		t.Run("RedisReads", s.testRedisReads)
	}
	if len(s.st.Metadata().PGReads) > 0 {
		t.Run("PGReads", s.testPGReads)
	}
	if s.features.Has(abi.FeatureWriteEvents) {
		// The plugin, not the host, writes its writes' events.
		t.Run("Events", func(t *testing.T) {
			const needs = abi.FeatureMetrics | abi.FeatureAlerts | abi.FeatureAgentStates | abi.FeatureTTL |
				abi.FeatureBatch | abi.FeatureConcurrency | abi.FeatureRestore
			if !s.features.Has(needs) {
				t.Skipf("the events of a write_events plugin are checked for one that advertises [%s]", needs)
			}
			sub, err := s.st.Subscribe(t.Context(), events.Filter{}, "")
			if errors.Is(err, host.ErrUnsupported) {
				t.Skip("the store's events are off")
			}
			require.NoError(t, err)
			sub.Close()
			RunEvents(t, open)
		})
	}
	t.Run("Closed", s.testClosed)
}

// suite is one Run: the store most checks use, what it advertises, and the
// prefix of every ID the run writes.
type suite struct {
	st       *host.Store
	features abi.Feature
	open     Opener
	policy   Policy
	run      string
	seq      atomic.Uint64
}

func newRunPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "storetest-" + hex.EncodeToString(b[:]) + "-"
}

// prefix returns a fresh ID prefix under the run's, so that every check
// works on records of its own.
func (s *suite) prefix() string { return fmt.Sprintf("%s%d-", s.run, s.seq.Add(1)) }

// has reports whether the backend advertises every feature in f.
func (s *suite) has(f abi.Feature) bool { return s.features.Has(f) }

// openStore calls the Opener and closes the store when t ends.
func (s *suite) openStore(t *testing.T) *host.Store {
	t.Helper()
	st := s.open(t)
	require.NotNil(t, st, "the Opener returned a nil store")
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// --- comparisons ---

// The decoders return times in UTC and empty labels and states as nil;
// the normal forms below make records from either side comparable with
// require.Equal (UTC also drops the monotonic clock reading).

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func normLabels(l map[string]string) map[string]string {
	if len(l) == 0 {
		return nil
	}
	return l
}

func normMetric(m host.Metric) host.Metric {
	m.Timestamp, m.ExpiresAt = utc(m.Timestamp), utc(m.ExpiresAt)
	m.Labels = normLabels(m.Labels)
	return m
}

func normAlert(a host.Alert) host.Alert {
	a.CreatedAt, a.UpdatedAt, a.ExpiresAt = utc(a.CreatedAt), utc(a.UpdatedAt), utc(a.ExpiresAt)
	a.Labels = normLabels(a.Labels)
	return a
}

func normState(st host.AgentState) host.AgentState {
	st.UpdatedAt, st.ExpiresAt = utc(st.UpdatedAt), utc(st.ExpiresAt)
	if len(st.State) == 0 {
		st.State = nil
	}
	return st
}

// view is a record as a failure shows it: every field, times as text and
// an agent state's document as a string, so that a plugin author (who may
// not read Go) sees which field differs, not the internals of time.Time
// or the bytes of a document. Two records are equal when their views are.
func view(v any) string {
	if st, ok := v.(host.AgentState); ok {
		return fmt.Sprintf("%+v", struct {
			AgentID              string
			State                string
			Version              uint64
			UpdatedAt, ExpiresAt time.Time
		}{st.AgentID, string(st.State), st.Version, st.UpdatedAt, st.ExpiresAt})
	}
	return fmt.Sprintf("%+v", v)
}

// views is the view of each item, normalised by norm.
func views[T any](items []T, norm func(T) T) []string {
	out := make([]string, len(items))
	for i := range items {
		out[i] = view(norm(items[i]))
	}
	return out
}

// requireMetric requires got to equal want, every field.
func requireMetric(t *testing.T, want, got host.Metric, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, view(normMetric(want)), view(normMetric(got)), msgAndArgs...)
}

func requireAlert(t *testing.T, want, got host.Alert, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, view(normAlert(want)), view(normAlert(got)), msgAndArgs...)
}

func requireState(t *testing.T, want, got host.AgentState, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, view(normState(want)), view(normState(got)), msgAndArgs...)
}

// requireNear requires a backend timestamp to lie between before and after
// (this machine's clock around the call), give or take tolerance.
func requireNear(t *testing.T, got, before, after time.Time, what string) {
	t.Helper()
	require.False(t, got.IsZero(), "%s is unset", what)
	if got.Before(before.Add(-tolerance)) || got.After(after.Add(tolerance)) {
		t.Fatalf("%s is %v, want between %v and %v (±%v)", what, utc(got), utc(before), utc(after), tolerance)
	}
}

// requireExpiry requires an expiry of about d after a write made between
// before and after.
func requireExpiry(t *testing.T, got, before, after time.Time, d time.Duration, what string) {
	t.Helper()
	require.False(t, got.IsZero(), "%s: ExpiresAt is zero (never), want about now+%v", what, d)
	lo, hi := before.Add(d-tolerance), after.Add(d+tolerance)
	if got.Before(lo) || got.After(hi) {
		t.Fatalf("%s: ExpiresAt is %v, want now+%v: between %v and %v", what, utc(got), d, utc(lo), utc(hi))
	}
}

// requireSameTime requires two times to be the same instant (or both unset).
func requireSameTime(t *testing.T, want, got time.Time, what string) {
	t.Helper()
	if !want.Equal(got) {
		t.Fatalf("%s is %v, want exactly %v", what, utc(got), utc(want))
	}
}

// waitClockPast waits until this machine's clock is a millisecond past ts,
// a time the backend set, so that the backend's next timestamp must be
// later than ts even on a coarse clock. It fails if the backend's clock is
// far ahead of this machine's.
func waitClockPast(t *testing.T, ts time.Time) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !time.Now().After(ts.Add(time.Millisecond)) {
		if time.Now().After(deadline) {
			t.Fatalf("the backend's clock (%v) is ahead of this machine's by more than 5s", utc(ts))
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// --- pagination ---

// collect follows Next cursors from the first page and returns every item
// in order. Every page must hold at most limit items, no cursor may come
// back, and the cursors must come to an end within maxPages pages.
func collect[T any](t pageChecker, limit, maxPages int, query func(cursor []byte) (host.Page[T], error)) []T {
	t.Helper()
	var all []T
	var cursor []byte
	seen := map[string]int{}
	for page := 1; ; page++ {
		p, err := query(cursor)
		require.NoError(t, err, "page %d", page)
		require.LessOrEqual(t, len(p.Items), limit, "page %d holds more items than its limit", page)
		all = append(all, p.Items...)
		if len(p.Next) == 0 {
			return all
		}
		if first, ok := seen[string(p.Next)]; ok {
			require.Failf(t, "pagination loops", "page %d returned as Next the cursor page %d returned: following it would never end", page, first)
		}
		seen[string(p.Next)] = page
		require.Less(t, page, maxPages, "still a Next cursor after %d pages and %d items: pagination does not end (full pages would take %d; short pages are allowed, %d more)", page, len(all), maxPages-shortPages, shortPages)
		cursor = p.Next
	}
}

// pageChecker is the part of *testing.T collect uses.
type pageChecker interface {
	require.TestingT
	Helper()
}

// shortPages is how many pages more than full ones would take a query may
// answer: a page MAY hold fewer items than its limit while Next is
// non-empty (ABI section 13.4), as a backend that stops a scan on a
// budget of its own answers, and the records of other rules may lie in
// the range it scans.
const shortPages = 256

// pagesFor bounds the pages a query for n items with limit may take: the
// full pages, one partial page, one trailing empty page, and shortPages.
func pagesFor(n, limit int) int { return n/limit + 2 + shortPages }

func queryMetrics(t *testing.T, st *host.Store, q host.MetricQuery, expect int) []host.Metric {
	t.Helper()
	limit := abi.PageLimit(q.Limit)
	return collect(t, limit, pagesFor(expect, limit), func(c []byte) (host.Page[host.Metric], error) {
		q.Cursor = c
		return st.QueryMetrics(t.Context(), q)
	})
}

func queryAlerts(t *testing.T, st *host.Store, q host.AlertQuery, expect int) []host.Alert {
	t.Helper()
	limit := abi.PageLimit(q.Limit)
	return collect(t, limit, pagesFor(expect, limit), func(c []byte) (host.Page[host.Alert], error) {
		q.Cursor = c
		return st.QueryAlerts(t.Context(), q)
	})
}

func queryStates(t *testing.T, st *host.Store, q host.AgentStateQuery, expect int) []host.AgentState {
	t.Helper()
	limit := abi.PageLimit(q.Limit)
	return collect(t, limit, pagesFor(expect, limit), func(c []byte) (host.Page[host.AgentState], error) {
		q.Cursor = c
		return st.QueryAgentStates(t.Context(), q)
	})
}

// --- the three kinds behind one face ---

// kind drives one record kind through a uniform interface, for the checks
// that are the same for every kind (TTL, isolation). A record is named by
// an id (the agent ID for metrics and states, the alert ID and its agent
// for alerts) and carries a content string (a label of a metric, an alert's
// message, an agent's state).
type kind struct {
	name    string
	feature abi.Feature
	put     func(ctx context.Context, st *host.Store, id, content string, opts ...host.WriteOption) (record, error)
	get     func(ctx context.Context, st *host.Store, id string) (record, error)
	del     func(ctx context.Context, st *host.Store, id string) error
	// find queries for id's records and reports whether id's is among them.
	find func(t *testing.T, st *host.Store, id string) (record, bool)
}

// record is what kind returns of a stored record.
type record struct {
	content   string
	expiresAt time.Time
}

// kindMetricTime is the timestamp of every metric kind writes.
var kindMetricTime = time.Date(2024, 6, 1, 12, 0, 0, 1, time.UTC)

var kinds = []kind{
	{
		name:    "Metric",
		feature: abi.FeatureMetrics,
		put: func(ctx context.Context, st *host.Store, id, content string, opts ...host.WriteOption) (record, error) {
			m, err := st.PutMetric(ctx, host.Metric{
				AgentID: id, Name: "kind", Value: 1, Timestamp: kindMetricTime,
				Labels: map[string]string{"content": content},
			}, opts...)
			return record{m.Labels["content"], m.ExpiresAt}, err
		},
		get: func(ctx context.Context, st *host.Store, id string) (record, error) {
			m, err := st.GetMetric(ctx, host.MetricKey{AgentID: id, Name: "kind", Timestamp: kindMetricTime})
			return record{m.Labels["content"], m.ExpiresAt}, err
		},
		del: func(ctx context.Context, st *host.Store, id string) error {
			return st.DeleteMetric(ctx, host.MetricKey{AgentID: id, Name: "kind", Timestamp: kindMetricTime})
		},
		find: func(t *testing.T, st *host.Store, id string) (record, bool) {
			for _, m := range queryMetrics(t, st, host.MetricQuery{AgentID: id}, 1) {
				if m.AgentID == id && m.Name == "kind" && m.Timestamp.Equal(kindMetricTime) {
					return record{m.Labels["content"], m.ExpiresAt}, true
				}
			}
			return record{}, false
		},
	},
	{
		name:    "Alert",
		feature: abi.FeatureAlerts,
		put: func(ctx context.Context, st *host.Store, id, content string, opts ...host.WriteOption) (record, error) {
			a, err := st.PutAlert(ctx, host.Alert{
				ID: id, AgentID: id, Severity: abi.SeverityWarning, Status: abi.AlertFiring, Message: content,
			}, opts...)
			return record{a.Message, a.ExpiresAt}, err
		},
		get: func(ctx context.Context, st *host.Store, id string) (record, error) {
			a, err := st.GetAlert(ctx, id)
			return record{a.Message, a.ExpiresAt}, err
		},
		del: func(ctx context.Context, st *host.Store, id string) error { return st.DeleteAlert(ctx, id) },
		find: func(t *testing.T, st *host.Store, id string) (record, bool) {
			for _, a := range queryAlerts(t, st, host.AlertQuery{AgentID: id}, 1) {
				if a.ID == id {
					return record{a.Message, a.ExpiresAt}, true
				}
			}
			return record{}, false
		},
	},
	{
		name:    "AgentState",
		feature: abi.FeatureAgentStates,
		put: func(ctx context.Context, st *host.Store, id, content string, opts ...host.WriteOption) (record, error) {
			s, err := st.PutAgentState(ctx, host.AgentState{AgentID: id, State: []byte(content)}, opts...)
			return record{string(s.State), s.ExpiresAt}, err
		},
		get: func(ctx context.Context, st *host.Store, id string) (record, error) {
			s, err := st.GetAgentState(ctx, id)
			return record{string(s.State), s.ExpiresAt}, err
		},
		del: func(ctx context.Context, st *host.Store, id string) error { return st.DeleteAgentState(ctx, id) },
		find: func(t *testing.T, st *host.Store, id string) (record, bool) {
			for _, s := range queryStates(t, st, host.AgentStateQuery{AgentIDPrefix: id}, 1) {
				if s.AgentID == id {
					return record{string(s.State), s.ExpiresAt}, true
				}
			}
			return record{}, false
		},
	},
}

// kinds returns the kinds the backend advertises.
func (s *suite) kinds() []kind {
	var ks []kind
	for _, k := range kinds {
		if s.has(k.feature) {
			ks = append(ks, k)
		}
	}
	return ks
}
