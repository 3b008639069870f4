package main

// Fallback, the sweep: once the queue is empty, ticks delete what
// replayed writes left in kv. See fallback.go for the design.

import (
	"encoding/binary"

	"github.com/storage-host/storage-host/abi"
)

// sweep deletes, up to sweepBudget entries, what replayed writes left in
// kv: the queue entries and the r/ entries of settled writes (below
// settled; an r/ entry kv IfVersion, so that one a newer write set is
// kept). None of them is read as pending meanwhile (their seq is below
// head). It
// reports whether it stopped at its budget with entries left to look at.
func (f *fallback) sweep() (more bool) {
	budget := sweepBudget
	// Entries from settled on are kept until the tick after the one
	// that replayed them: a resumed tick reports them again (resume).
	f.qk = appendQueueKey(f.qk[:0], f.settled)
	for budget > 0 {
		ents, _, err := f.kv.Scan(kvQueue, f.qk, min(sweepScan, budget))
		if err != nil || len(ents) == 0 {
			break
		}
		f.keep(ents, false)
		for _, g := range f.garbage {
			_ = f.kv.Delete(g.key, abi.Condition{})
		}
		budget -= len(ents)
	}
	for budget > 0 {
		start := f.sweepAt
		if len(start) == 0 {
			start = kvRecords
		}
		ents, next, err := f.kv.Scan(start, kvRecordsEnd, min(sweepScan, budget))
		if err != nil {
			break
		}
		f.sweepAt = append(f.sweepAt[:0], next...)
		f.keep(ents, true)
		for _, g := range f.garbage {
			_ = f.kv.Delete(g.key, abi.Condition{Mode: abi.IfVersion, Version: g.rev})
		}
		budget -= max(len(ents), 1)
		if len(next) == 0 {
			return false
		}
	}
	return budget <= 0
}

// keep copies into f.garbage the entries of ents to delete: all of them,
// or with records set only the r/ entries of settled writes. The
// copies outlive the scan's buffer, which the deletes reuse.
func (f *fallback) keep(ents []abi.KVEntry, records bool) {
	f.garbage = f.garbage[:0]
	f.arena = f.arena[:0]
	for i := range ents {
		if records {
			if s, n := binary.Uvarint(ents[i].Value); n <= 0 || s >= f.settled {
				continue
			}
		}
		lo := len(f.arena)
		f.arena = append(f.arena, ents[i].Key...)
		f.garbage = append(f.garbage, kvRef{key: f.arena[lo:len(f.arena):len(f.arena)], rev: ents[i].Revision})
	}
}
