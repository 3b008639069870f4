// Package backup copies a backend's records out and back in: a backup
// file in a versioned format (FORMAT.md) written by Backup and checked by
// Verify, Restore into any backend that speaks ABI 1.2's restore, and
// Migrate from one backend to another, resumable, with a final comparison.
//
//	sum, err := backup.BackupFile(ctx, st, "agents.shbk")
//	...
//	got, err := backup.RestoreFile(ctx, other, "agents.shbk", backup.RestoreOptions{Mode: abi.RestoreSkip})
//
// Every record keeps its version (a compare-and-swap with the version
// read before the backup still works after the restore), its timestamps
// and its remaining TTL. A file is verified whole before anything is
// written. A backup of a backend being written is a snapshot as of its
// end, made by replaying the backend's event log after a fuzzy scan
// (Summary.Settled); without the log it is consistent per record only:
// see FORMAT.md.
package backup
