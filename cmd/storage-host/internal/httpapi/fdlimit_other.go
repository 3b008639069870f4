//go:build !unix

package httpapi

// fdLimit returns the process's soft limit on open files, 0 if unknown.
func fdLimit() uint64 { return 0 }
