package host

import (
	"context"
	"errors"
	"fmt"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/events"
	"github.com/storage-host/storage-host/host/internal/wirepath"
)

// Result is the outcome of one item of a bulk operation, in request order.
// Value is set when Err is nil, and also with ErrStale.
type Result[T any] struct {
	Value T
	Err   error
}

// bulk sends n items of one op as a single OpBatch: one boundary crossing,
// and one Redis round trip for a backend that pipelines. The returned error
// is for the batch as a whole; item errors are in errs.
func (s *Store) bulk(ctx context.Context, op abi.Op, n int, encodeItem func(i int, e *abi.Encoder), decodeItem func(i int, d *abi.Decoder)) (errs []error, err error) {
	if need := op.Requires(); !s.p.meta.Features.Has(need) {
		return nil, s.p.unsupported(op)
	}
	var item abi.Encoder
	var results []abi.BatchResult
	claimed := 0 // results the answer claims; more than n are not decoded
	reached := false
	err = s.call(ctx, abi.OpBatch, op.Writes(), func(e *abi.Encoder) {
		e.Uvarint(uint64(n))
		for i := 0; i < n; i++ {
			item.Reset()
			encodeItem(i, &item)
			if err := item.Err(); err != nil {
				e.Fail(fmt.Errorf("item %d: %w", i, err))
			}
			e.Uvarint(uint64(op))
			e.BytesField(item.Bytes())
		}
	}, func(d *abi.Decoder) { results, claimed = abi.DecodeBatchResultsAtMost(d, n) }, &reached)
	if err != nil {
		return nil, err
	}
	if claimed != n {
		return nil, s.refuse(abi.OpBatch, fmt.Sprintf("batch answered %d of %d items", claimed, n))
	}
	errs = make([]error, n)
	var d abi.Decoder
	for i, r := range results {
		if errs[i] = s.itemAnswer(op, r); !answered(errs[i]) {
			continue
		}
		if decodeItem != nil {
			d.Reset(r.Body)
			decodeItem(i, &d)
			if d.Finish() != nil {
				errs[i] = abi.Errorf(abi.StatusInternal, "backend %s: %s item %d: %s", s.p.name, op, i, wirepath.Fault(answerMessages[op], r.Body, &d))
			}
		} else if errs[i] == nil {
			if err := emptyBody(op, r.Body); err != nil {
				errs[i] = abi.Errorf(abi.StatusInternal, "backend %s: %s item %d: %v", s.p.name, op, i, err)
			}
		}
	}
	for i := range errs {
		errs[i] = stoppedBy(ctx, s.afterReaching(reached, errs[i]))
	}
	return errs, nil
}

// itemLabels checks the labels of item i of a batch (checkLabels): a
// batch with one item over the bounds is refused whole, before the
// plugin is called.
func itemLabels(i int, labels map[string]string) error {
	if err := checkLabels(labels); err != nil {
		var ae *abi.Error
		if errors.As(err, &ae) {
			return abi.Errorf(ae.Status, "item %d: %s", i, ae.Message)
		}
		return err
	}
	return nil
}

func results[T any](values []T, errs []error, err error) ([]Result[T], error) {
	if err != nil {
		return nil, err
	}
	out := make([]Result[T], len(values))
	for i := range values {
		out[i] = Result[T]{Err: errs[i]}
		if errs[i] == nil || errors.Is(errs[i], ErrStale) {
			out[i].Value = values[i]
		}
	}
	return out, nil
}

// PutMetrics stores every metric in one batch; opts apply to each.
func (s *Store) PutMetrics(ctx context.Context, ms []Metric, opts ...WriteOption) ([]Result[Metric], error) {
	o, err := s.writeOptions(opts, false)
	if err != nil {
		return nil, err
	}
	for i := range ms {
		if err := itemLabels(i, ms[i].Labels); err != nil {
			return nil, err
		}
	}
	out := make([]Metric, len(ms))
	errs, err := s.bulk(ctx, abi.OpPutMetric, len(ms), func(i int, e *abi.Encoder) {
		req := abi.PutMetric{Metric: ms[i], TTL: o.ttl}
		req.Encode(e)
	}, func(i int, d *abi.Decoder) { out[i].Decode(d) })
	s.checkItems(abi.OpPutMetric, errs, err, func(i int) string {
		return metricKeyMismatch(&out[i], ms[i].AgentID, ms[i].Name, ms[i].Timestamp)
	})
	s.unsureItems(abi.KindMetric, len(ms), errs, err, func(i int) (string, string) {
		return ms[i].AgentID, metricEventKey(ms[i].Name, ms[i].Timestamp)
	})
	buffered := s.acknowledgedItems(abi.OpPutMetric, errs, func(int) cacheKey { return cacheKey{} })
	rs, err := results(out, errs, err)
	return publishEach(rs, err, buffered, func(m *Metric) { s.publishMetric(events.OpPut, m) })
}

