package sdk

import (
	"fmt"
	"time"

	"github.com/storage-host/storage-host/abi"
)

// Log writes a message to the host log at level. The host names the
// logger after the backend and rate-limits it.
func Log(level abi.Level, msg string) { logWrite(level, msg) }

// Logf formats and writes a message to the host log at level.
func Logf(level abi.Level, format string, args ...any) {
	logWrite(level, fmt.Sprintf(format, args...))
}

// Now returns the host clock. Use it, not time.Now, for anything that must
// agree with the host (TTLs, timestamps).
func Now() time.Time { return time.Unix(0, clockNow()).UTC() }

// KV is the client of the host's kv capability: an ordered key-value store
// shared by every instance of this backend, with revisions and expiry. A
// plugin that uses it lists abi.CapabilityKV in Plugin.Capabilities.
//
// The zero KV is ready to use. A KV is not safe for concurrent use; calls
// into one plugin instance never overlap, so one per plugin is enough.
type KV struct {
	enc abi.Encoder
	dec abi.Decoder
	req abi.KVRequest
}

func (kv *KV) do() (*abi.Decoder, error) {
	kv.enc.Reset()
	kv.req.Encode(&kv.enc)
	return kv.send()
}

// send makes the kv call encoded in kv.enc.
func (kv *KV) send() (*abi.Decoder, error) {
	body, err := abi.ParseResponse(kvCall(kv.enc.Bytes()))
	if err != nil {
		return nil, err
	}
	kv.dec.Reset(body)
	return &kv.dec, nil
}

func (kv *KV) finish() error {
	if err := kv.dec.Finish(); err != nil {
		return abi.Errorf(abi.StatusInternal, "kv response: %v", err)
	}
	return nil
}

// Get returns the live entry at key, or an error matching ErrNotFound.
// The returned Value is valid until the next call on kv; copy it to keep it.
// A store method may return a record whose bytes alias it (an agent
// state's State, say): the SDK encodes the answer before the plugin's next
// kv call, so only what the plugin keeps beyond the call needs a copy.
//
// The request is encoded as abi.KVRequest.Encode encodes a get, without
// filling kv.req: a Go guest pays for clearing that struct on every read.
func (kv *KV) Get(key []byte) (abi.KVEntry, error) {
	kv.enc.Reset()
	kv.enc.U8(uint8(abi.KVGet))
	kv.enc.BytesField(key)
	d, err := kv.send()
	if err != nil {
		return abi.KVEntry{}, err
	}
	var en abi.KVEntry
	en.Decode(d, false)
	en.Key = key
	return en, kv.finish()
}

// Put writes value at key if cond holds (else an error matching
// ErrConflict) and returns the new revision and expiry. expiresAt zero
// means never; keepTTL keeps a live entry's current expiry.
func (kv *KV) Put(key, value []byte, expiresAt time.Time, keepTTL bool, cond abi.Condition) (revision uint64, expiry time.Time, err error) {
	kv.req = abi.KVRequest{Op: abi.KVPut, Key: key, Value: value, ExpiresAt: expiresAt, KeepTTL: keepTTL, Condition: cond}
	d, err := kv.do()
	if err != nil {
		return 0, time.Time{}, err
	}
	revision = d.Uvarint()
	expiry = d.Time()
	return revision, expiry, kv.finish()
}

// Restore (ABI 1.2) writes value at key with exactly revision (at least 1)
// and the expiry expiresAt (zero: never), and returns what the store
// answered, as Put does. The store's later writes get larger revisions.
// With ifAbsent a live entry at key is an error matching ErrConflict;
// otherwise the entry is replaced.
func (kv *KV) Restore(key, value []byte, revision uint64, expiresAt time.Time, ifAbsent bool) (uint64, time.Time, error) {
	kv.req = abi.KVRequest{Op: abi.KVRestore, Key: key, Value: value, Revision: revision, ExpiresAt: expiresAt}
	if ifAbsent {
		kv.req.Condition.Mode = abi.IfAbsent
	}
	d, err := kv.do()
	if err != nil {
		return 0, time.Time{}, err
	}
	revision = d.Uvarint()
	expiry := d.Time()
	return revision, expiry, kv.finish()
}

// Delete removes key if cond holds. A missing key is ErrNotFound.
func (kv *KV) Delete(key []byte, cond abi.Condition) error {
	kv.req = abi.KVRequest{Op: abi.KVDelete, Key: key, Condition: cond}
	if _, err := kv.do(); err != nil {
		return err
	}
	return kv.finish()
}

// Scan returns up to limit live entries with start <= key < end in key
// order (an empty end is unbounded) and the key to resume from, empty
// when the range is exhausted. Keys, values and next are valid until the
// next call on kv; copy them to keep them.
func (kv *KV) Scan(start, end []byte, limit int) (entries []abi.KVEntry, next []byte, err error) {
	kv.req = abi.KVRequest{Op: abi.KVScan, Key: start, End: end, Limit: uint32(limit)}
	d, err := kv.do()
	if err != nil {
		return nil, nil, err
	}
	n := d.Count(4)
	entries = make([]abi.KVEntry, n)
	for i := range entries {
		entries[i].Decode(d, true)
	}
	next = d.BytesField()
	return entries, next, kv.finish()
}

// publishEnc encodes events for Publish; calls into an instance never
// overlap, so one is enough.
var publishEnc abi.Encoder

// Publish (ABI 1.2) publishes ev on the backend's change feed through the
// host's events capability. A plugin that uses it lists
// abi.CapabilityEvents in Plugin.Capabilities; one that does not, and
// never calls Publish, does not import the capability's module. An event
// that fails abi.PluginEvent.Check is refused here, without a host call;
// the host's refusals match ErrInvalid, ErrUnavailable or an
// abi.StatusLimit error.
func Publish(ev abi.PluginEvent) error {
	if err := ev.Check(); err != nil {
		return err
	}
	publishEnc.Reset()
	ev.Encode(&publishEnc)
	switch st := abi.Status(eventsPublish(publishEnc.Bytes())); {
	case st == abi.StatusOK:
		return nil
	case !st.Known() || st == abi.StatusStale || st == abi.StatusUnknown:
		return abi.Errorf(abi.StatusInternal, "publish event: unknown status %d", st)
	default:
		return abi.Errorf(st, "publish event %s/%s", ev.Kind, ev.Op)
	}
}
