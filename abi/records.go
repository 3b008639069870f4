package abi

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Metric is one sample of a named value reported by an agent. A metric is
// identified by its MetricKey: agent, name and timestamp.
type Metric struct {
	AgentID   string
	Name      string
	Value     float64
	Timestamp time.Time
	Labels    map[string]string
	// ExpiresAt is set by the backend on responses; zero means never.
	ExpiresAt time.Time
}

// Key returns the identity of m.
func (m *Metric) Key() MetricKey {
	return MetricKey{AgentID: m.AgentID, Name: m.Name, Timestamp: m.Timestamp}
}

// MetricKey identifies one metric sample.
type MetricKey struct {
	AgentID   string
	Name      string
	Timestamp time.Time
}

// Severity ranks an alert.
type Severity uint8

// Alert severities.
const (
	SeverityInfo     Severity = 1
	SeverityWarning  Severity = 2
	SeverityCritical Severity = 3
)

// AlertStatus is where an alert is in its life.
type AlertStatus uint8

// Alert statuses. The allowed transitions are those CanTransition accepts.
const (
	AlertFiring       AlertStatus = 1
	AlertAcknowledged AlertStatus = 2
	AlertResolved     AlertStatus = 3
)

var (
	severityNames    = [...]string{SeverityInfo: "info", SeverityWarning: "warning", SeverityCritical: "critical"}
	alertStatusNames = [...]string{AlertFiring: "firing", AlertAcknowledged: "acknowledged", AlertResolved: "resolved"}
)

// Valid reports whether s is a known severity.
func (s Severity) Valid() bool { return s >= SeverityInfo && s <= SeverityCritical }

