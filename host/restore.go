package host

import (
	"context"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
)

// Restore types, defined once in package abi.
type (
	// RecordKind names one of the three kinds of record.
	RecordKind = abi.RecordKind
	// RestoreMode says what a restore does when a live record with the
	// same key exists.
	RestoreMode = abi.RestoreMode
	// Restore is one record to restore: Kind says which of Metric, Alert
	// and State it is, and every field of that record is kept as given.
	Restore = abi.Restore
)

// Record kinds.
const (
	KindMetric     = abi.KindMetric
	KindAlert      = abi.KindAlert
	KindAgentState = abi.KindAgentState
)

// Restore modes.
const (
	// RestoreFail fails the item with ErrConflict when a live record with
	// its key exists, and writes nothing.
	RestoreFail = abi.RestoreFail
	// RestoreSkip leaves a live record with the item's key as it is: the
	// item's Value is false.
	RestoreSkip = abi.RestoreSkip
	// RestoreOverwrite replaces the record.
	RestoreOverwrite = abi.RestoreOverwrite
)

// Restore writes each record exactly as given, the fields a normal write
// leaves to the backend included: an agent state keeps its Version (at
// least 1; later writes get larger ones), an alert its CreatedAt and
// UpdatedAt, and every record its ExpiresAt, an absolute time (zero:
// never; a backend keeps it at its own precision, Redis to the
// millisecond). No alert transition is checked. It is what restoring a
// backup or migrating between backends needs (abi.OpRestore).
//
// The items go to the backend as one batch: callers chunk large restores
// (a few hundred items a call). Each Result's Value says whether its
// record was written: false when a live record with its key existed and
// the mode was RestoreSkip, or when its ExpiresAt had already passed.
// Under RestoreFail an existing live record is an Err matching
// ErrConflict. An item of a kind the backend does not store, or with an
// expiry on a backend without TTLs, fails alone with ErrUnsupported; a
// backend without abi.FeatureRestore or abi.FeatureBatch refuses the call
// with ErrUnsupported. Every record written is published as a put event.
func (s *Store) Restore(ctx context.Context, items []Restore) ([]Result[bool], error) {
	if !s.calls.enter() { // even with nothing to send
		return nil, ErrClosed
	}
	s.calls.leave()
	f := s.p.meta.Features
	if !f.Has(abi.FeatureRestore | abi.FeatureBatch) {
		return nil, abi.Errorf(abi.StatusUnsupported, "backend %s does not support restores", s.p.name)
	}
	out := make([]Result[bool], len(items))
	// Items the backend cannot serve fail here; the others go in one
	// batch, in order.
	send := make([]int, 0, len(items))
	for i := range items {
		// An unknown kind goes to the plugin, which answers ErrInvalid.
		if need := items[i].Requires(); items[i].Kind.Valid() && !f.Has(need) {
			out[i].Err = abi.Errorf(abi.StatusUnsupported, "backend %s cannot restore a %s record (needs %s)",
				s.p.name, items[i].Kind, need&^f)
			continue
		}
		switch r := &items[i]; r.Kind {
		case KindAgentState:
			out[i].Err = s.checkReadable("agent state", r.State.AgentID, stateSize(&r.State))
		case KindAlert:
			out[i].Err = s.checkReadable("alert", r.Alert.ID, alertSize(&r.Alert))
		}
		if out[i].Err != nil {
			continue
		}
		send = append(send, i)
	}
	if len(send) == 0 {
		return out, nil
	}
	written := make([]bool, len(send))
	errs, err := s.bulk(ctx, abi.OpRestore, len(send),
		func(i int, e *abi.Encoder) { items[send[i]].Encode(e) },
		func(i int, d *abi.Decoder) { written[i] = d.Bool() })
	if err != nil {
		return nil, err
	}
	for j, i := range send {
		out[i] = Result[bool]{Value: written[j], Err: errs[j]}
		if errs[j] == nil && written[j] {
			s.publishRestored(&items[i])
		}
	}
	return out, nil
}

// publishRestored publishes the put event of a record Restore wrote.
func (s *Store) publishRestored(r *Restore) {
	switch r.Kind {
	case KindMetric:
		s.publishMetric(events.OpPut, &r.Metric)
	case KindAlert:
		s.publishAlert(events.OpPut, &r.Alert)
	case KindAgentState:
		s.publishState(&r.State)
	}
}
