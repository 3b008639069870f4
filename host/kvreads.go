package host

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
	if err := s.readBegins(ctx); err != nil {
		return true, err
	}
	defer s.calls.leave()
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
		if ok, dropped := s.p.readFaultLog.allow(time.Now()); ok {
			s.p.log.Warn("a declared kv read found a value that is not the record; the plugin serves such reads (abi/README.md, section 10.9)",
				"kind", kind.Name(), "key", cutText(string(key), maxQuoted), "fault", cutText(fault, maxQuoted), "not_logged", dropped)
		}
		return false, nil
	}
	if err := s.p.kv.Sync(ctx); err != nil {
		return true, fmt.Errorf("backend %s: %w: %w", s.p.name, ErrUnavailable, err)
	}
	s.p.kvServed.Add(1)
	return true, readAnswer(kind, id, found)
}

// readBegins enters the store's call gate for a declared read (kv, redis
// or postgres), which the caller leaves: ErrClosed once Close began, the
// context's error once it is done.
func (s *Store) readBegins(ctx context.Context) error {
	// ctx first: a nil one panics here, before the read is counted in
	// flight (Close would wait for it).
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("backend %s: %w", s.p.name, err)
	}
	if !s.calls.enter() {
		return ErrClosed
	}
	return nil
}

// readAnswer is a declared read's answer: nil for a record found,
// NOT_FOUND naming it otherwise.
func readAnswer(kind abi.RecordKind, id string, found bool) error {
	if found {
		return nil
	}
	return abi.Errorf(abi.StatusNotFound, "%s %s: not found", strings.ReplaceAll(kind.String(), "_", " "), quote(id))
}

// readDone ends a declared redis or postgres read of kind's record id,
// whose answer decoded as found, or as out of form (fault): a record
// found is checked with mismatch, as a plugin's answer is. It reports
// whether the read is served, counted in served, with its answer; a fault
// is counted in faults and logged (at most once a second; msg says which
// read, where which record), and the plugin serves the read, as it does
// a record whose expiry passed (errPassed).
func (s *Store) readDone(served, faults *atomic.Uint64, msg string, kind abi.RecordKind, id, where string, found bool, fault string, mismatch func() string) (bool, error) {
	if found && fault == "" {
		if why := mismatch(); why != "" {
			fault = "it holds another record: " + why
		}
	}
	switch fault {
	case "":
		served.Add(1)
		return true, readAnswer(kind, id, found)
	case errPassed:
		return false, nil
	}
	faults.Add(1)
	if ok, dropped := s.p.readFaultLog.allow(time.Now()); ok {
		s.p.log.Warn(msg, "kind", kind.Name(), "record", cutText(where, maxQuoted), "fault", cutText(fault, maxQuoted), "not_logged", dropped)
	}
	return false, nil
}

// kvReadScratch is a kv read's key and decoder, kept between reads: both
// would otherwise be allocated on every read (the key reaches the B-tree's
// comparison, the decoder a func value).
type kvReadScratch struct {
	key []byte
	dec abi.Decoder
}

var kvReadScratches = sync.Pool{New: func() any { return new(kvReadScratch) }}