// GetMetrics returns the sample at each key; missing ones have an Err
// matching ErrNotFound. Records too large for one
// answer beside the others may have an Err matching ErrLimit (builtin:redis
// answers as many as fit in 4 MiB once their replies pass the backend's
// reply bound): read those in another call.
func (s *Store) GetMetrics(ctx context.Context, keys []MetricKey) ([]Result[Metric], error) {
	out := make([]Metric, len(keys))
	errs, err := s.bulk(ctx, abi.OpGetMetric, len(keys), func(i int, e *abi.Encoder) { keys[i].Encode(e) },
		func(i int, d *abi.Decoder) { out[i].Decode(d) })
	s.checkItems(abi.OpGetMetric, errs, err, func(i int) string {
		return metricKeyMismatch(&out[i], keys[i].AgentID, keys[i].Name, keys[i].Timestamp)
	})
	return results(out, errs, err)
}

// DeleteMetrics removes the sample at each key and returns an error per key.
func (s *Store) DeleteMetrics(ctx context.Context, keys []MetricKey) ([]error, error) {
	errs, err := s.bulk(ctx, abi.OpDeleteMetric, len(keys), func(i int, e *abi.Encoder) { keys[i].Encode(e) }, nil)
	s.unsureItems(abi.KindMetric, len(keys), errs, err, func(i int) (string, string) {
		return keys[i].AgentID, metricEventKey(keys[i].Name, keys[i].Timestamp)
	})
	buffered := s.acknowledgedItems(abi.OpDeleteMetric, errs, func(int) cacheKey { return cacheKey{} })
	return publishDeleted(errs, err, buffered, func(i int) { s.publishMetricDelete(&keys[i]) })
}

// PutAlerts creates or replaces every alert in one batch; opts apply to
// each.
func (s *Store) PutAlerts(ctx context.Context, as []Alert, opts ...WriteOption) ([]Result[Alert], error) {
	o, err := s.writeOptions(opts, false)
	if err != nil {
		return nil, err
	}
	for i := range as {
		if err := itemLabels(i, as[i].Labels); err != nil {
			return nil, err
		}
	}
	if err := checkReadableItems(s, "alert", as, func(a *Alert) string { return a.ID }, alertSize); err != nil {
		return nil, err
	}
	out := make([]Alert, len(as))
	errs, err := s.bulk(ctx, abi.OpPutAlert, len(as), func(i int, e *abi.Encoder) {
		req := abi.PutAlert{Alert: as[i], TTL: o.ttl}
		req.Encode(e)
	}, func(i int, d *abi.Decoder) { out[i].Decode(d) })
	s.checkItems(abi.OpPutAlert, errs, err, func(i int) string { return putAlertMismatch(&out[i], &as[i]) })
	s.unsureItems(abi.KindAlert, len(as), errs, err, func(i int) (string, string) { return as[i].AgentID, as[i].ID })
	buffered := s.acknowledgedItems(abi.OpPutAlert, errs, func(i int) cacheKey { return cacheKey{abi.KindAlert, as[i].ID} })
	rs, err := results(out, errs, err)
	return publishEach(rs, err, buffered, func(a *Alert) { s.publishAlert(events.OpPut, a) })
}

// GetAlerts returns each alert; missing ones have an Err matching
// ErrNotFound. Records too large for one
// answer beside the others may have an Err matching ErrLimit (builtin:redis
// answers as many as fit in 4 MiB once their replies pass the backend's
// reply bound): read those in another call.
func (s *Store) GetAlerts(ctx context.Context, ids []string) ([]Result[Alert], error) {
	out := make([]Alert, len(ids))
	errs, err := s.bulk(ctx, abi.OpGetAlert, len(ids), func(i int, e *abi.Encoder) { e.String(ids[i]) },
		func(i int, d *abi.Decoder) { out[i].Decode(d) })
	s.checkItems(abi.OpGetAlert, errs, err, func(i int) string { return alertMismatch(&out[i], ids[i]) })
	return results(out, errs, err)
}

// DeleteAlerts removes each alert and returns an error per ID.
func (s *Store) DeleteAlerts(ctx context.Context, ids []string) ([]error, error) {
	agents := s.alertAgents(ctx, ids)
	errs, err := s.bulk(ctx, abi.OpDeleteAlert, len(ids), func(i int, e *abi.Encoder) { e.String(ids[i]) }, nil)
	s.unsureItems(abi.KindAlert, len(ids), errs, err, func(i int) (string, string) { return agents[i], ids[i] })
	buffered := s.acknowledgedItems(abi.OpDeleteAlert, errs, func(i int) cacheKey { return cacheKey{abi.KindAlert, ids[i]} })
	return publishDeleted(errs, err, buffered, func(i int) { s.publishAlertDelete(ids[i], agents[i]) })
}

