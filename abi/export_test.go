package abi

// MaxReplyDepth exports maxReplyDepth to the tests of package abi_test,
// which check the decoder and README.md against it.
const MaxReplyDepth = maxReplyDepth

// Bounds on what a PGResultsBuffer keeps, for package abi_test.
const (
	MaxKeptPGResults = maxKeptPGResults
	MaxKeptPGValues  = maxKeptPGValues
)

// KeptPGStorage returns the storage b keeps for its next Decode, each
// slice to its full capacity.
func KeptPGStorage(b *PGResultsBuffer) ([]PGResult, []PGValue) {
	return b.results[:cap(b.results)], b.values[:cap(b.values)]
}
