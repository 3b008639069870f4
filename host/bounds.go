package host

import "github.com/storage-host/storage-host/abi"

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
