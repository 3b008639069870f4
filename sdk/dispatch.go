package sdk

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/storage-host/storage-host/abi"
)

// dispatcher decodes requests, calls the stores and encodes responses.
// Each op has a handler in opHandlers, grouped by record kind in
// serve_*.go; this file holds what every handler shares.
type dispatcher struct {
	p        Plugin
	meta     abi.Metadata
	batcher  Batcher
	mq       MetricQuerier
	aq       AlertQuerier
	sq       AgentStateQuerier
	features abi.Feature
	dec      abi.Decoder
	sub      abi.Encoder // one batch item's response
	req      requests
}

// requests holds one decoded request of each type. A request handed to a
// store through an interface escapes; as a field of the dispatcher, which
// lives as long as the module, it costs no allocation per call. Calls
// into an instance never overlap, and a batch serves its items one after
// another, so one of each is enough.
type requests struct {
	putMetric   abi.PutMetric
	metricKey   abi.MetricKey
	metricQuery abi.MetricQuery
	putAlert    abi.PutAlert
	setStatus   abi.SetAlertStatus
	alertQuery  abi.AlertQuery
	putState    abi.PutAgentState
	deleteState abi.DeleteAgentState
	stateQuery  abi.AgentStateQuery
	restore     abi.Restore
}

// opHandler serves one op: it decodes req, calls a store and appends the
// response body to e (handle has written the status byte).
type opHandler func(d *dispatcher, req []byte, e *abi.Encoder) error

// opHandlers is indexed by op; an op without a handler is unknown. It is
// filled in init: its handlers reach serve again (through batch), which a
// package-level initialiser may not.
var opHandlers [abi.OpRestore + 1]opHandler

func init() {
	opHandlers = [...]opHandler{
		abi.OpPing:      func(*dispatcher, []byte, *abi.Encoder) error { return nil },
		abi.OpConfigure: (*dispatcher).configure,
		abi.OpTick:      (*dispatcher).tick,
		abi.OpBatch:     (*dispatcher).batch,
		abi.OpRestore:   (*dispatcher).restore,

		abi.OpPutMetric:    (*dispatcher).putMetric,
		abi.OpGetMetric:    (*dispatcher).getMetric,
		abi.OpDeleteMetric: (*dispatcher).deleteMetric,
		abi.OpQueryMetrics: (*dispatcher).queryMetrics,

		abi.OpPutAlert:       (*dispatcher).putAlert,
		abi.OpGetAlert:       (*dispatcher).getAlert,
		abi.OpDeleteAlert:    (*dispatcher).deleteAlert,
		abi.OpSetAlertStatus: (*dispatcher).setAlertStatus,
		abi.OpQueryAlerts:    (*dispatcher).queryAlerts,

		abi.OpPutAgentState:    (*dispatcher).putAgentState,
		abi.OpGetAgentState:    (*dispatcher).getAgentState,
		abi.OpDeleteAgentState: (*dispatcher).deleteAgentState,
		abi.OpQueryAgentStates: (*dispatcher).queryAgentStates,
	}
}

// queriers says which of p's stores serve queries and which do not.
func queriers(p Plugin, d *dispatcher) string {
	var serve, not []string
	for _, k := range []struct {
		name          string
		store, querer bool
	}{
		{"metrics (QueryMetrics)", p.Metrics != nil, d.mq != nil},
		{"alerts (QueryAlerts)", p.Alerts != nil, d.aq != nil},
		{"agent states (QueryAgentStates)", p.AgentStates != nil, d.sq != nil},
	} {
		switch {
		case k.querer:
			serve = append(serve, k.name)
		case k.store:
			not = append(not, k.name)
		}
	}
	return "queries are served for " + strings.Join(serve, " and ") + " but not for " + strings.Join(not, " and ")
}

func newDispatcher(p Plugin) *dispatcher {
	d := &dispatcher{p: p}
	var f abi.Feature = abi.FeatureBatch
	query := true
	if p.Metrics != nil {
		f |= abi.FeatureMetrics
		d.mq, _ = p.Metrics.(MetricQuerier)
		query = query && d.mq != nil
		d.batcher, _ = p.Metrics.(Batcher)
	}
	if p.Alerts != nil {
		f |= abi.FeatureAlerts
		d.aq, _ = p.Alerts.(AlertQuerier)
		query = query && d.aq != nil
		if d.batcher == nil {
			d.batcher, _ = p.Alerts.(Batcher)
		}
	}
	if p.AgentStates != nil {
		f |= abi.FeatureAgentStates
		d.sq, _ = p.AgentStates.(AgentStateQuerier)
		query = query && d.sq != nil
		if d.batcher == nil {
			d.batcher, _ = p.AgentStates.(Batcher)
		}
	}
	if query && (p.Metrics != nil || p.Alerts != nil || p.AgentStates != nil) {
		f |= abi.FeatureQuery
	} else if d.mq != nil || d.aq != nil || d.sq != nil {
		// One feature bit covers the queries of every kind served (ABI
		// section 9): serving some would advertise none, and the
		// queries written would never be called.
		panic("sdk: " + queriers(p, d) + ": the query feature covers every record kind a plugin serves " +
			"(abi/README.md, section 9), so none would be called; implement the missing method, or none")
	}
	if p.TTL {
		f |= abi.FeatureTTL
	}
	if p.Concurrency {
		f |= abi.FeatureConcurrency
	}
	if p.Restorer != nil {
		f |= abi.FeatureRestore
	}
	if p.Tick != nil {
		f |= abi.FeatureTick
	}
	if p.WriteEvents {
		f |= abi.FeatureWriteEvents
	}
	d.features = f
	caps := p.Capabilities
	if !containsCap(caps, abi.CapabilityLog) {
		caps = append([]abi.Capability{abi.CapabilityLog}, caps...)
	}
	d.meta = abi.Metadata{ABI: abi.Current, Name: p.Name, Version: p.Version, Features: f, Capabilities: caps, KVReads: p.KVReads, RedisReads: p.RedisReads, PGReads: p.PGReads}
	return d
}

