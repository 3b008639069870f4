//go:build !race

package storetest_test

// raceEnabled reports whether the tests run under the race detector, which
// makes the host and its plugins several times slower.
const raceEnabled = false
