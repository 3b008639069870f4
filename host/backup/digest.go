package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/bits"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// Digest sums up the records of one kind: how many, and a checksum that
// does not depend on their order.
type Digest struct {
	Count int64
	// Sum is the sum, modulo 2^256, of the SHA-256 of every record: its
	// kind byte, then its ABI encoding with expires_at left out (0).
	// Addition, unlike XOR, does not let two equal records cancel out.
	Sum [sha256.Size]byte
}

// String reads "COUNT records, checksum HEX".
func (d Digest) String() string {
	return fmt.Sprintf("%d records, checksum %s", d.Count, hex.EncodeToString(d.Sum[:8]))
}

// add adds one record's encoding.
func (d *Digest) add(k abi.RecordKind, encoded []byte) {
	h := sha256.New()
	h.Write([]byte{byte(k)})
	h.Write(encoded)
	var s [sha256.Size]byte
	h.Sum(s[:0])
	var carry uint64
	for i := sha256.Size - 8; i >= 0; i -= 8 {
		a := be64(d.Sum[i:])
		b := be64(s[i:])
		var sum uint64
		sum, carry = bits.Add64(a, b, carry)
		putBE64(d.Sum[i:], sum)
	}
	d.Count++
}

func be64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func putBE64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// Digests are the digests of a backend's records, by kind.
type Digests struct {
	Metrics, Alerts, AgentStates Digest
}

// Of returns the digest of kind k.
func (d *Digests) Of(k abi.RecordKind) *Digest {
	switch k {
	case abi.KindMetric:
		return &d.Metrics
	case abi.KindAlert:
		return &d.Alerts
	}
	return &d.AgentStates
}

// Counts returns the record counts of d.
func (d Digests) Counts() Counts {
	return Counts{Metrics: d.Metrics.Count, Alerts: d.Alerts.Count, AgentStates: d.AgentStates.Count}
}

// DigestStore reads every record of st (as Backup does) and returns their
// digests. Two backends holding the same records — versions, timestamps,
// labels and values included — have equal digests, whatever their order.
// Expiry times are left out: a copy's expiry is the source's only to the
// precision each backend keeps (Redis: milliseconds).
func DigestStore(ctx context.Context, st *host.Store) (Digests, error) {
	if err := canList(st); err != nil {
		return Digests{}, err
	}
	var (
		d Digests
		e abi.Encoder
	)
	err := scan(ctx, st, func(rec *Record, expired bool) error {
		if expired {
			return nil
		}
		e.Reset()
		rec.encode(&e)
		d.Of(rec.Kind).add(rec.Kind, e.Bytes())
		return nil
	})
	return d, err
}

// sameRecord reports whether a and b (of one kind) are the same record,
// expiry aside.
func sameRecord(a, b *Record) bool {
	var ea, eb abi.Encoder
	a.encode(&ea)
	b.encode(&eb)
	return a.Kind == b.Kind && string(ea.Bytes()) == string(eb.Bytes())
}
