// Package querycost bounds what one query may cost a built-in plugin. The
// host stops a call that runs past its timeout, but a client chooses what a
// query costs, and a call that computes for long holds an instance and a
// CPU until then, and may be stopped only to be sent again. So the
// built-in plugins' queries bound their own work: label
// regular expressions are checked for size and shape before they are
// used, and a Meter counts the bytes a call scans and the regular
// expression work it does, so a scan ends its page early (with a cursor
// to go on from, as the ABI's page contract allows) when either budget is
// spent.
package querycost

import (
	"errors"
	"regexp/syntax"

	"github.com/storage-host/storage-host/abi"
)

// The bounds.
const (
	// MaxPatternBytes bounds a label matcher's regular expression.
	MaxPatternBytes = 512
	// MaxRepeat bounds a counted repetition, x{n} or x{n,m}.
	MaxRepeat = 32
	// MaxProgram bounds a compiled regular expression, in instructions:
	// RE2 matching costs up to this many steps per byte of input.
	MaxProgram = 256
	// MatchBudget bounds the regular-expression work of one call: the sum,
	// over every label value matched, of its length in bytes (plus one)
	// times its matcher's program size.
	MatchBudget = 1 << 20
	// ScanBudget bounds the record bytes one call reads.
	ScanBudget = 4 << 20
)

// ErrSpent says a Meter's budget is spent: the scan must stop before the
// record it was asked about, and resume there on the next page.
var ErrSpent = errors.New("querycost: budget spent")

// Weights are the costs of a query's matchers per byte of the label each
// examines: its program size for a regular expression, nothing for an
// equality.
type Weights struct {
	labels []string
	per    []int64
}

// Check refuses a matcher whose regular expression is longer than
// MaxPatternBytes, repeats more than MaxRepeat times or compiles to more
// than MaxProgram instructions, with an INVALID error naming the bound;
// otherwise it returns the matchers' weights. abi.CompileMatchers still
// checks the syntax; this only measures.
func Check(ms []abi.Matcher) (Weights, error) {
	var w Weights
	for _, m := range ms {
		if m.Op != abi.MatchRegexp && m.Op != abi.MatchNotRegexp {
			continue
		}
		if len(m.Value) > MaxPatternBytes {
			return w, abi.Errorf(abi.StatusInvalid, "label matcher %s: regular expression of %d bytes is over the limit of %d", m.Label, len(m.Value), MaxPatternBytes)
		}
		re, err := syntax.Parse(m.Value, syntax.Perl)
		if err != nil {
			return w, abi.Errorf(abi.StatusInvalid, "label matcher %s: %v", m.Label, err)
		}
		if n := maxRepeat(re); n > MaxRepeat {
			return w, abi.Errorf(abi.StatusInvalid, "label matcher %s: repetition count %d is over the limit of %d", m.Label, n, MaxRepeat)
		}
		prog, err := syntax.Compile(re.Simplify())
		if err != nil {
			return w, abi.Errorf(abi.StatusInvalid, "label matcher %s: %v", m.Label, err)
		}
		if n := len(prog.Inst); n > MaxProgram {
			return w, abi.Errorf(abi.StatusInvalid, "label matcher %s: regular expression compiles to %d instructions, over the limit of %d; simplify it", m.Label, n, MaxProgram)
		}
		w.labels = append(w.labels, m.Label)
		w.per = append(w.per, int64(len(prog.Inst)))
	}
	return w, nil
}

// maxRepeat returns the largest repetition count in re.
func maxRepeat(re *syntax.Regexp) int {
	n := 0
	if re.Op == syntax.OpRepeat {
		n = max(re.Min, re.Max)
	}
	for _, sub := range re.Sub {
		n = max(n, maxRepeat(sub))
	}
	return n
}

// Meter counts the work of one call against MatchBudget and ScanBudget.
type Meter struct {
	w           Weights
	match, scan int64
	// Examined counts the records charged so far.
	Examined int
}

// NewMeter returns a Meter for a query with weights w.
func NewMeter(w Weights) *Meter { return &Meter{w: w, match: MatchBudget, scan: ScanBudget} }

// Charge accounts for examining a record of size bytes with labels. It
// returns ErrSpent, charging nothing, when that would go over a budget and
// the call has examined a record already; a call's first record is always
// scanned, so every page makes progress, but if matching it alone is over
// MatchBudget no page could ever hold it, and Charge returns a LIMIT error
// naming the bound.
func (m *Meter) Charge(size int, labels map[string]string) error {
	var match int64
	for i, l := range m.w.labels {
		match += m.w.per[i] * int64(len(labels[l])+1)
	}
	switch {
	case match > MatchBudget && m.Examined == 0:
		return abi.Errorf(abi.StatusLimit, "matching one record's labels would take %d steps, over the per-call limit of %d (label bytes times regular-expression size); use a simpler expression", match, MatchBudget)
	case m.Examined > 0 && (match > m.match || int64(size) > m.scan):
		return ErrSpent
	}
	m.match -= match
	m.scan -= int64(size)
	m.Examined++
	return nil
}