// String names the severity ("info", "warning", "critical").
func (s Severity) String() string {
	if s.Valid() {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// ParseSeverity is the inverse of Severity.String.
func ParseSeverity(name string) (Severity, bool) {
	for s := SeverityInfo; s <= SeverityCritical; s++ {
		if severityNames[s] == name {
			return s, true
		}
	}
	return 0, false
}

// Valid reports whether s is a known alert status.
func (s AlertStatus) Valid() bool { return s >= AlertFiring && s <= AlertResolved }

// String names the status ("firing", "acknowledged", "resolved").
func (s AlertStatus) String() string {
	if s.Valid() {
		return alertStatusNames[s]
	}
	return "alert_status(" + strconv.Itoa(int(s)) + ")"
}

// ParseAlertStatus is the inverse of AlertStatus.String.
func ParseAlertStatus(name string) (AlertStatus, bool) {
	for s := AlertFiring; s <= AlertResolved; s++ {
		if alertStatusNames[s] == name {
			return s, true
		}
	}
	return 0, false
}

// CanTransition reports whether an alert may move from s to next:
// firing → acknowledged → resolved, firing → resolved, and resolved →
// firing when the condition returns. Staying in the same status is allowed.
func (s AlertStatus) CanTransition(next AlertStatus) bool {
	if !s.Valid() || !next.Valid() {
		return false
	}
	switch {
	case s == next:
		return true
	case s == AlertFiring:
		return true
	case s == AlertAcknowledged:
		return next == AlertResolved
	default: // resolved
		return next == AlertFiring
	}
}

// Alert is a condition raised about an agent.
type Alert struct {
	ID       string
	AgentID  string
	Severity Severity
	Status   AlertStatus
	Message  string
	Labels   map[string]string
	// CreatedAt is set by the backend on the first write and kept after.
	CreatedAt time.Time
	// UpdatedAt is set by the backend on every write.
	UpdatedAt time.Time
	// ExpiresAt is set by the backend on responses; zero means never.
	ExpiresAt time.Time
}

// AgentState is the opaque state document of one agent.
type AgentState struct {
	AgentID string
	// State is an opaque document, usually JSON; the backend never parses it.
	State []byte
	// Version is set by the backend and changes on every write.
	Version uint64
	// UpdatedAt is set by the backend on every write.
	UpdatedAt time.Time
	// ExpiresAt is set by the backend on responses; zero means never.
	ExpiresAt time.Time
}

func (e *Encoder) labels(l map[string]string) {
	e.Uvarint(uint64(len(l)))
	if len(l) == 0 {
		return
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.String(k)
		e.String(l[k])
	}
}

// MaxLabels and MaxLabelBytes bound a record's labels (a metric's or an
// alert's): at most MaxLabels of them, with names and values of at most
// MaxLabelBytes together. A record past them is malformed wherever it is
// decoded: in a request, a plugin's answer, a tick's report or a backup
// file. The bound on the wire is what keeps the decoder's memory in
// proportion to the message: a label is two bytes on the wire at the
// least and well over a hundred decoded, so a 16 MiB answer of labels
// alone would cost its reader gigabytes.
const (
	MaxLabels     = 64
	MaxLabelBytes = 1 << 20
)

// labels reads a record's labels, within MaxLabels and MaxLabelBytes.
func (d *Decoder) labels() map[string]string {
	n := d.Count(2)
	if n == 0 {
		return nil
	}
	if n > MaxLabels {
		d.fail(fmt.Errorf("%w: %d labels; at most %d per record", ErrMalformed, n, MaxLabels))
		return nil
	}
	l := make(map[string]string, n)
	size := 0
	for i := 0; i < n && d.err == nil; i++ {
		k, v := d.String(), d.String()
		if size += len(k) + len(v); size > MaxLabelBytes {
			d.fail(fmt.Errorf("%w: labels of more than %d bytes (names and values) in one record", ErrMalformed, MaxLabelBytes))
			return nil
		}
		l[k] = v
	}
	return l
}

// EncodeLabels appends labels as a record's labels are encoded (section
// 10.1 of the spec): a count, then each name and value. A plugin that
// keeps a record's labels in a column or a field of its own (a declared
// get's, say) keeps them in this form.
func EncodeLabels(e *Encoder, labels map[string]string) { e.labels(labels) }

// DecodeLabels reads what EncodeLabels wrote, within the bounds of a
// record's labels: at most MaxLabels of them, of at most MaxLabelBytes
// (names and values) together. Past them it fails d with ErrMalformed.
func DecodeLabels(d *Decoder) map[string]string { return d.labels() }

// pairs reads what Encoder.labels wrote, with no bound but the message's.
func (d *Decoder) pairs() map[string]string {
	n := d.Count(2)
	if n == 0 {
		return nil
	}
	l := make(map[string]string, min(n, maxPrealloc))
	for i := 0; i < n && d.err == nil; i++ {
		k := d.String()
		l[k] = d.String()
	}
	return l
}

// Encode appends m: agent_id string, name string, value f64, timestamp
// time, labels, expires_at time.
func (m *Metric) Encode(e *Encoder) {
	e.String(m.AgentID)
	e.String(m.Name)
	e.F64(m.Value)
	e.Time(m.Timestamp)
	e.labels(m.Labels)
	e.Time(m.ExpiresAt)
}

// Decode reads what Encode wrote.
func (m *Metric) Decode(d *Decoder) {
	m.AgentID = d.String()
	m.Name = d.String()
	m.Value = d.F64()
	m.Timestamp = d.Time()
	m.Labels = d.labels()
	m.ExpiresAt = d.Time()
}

// Encode appends k: agent_id string, name string, timestamp time.
func (k *MetricKey) Encode(e *Encoder) {
	e.String(k.AgentID)
	e.String(k.Name)
	e.Time(k.Timestamp)
}

// Decode reads what Encode wrote.
func (k *MetricKey) Decode(d *Decoder) {
	k.AgentID = d.String()
	k.Name = d.String()
	k.Timestamp = d.Time()
}

// Encode appends a: id string, agent_id string, severity u8, status u8,
// message string, labels, created_at time, updated_at time, expires_at time.
func (a *Alert) Encode(e *Encoder) {
	e.String(a.ID)
	e.String(a.AgentID)
	e.U8(uint8(a.Severity))
	e.U8(uint8(a.Status))
	e.String(a.Message)
	e.labels(a.Labels)
	e.Time(a.CreatedAt)
	e.Time(a.UpdatedAt)
	e.Time(a.ExpiresAt)
}

// Decode reads what Encode wrote.
func (a *Alert) Decode(d *Decoder) {
	a.ID = d.String()
	a.AgentID = d.String()
	a.Severity = Severity(d.U8())
	a.Status = AlertStatus(d.U8())
	a.Message = d.String()
	a.Labels = d.labels()
	a.CreatedAt = d.Time()
	a.UpdatedAt = d.Time()
	a.ExpiresAt = d.Time()
}

// Encode appends s: agent_id string, state bytes, version uvarint,
// updated_at time, expires_at time.
func (s *AgentState) Encode(e *Encoder) {
	e.String(s.AgentID)
	e.BytesField(s.State)
	e.Uvarint(s.Version)
	e.Time(s.UpdatedAt)
	e.Time(s.ExpiresAt)
}

// Decode reads what Encode wrote.
func (s *AgentState) Decode(d *Decoder) {
	s.AgentID = d.String()
	s.State = d.BytesField()
	s.Version = d.Uvarint()
	s.UpdatedAt = d.Time()
	s.ExpiresAt = d.Time()
}
