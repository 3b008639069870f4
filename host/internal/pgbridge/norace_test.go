//go:build !race

package pgbridge

// raceEnabled reports whether the tests run under the race detector,
// which allocates on its own: allocation counts are not measured then.
const raceEnabled = false
