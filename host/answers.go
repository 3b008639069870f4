package host

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/storage-host/storage-host/abi"
)

// The host checks what a plugin answers against what it asked before
// anything else sees the answer: a put of agent a1 answered with the record
// of another agent must not reach the caller, publish an event for that
// agent or touch its cache entry. Each check compares fields the host
// already holds (the request's identity, the query's cheap filters), so a
// correct answer costs a few comparisons and no allocation.
//
// A refused answer fails the call with ErrInternal, is logged, and is
// counted in Store.RefusedAnswers. The instance that gave it is kept: it
// broke the contract, not the protocol, and a fresh instance of the same
// plugin would answer the same.

// RefusedAnswers counts the answers of the backend's plugin the host
// refused because they did not fit the request: the wrong record, a
// record outside the query's filter, a page over its limit, a version
// that did not move forward.
func (s *Store) RefusedAnswers() uint64 { return s.refused.Load() }

// refuse counts and logs an answer that does not fit its request and
// returns the error the caller gets.
func (s *Store) refuse(op abi.Op, why string) error {
	why = oneLine(why, maxTrapText) // it may quote what the plugin answered
	s.refused.Add(1)
	if ok, dropped := s.refusals.allow(time.Now()); ok {
		if dropped > 0 {
			s.p.log.Warn("plugin answer refusals not logged, past the rate limit", "dropped", dropped)
		}
		s.p.log.Error("plugin answer refused", "op", op.String(), "reason", why)
	}
	return abi.Errorf(abi.StatusInternal, "backend %s: %s answer refused: %s", s.p.name, op, why)
}

// refusalsLoggedPerSecond bounds the log of refused answers: a plugin
// answers ticks with no caller to slow it (4 096 refused writes a tick,
// ticked again at once, were half a million log lines in 3 s). Every
// refusal still counts in Stats.
const refusalsLoggedPerSecond = 10

// refusalLog rate-limits a log of a plugin's failures (its refused
// answers, its discarded instances), one second at a time; its zero
// value is ready and logs refusalsLoggedPerSecond lines a second.
type refusalLog struct {
	perSecond int // lines a second; 0 is refusalsLoggedPerSecond
	mu        sync.Mutex
	second    time.Time // the start of the current second
	logged    int       // lines in it
	dropped   int       // lines not logged since the last one that was
}

// allow reports whether a refusal at now may be logged, and how many
// were not since the last that was.
func (r *refusalLog) allow(now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.second) >= time.Second {
		r.second, r.logged = now, 0
	}
	if r.logged >= cmp.Or(r.perSecond, refusalsLoggedPerSecond) {
		r.dropped++
		return false, 0
	}
	r.logged++
	dropped := r.dropped
	r.dropped = 0
	return true, dropped
}

// answered reports whether err leaves a result to check: none, or
// ErrStale, which comes with the record it served.
func answered(err error) bool { return err == nil || errors.Is(err, abi.StatusStale) }

// checkAnswer returns err, or the refusal of an answer for which why is
// not empty; why is only computed for a result that came back. A write
// the plugin answered is one it says it made: its refused answer is
// ErrOutcomeUnknown as well as ErrInternal, since what the plugin did
// with the record asked for is not known.
func (s *Store) checkAnswer(op abi.Op, err error, why func() string) error {
	if !answered(err) {
		return err
	}
	if w := why(); w != "" {
		if op.Writes() {
			return mayHaveWritten(s.p.name, s.refuse(op, w))
		}
		return s.refuse(op, w)
	}
	return err
}

// quote quotes a string for a refusal message, cut to maxQuoted bytes: a
// plugin's answer may hold megabytes where an ID goes. strconv.Quote
// copies it, so a request's ID does not escape through the message: an ID
// a caller built on its stack stays there when the answer is right.
func quote(s string) string { return strconv.Quote(cutText(s, maxQuoted)) }

func metricKeyMismatch(m *Metric, agent, name string, ts time.Time) string {
	if m.AgentID != agent || m.Name != name || !m.Timestamp.Equal(ts) {
		return fmt.Sprintf("asked for metric %s/%s@%s, answered %s/%s@%s%s", quote(agent), quote(name), ts.UTC().Format(time.RFC3339Nano), quote(m.AgentID), quote(m.Name), m.Timestamp.UTC().Format(time.RFC3339Nano), zigzagHint(ts, m.Timestamp))
	}
	return unstorable(m.Check())
}

