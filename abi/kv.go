package abi

import "time"

// KVOp is an operation of the kv capability.
type KVOp uint8

// The kv operations. Keys are byte strings ordered bytewise; every write
// gives the entry a new revision, unique and increasing within the store.
// Expired entries are invisible to every operation.
const (
	// KVGet: key bytes → KVEntry (without the key) or StatusNotFound.
	KVGet KVOp = 1
	// KVPut: key bytes, value bytes, expires_at time, keep_ttl bool,
	// condition → revision uvarint, expires_at time; StatusConflict when the
	// condition fails. With keep_ttl the entry keeps its current expiry
	// (expires_at is used for a new entry).
	KVPut KVOp = 2
	// KVDelete: key bytes, condition → empty; StatusNotFound when absent,
	// StatusConflict when the condition fails.
	KVDelete KVOp = 3
	// KVScan: start bytes, end bytes, limit uvarint → count, KVEntry each,
	// next bytes. Entries with start <= key < end in key order (an empty end
	// is unbounded), at most limit (capped at MaxQueryLimit). next is the
	// key to resume from, empty at the end.
	KVScan KVOp = 4
	// KVRestore (ABI 1.2): key bytes, value bytes, revision uvarint,
	// expires_at time, condition → revision uvarint, expires_at time, as
	// KVPut. The entry gets exactly revision (at least 1), and the store's
	// revision counter moves to at least revision, so later writes get
	// larger ones. The condition is Unconditional or IfAbsent (IfVersion is
	// StatusInvalid); StatusConflict when it fails.
	KVRestore KVOp = 5
)

// KVRequest is the request of storagehost_kv.call: op u8, then the fields
// of that op as KVOp documents. Decode leaves Key, End and Value aliasing
// the decoder's input: the host reads them in place from guest memory.
type KVRequest struct {
	Op        KVOp
	Key       []byte // get, put, delete; start of a scan
	End       []byte // scan
	Value     []byte // put, restore
	Revision  uint64 // restore
	ExpiresAt time.Time
	KeepTTL   bool
	Condition Condition // put, delete, restore (IfVersion compares revisions)
	Limit     uint32    // scan
}

// Encode appends r.
func (r *KVRequest) Encode(e *Encoder) {
	e.U8(uint8(r.Op))
	e.BytesField(r.Key)
	switch r.Op {
	case KVPut:
		e.BytesField(r.Value)
		e.Time(r.ExpiresAt)
		e.Bool(r.KeepTTL)
		r.Condition.Encode(e)
	case KVDelete:
		r.Condition.Encode(e)
	case KVScan:
		e.BytesField(r.End)
		e.Uvarint(uint64(r.Limit))
	case KVRestore:
		e.BytesField(r.Value)
		e.Uvarint(r.Revision)
		e.Time(r.ExpiresAt)
		r.Condition.Encode(e)
	}
}

// Decode reads what Encode wrote.
func (r *KVRequest) Decode(d *Decoder) {
	*r = KVRequest{Op: KVOp(d.U8())}
	r.Key = d.View()
	switch r.Op {
	case KVGet:
	case KVPut:
		r.Value = d.View()
		r.ExpiresAt = d.Time()
		r.KeepTTL = d.Bool()
		r.Condition.Decode(d)
	case KVDelete:
		r.Condition.Decode(d)
	case KVScan:
		r.End = d.View()
		r.Limit = d.Uint32()
	case KVRestore:
		r.Value = d.View()
		r.Revision = d.Uvarint()
		r.ExpiresAt = d.Time()
		r.Condition.Decode(d)
	default:
		d.fail(ErrMalformed)
	}
}

// KVEntry is one entry of the kv store: key bytes (scan only), revision
// uvarint, expires_at time, value bytes. Decode leaves Key and Value
// aliasing the decoder's input.
type KVEntry struct {
	Key       []byte
	Revision  uint64
	ExpiresAt time.Time
	Value     []byte
}

// Encode appends the entry; withKey is true inside scan results.
func (en *KVEntry) Encode(e *Encoder, withKey bool) {
	if withKey {
		e.BytesField(en.Key)
	}
	e.Uvarint(en.Revision)
	e.Time(en.ExpiresAt)
	e.BytesField(en.Value)
}

// Decode reads what Encode wrote.
func (en *KVEntry) Decode(d *Decoder, withKey bool) {
	en.Key = nil
	if withKey {
		en.Key = d.View()
	}
	en.Revision = d.Uvarint()
	en.ExpiresAt = d.Time()
	en.Value = d.View()
}
