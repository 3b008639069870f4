package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// The JSON forms of the records. Field names are snake_case and the same
// for every kind; times are RFC 3339 in UTC with up to nanoseconds;
// versions are decimal strings; expires_at is omitted for a record that
// never expires. Inputs are separate types: fields the backend sets
// (versions, created_at, updated_at, expires_at) are not accepted.
//
// Converting an input checks what the backend cannot: that times parse,
// that names of severities and statuses exist, that required values are
// there. Identifiers are left to the backend's own check, so that a bad
// one fails only its item in a bulk request.

// agentStateJSON is an agent state as the API returns it. State is the
// stored JSON document; a state that is not JSON (written through the Go
// API) comes as StateBase64 instead.
type agentStateJSON struct {
	AgentID     string          `json:"agent_id"`
	State       json.RawMessage `json:"state,omitempty"`
	StateBase64 *string         `json:"state_base64,omitempty"`
	Version     string          `json:"version"`
	UpdatedAt   string          `json:"updated_at"`
	ExpiresAt   string          `json:"expires_at,omitempty"`
}

func agentStateOut(s host.AgentState) agentStateJSON {
	out := agentStateJSON{
		AgentID:   s.AgentID,
		Version:   formatVersion(s.Version),
		UpdatedAt: formatTime(s.UpdatedAt),
		ExpiresAt: optionalTime(s.ExpiresAt),
	}
	if len(s.State) > 0 && json.Valid(s.State) {
		out.State = s.State
	} else {
		b64 := base64.StdEncoding.EncodeToString(s.State)
		out.StateBase64 = &b64
	}
	return out
}

// agentStateInput is one item of an agent-state batch-put.
type agentStateInput struct {
	AgentID *string         `json:"agent_id"`
	State   json.RawMessage `json:"state"`
	// Version is the version the stored state must have, for a
	// conditional batch; "0" or absent means create-only.
	Version string `json:"version"`
}

func (in *agentStateInput) state(at string, conditional bool) (host.AgentState, error) {
	s := host.AgentState{State: in.State}
	var err error
	if s.AgentID, err = required(at, "agent_id", in.AgentID); err != nil {
		return s, err
	}
	if in.State == nil {
		return s, invalid("request body: " + at + ".state is required (any JSON document)")
	}
	if in.Version != "" {
		if !conditional {
			return s, invalid("request body: " + at + `.version is given but the batch is not "conditional": true`)
		}
		v, err := parseVersion(at+".version", in.Version)
		if err != nil {
			return s, err
		}
		s.Version = v
	}
	return s, nil
}

// metricJSON is a metric as the API returns it.
type metricJSON struct {
	AgentID   string            `json:"agent_id"`
	Name      string            `json:"name"`
	Value     jsonFloat         `json:"value"`
	Timestamp string            `json:"timestamp"`
	Labels    map[string]string `json:"labels"`
	ExpiresAt string            `json:"expires_at,omitempty"`
}

func metricOut(m host.Metric) metricJSON {
	return metricJSON{
		AgentID:   m.AgentID,
		Name:      m.Name,
		Value:     jsonFloat(m.Value),
		Timestamp: formatTime(m.Timestamp),
		Labels:    labelsOut(m.Labels),
		ExpiresAt: optionalTime(m.ExpiresAt),
	}
}

// metricInput is a metric to store.
type metricInput struct {
	AgentID   *string           `json:"agent_id"`
	Name      *string           `json:"name"`
	Value     json.RawMessage   `json:"value"`
	Timestamp *string           `json:"timestamp"`
	Labels    map[string]string `json:"labels"`
}

func (in *metricInput) metric(at string) (host.Metric, error) {
	k, err := metricKeyInput{AgentID: in.AgentID, Name: in.Name, Timestamp: in.Timestamp}.key(at)
	if err != nil {
		return host.Metric{}, err
	}
	v, err := parseValue(field(at, "value"), in.Value)
	if err != nil {
		return host.Metric{}, err
	}
	return host.Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp, Value: v, Labels: in.Labels}, nil
}

// metricKeyInput identifies a metric sample in a bulk request.
type metricKeyInput struct {
	AgentID   *string `json:"agent_id"`
	Name      *string `json:"name"`
	Timestamp *string `json:"timestamp"`
}

func (in metricKeyInput) key(at string) (k host.MetricKey, err error) {
	if k.AgentID, err = required(at, "agent_id", in.AgentID); err != nil {
		return k, err
	}
	if k.Name, err = required(at, "name", in.Name); err != nil {
		return k, err
	}
	ts, err := required(at, "timestamp", in.Timestamp)
	if err != nil {
		return k, err
	}
	k.Timestamp, err = parseMetricTime(field(at, "timestamp"), ts)
	return k, err
}