// unstorable says why an answered record is one no write the host took
// could have stored (err, from its Check: an ID that is not one, a
// severity or status outside the table, a label name that is not one),
// or "": such a record reached callers, read caches and events as it was.
func unstorable(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if e, ok := errors.AsType[*abi.Error](err); ok {
		msg = e.Message
	}
	return "answered a record no write could have stored: " + cutText(msg, maxQuoted)
}

// zigzagHint explains an answered time that is the one asked for read
// through the wrong integer encoding: a time is a zig-zag varint, and a
// plugin that reads or writes it as a plain LEB128 integer answers twice
// the time or half of it.
func zigzagHint(asked, answered time.Time) string {
	a, b := asked.UnixNano(), answered.UnixNano()
	zigzagged := a<<1 ^ a>>63                     // a's varint, read as a plain integer
	unzigzagged := int64(uint64(a)>>1) ^ -(a & 1) // a written plainly, read as a varint
	if a == 0 || b != zigzagged && b != unzigzagged {
		return ""
	}
	return " (the time asked for, read or written as a plain uvarint: a time is a zig-zag varint, abi/README.md, section 7.1)"
}

func alertMismatch(a *Alert, id string) string {
	if a.ID != id {
		return fmt.Sprintf("asked for alert %s, answered alert %s", quote(id), quote(a.ID))
	}
	return unstorable(a.Check())
}

// putAlertMismatch also checks the agent: the put's event names it.
func putAlertMismatch(a *Alert, req *Alert) string {
	if w := alertMismatch(a, req.ID); w != "" {
		return w
	}
	if a.AgentID != req.AgentID {
		return fmt.Sprintf("alert %s was put for agent %s, answered for agent %s", quote(req.ID), quote(req.AgentID), quote(a.AgentID))
	}
	return ""
}

func statusMismatch(a *Alert, id string, status abi.AlertStatus) string {
	if w := alertMismatch(a, id); w != "" {
		return w
	}
	if a.Status != status {
		return fmt.Sprintf("alert %s was set to status %d, answered status %d", quote(id), status, a.Status)
	}
	return ""
}

func stateMismatch(st *AgentState, agent string) string {
	if st.AgentID != agent {
		return fmt.Sprintf("asked for the state of agent %s, answered agent %s", quote(agent), quote(st.AgentID))
	}
	return ""
}

// putStateMismatch checks a written state's identity and version. A
// version changes on every write and every later write gives a larger one
// (abi/README.md, section 10.1, "What the host checks of an answer"): so
// it is never 0 (the
// create-only condition's "no version"), and a write conditional on
// version v answers a version above v.
func putStateMismatch(st *AgentState, agent string, cond abi.Condition) string {
	if w := stateMismatch(st, agent); w != "" {
		return w
	}
	switch {
	case st.Version == 0:
		return fmt.Sprintf("the state of agent %s was written, answered version 0: a version is at least 1 and moves forward with every write (abi/README.md, section 10.1)", quote(agent))
	case cond.Mode == abi.IfVersion && st.Version <= cond.Version:
		return fmt.Sprintf("the state of agent %s was written over version %d, answered version %d, which does not move forward (abi/README.md, section 10.1)", quote(agent), cond.Version, st.Version)
	}
	return ""
}

// pageOverLimit checks a page's length against the query's limit.
func pageOverLimit(n int, limit uint32) string {
	if most := abi.PageLimit(limit); n > most {
		return fmt.Sprintf("page of %d records for a limit of %d", n, most)
	}
	return ""
}

// inRange reports whether t is in [from, to), a zero bound unbounded.
func inRange(t, from, to time.Time) bool {
	return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
}

