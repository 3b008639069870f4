package host

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/internal/wirepath"
)

// kvReads holds the key prefix of each record kind whose get the plugin
// declared a kv lookup (abi.KVRead), indexed by kind; nil where it
// declared none.
type kvReads [abi.KindAgentState + 1][]byte

// setKVReads takes the plugin's declared kv reads, once its capabilities
// are checked. A plugin whose kv capability is not granted has no kv
// store, and its reads go to it as before.
func (p *plugin) setKVReads() {
	if p.kv == nil {
		return
	}
	for _, r := range p.meta.KVReads {
		p.kvReads[r.Kind] = append(make([]byte, 0, len(r.Prefix)), r.Prefix...)
	}
}

// readKV answers op, the get of kind's record id, from the backend's kv store,
// when the plugin declared that read a kv lookup: the guest is not
// entered. decode reads the entry's value and takes the entry's revision
// and expiry; mismatch then says why the record decoded is not the one
// asked for, or "" (answers.go). served is false when the plugin declared
// no such read, for an ID out of form (abi.CheckID), or when the entry's
// value is not the record the declaration promises (it does not decode,
// is larger than a plugin's response may be, or is another record): the
// plugin is then called, as without the declaration, and a warning says
// which key broke the promise.
//
// A durable store's read waits, as a plugin call does, until what it
// read is on disk: a read never shows a write a crash could still lose.
func (s *Store) readKV(ctx context.Context, op abi.Op, kind abi.RecordKind, id string, decode func(d *abi.Decoder, revision uint64, expires time.Time), mismatch func() string) (served bool, err error) {
	prefix := s.p.kvReads[kind]
	if prefix == nil || abi.CheckID("id", id) != nil {
		// An ID out of form is the plugin's to refuse (INVALID), as
		// without the declaration.
		return false, nil
	}
	if !s.calls.enter() {
		return true, ErrClosed
	}
	defer s.calls.leave()
	if err := ctx.Err(); err != nil {
		return true, fmt.Errorf("backend %s: %w", s.p.name, err)
	}
	sc := kvReadScratches.Get().(*kvReadScratch)
	defer kvReadScratches.Put(sc)
	sc.key = append(append(sc.key[:0], prefix...), id...)
	key := sc.key
	var fault string
	found := s.p.kv.View(key, func(value []byte, revision uint64, expires time.Time) {
		if len(value) > int(s.p.limits.MaxResponseBytes) {
			fault = fmt.Sprintf("its value of %d bytes is over the response limit of %d", len(value), s.p.limits.MaxResponseBytes)
			return
		}
		sc.dec.Reset(value)
		decode(&sc.dec, revision, expires)
		if sc.dec.Finish() != nil {
			fault = wirepath.Fault(answerMessages[op], value, &sc.dec)
		}
	})
	sc.dec.Reset(nil) // holds no value past the read lock
	if found && fault == "" {
		if why := mismatch(); why != "" {
			fault = "it holds another record: " + why
		}
	}
	if fault != "" {
		s.p.kvReadFaults.Add(1)
		s.p.kvReadFaultLog.Do(func() {
			s.p.log.Warn("a declared kv read found a value that is not the record; the plugin serves such reads (abi/README.md, section 10.9)",
				"kind", kind.Name(), "key", cutText(string(key), maxQuoted), "fault", fault)
		})
		return false, nil
	}
	if err := s.p.kv.Sync(ctx); err != nil {
		return true, fmt.Errorf("backend %s: %w: %w", s.p.name, ErrUnavailable, err)
	}
	s.p.kvServed.Add(1)
	if !found {
		return true, abi.Errorf(abi.StatusNotFound, "%s %s: not found", strings.ReplaceAll(kind.String(), "_", " "), quote(id))
	}
	return true, nil
}

// kvReadScratch is a kv read's key and decoder, kept between reads: both
// would otherwise be allocated on every read (the key reaches the B-tree's
// comparison, the decoder a func value).
type kvReadScratch struct {
	key []byte
	dec abi.Decoder
}

var kvReadScratches = sync.Pool{New: func() any { return new(kvReadScratch) }}
