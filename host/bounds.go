package host

import (
	"fmt"

	"github.com/storage-host/storage-host/abi"
)

// Bounds on labels and label matchers, which a Store checks before it
// calls its plugin: a write or query past them is ErrInvalid naming the
// bound (a batch with one item past them is refused whole). They are
// generous for real use (Prometheus-style series carry a handful of
// labels; a query selects by a few) and keep one record or query far
// inside a plugin instance's memory: a plugin copies, encodes and
// compiles every label and matcher it is given. A record's bounds are
// the ABI's (abi.MaxLabels): a plugin's answer, a tick's report or a
// backup file with a record past them is malformed.
const (
	// MaxLabels bounds the labels of one metric or alert.
	MaxLabels = abi.MaxLabels
	// MaxLabelBytes bounds the names and values of one record's labels,
	// all together: large values are data, as an alert's message is, but
	// a record's labels stay a small part of a plugin's memory.
	MaxLabelBytes = abi.MaxLabelBytes
	// MaxMatchers bounds the label matchers of one query.
	MaxMatchers = 128
	// MaxMatcherBytes bounds the label names and values (or regular
	// expressions) of one query's matchers, all together.
	MaxMatcherBytes = 32 << 10
)

// checkLabels returns an error matching ErrInvalid unless labels are within the
// bounds: at most MaxLabels of them, with names and values of at most
// MaxLabelBytes together. (The plugin checks each name: abi.Metric.Check.)
func checkLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return abi.Errorf(abi.StatusInvalid, "%d labels; at most %d per record", len(labels), MaxLabels)
	}
	size := 0
	for k, v := range labels {
		size += len(k) + len(v)
	}
	if size > MaxLabelBytes {
		return abi.Errorf(abi.StatusInvalid, "labels of %d bytes (names and values); at most %d per record", size, MaxLabelBytes)
	}
	return nil
}

// CheckMatchers returns an error matching ErrInvalid unless ms are within the
// bounds: at most MaxMatchers of them, with label names and values of at
// most MaxMatcherBytes together. (The plugin checks their operators and
// regular expressions: abi.CompileMatchers.)
func CheckMatchers(ms []Matcher) error {
	if len(ms) > MaxMatchers {
		return abi.Errorf(abi.StatusInvalid, "%d label matchers; at most %d per query", len(ms), MaxMatchers)
	}
	size := 0
	for i := range ms {
		size += len(ms[i].Label) + len(ms[i].Value)
	}
	if size > MaxMatcherBytes {
		return abi.Errorf(abi.StatusInvalid, "label matchers of %d bytes (names and values); at most %d per query", size, MaxMatcherBytes)
	}
	return nil
}

// answerRoom is what an answer holds besides one record's IDs, document
// or message and labels: its status byte, the record's other fields, and
// a page's count and cursor.
const answerRoom = 1 << 10

// checkReadable returns an error matching ErrLimit when a record of size
// bytes (IDs, document or message, label names and values) could not be
// answered within Limits.MaxResponseBytes: the plugin would store it, and
// every get, page and backup that reached it would fail for good.
//
// A plugin that reads its records from Redis or PostgreSQL reads them
// through a reply of at most Limits.replyBytes (an eighth of its memory),
// with their store's framing (RESP, a row's encoding): that bound, less
// storeRoom, is theirs.
func (s *Store) checkReadable(kind, id string, size int) error {
	limit, bound := int64(s.p.limits.MaxResponseBytes), "Limits.MaxResponseBytes"
	if s.p.redis != nil || s.p.pg != nil {
		if r := s.p.limits.replyBytes() - storeRoom; r < limit {
			limit, bound = r, "the reply bound of a plugin reading Redis or PostgreSQL, an eighth of Limits.MemoryPages"
		}
	}
	if int64(size)+answerRoom > limit {
		return abi.Errorf(abi.StatusLimit, "%s %q of %d bytes could not be read back: an answer holds at most %d bytes (%s), with %d of them for its other fields", kind, id, size, limit, bound, answerRoom)
	}
	return nil
}

// storeRoom is what a Redis reply or PostgreSQL row holds besides a
// record's IDs, document or message and labels: field names, lengths,
// the record's other fields.
const storeRoom = 4 << 10

// stateSize and alertSize are what checkReadable weighs of a record.
func stateSize(st *AgentState) int { return len(st.AgentID) + len(st.State) }

func alertSize(a *Alert) int {
	n := len(a.ID) + len(a.AgentID) + len(a.Message)
	for k, v := range a.Labels {
		n += len(k) + len(v)
	}
	return n
}

// checkReadableItems is checkReadable for each record of a batch, which
// one record past it refuses whole, naming the item.
func checkReadableItems[R any](s *Store, kind string, rs []R, id func(*R) string, size func(*R) int) error {
	for i := range rs {
		if err := s.checkReadable(kind, id(&rs[i]), size(&rs[i])); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
	}
	return nil
}
