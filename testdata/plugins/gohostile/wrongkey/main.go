// Command wrongkey is a test plugin that answers requests with records
// other than the ones asked for; host/hostile_answers_test.go checks that
// the host refuses each such answer (ErrInternal), publishes nothing and
// caches nothing for it. It serves every other request honestly, from the
// instance's memory.
//
// What it answers, by the identity in the request:
//
//	agent "wrong"         puts, gets and queries of metrics and agent
//	                      states answer the record of agent "victim-agent"
//	agent "shifted"       a metric put answers the sample a second later
//	agent "zero-version"  a state put answers version 0
//	agent "stuck"         a state put over version v answers version v
//	prefix "many"         a state query answers one record over its limit
//	alert "wrong"         puts, gets and status changes answer alert "victim-alert"
//	alert "wrong-agent"   a put answers the alert for agent "victim-agent"
//	alert "wrong-status"  a status change answers status firing
//	agent "wrong" (alert  query) answers an alert of agent "victim-agent"
//	alert "bad-severity"  a get answers it with severity 9
//	alert "no-agent"      a get answers it with no agent
//	agent "labels"        a metric query answers a metric of 100 000 labels
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

const victim = "victim-agent"

// manyLabels is the labels of the metric agent "labels" is answered.
const manyLabels = 100_000

type states struct {
	m       map[string]abi.AgentState
	version uint64
}

func (s *states) PutAgentState(r *abi.PutAgentState) (abi.AgentState, error) {
	id := r.State.AgentID
	cur, exists := s.m[id]
	switch r.Condition.Mode {
	case abi.IfVersion:
		if !exists || cur.Version != r.Condition.Version {
			return abi.AgentState{}, sdk.ErrConflict
		}
	case abi.IfAbsent:
		if exists {
			return abi.AgentState{}, sdk.ErrConflict
		}
	}
	s.version++
	st := abi.AgentState{AgentID: id, State: append([]byte(nil), r.State.State...), Version: s.version, UpdatedAt: sdk.Now()}
	switch id {
	case "wrong":
		return abi.AgentState{AgentID: victim, State: []byte("poison"), Version: s.version, UpdatedAt: st.UpdatedAt}, nil
	case "zero-version":
		st.Version = 0
		return st, nil
	case "stuck":
		if r.Condition.Mode == abi.IfVersion {
			st.Version = r.Condition.Version
		}
	}
	s.m[id] = st
	return st, nil
}

func (s *states) GetAgentState(id string) (abi.AgentState, error) {
	if id == "wrong" {
		return abi.AgentState{AgentID: victim, State: []byte("poison"), Version: 99, UpdatedAt: sdk.Now()}, nil
	}
	st, ok := s.m[id]
	if !ok {
		return abi.AgentState{}, sdk.ErrNotFound
	}
	return st, nil
}

func (s *states) DeleteAgentState(r *abi.DeleteAgentState) error {
	if _, ok := s.m[r.AgentID]; !ok {
		return sdk.ErrNotFound
	}
	delete(s.m, r.AgentID)
	return nil
}

func (s *states) QueryAgentStates(q *abi.AgentStateQuery) (abi.Page[abi.AgentState], error) {
	var p abi.Page[abi.AgentState]
	switch q.AgentIDPrefix {
	case "wrong":
		p.Items = []abi.AgentState{{AgentID: victim, State: []byte("poison"), Version: 1, UpdatedAt: sdk.Now()}}
	case "many":
		for i := 0; i <= abi.PageLimit(q.Limit); i++ {
			p.Items = append(p.Items, abi.AgentState{AgentID: "many-" + string(rune('a'+i%26)), Version: 1, UpdatedAt: sdk.Now()})
		}
	default:
		for id, st := range s.m {
			if strings.HasPrefix(id, q.AgentIDPrefix) && len(p.Items) < abi.PageLimit(q.Limit) {
				p.Items = append(p.Items, st)
			}
		}
	}
	return p, nil
}

type metrics struct{}

func (metrics) PutMetric(r *abi.PutMetric) (abi.Metric, error) {
	m := r.Metric
	m.ExpiresAt = time.Time{}
	switch m.AgentID {
	case "wrong":
		m.AgentID = victim
	case "shifted":
		m.Timestamp = m.Timestamp.Add(time.Second)
	}
	return m, nil
}

func (metrics) GetMetric(k *abi.MetricKey) (abi.Metric, error) {
	m := abi.Metric{AgentID: k.AgentID, Name: k.Name, Timestamp: k.Timestamp, Value: 1}
	if k.AgentID == "wrong" {
		m.AgentID = victim
	}
	return m, nil
}

func (metrics) DeleteMetric(*abi.MetricKey) error { return nil }

func (metrics) QueryMetrics(q *abi.MetricQuery) (abi.Page[abi.Metric], error) {
	var p abi.Page[abi.Metric]
	switch q.AgentID {
	case "wrong":
		p.Items = []abi.Metric{{AgentID: victim, Name: "cpu", Timestamp: time.Unix(1, 0), Value: 1}}
	case "labels":
		m := abi.Metric{AgentID: "labels", Name: "cpu", Timestamp: time.Unix(1, 0), Value: 1, Labels: make(map[string]string, manyLabels)}
		for i := range manyLabels {
			m.Labels["l"+strconv.Itoa(i)] = ""
		}
		p.Items = []abi.Metric{m}
	}
	return p, nil
}

type alerts struct{}

func alert(id string) abi.Alert {
	now := sdk.Now()
	return abi.Alert{ID: id, AgentID: "a1", Severity: abi.SeverityWarning, Status: abi.AlertFiring, CreatedAt: now, UpdatedAt: now}
}

func (alerts) PutAlert(r *abi.PutAlert) (abi.Alert, error) {
	a := r.Alert
	now := sdk.Now()
	a.CreatedAt, a.UpdatedAt, a.ExpiresAt = now, now, time.Time{}
	switch a.ID {
	case "wrong":
		a.ID = "victim-alert"
	case "wrong-agent":
		a.AgentID = victim
	}
	return a, nil
}

func (alerts) GetAlert(id string) (abi.Alert, error) {
	switch id {
	case "wrong":
		id = "victim-alert"
	case "bad-severity":
		a := alert(id)
		a.Severity = 9
		return a, nil
	case "no-agent":
		a := alert(id)
		a.AgentID = ""
		return a, nil
	}
	return alert(id), nil
}

func (alerts) DeleteAlert(string) error { return nil }

func (alerts) SetAlertStatus(r *abi.SetAlertStatus) (abi.Alert, error) {
	a := alert(r.ID)
	a.Status = r.Status
	switch r.ID {
	case "wrong":
		a.ID = "victim-alert"
	case "wrong-status":
		a.Status = abi.AlertFiring
	}
	return a, nil
}

func (alerts) QueryAlerts(q *abi.AlertQuery) (abi.Page[abi.Alert], error) {
	var p abi.Page[abi.Alert]
	if q.AgentID == "wrong" {
		a := alert("victim-alert")
		a.AgentID = victim
		p.Items = []abi.Alert{a}
	}
	return p, nil
}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "wrongkey", Version: "0",
		Metrics:      metrics{},
		Alerts:       alerts{},
		AgentStates:  &states{m: map[string]abi.AgentState{}},
		Concurrency:  true,
		Capabilities: []abi.Capability{abi.CapabilityClock},
	})
}

func main() {}
