// Command memory is the embedded default storage backend: every record
// lives in the host's kv capability, an ordered in-memory store shared by
// all instances of the backend, so a write is visible to every later read
// whichever instance serves it, and an instance can be replaced without
// losing data. The plugin owns the policy: key layout, TTLs, filters,
// status transitions and optimistic concurrency.
//
// Options: metric_ttl_seconds, alert_ttl_seconds and
// agent_state_ttl_seconds (the kinds' default TTLs), and
// max_samples_per_series, a retention policy: each series (an agent's
// metric of one name) keeps its newest samples by timestamp, at most this
// many; every put of a sample scans its series to drop the oldest, so it
// costs time in proportion to the limit.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o memory.wasm .
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/plugins/internal/querycost"
	"github.com/storage-host/storage-host/sdk"
)

// Key layout in the kv store. Identifiers cannot contain NUL (abi.CheckID),
// so NUL separates the parts and a prefix scan never crosses into another
// agent or name:
//
//	metric:      "m" 0 agent 0 name 0 timestamp (8 bytes, big-endian, sign bit flipped)
//	alert:       "a" 0 id
//	agent state: "s" 0 agent
const (
	metricPrefix = "m\x00"
	alertPrefix  = "a\x00"
	statePrefix  = "s\x00"
)

// maxRetries bounds the read-check-write loops that use the kv revision
// as a compare-and-swap.
const maxRetries = 16

func main() {}

func init() {
	b := &backend{}
	sdk.Register(sdk.Plugin{
		Name:         "memory",
		Version:      "1.0.0",
		Metrics:      (*metrics)(b),
		Alerts:       (*alerts)(b),
		AgentStates:  (*states)(b),
		TTL:          true,
		Concurrency:  true,
		Restorer:     b,
		Capabilities: []abi.Capability{abi.CapabilityLog, abi.CapabilityClock, abi.CapabilityKV},
		Configure:    b.configure,
		// The host answers these gets from the kv store: an alert's value
		// is the whole alert but its expiry, an agent state's all but its
		// version and expiry, each the entry's (GetAlert, GetAgentState).
		KVReads: []abi.KVRead{
			{Kind: abi.KindAlert, Prefix: []byte(alertPrefix)},
			{Kind: abi.KindAgentState, Prefix: []byte(statePrefix)},
		},
	})
}

type backend struct {
	kv  sdk.KV
	enc abi.Encoder
	key []byte // scratch for point keys; see pointKey
	// Default TTLs per kind, from the options; 0 = never expire.
	metricTTL, alertTTL, stateTTL time.Duration
	// maxSamples is the most samples of one series kept (the newest by
	// timestamp), from max_samples_per_series; 0 = every sample.
	maxSamples int
}

type (
	metrics backend
	alerts  backend
	states  backend
)

func (b *backend) configure(o abi.Options) error {
	for name, dst := range map[string]*time.Duration{
		"metric_ttl_seconds":      &b.metricTTL,
		"alert_ttl_seconds":       &b.alertTTL,
		"agent_state_ttl_seconds": &b.stateTTL,
	} {
		ttl, ok, err := o.TTL(name)
		if err != nil {
			return err
		}
		if ok {
			*dst = ttl
		}
	}
	if v, ok := o["max_samples_per_series"]; ok {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil || n == 0 {
			return abi.Errorf(abi.StatusInvalid, "option max_samples_per_series: %q is not a positive whole number", v)
		}
		b.maxSamples = int(n)
	}
	for name := range o {
		switch name {
		case "metric_ttl_seconds", "alert_ttl_seconds", "agent_state_ttl_seconds", "max_samples_per_series":
		default:
			return abi.Errorf(abi.StatusInvalid, "unknown option %q", name)
		}
	}
	return nil
}

// scratch returns the backend's encoder, emptied; records are encoded into
// it by direct method calls (an interface parameter would make each record
// escape to the heap, an allocation the Go guest feels).
func (b *backend) scratch() *abi.Encoder {
	b.enc.Reset()
	return &b.enc
}

// valueDecoder decodes stored records; it is reused, as calls into an
// instance never overlap. Records are decoded by direct method calls:
// begin, rec.Decode, end.
var valueDecoder recordDecoder

type recordDecoder struct{ abi.Decoder }

func (d *recordDecoder) begin(value []byte) *abi.Decoder {
	d.Reset(value)
	return &d.Decoder
}

