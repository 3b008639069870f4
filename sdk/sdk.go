// Package sdk is what a Go plugin author imports to write a storage backend
// for storage-host. Implement the stores for the record kinds you support,
// call Register from an init function, and build with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// The SDK provides the ABI exports, owns the guest memory the host writes
// requests into, decodes requests, encodes responses and turns errors into
// status codes. Host capabilities are wrapped by Log, Now, KV, Redis and
// Publish.
package sdk

import (
	"errors"
	"fmt"
	"strings"

	"github.com/storage-host/storage-host/abi"
)

// MetricStore stores metrics. Returned records carry ExpiresAt.
type MetricStore interface {
	PutMetric(r *abi.PutMetric) (abi.Metric, error)
	GetMetric(k *abi.MetricKey) (abi.Metric, error)
	DeleteMetric(k *abi.MetricKey) error
}

// AlertStore stores alerts. PutAlert and SetAlertStatus must refuse a
// transition abi.AlertStatus.CanTransition rejects with abi.StatusConflict.
type AlertStore interface {
	PutAlert(r *abi.PutAlert) (abi.Alert, error)
	GetAlert(id string) (abi.Alert, error)
	DeleteAlert(id string) error
	SetAlertStatus(r *abi.SetAlertStatus) (abi.Alert, error)
}

// AgentStateStore stores agent states.
type AgentStateStore interface {
	PutAgentState(r *abi.PutAgentState) (abi.AgentState, error)
	GetAgentState(agentID string) (abi.AgentState, error)
	DeleteAgentState(r *abi.DeleteAgentState) error
}

// MetricQuerier is implemented by a MetricStore that serves queries.
type MetricQuerier interface {
	QueryMetrics(q *abi.MetricQuery) (abi.Page[abi.Metric], error)
}

// AlertQuerier is implemented by an AlertStore that serves queries.
type AlertQuerier interface {
	QueryAlerts(q *abi.AlertQuery) (abi.Page[abi.Alert], error)
}

// AgentStateQuerier is implemented by an AgentStateStore that serves
// queries.
type AgentStateQuerier interface {
	QueryAgentStates(q *abi.AgentStateQuery) (abi.Page[abi.AgentState], error)
}

// Batcher may be implemented by any store of a Plugin to serve a whole
// batch at once (a Redis backend pipelines it, say). Without one, the SDK
// runs the items one by one, still inside a single call from the host:
// the SDK advertises abi.FeatureBatch for every plugin either way.
type Batcher interface {
	Batch(items []abi.BatchItem) []abi.BatchResult
}

// Restorer is implemented by a plugin that serves abi.OpRestore (ABI 1.2):
// it writes a record exactly as given, backend fields included, for every
// kind the plugin stores. The SDK has decoded r and checked it
// (abi.Restore.Check) and that the plugin stores its kind (and advertises
// TTL when it has an expiry); Restore applies r.Mode atomically and
// answers written false, with no error, when r.Mode is abi.RestoreSkip and
// a live record exists, or when the record's expiry has passed
// (abi.Restore.Expired on the host clock). An existing live record under
// abi.RestoreFail is an error matching ErrConflict.
type Restorer interface {
	Restore(r *abi.Restore) (written bool, err error)
}

