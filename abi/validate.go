package abi

import (
	"strings"
	"unicode/utf8"
)

// MaxIDLength bounds agent IDs, alert IDs, metric names and label names.
const MaxIDLength = 512

// CheckID returns a StatusInvalid error unless id is a usable identifier:
// non-empty, valid UTF-8, at most MaxIDLength bytes and free of NUL, so
// backends may use NUL as a separator in their keys.
func CheckID(what, id string) error {
	switch {
	case id == "":
		return Errorf(StatusInvalid, "%s is empty", what)
	case len(id) > MaxIDLength:
		return Errorf(StatusInvalid, "%s is longer than %d bytes", what, MaxIDLength)
	case !utf8.ValidString(id):
		return Errorf(StatusInvalid, "%s is not valid UTF-8", what)
	case strings.IndexByte(id, 0) >= 0:
		return Errorf(StatusInvalid, "%s contains a NUL byte", what)
	}
	return nil
}

// Check validates a metric for writing.
func (m *Metric) Check() error {
	if err := CheckID("agent id", m.AgentID); err != nil {
		return err
	}
	if err := CheckID("metric name", m.Name); err != nil {
		return err
	}
	if m.Timestamp.IsZero() {
		return Errorf(StatusInvalid, "metric timestamp is unset")
	}
	return checkLabels(m.Labels)
}

// Check validates a metric key.
func (k *MetricKey) Check() error {
	if err := CheckID("agent id", k.AgentID); err != nil {
		return err
	}
	if err := CheckID("metric name", k.Name); err != nil {
		return err
	}
	if k.Timestamp.IsZero() {
		return Errorf(StatusInvalid, "metric timestamp is unset")
	}
	return nil
}

// Check validates an alert for writing.
func (a *Alert) Check() error {
	if err := CheckID("alert id", a.ID); err != nil {
		return err
	}
	if err := CheckID("agent id", a.AgentID); err != nil {
		return err
	}
	if !a.Severity.Valid() {
		return Errorf(StatusInvalid, "unknown alert severity %d", a.Severity)
	}
	if !a.Status.Valid() {
		return Errorf(StatusInvalid, "unknown alert status %d", a.Status)
	}
	return checkLabels(a.Labels)
}

// Check validates an agent state for writing.
func (s *AgentState) Check() error { return CheckID("agent id", s.AgentID) }

func checkLabels(l map[string]string) error {
	for k := range l {
		if err := CheckID("label name", k); err != nil {
			return err
		}
	}
	return nil
}