func containsCap(caps []abi.Capability, c abi.Capability) bool {
	for _, x := range caps {
		if x == c {
			return true
		}
	}
	return false
}

// handle serves one request and appends the whole response to e. A panic
// in a store becomes a StatusInternal response, so the instance survives.
func (d *dispatcher) handle(op abi.Op, req []byte, e *abi.Encoder) {
	mark := len(e.Bytes())
	defer func() {
		if r := recover(); r != nil {
			truncate(e, mark)
			abi.AppendError(e, abi.StatusInternal, fmt.Sprintf("plugin panic: %v%s", r, panicSite()))
		}
	}()
	e.U8(uint8(abi.StatusOK))
	if err := d.serve(op, req, e); err != nil {
		if errors.Is(err, ErrStale) {
			e.Bytes()[mark] = uint8(abi.StatusStale) // the result is encoded; only the status changes
			return
		}
		truncate(e, mark)
		s, msg := statusOf(err)
		abi.AppendError(e, readStatus(op, s), msg)
	}
}

// panicSite returns where the panic being recovered was raised, as
// " at file:line (function)": the first frame below the runtime's panic
// machinery that is not the runtime's own (an index out of range, a nil
// map), or "" when the stack does not tell. Called from the deferred
// function that recovered.
func panicSite() string {
	var pcs [32]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	panicking := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			panicking = true
		case panicking && !strings.HasPrefix(f.Function, "runtime."):
			return fmt.Sprintf(" at %s:%d (%s)", f.File, f.Line, f.Function)
		}
		if !more {
			return ""
		}
	}
}

func truncate(e *abi.Encoder, n int) {
	b := e.Bytes()
	e.Reset()
	e.Raw(b[:n])
}

// serve checks that the plugin advertises what op needs and runs its
// handler.
func (d *dispatcher) serve(op abi.Op, req []byte, e *abi.Encoder) error {
	if need := op.Requires(); !d.features.Has(need) {
		return abi.Errorf(abi.StatusUnsupported, "%s is not supported by plugin %s", op, d.p.Name)
	}
	if int(op) >= len(opHandlers) || opHandlers[op] == nil {
		return abi.Errorf(abi.StatusUnsupported, "unknown op %d", op)
	}
	return opHandlers[op](d, req, e)
}

// decodeID reads a request that is a single string.
func (d *dispatcher) decodeID(req []byte) (string, error) {
	d.dec.Reset(req)
	id := d.dec.String()
	return id, d.end()
}

// begin starts decoding a request; end checks that it was decoded whole.
// Requests are decoded by direct method calls, not through a func value,
// because each closure is an allocation in a Go guest.
func (d *dispatcher) begin(req []byte) *abi.Decoder {
	d.dec.Reset(req)
	return &d.dec
}

func (d *dispatcher) end() error {
	if err := d.dec.Finish(); err != nil {
		return abi.Errorf(abi.StatusInvalid, "decode request: %v", err)
	}
	return nil
}

// endWrite ends decoding a write request and checks its TTL and condition
// against the advertised features.
func (d *dispatcher) endWrite(ttl *abi.TTL, cond *abi.Condition) error {
	if err := d.end(); err != nil {
		return err
	}
	if ttl != nil {
		if err := ttl.Check(); err != nil {
			return err
		}
		if ttl.Mode != abi.TTLDefault && !d.features.Has(abi.FeatureTTL) {
			return abi.Errorf(abi.StatusUnsupported, "plugin %s does not support TTLs", d.p.Name)
		}
	}
	if cond != nil && cond.Mode != abi.Unconditional && !d.features.Has(abi.FeatureConcurrency) {
		return abi.Errorf(abi.StatusUnsupported, "plugin %s does not support conditional writes", d.p.Name)
	}
	return nil
}

// buffered reports whether err answers a write as acknowledged into a
// buffer (ErrStale), which only a plugin with a Tick hook may answer.
func (d *dispatcher) buffered(err error) bool {
	return d.p.Tick != nil && errors.Is(err, ErrStale)
}

// write returns the error of a write that answers no body: ErrStale only
// from a plugin with a Tick hook (handle marks the response stale), else
// an INTERNAL error, as ErrStale from a write means nothing without one.
func (d *dispatcher) write(err error) error {
	if err != nil && errors.Is(err, ErrStale) && !d.buffered(err) {
		return abi.Errorf(abi.StatusInternal, "plugin %s answered a write with ErrStale but has no Tick hook", d.p.Name)
	}
	return err
}

// written is the error of a write that answers its record: nil, ErrStale
// from a plugin with a Tick hook (the record is encoded and handle marks
// the response stale), or the failure, with nothing encoded. encode
// reports whether the record is to be encoded.
func (d *dispatcher) written(err error) (encode bool, _ error) {
	if err != nil && !d.buffered(err) {
		return false, d.write(err)
	}
	return true, err
}

// read is the error of a read: nil, ErrStale (the record is encoded and
// handle marks the response stale), or the failure, with nothing encoded.
func read(err error) (encode bool, _ error) {
	if err != nil && !errors.Is(err, ErrStale) {
		return false, err
	}
	return true, err
}

func encodePage[T any, P abi.Record[T]](e *abi.Encoder, p *abi.Page[T], err error) error {
	if err != nil {
		return err
	}
	abi.EncodePage[T, P](e, p)
	return nil
}