// metricsOutside checks a page of metrics against the query's agent, name
// and time filters; the label matchers are left to the plugin (a regular
// expression per record is not cheap).
func metricsOutside(p *Page[Metric], q *MetricQuery) string {
	if w := pageOverLimit(len(p.Items), q.Limit); w != "" {
		return w
	}
	for i := range p.Items {
		m := &p.Items[i]
		switch {
		case q.AgentID != "" && m.AgentID != q.AgentID:
			return fmt.Sprintf("query for agent %s answered a metric of agent %s", quote(q.AgentID), quote(m.AgentID))
		case q.Name != "" && m.Name != q.Name:
			return fmt.Sprintf("query for metric name %s answered metric %s", quote(q.Name), quote(m.Name))
		case !inRange(m.Timestamp, q.From, q.To):
			return fmt.Sprintf("query answered metric %s/%s at %s, outside its time range", quote(m.AgentID), quote(m.Name), m.Timestamp.UTC().Format(time.RFC3339Nano))
		}
	}
	return ""
}

// alertsOutside checks a page of alerts against the query's agent,
// severity, status and time filters.
func alertsOutside(p *Page[Alert], q *AlertQuery) string {
	if w := pageOverLimit(len(p.Items), q.Limit); w != "" {
		return w
	}
	for i := range p.Items {
		a := &p.Items[i]
		switch {
		case q.AgentID != "" && a.AgentID != q.AgentID:
			return fmt.Sprintf("query for agent %s answered alert %s of agent %s", quote(q.AgentID), quote(a.ID), quote(a.AgentID))
		case len(q.Severities) > 0 && !slices.Contains(q.Severities, a.Severity):
			return fmt.Sprintf("query answered alert %s of severity %d, which it does not select", quote(a.ID), a.Severity)
		case len(q.Statuses) > 0 && !slices.Contains(q.Statuses, a.Status):
			return fmt.Sprintf("query answered alert %s in status %d, which it does not select", quote(a.ID), a.Status)
		case !inRange(a.CreatedAt, q.From, q.To):
			return fmt.Sprintf("query answered alert %s created at %s, outside its time range", quote(a.ID), a.CreatedAt.UTC().Format(time.RFC3339Nano))
		}
	}
	return ""
}

// statesOutside checks a page of agent states against the query's prefix.
func statesOutside(p *Page[AgentState], q *AgentStateQuery) string {
	if w := pageOverLimit(len(p.Items), q.Limit); w != "" {
		return w
	}
	for i := range p.Items {
		if id := p.Items[i].AgentID; !strings.HasPrefix(id, q.AgentIDPrefix) {
			return fmt.Sprintf("query for agents under %s answered agent %s", quote(q.AgentIDPrefix), quote(id))
		}
	}
	return ""
}

// checkItems refuses, item by item, the results of a bulk op whose answer
// does not fit the request item: why(i) is checked for each item that came
// back with a result.
func (s *Store) checkItems(op abi.Op, errs []error, err error, why func(i int) string) {
	if err != nil {
		return
	}
	for i, e := range errs {
		if !answered(e) {
			continue
		}
		if w := why(i); w != "" {
			errs[i] = s.refuse(op, fmt.Sprintf("item %d: %s", i, w))
			if op.Writes() { // as checkAnswer
				errs[i] = mayHaveWritten(s.p.name, errs[i])
			}
		}
	}
}

// mayAnswerUnknown reports whether the plugin may answer op with
// abi.StatusUnknown: only write ops do, and only a plugin of ABI 1.3 or
// later knows the status.
func (p *plugin) mayAnswerUnknown(op abi.Op) bool {
	return op.Writes() && p.meta.ABI.Minor >= unknownSince
}

// unknownSince is the ABI 1.x minor that added abi.StatusUnknown.
const unknownSince = 3

// unknownAnswer returns err, a StatusUnknown answer to op, or, when the
// plugin may not answer it there, the INTERNAL error of a status it does
// not know: from a plugin of ABI 1.2 or older, as a 1.2 host would; from a
// read, a query or a ping, which have no outcome to be unsure of.
func (p *plugin) unknownAnswer(op abi.Op, err error) error {
	if p.mayAnswerUnknown(op) {
		return err
	}
	msg := err.Error()
	var ae *abi.Error
	if errors.As(err, &ae) {
		msg = ae.Message
	}
	if !op.Writes() {
		return abi.Errorf(abi.StatusInternal, "backend %s: %s answered status %d (%s), which only writes may answer: %s", p.name, op, abi.StatusUnknown, abi.StatusUnknown, msg)
	}
	return abi.Errorf(abi.StatusInternal, "unknown status %d: %s", abi.StatusUnknown, msg)
}