func (d *recordDecoder) end() error {
	if err := d.Finish(); err != nil {
		return fmt.Errorf("corrupt record: %w", err)
	}
	return nil
}

// put writes value under key with the TTL policy applied: the expiry is
// computed here and written with the value in one kv call.
// With TTLKeep the kv store keeps a live entry's expiry in the same call;
// the expiry computed here is then the one for a new entry.
func (b *backend) put(key, value []byte, ttl *abi.TTL, def time.Duration, now time.Time, cond abi.Condition) (uint64, time.Time, error) {
	return b.kv.Put(key, value, ttl.ExpiresAt(now, def, time.Time{}, false), ttl.Mode == abi.TTLKeep, cond)
}

// pointKey builds a key in the backend's scratch buffer, valid until the
// next pointKey: for the single-record paths, where one allocation less
// per call is measurable in a Go guest. Scans build keys of their own.
func (b *backend) pointKey(prefix string, id string) []byte {
	b.key = append(append(b.key[:0], prefix...), id...)
	return b.key
}

// --- metrics ---

func metricKey(agent, name string, ts time.Time) []byte {
	k := make([]byte, 0, len(metricPrefix)+len(agent)+len(name)+10)
	k = append(k, metricPrefix...)
	k = append(k, agent...)
	k = append(k, 0)
	k = append(k, name...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(ts.UnixNano())^1<<63)
}

func (m *metrics) PutMetric(r *abi.PutMetric) (abi.Metric, error) {
	b := (*backend)(m)
	rec := r.Metric
	rec.ExpiresAt = time.Time{}
	rec.Encode(b.scratch())
	_, exp, err := b.put(metricKey(rec.AgentID, rec.Name, rec.Timestamp), b.enc.Bytes(), &r.TTL, b.metricTTL, sdk.Now(), abi.Condition{})
	rec.ExpiresAt = exp
	if err == nil && b.maxSamples > 0 {
		err = b.trimSeries(rec.AgentID, rec.Name)
	}
	return rec, err
}

// trimSeries drops the oldest samples of a series past maxSamples. The
// series is trimmed at every put, so it holds at most one sample too many,
// unless the option was lowered: then each put drops the excess too.
func (b *backend) trimSeries(agent, name string) error {
	start := append(append(append(append([]byte(metricPrefix), agent...), 0), name...), 0)
	end := prefixEnd(start)
	for {
		ents, _, err := b.kv.Scan(start, end, b.maxSamples+1)
		if err != nil || len(ents) <= b.maxSamples {
			return err
		}
		if err := b.kv.Delete(bytes.Clone(ents[0].Key), abi.Condition{}); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return err
		}
	}
}

func (m *metrics) GetMetric(k *abi.MetricKey) (abi.Metric, error) {
	b := (*backend)(m)
	en, err := b.kv.Get(metricKey(k.AgentID, k.Name, k.Timestamp))
	if err != nil {
		return abi.Metric{}, err
	}
	var rec abi.Metric
	rec.Decode(valueDecoder.begin(en.Value))
	err = valueDecoder.end()
	rec.ExpiresAt = en.ExpiresAt
	return rec, err
}

func (m *metrics) DeleteMetric(k *abi.MetricKey) error {
	return m.kv.Delete(metricKey(k.AgentID, k.Name, k.Timestamp), abi.Condition{})
}

func (m *metrics) QueryMetrics(q *abi.MetricQuery) (abi.Page[abi.Metric], error) {
	w, err := querycost.Check(q.Labels)
	if err != nil {
		return abi.Page[abi.Metric]{}, err
	}
	lf, err := abi.CompileMatchers(q.Labels)
	if err != nil {
		return abi.Page[abi.Metric]{}, err
	}
	meter := querycost.NewMeter(w)
	// Narrow the scan to what the query pins down: the agent, then the
	// name, then the time range.
	start, end := []byte(metricPrefix), prefixEnd([]byte(metricPrefix))
	if q.AgentID != "" {
		start = append(append([]byte(metricPrefix), q.AgentID...), 0)
		end = prefixEnd(start)
		if q.Name != "" {
			p := append(append(start, q.Name...), 0)
			start, end = p, prefixEnd(p)
			if !q.From.IsZero() {
				start = metricKey(q.AgentID, q.Name, q.From)
			}
			if !q.To.IsZero() {
				end = metricKey(q.AgentID, q.Name, q.To)
			}
		}
	}
	return scanPage(&m.kv, start, end, q.Cursor, q.Limit, func(en *abi.KVEntry) (abi.Metric, bool, error) {
		var rec abi.Metric
		rec.Decode(valueDecoder.begin(en.Value))
		if err := valueDecoder.end(); err != nil {
			return rec, false, err
		}
		if err := meter.Charge(len(en.Key)+len(en.Value), rec.Labels); err != nil {
			return rec, false, err
		}
		rec.ExpiresAt = en.ExpiresAt
		return rec, q.Match(&rec, &lf), nil
	})
}

