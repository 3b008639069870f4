package sdk

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/storage-host/storage-host/abi"
)

// The ops that are not about one record kind: configuration, the tick,
// restores and batches.

func (d *dispatcher) configure(req []byte, _ *abi.Encoder) error {
	o := abi.DecodeOptions(d.begin(req))
	if err := d.end(); err != nil {
		return err
	}
	if d.p.Configure != nil {
		return configureError(d.p.Configure(o))
	}
	if len(o) > 0 {
		// A plugin without Configure takes no option: one given is a
		// mistake of the operator's (a typo, the wrong plugin), not to be
		// ignored in silence.
		names := slices.Sorted(maps.Keys(o))
		return abi.Errorf(abi.StatusInvalid, "plugin %s takes no options; given %s", d.p.Name, strings.Join(names, ", "))
	}
	return nil
}

// configureError is the answer to a configuration the plugin's Configure
// refused: INVALID, as abi/README.md asks of a plugin refusing an option
// (section 10.6), unless the error carries a status of its own. The
// options are the operator's input; INTERNAL would say the plugin broke.
func configureError(err error) error {
	if err == nil {
		return nil
	}
	if s, _ := statusOf(err); s != abi.StatusInternal || errors.Is(err, abi.StatusInternal) {
		return err
	}
	return abi.Errorf(abi.StatusInvalid, "%v", err)
}

func (d *dispatcher) tick(req []byte, e *abi.Encoder) error {
	var r abi.TickRequest
	if len(req) > 0 { // a host of ABI 1.6 or older sends none
		r.Decode(d.begin(req))
		if err := d.end(); err != nil {
			return err
		}
	}
	tickResumed = r.Resumed
	defer func() { tickResumed = false }()
	res, err := d.p.Tick()
	if err != nil {
		return err
	}
	res.Encode(e)
	return nil
}

// tickResumed is the request's Resumed during a Tick hook (calls into an
// instance never overlap).
var tickResumed bool

// TickResumed reports, during a Tick hook, whether the host marked the
// tick resumed (abi.TickRequest): it is among the first ticks of a
// backend the host has opened, and the host that received what the last
// tick before it reported may have stopped before publishing their
// events. A plugin that forgets the writes it reported only at the tick
// after MUST then report them again (abi/README.md, section 10.11). It
// is false outside a Tick hook.
func TickResumed() bool { return tickResumed }

// decodeRestore decodes and checks a request to restore a record into r.
func (d *dispatcher) decodeRestore(req []byte, r *abi.Restore) error {
	*r = abi.Restore{}
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
	return nil
}

func (d *dispatcher) restore(req []byte, e *abi.Encoder) error {
	r := &d.req.restore
	if err := d.decodeRestore(req, r); err != nil {
		return err
	}
	written, err := d.p.Restorer.Restore(r)
	if err != nil {
		return err
	}
	e.Bool(written)
	return nil
}

// batch serves an OpBatch: through the plugin's Batcher when it has one,
// else item by item, each response going straight into the batch
// response as abi.EncodeBatchResults lays it out.
func (d *dispatcher) batch(req []byte, e *abi.Encoder) error {
	items := abi.DecodeBatch(d.begin(req))
	if err := d.end(); err != nil {
		return err
	}
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