// Plugin describes a backend. Nil stores are kinds the backend does not
// support; the SDK advertises features from what is set.
type Plugin struct {
	// Name and Version identify the plugin in logs and `plugin inspect`.
	Name    string
	Version string

	Metrics     MetricStore
	Alerts      AlertStore
	AgentStates AgentStateStore

	// TTL advertises abi.FeatureTTL: the stores honour every abi.TTLMode.
	TTL bool
	// Concurrency advertises abi.FeatureConcurrency: PutAgentState and
	// DeleteAgentState honour their Condition.
	Concurrency bool
	// Restorer, when set, serves abi.OpRestore and advertises
	// abi.FeatureRestore; the SDK advertises it for no other reason.
	Restorer Restorer

	// Capabilities lists the host modules the plugin imports, besides
	// abi.CapabilityLog: the SDK imports that one itself and adds it to
	// the metadata when it is not listed.
	Capabilities []abi.Capability

	// Configure, if set, receives the backend options before any request.
	Configure func(abi.Options) error

	// Tick, when set, advertises abi.FeatureTick (ABI 1.3): the host then
	// calls it on a timer of its own (about every 100 ms, and again at
	// once while the result has More set), from no caller's request, on
	// any instance, and once more when the backend closes. It does work
	// no request asks for, such as replaying writes a store acknowledged
	// into a buffer: a write method may return its result with ErrStale
	// to say the write was acknowledged but has not reached the primary
	// store yet, and Tick MUST then report it in Writes once it has (see
	// abi.TickResult). A Tick that fails is logged by the host, which
	// ticks again later.
	Tick func() (abi.TickResult, error)

	// Migrations (ABI 1.5) is the versioned DDL of a plugin that lists
	// abi.CapabilityPostgres: versions 1, 2, 3 … in order, each one SQL
	// text that may hold several statements. The host applies those the
	// backend's schema lacks when it loads the plugin, once, and refuses to
	// load a plugin that knows fewer versions than the schema has. Never
	// change a released migration: add the next version.
	Migrations abi.Migrations
}

var registered *dispatcher

// Register makes p the plugin this module serves. Call it once, from an
// init function: the host reads the metadata right after initialisation.
func Register(p Plugin) {
	if registered != nil {
		panic("sdk: Register called twice")
	}
	registered = newDispatcher(p)
}

// Errors a store returns to answer with a status other than
// abi.StatusInternal. Wrap them to add detail:
//
//	fmt.Errorf("agent %q: %w", id, sdk.ErrNotFound)
var (
	ErrNotFound    error = abi.StatusNotFound
	ErrConflict    error = abi.StatusConflict
	ErrInvalid     error = abi.StatusInvalid
	ErrUnavailable error = abi.StatusUnavailable
	ErrUnsupported error = abi.StatusUnsupported
	// ErrStale, returned with a record from a Get method, answers the
	// record marked as possibly behind: served from a fallback copy while
	// the primary store is unreachable (ABI 1.1). Returned from a write
	// method (with its result, for a put) by a plugin with a Tick hook, it
	// answers the write as acknowledged into a buffer, not yet in the
	// primary store (ABI 1.3): a success, whose event the host publishes
	// when Tick reports the write.
	ErrStale error = abi.StatusStale
	// ErrOutcomeUnknown (ABI 1.3), returned from a write, answers that the
	// write may or may not have taken effect: it reached the primary
	// store, or may have, and the answer was lost. The redis capability
	// returns it for such a request; a store returns it only from writes.
	ErrOutcomeUnknown error = abi.StatusUnknown
)

// readStatus is s, except that an op that changes nothing never answers
// StatusUnknown (a read that met a lost reply): it answers
// StatusUnavailable.
func readStatus(op abi.Op, s abi.Status) abi.Status {
	if s == abi.StatusUnknown && !op.Writes() {
		return abi.StatusUnavailable
	}
	return s
}

// statusOf maps an error from a store to a status and message.
func statusOf(err error) (abi.Status, string) {
	var ae *abi.Error
	if errors.As(err, &ae) {
		return ae.Status, ae.Message
	}
	var s abi.Status
	if errors.As(err, &s) {
		// The status itself is the response's first byte; keep the detail.
		return s, strings.TrimSuffix(err.Error(), ": "+s.String())
	}
	return abi.StatusInternal, err.Error()
}

// dispatcher decodes requests, calls the stores and encodes responses.
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
	d.features = f
	caps := p.Capabilities
	if !containsCap(caps, abi.CapabilityLog) {
		caps = append([]abi.Capability{abi.CapabilityLog}, caps...)
	}
	d.meta = abi.Metadata{ABI: abi.Current, Name: p.Name, Version: p.Version, Features: f, Capabilities: caps}
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
			abi.AppendError(e, abi.StatusInternal, fmt.Sprintf("plugin panic: %v", r))
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