// --- alerts ---

func alertKey(id string) []byte { return append([]byte(alertPrefix), id...) }

func (a *alerts) get(id string) (abi.Alert, uint64, error) {
	en, err := a.kv.Get(alertKey(id))
	if err != nil {
		return abi.Alert{}, 0, err
	}
	var rec abi.Alert
	rec.Decode(valueDecoder.begin(en.Value))
	err = valueDecoder.end()
	rec.ExpiresAt = en.ExpiresAt
	return rec, en.Revision, err
}

func (a *alerts) GetAlert(id string) (abi.Alert, error) {
	rec, _, err := a.get(id)
	if errors.Is(err, sdk.ErrNotFound) {
		return rec, fmt.Errorf("alert %q: %w", id, sdk.ErrNotFound)
	}
	return rec, err
}

// PutAlert creates or replaces an alert. Replacing keeps CreatedAt and must
// be an allowed status transition; the check and the write are one
// compare-and-swap on the kv revision.
func (a *alerts) PutAlert(r *abi.PutAlert) (abi.Alert, error) {
	b := (*backend)(a)
	for range maxRetries {
		now := sdk.Now()
		rec := r.Alert
		cond := abi.Condition{Mode: abi.IfAbsent}
		old, rev, err := a.get(rec.ID)
		switch {
		case err == nil:
			if !old.Status.CanTransition(rec.Status) {
				return abi.Alert{}, fmt.Errorf("alert %q: cannot go from %s to %s: %w", rec.ID, old.Status, rec.Status, sdk.ErrConflict)
			}
			rec.CreatedAt = old.CreatedAt
			cond = abi.Condition{Mode: abi.IfVersion, Version: rev}
		case !errors.Is(err, sdk.ErrNotFound):
			return abi.Alert{}, err
		case rec.CreatedAt.IsZero():
			rec.CreatedAt = now
		}
		rec.UpdatedAt, rec.ExpiresAt = now, time.Time{}
		rec.Encode(b.scratch())
		_, exp, err := b.put(alertKey(rec.ID), b.enc.Bytes(), &r.TTL, b.alertTTL, now, cond)
		if errors.Is(err, sdk.ErrConflict) {
			continue // raced with another writer: read again
		}
		rec.ExpiresAt = exp
		return rec, err
	}
	return abi.Alert{}, fmt.Errorf("alert %q: too much contention: %w", r.Alert.ID, sdk.ErrConflict)
}

// SetAlertStatus moves an alert to a new status, keeping its expiry.
func (a *alerts) SetAlertStatus(r *abi.SetAlertStatus) (abi.Alert, error) {
	b := (*backend)(a)
	keep := abi.TTL{Mode: abi.TTLKeep}
	for range maxRetries {
		rec, rev, err := a.get(r.ID)
		if err != nil {
			if errors.Is(err, sdk.ErrNotFound) {
				return rec, fmt.Errorf("alert %q: %w", r.ID, sdk.ErrNotFound)
			}
			return rec, err
		}
		if !rec.Status.CanTransition(r.Status) {
			return abi.Alert{}, fmt.Errorf("alert %q: cannot go from %s to %s: %w", r.ID, rec.Status, r.Status, sdk.ErrConflict)
		}
		now := sdk.Now()
		rec.Status, rec.UpdatedAt, rec.ExpiresAt = r.Status, now, time.Time{}
		rec.Encode(b.scratch())
		_, exp, err := b.put(alertKey(r.ID), b.enc.Bytes(), &keep, b.alertTTL, now, abi.Condition{Mode: abi.IfVersion, Version: rev})
		if errors.Is(err, sdk.ErrConflict) {
			continue
		}
		rec.ExpiresAt = exp
		return rec, err
	}
	return abi.Alert{}, fmt.Errorf("alert %q: too much contention: %w", r.ID, sdk.ErrConflict)
}

func (a *alerts) DeleteAlert(id string) error {
	err := a.kv.Delete(alertKey(id), abi.Condition{})
	if errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("alert %q: %w", id, sdk.ErrNotFound)
	}
	return err
}