// metricKeyJSON is the value of a deleted metric in a bulk response.
type metricKeyJSON struct {
	AgentID   string `json:"agent_id"`
	Name      string `json:"name"`
	Timestamp string `json:"timestamp"`
}

func metricKeyOut(k host.MetricKey) metricKeyJSON {
	return metricKeyJSON{AgentID: k.AgentID, Name: k.Name, Timestamp: formatTime(k.Timestamp)}
}

// alertJSON is an alert as the API returns it.
type alertJSON struct {
	ID        string            `json:"id"`
	AgentID   string            `json:"agent_id"`
	Severity  string            `json:"severity"`
	Status    string            `json:"status"`
	Message   string            `json:"message"`
	Labels    map[string]string `json:"labels"`
	CreatedAt string            `json:"created_at"`
	UpdatedAt string            `json:"updated_at"`
	ExpiresAt string            `json:"expires_at,omitempty"`
}

func alertOut(a host.Alert) alertJSON {
	return alertJSON{
		ID:        a.ID,
		AgentID:   a.AgentID,
		Severity:  a.Severity.String(),
		Status:    a.Status.String(),
		Message:   a.Message,
		Labels:    labelsOut(a.Labels),
		CreatedAt: formatTime(a.CreatedAt),
		UpdatedAt: formatTime(a.UpdatedAt),
		ExpiresAt: optionalTime(a.ExpiresAt),
	}
}

// alertInput is an alert to store. Status defaults to firing.
type alertInput struct {
	ID       *string           `json:"id"`
	AgentID  *string           `json:"agent_id"`
	Severity string            `json:"severity"`
	Status   string            `json:"status"`
	Message  string            `json:"message"`
	Labels   map[string]string `json:"labels"`
}

func (in *alertInput) alert(at string) (host.Alert, error) {
	a := host.Alert{Message: in.Message, Labels: in.Labels, Status: abi.AlertFiring}
	var err error
	if a.ID, err = required(at, "id", in.ID); err != nil {
		return a, err
	}
	if a.AgentID, err = required(at, "agent_id", in.AgentID); err != nil {
		return a, err
	}
	if a.Severity, err = parseSeverity(field(at, "severity"), in.Severity); err != nil {
		return a, err
	}
	if in.Status != "" {
		if a.Status, err = parseAlertStatus(field(at, "status"), in.Status); err != nil {
			return a, err
		}
	}
	return a, nil
}

func parseSeverity(what, s string) (abi.Severity, error) {
	if v, ok := abi.ParseSeverity(s); ok {
		return v, nil
	}
	if s == "" {
		return 0, invalid(what + ` is required: "info", "warning" or "critical"`)
	}
	return 0, invalid(fmt.Sprintf(`%s %s: want "info", "warning" or "critical"`, what, quoted(s)))
}

func parseAlertStatus(what, s string) (abi.AlertStatus, error) {
	if v, ok := abi.ParseAlertStatus(s); ok {
		return v, nil
	}
	if s == "" {
		return 0, invalid(what + ` is required: "firing", "acknowledged" or "resolved"`)
	}
	return 0, invalid(fmt.Sprintf(`%s %s: want "firing", "acknowledged" or "resolved"`, what, quoted(s)))
}

// labelsOut makes a record's labels an object even when there are none.
func labelsOut(l map[string]string) map[string]string {
	if l == nil {
		return map[string]string{}
	}
	return l
}

// required returns the value of a required member, refusing an absent
// one; an empty value is left to the backend to judge.
func required(at, name string, v *string) (string, error) {
	if v == nil {
		return "", invalid(fmt.Sprintf("request body: %s is required", field(at, name)))
	}
	return *v, nil
}

// field joins a path inside the request body with a field name.
func field(at, name string) string {
	if at == "" {
		return name
	}
	return at + "." + name
}

// jsonFloat is a metric value. JSON has no NaN or infinities; they are
// written, and read, as the strings "NaN", "+Inf" and "-Inf", as in
// Prometheus.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(v)
}

// parseValue reads a metric value: a JSON number, or "NaN", "+Inf" or
// "-Inf".
func parseValue(what string, raw json.RawMessage) (float64, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, invalid(what + " is required")
	}
	if s[0] == '"' {
		switch s {
		case `"NaN"`:
			return math.NaN(), nil
		case `"+Inf"`:
			return math.Inf(1), nil
		case `"-Inf"`:
			return math.Inf(-1), nil
		}
		return 0, invalid(fmt.Sprintf(`%s %s: want a number, "NaN", "+Inf" or "-Inf"`, what, s))
	}
	if s[0] != '-' && (s[0] < '0' || s[0] > '9') {
		return 0, invalid(fmt.Sprintf("%s: want a number, got %s", what, s))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, invalid(fmt.Sprintf("%s %s is out of range", what, s))
	}
	return v, nil
}