// PutAgentStates stores every state in one batch; TTL options apply to
// each. Conditions are per item: use PutAgentState, or a version per item
// with PutAgentStatesIf.
func (s *Store) PutAgentStates(ctx context.Context, states []AgentState, opts ...WriteOption) ([]Result[AgentState], error) {
	o, err := s.writeOptions(opts, true)
	if err != nil {
		return nil, err
	}
	if o.cond.Mode != abi.Unconditional {
		return nil, abi.Errorf(abi.StatusInvalid, "a condition cannot apply to a whole batch; see PutAgentStatesIf")
	}
	return s.putAgentStates(ctx, states, o.ttl, func(int) abi.Condition { return abi.Condition{} })
}

// PutAgentStatesIf stores every state in one batch, each only while its
// stored version equals its Version field (0 means create-only). Items
// whose condition fails have an Err matching ErrConflict.
func (s *Store) PutAgentStatesIf(ctx context.Context, states []AgentState, opts ...WriteOption) ([]Result[AgentState], error) {
	o, err := s.writeOptions(append(opts, IfAbsent()), true)
	if err != nil {
		return nil, err
	}
	return s.putAgentStates(ctx, states, o.ttl, func(i int) abi.Condition {
		if v := states[i].Version; v != 0 {
			return abi.Condition{Mode: abi.IfVersion, Version: v}
		}
		return abi.Condition{Mode: abi.IfAbsent}
	})
}

func (s *Store) putAgentStates(ctx context.Context, states []AgentState, ttl abi.TTL, cond func(int) abi.Condition) ([]Result[AgentState], error) {
	if err := checkReadableItems(s, "agent state", states, func(st *AgentState) string { return st.AgentID }, stateSize); err != nil {
		return nil, err
	}
	out := make([]AgentState, len(states))
	errs, err := s.bulk(ctx, abi.OpPutAgentState, len(states), func(i int, e *abi.Encoder) {
		req := abi.PutAgentState{State: states[i], TTL: ttl, Condition: cond(i)}
		req.Encode(e)
	}, func(i int, d *abi.Decoder) { out[i].Decode(d) })
	s.checkItems(abi.OpPutAgentState, errs, err, func(i int) string {
		return putStateMismatch(&out[i], states[i].AgentID, cond(i))
	})
	s.unsureItems(abi.KindAgentState, len(states), errs, err, func(i int) (string, string) { return states[i].AgentID, states[i].AgentID })
	buffered := s.acknowledgedItems(abi.OpPutAgentState, errs, func(i int) cacheKey { return cacheKey{abi.KindAgentState, states[i].AgentID} })
	rs, err := results(out, errs, err)
	return publishEach(rs, err, buffered, s.publishState)
}

// GetAgentStates returns the state of each agent; missing ones have an Err
// matching ErrNotFound. Records too large for one
// answer beside the others may have an Err matching ErrLimit (builtin:redis
// answers as many as fit in 4 MiB once their replies pass the backend's
// reply bound): read those in another call.
func (s *Store) GetAgentStates(ctx context.Context, agentIDs []string) ([]Result[AgentState], error) {
	out := make([]AgentState, len(agentIDs))
	errs, err := s.bulk(ctx, abi.OpGetAgentState, len(agentIDs), func(i int, e *abi.Encoder) { e.String(agentIDs[i]) },
		func(i int, d *abi.Decoder) { out[i].Decode(d) })
	s.checkItems(abi.OpGetAgentState, errs, err, func(i int) string { return stateMismatch(&out[i], agentIDs[i]) })
	return results(out, errs, err)
}

// DeleteAgentStates removes the state of each agent and returns an error
// per ID.
func (s *Store) DeleteAgentStates(ctx context.Context, agentIDs []string) ([]error, error) {
	errs, err := s.bulk(ctx, abi.OpDeleteAgentState, len(agentIDs), func(i int, e *abi.Encoder) {
		req := abi.DeleteAgentState{AgentID: agentIDs[i]}
		req.Encode(e)
	}, nil)
	s.unsureItems(abi.KindAgentState, len(agentIDs), errs, err, func(i int) (string, string) { return agentIDs[i], agentIDs[i] })
	buffered := s.acknowledgedItems(abi.OpDeleteAgentState, errs, func(i int) cacheKey { return cacheKey{abi.KindAgentState, agentIDs[i]} })
	return publishDeleted(errs, err, buffered, func(i int) { s.publishStateDelete(agentIDs[i]) })
}