func (a *alerts) QueryAlerts(q *abi.AlertQuery) (abi.Page[abi.Alert], error) {
	w, err := querycost.Check(q.Labels)
	if err != nil {
		return abi.Page[abi.Alert]{}, err
	}
	lf, err := abi.CompileMatchers(q.Labels)
	if err != nil {
		return abi.Page[abi.Alert]{}, err
	}
	meter := querycost.NewMeter(w)
	start := []byte(alertPrefix)
	return scanPage(&a.kv, start, prefixEnd(start), q.Cursor, q.Limit, func(en *abi.KVEntry) (abi.Alert, bool, error) {
		var rec abi.Alert
		rec.Decode(valueDecoder.begin(en.Value))
		if err := valueDecoder.end(); err != nil {
			return rec, false, err
		}
		if err := meter.Charge(len(en.Key)+len(en.Value), rec.Labels); err != nil {
			return rec, false, err
		}
		rec.ExpiresAt = en.ExpiresAt
		return rec, q.Match(&rec, &lf), nil
	})
}

// --- agent states ---

func stateKey(agent string) []byte { return append([]byte(statePrefix), agent...) }

// The stored value is the encoded AgentState without its version: the
// version is the kv revision, which changes on every write and is what the
// compare-and-swap checks.

func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	b := (*backend)(s)
	now := sdk.Now()
	rec := abi.AgentState{AgentID: r.State.AgentID, State: r.State.State, UpdatedAt: now}
	rec.Encode(b.scratch())
	rev, exp, err := b.put(b.pointKey(statePrefix, rec.AgentID), b.enc.Bytes(), &r.TTL, b.stateTTL, now, r.Condition)
	if errors.Is(err, sdk.ErrConflict) {
		return abi.AgentState{}, fmt.Errorf("agent state %q: %s: %w", rec.AgentID, conditionText(r.Condition), sdk.ErrConflict)
	}
	rec.Version, rec.ExpiresAt = rev, exp
	return rec, err
}

func conditionText(c abi.Condition) string {
	if c.Mode == abi.IfAbsent {
		return "already exists"
	}
	return fmt.Sprintf("version %d is not current", c.Version)
}

// GetAgentState answers from the kv entry without copying the document:
// the SDK encodes the response before the next kv call reuses the buffer.
func (s *states) GetAgentState(agentID string) (abi.AgentState, error) {
	en, err := s.kv.Get((*backend)(s).pointKey(statePrefix, agentID))
	if err != nil {
		if errors.Is(err, sdk.ErrNotFound) {
			return abi.AgentState{}, fmt.Errorf("agent state %q: %w", agentID, sdk.ErrNotFound)
		}
		return abi.AgentState{}, err
	}
	rec := abi.AgentState{AgentID: agentID, Version: en.Revision, ExpiresAt: en.ExpiresAt}
	valueDecoder.begin(en.Value)
	valueDecoder.View() // agent_id: the caller's
	rec.State = valueDecoder.View()
	valueDecoder.Uvarint() // version: the revision is the version
	rec.UpdatedAt = valueDecoder.Time()
	valueDecoder.Time() // expires_at: the entry's
	if err := valueDecoder.end(); err != nil {
		return abi.AgentState{}, err
	}
	return rec, nil
}

func stateFromEntry(en *abi.KVEntry) (abi.AgentState, error) {
	var rec abi.AgentState
	rec.Decode(valueDecoder.begin(en.Value))
	err := valueDecoder.end()
	rec.Version, rec.ExpiresAt = en.Revision, en.ExpiresAt
	return rec, err
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	err := s.kv.Delete((*backend)(s).pointKey(statePrefix, r.AgentID), r.Condition)
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		return fmt.Errorf("agent state %q: %w", r.AgentID, sdk.ErrNotFound)
	case errors.Is(err, sdk.ErrConflict):
		return fmt.Errorf("agent state %q: %s: %w", r.AgentID, conditionText(r.Condition), sdk.ErrConflict)
	}
	return err
}

func (s *states) QueryAgentStates(q *abi.AgentStateQuery) (abi.Page[abi.AgentState], error) {
	start := stateKey(q.AgentIDPrefix)
	meter := querycost.NewMeter(querycost.Weights{})
	return scanPage(&s.kv, start, prefixEnd(start), q.Cursor, q.Limit, func(en *abi.KVEntry) (abi.AgentState, bool, error) {
		if err := meter.Charge(len(en.Key)+len(en.Value), nil); err != nil {
			return abi.AgentState{}, false, err
		}
		rec, err := stateFromEntry(en)
		return rec, true, err
	})
}

