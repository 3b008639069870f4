package abi

import (
	"strconv"
	"time"
)

// RestoreMode says what a restore does when a live record with the same
// key exists.
type RestoreMode uint8

// Restore modes.
const (
	// RestoreFail answers StatusConflict and writes nothing.
	RestoreFail RestoreMode = 1
	// RestoreSkip answers OK with written false and writes nothing.
	RestoreSkip RestoreMode = 2
	// RestoreOverwrite replaces the record, whatever it is.
	RestoreOverwrite RestoreMode = 3
)

var restoreModeNames = [...]string{RestoreFail: "fail", RestoreSkip: "skip", RestoreOverwrite: "overwrite"}

// Valid reports whether m is a known restore mode.
func (m RestoreMode) Valid() bool { return m >= RestoreFail && m <= RestoreOverwrite }

// String names the mode ("fail", "skip", "overwrite").
func (m RestoreMode) String() string {
	if m.Valid() {
		return restoreModeNames[m]
	}
	return "restore_mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseRestoreMode is the inverse of RestoreMode.String.
func ParseRestoreMode(name string) (RestoreMode, bool) {
	for m := RestoreFail; m <= RestoreOverwrite; m++ {
		if restoreModeNames[m] == name {
			return m, true
		}
	}
	return 0, false
}

// Restore is the body of OpRestore (ABI 1.2): kind u8, the record of that
// kind (Metric, Alert or AgentState), mode u8. The record is written
// exactly as given, the fields a normal write leaves to the backend
// included: an agent state keeps its Version, an alert its CreatedAt and
// UpdatedAt, and every kind its ExpiresAt, an absolute time (zero: never).
// Only the record of Kind travels; the other two are zero after Decode.
//
// The OK response body is written bool: false when nothing was written,
// because a live record with the key exists and Mode is RestoreSkip, or
// because ExpiresAt has already passed. With RestoreFail an existing live
// record is StatusConflict. No alert transition is checked.
type Restore struct {
	Kind   RecordKind
	Metric Metric
	Alert  Alert
	State  AgentState
	Mode   RestoreMode
}

// Encode appends r.
func (r *Restore) Encode(e *Encoder) {
	e.U8(uint8(r.Kind))
	switch r.Kind {
	case KindMetric:
		r.Metric.Encode(e)
	case KindAlert:
		r.Alert.Encode(e)
	case KindAgentState:
		r.State.Encode(e)
	}
	e.U8(uint8(r.Mode))
}

// Decode reads what Encode wrote. An unknown kind is malformed: its record
// cannot be read. An unknown mode decodes, and Check refuses it.
func (r *Restore) Decode(d *Decoder) {
	*r = Restore{Kind: RecordKind(d.U8())}
	switch r.Kind {
	case KindMetric:
		r.Metric.Decode(d)
	case KindAlert:
		r.Alert.Decode(d)
	case KindAgentState:
		r.State.Decode(d)
	default:
		d.fail(ErrMalformed)
		return
	}
	r.Mode = RestoreMode(d.U8())
}

// ExpiresAt returns the expiry of the record to restore; zero means never.
func (r *Restore) ExpiresAt() time.Time {
	switch r.Kind {
	case KindMetric:
		return r.Metric.ExpiresAt
	case KindAlert:
		return r.Alert.ExpiresAt
	case KindAgentState:
		return r.State.ExpiresAt
	}
	return time.Time{}
}

// Expired reports whether the record to restore has an expiry that is not
// after now: there is nothing to restore, and the answer is OK with
// written false.
func (r *Restore) Expired(now time.Time) bool {
	at := r.ExpiresAt()
	return !at.IsZero() && !at.After(now)
}

// Requires returns the features a backend must advertise to serve r:
// FeatureRestore, the feature of r's kind, and FeatureTTL when the record
// has an expiry.
func (r *Restore) Requires() Feature {
	f := FeatureRestore | r.Kind.Feature()
	if !r.ExpiresAt().IsZero() {
		f |= FeatureTTL
	}
	return f
}

// Check returns a StatusInvalid error unless r can be restored: a known
// kind and mode, a record that passes its own Check, an alert with its
// CreatedAt and UpdatedAt, and an agent state with its UpdatedAt and a
// Version of at least 1 (every write a backend answered set them).
func (r *Restore) Check() error {
	if !r.Mode.Valid() {
		return Errorf(StatusInvalid, "unknown restore mode %d", r.Mode)
	}
	switch r.Kind {
	case KindMetric:
		return r.Metric.Check()
	case KindAlert:
		if err := r.Alert.Check(); err != nil {
			return err
		}
		if r.Alert.CreatedAt.IsZero() || r.Alert.UpdatedAt.IsZero() {
			return Errorf(StatusInvalid, "alert %q: a restored alert needs its created_at and updated_at", r.Alert.ID)
		}
		return nil
	case KindAgentState:
		if err := r.State.Check(); err != nil {
			return err
		}
		if r.State.Version == 0 {
			return Errorf(StatusInvalid, "agent state %q: a restored version is at least 1", r.State.AgentID)
		}
		if r.State.UpdatedAt.IsZero() {
			return Errorf(StatusInvalid, "agent state %q: a restored state needs its updated_at", r.State.AgentID)
		}
		return nil
	}
	return Errorf(StatusInvalid, "unknown record kind %d", r.Kind)
}