func truncate(e *abi.Encoder, n int) {
	b := e.Bytes()
	e.Reset()
	e.Raw(b[:n])
}

// decodeID reads a request that is a single string. It does not go
// through decode: a closure capturing the result would cost the guest an
// allocation on the hottest path.
func (d *dispatcher) decodeID(req []byte) (string, error) {
	d.dec.Reset(req)
	id := d.dec.String()
	if err := d.dec.Finish(); err != nil {
		return "", abi.Errorf(abi.StatusInvalid, "decode request: %v", err)
	}
	return id, nil
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

func (d *dispatcher) serve(op abi.Op, req []byte, e *abi.Encoder) error {
	if need := op.Requires(); !d.features.Has(need) {
		return abi.Errorf(abi.StatusUnsupported, "%s is not supported by plugin %s", op, d.p.Name)
	}
	switch op {
	case abi.OpPing:
		return nil
	case abi.OpTick:
		d.begin(req)
		if err := d.end(); err != nil {
			return err
		}
		r, err := d.p.Tick()
		if err != nil {
			return err
		}
		r.Encode(e)
		return nil
	case abi.OpConfigure:
		o := abi.DecodeOptions(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
		if d.p.Configure != nil {
			return d.p.Configure(o)
		}
		return nil

	case abi.OpPutMetric:
		var r abi.PutMetric
		r.Decode(d.begin(req))
		if err := d.endWrite(&r.TTL, nil); err != nil {
			return err
		}
		if err := r.Metric.Check(); err != nil {
			return err
		}
		v, err := d.p.Metrics.PutMetric(&r)
		if err != nil && !d.buffered(err) {
			return d.write(err)
		}
		v.Encode(e)
		return err // nil, or ErrStale: handle marks the response stale
	case abi.OpGetMetric:
		var k abi.MetricKey
		k.Decode(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
		if err := k.Check(); err != nil {
			return err
		}
		v, err := d.p.Metrics.GetMetric(&k)
		if err != nil && !errors.Is(err, ErrStale) {
			return err
		}
		v.Encode(e)
		return err // nil, or ErrStale: handle marks the response stale
	case abi.OpDeleteMetric:
		var k abi.MetricKey
		k.Decode(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
		if err := k.Check(); err != nil {
			return err
		}
		return d.write(d.p.Metrics.DeleteMetric(&k))
	case abi.OpQueryMetrics:
		var q abi.MetricQuery
		q.Decode(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
		p, err := d.mq.QueryMetrics(&q)
		return encodePage(e, &p, err)

	case abi.OpPutAlert:
		var r abi.PutAlert
		r.Decode(d.begin(req))
		if err := d.endWrite(&r.TTL, nil); err != nil {
			return err
		}
		if err := r.Alert.Check(); err != nil {
			return err
		}
		v, err := d.p.Alerts.PutAlert(&r)
		if err != nil && !d.buffered(err) {
			return d.write(err)
		}
		v.Encode(e)
		return err // nil, or ErrStale: handle marks the response stale
	case abi.OpGetAlert, abi.OpDeleteAlert:
		id, err := d.decodeID(req)
		if err != nil {
			return err
		}
		if err := abi.CheckID("alert id", id); err != nil {
			return err
		}
		if op == abi.OpDeleteAlert {
			return d.write(d.p.Alerts.DeleteAlert(id))
		}
		v, err := d.p.Alerts.GetAlert(id)
		if err != nil && !errors.Is(err, ErrStale) {
			return err
		}
		v.Encode(e)
		return err // nil, or ErrStale: handle marks the response stale
	case abi.OpSetAlertStatus:
		var r abi.SetAlertStatus
		r.Decode(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
		if err := abi.CheckID("alert id", r.ID); err != nil {
			return err
		}
		if !r.Status.Valid() {
			return abi.Errorf(abi.StatusInvalid, "unknown alert status %d", r.Status)
		}
		v, err := d.p.Alerts.SetAlertStatus(&r)
		if err != nil && !d.buffered(err) {
			return d.write(err)
		}
		v.Encode(e)
		return err // nil, or ErrStale: handle marks the response stale
	case abi.OpQueryAlerts:
		var q abi.AlertQuery
		q.Decode(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
		p, err := d.aq.QueryAlerts(&q)
		return encodePage(e, &p, err)

	case abi.OpPutAgentState:
		var r abi.PutAgentState
		r.Decode(d.begin(req))
		if err := d.endWrite(&r.TTL, &r.Condition); err != nil {
			return err
		}
		if err := r.State.Check(); err != nil {
			return err
		}
		v, err := d.p.AgentStates.PutAgentState(&r)
		if err != nil && !d.buffered(err) {
			return d.write(err)
		}
		v.Encode(e)
		return err // nil, or ErrStale: handle marks the response stale
	case abi.OpGetAgentState:
		id, err := d.decodeID(req)
		if err != nil {
			return err
		}
		if err := abi.CheckID("agent id", id); err != nil {
			return err
		}
		v, err := d.p.AgentStates.GetAgentState(id)
		if err != nil && !errors.Is(err, ErrStale) {
			return err
		}
		v.Encode(e)
		return err // nil, or ErrStale: handle marks the response stale
	case abi.OpDeleteAgentState:
		var r abi.DeleteAgentState
		r.Decode(d.begin(req))
		if err := d.endWrite(nil, &r.Condition); err != nil {
			return err
		}
		if err := abi.CheckID("agent id", r.AgentID); err != nil {
			return err
		}
		if r.Condition.Mode == abi.IfAbsent {
			return abi.Errorf(abi.StatusInvalid, "delete cannot be create-only")
		}
		return d.write(d.p.AgentStates.DeleteAgentState(&r))
	case abi.OpQueryAgentStates:
		var q abi.AgentStateQuery
		q.Decode(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
		p, err := d.sq.QueryAgentStates(&q)
		return encodePage(e, &p, err)

	case abi.OpRestore:
		var r abi.Restore
		r.Decode(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
		if err := r.Check(); err != nil {
			return err
		}
		if need := r.Requires(); !d.features.Has(need) {
			return abi.Errorf(abi.StatusUnsupported, "plugin %s does not restore %s records (needs %s)", d.p.Name, r.Kind, need&^d.features)
		}
		written, err := d.p.Restorer.Restore(&r)
		if err != nil {
			return err
		}
		e.Bool(written)
		return nil

	case abi.OpBatch:
		items := abi.DecodeBatch(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
		return d.batch(items, e)
	}
	return abi.Errorf(abi.StatusUnsupported, "unknown op %d", op)
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

func (d *dispatcher) batch(items []abi.BatchItem, e *abi.Encoder) error {
	for i := range items {
		if items[i].Op == abi.OpBatch || items[i].Op == abi.OpConfigure {
			return abi.Errorf(abi.StatusInvalid, "batch item %d: %s cannot be batched", i, items[i].Op)
		}
	}
	if d.batcher != nil {
		results := d.batcher.Batch(items)
		if len(results) != len(items) {
			return abi.Errorf(abi.StatusInternal, "batch returned %d results for %d items", len(results), len(items))
		}
		for i := range results {
			results[i].Status = readStatus(items[i].Op, results[i].Status)
		}
		abi.EncodeBatchResults(e, results)
		return nil
	}
	// Serve the items one by one, each response (status byte, body) going
	// straight into the batch response as EncodeBatchResults lays it out.
	e.Uvarint(uint64(len(items)))
	for i := range items {
		d.sub.Reset()
		d.handle(items[i].Op, items[i].Payload, &d.sub)
		resp := d.sub.Bytes()
		e.U8(resp[0])
		e.BytesField(resp[1:])
	}
	return nil
}

func encodePage[T any, P abi.Record[T]](e *abi.Encoder, p *abi.Page[T], err error) error {
	if err != nil {
		return err
	}
	abi.EncodePage[T, P](e, p)
	return nil
}