// --- restore ---

// Restore writes a record exactly as given (abi.OpRestore). Each kind's
// stored value is what its put stores, with the given backend fields: a
// metric's and an alert's value hold every field but the expiry, which is
// the kv entry's; an agent state's version is the kv revision, so it is
// restored with a kv restore of that revision. The modes map onto the
// kv condition, so the check and the write are one kv call: fail and skip
// write if absent, and tell a CONFLICT apart; overwrite writes
// unconditionally.
func (b *backend) Restore(r *abi.Restore) (bool, error) {
	if r.Expired(sdk.Now()) {
		return false, nil
	}
	ifAbsent := r.Mode != abi.RestoreOverwrite
	cond := abi.Condition{}
	if ifAbsent {
		cond.Mode = abi.IfAbsent
	}
	var err error
	switch r.Kind {
	case abi.KindMetric:
		rec := r.Metric
		rec.ExpiresAt = time.Time{}
		rec.Encode(b.scratch())
		_, _, err = b.kv.Put(metricKey(rec.AgentID, rec.Name, rec.Timestamp), b.enc.Bytes(), r.Metric.ExpiresAt, false, cond)
	case abi.KindAlert:
		rec := r.Alert
		rec.ExpiresAt = time.Time{}
		rec.Encode(b.scratch())
		_, _, err = b.kv.Put(alertKey(rec.ID), b.enc.Bytes(), r.Alert.ExpiresAt, false, cond)
	case abi.KindAgentState:
		rec := abi.AgentState{AgentID: r.State.AgentID, State: r.State.State, UpdatedAt: r.State.UpdatedAt}
		rec.Encode(b.scratch())
		_, _, err = b.kv.Restore(b.pointKey(statePrefix, rec.AgentID), b.enc.Bytes(), r.State.Version, r.State.ExpiresAt, ifAbsent)
	default:
		return false, abi.Errorf(abi.StatusInvalid, "unknown record kind %d", r.Kind)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, sdk.ErrConflict) && r.Mode == abi.RestoreSkip:
		return false, nil
	case errors.Is(err, sdk.ErrConflict):
		return false, fmt.Errorf("restore %s: a live record with its key exists: %w", r.Kind, sdk.ErrConflict)
	}
	return false, err
}

// --- queries ---

// scanPage fills one page from the kv range [start, end), resuming at
// cursor, keeping the records keep accepts. keep answering
// querycost.ErrSpent ends the page early, before that entry. The cursor is the kv key to
// resume from; one outside the range is refused.
func scanPage[T any](kv *sdk.KV, start, end, cursor []byte, limit uint32, keep func(*abi.KVEntry) (T, bool, error)) (abi.Page[T], error) {
	var page abi.Page[T]
	if len(cursor) > 0 {
		if bytes.Compare(cursor, start) < 0 || (len(end) > 0 && bytes.Compare(cursor, end) >= 0) {
			return page, abi.Errorf(abi.StatusInvalid, "cursor does not belong to this query")
		}
		start = cursor
	}
	want := abi.PageLimit(limit)
	// The first scan reads one entry; later ones as many as fit the call's
	// byte budget at the size of the biggest entry seen, so one kv result
	// never holds many large records at once.
	chunk, biggest := 1, 1
	for {
		entries, next, err := kv.Scan(start, end, min(chunk, want-len(page.Items)+1))
		if err != nil {
			return page, err
		}
		for i := range entries {
			biggest = max(biggest, len(entries[i].Key)+len(entries[i].Value))
		}
		chunk = max(1, querycost.ScanBudget/biggest)
		for i := range entries {
			if len(page.Items) == want {
				page.Next = bytes.Clone(entries[i].Key)
				return page, nil
			}
			rec, ok, err := keep(&entries[i])
			if errors.Is(err, querycost.ErrSpent) {
				// The call's budget is spent: the page ends here, and
				// the next one starts at this entry.
				page.Next = bytes.Clone(entries[i].Key)
				return page, nil
			}
			if err != nil {
				return page, err
			}
			if ok {
				page.Items = append(page.Items, rec)
			}
		}
		if len(next) == 0 || len(page.Items) == want {
			page.Next = bytes.Clone(next)
			return page, nil
		}
		start = next
	}
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
