package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// chunkSize is the most records sent to a backend in one Restore batch.
const chunkSize = 500

// chunkBytes is about the most record bytes one Restore batch carries
// (a batch holds one record at least): a batch is one request, which
// the backend's plugin holds in its memory with what it makes of it (the
// redis plugin: the script call built from it), and keeps buffers of its
// size for later calls, beside which it reads pages of records. 500
// agent states of 1 MiB would not fit in a 64 MiB instance; batches of
// 4 MiB left a redis plugin's instance too full to answer a page of
// them afterwards (TestMigrateLargeRecords).
const chunkBytes = 1 << 20

// size is about what r adds to a batch: its IDs, document, message and
// labels.
func (r *Record) size() int {
	n := 64
	switch r.Kind {
	case abi.KindMetric:
		n += len(r.Metric.AgentID) + len(r.Metric.Name) + labelsSize(r.Metric.Labels)
	case abi.KindAlert:
		n += len(r.Alert.ID) + len(r.Alert.AgentID) + len(r.Alert.Message) + labelsSize(r.Alert.Labels)
	case abi.KindAgentState:
		n += len(r.State.AgentID) + len(r.State.State)
	}
	return n
}

func labelsSize(l map[string]string) int {
	n := 0
	for k, v := range l {
		n += len(k) + len(v) + 2
	}
	return n
}

// chunker collects records into batches of chunkSize records, or fewer
// once they hold chunkBytes.
type chunker struct {
	recs  []*Record
	bytes int
}

// add adds r and reports whether the batch is full.
func (c *chunker) add(r *Record) bool {
	c.recs = append(c.recs, r)
	c.bytes += r.size()
	return len(c.recs) == chunkSize || c.bytes >= chunkBytes
}

func (c *chunker) reset() { c.recs, c.bytes = c.recs[:0], 0 }

// RestoreOptions change how Restore writes.
type RestoreOptions struct {
	// Mode says what happens to a record of the backup whose key the
	// backend already holds: abi.RestoreFail refuses the whole restore
	// before anything is written (it checks every key first),
	// abi.RestoreSkip keeps the backend's record, abi.RestoreOverwrite
	// replaces it.
	// Default: abi.RestoreFail.
	Mode abi.RestoreMode
	// Progress, when set, is called after each batch written.
	Progress func(RestoreProgress)
	// KeepExpiry counts each record's TTL from when the backup was made
	// (Header.Created) rather than from the restore: a record expires
	// when it would have had it stayed in the backend (a little earlier:
	// by up to the time the backup took to read), and one whose time is
	// up is not restored. For a backend brought back after a restart.
	// Default: false, TTLs count from the restore.
	KeepExpiry bool
}

// RestoreProgress says how far a restore is.
type RestoreProgress struct {
	// Done counts the records of the file handled so far (written,
	// skipped or expired); Total those it holds.
	Done, Total int64
}

// RestoreSummary says what a restore did.
type RestoreSummary struct {
	// File describes the backup restored.
	File Summary
	// Written are the records written.
	Written Counts
	// Skipped are the records left alone because the backend held a
	// record with the same key (abi.RestoreSkip).
	Skipped Counts
	// Expired are the records whose TTL ran out before they were written.
	Expired Counts
}

// ErrExists is returned by a restore in abi.RestoreFail mode when the
// backend already holds records the backup has. It matches
// host.ErrConflict.
var ErrExists = fmt.Errorf("%w: the backend already holds records of the backup", host.ErrConflict)

// RestoreFile restores the backup file at path into st; see Restore.
func RestoreFile(ctx context.Context, st *host.Store, path string, opts RestoreOptions) (RestoreSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return RestoreSummary{}, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	return Restore(ctx, st, f, opts)
}

// Restore writes the records of the backup file src into st, each with
// its version, timestamps and what was left of its TTL when the backup was
// made (counted from now). It reads the whole file and checks it (Verify)
// before it writes anything: a damaged file restores nothing. Records go
// to the backend in batches of at most 500 (host.Store.Restore); an error
// from the backend stops the restore, and what was written stays.
//
// Of a version 2 file it restores the snapshot: the last frame of a key
// wins, and a key whose last frame is a tombstone is absent from the
// snapshot, so Restore does not create it (it deletes nothing in st).
// Verify's pass collects the keys of the redo frames and the index of
// each one's last frame; the writing pass skips the frames they
// supersede.
//
// The backend needs the restore and batch features and the feature of
// every kind of record the file holds.
func Restore(ctx context.Context, st *host.Store, src io.ReadSeeker, opts RestoreOptions) (RestoreSummary, error) {
	if opts.Mode == 0 {
		opts.Mode = abi.RestoreFail
	}
	if !opts.Mode.Valid() {
		return RestoreSummary{}, fmt.Errorf("backup: unknown restore mode %d", opts.Mode)
	}
	start, err := src.Seek(0, io.SeekCurrent)
	if err != nil {
		return RestoreSummary{}, fmt.Errorf("backup: %w", err)
	}
	file, last, err := verify(src, true)
	if err != nil {
		return RestoreSummary{}, err
	}
	sum := RestoreSummary{File: file}
	if err := canRestore(st, file.Counts); err != nil {
		return sum, err
	}
	rewind := func() (*Reader, error) {
		if _, err := src.Seek(start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		return NewReader(src)
	}
	if opts.Mode == abi.RestoreFail {
		r, err := rewind()
		if err != nil {
			return sum, err
		}
		if err := checkAbsent(ctx, st, r, last); err != nil {
			return sum, err
		}
	}
	r, err := rewind()
	if err != nil {
		return sum, err
	}
	var (
		chunk chunker
		done  int64
		dead  int64 // superseded frames since the last flush
		frame int64 // index of the next frame
	)
	flush := func() error {
		if len(chunk.recs) == 0 && dead == 0 {
			return nil
		}
		from := time.Now()
		if opts.KeepExpiry {
			from = file.Header.Created
		}
		var res []restResult
		if len(chunk.recs) > 0 {
			var err error
			if res, err = restoreChunk(ctx, st, chunk.recs, opts.Mode, from); err != nil {
				return err
			}
		}
		for i, r := range res {
			switch r {
			case restWritten:
				sum.Written.add(chunk.recs[i].Kind, 1)
			case restExisted:
				sum.Skipped.add(chunk.recs[i].Kind, 1)
			case restExpired:
				sum.Expired.add(chunk.recs[i].Kind, 1)
			}
		}
		done += int64(len(chunk.recs)) + dead
		chunk.reset()
		dead = 0
		if opts.Progress != nil {
			opts.Progress(RestoreProgress{Done: done, Total: file.Counts.Total()})
		}
		return nil
	}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The file changed since it was verified.
			return sum, err
		}
		frame++
		if last.superseded(frame-1, rec) {
			if !rec.Tombstone {
				dead++
			}
			continue
		}
		if chunk.add(rec) {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
	return sum, flush()
}

// canRestore checks that st can take the kinds of record c counts.
func canRestore(st *host.Store, c Counts) error {
	f := st.Metadata().Features
	if !f.Has(abi.FeatureRestore | abi.FeatureBatch) {
		return fmt.Errorf("backup: backend %s cannot restore records (its plugin %s %s lacks the restore or batch feature of ABI 1.2)",
			st.Name(), st.Metadata().Name, st.Metadata().Version)
	}
	for _, k := range kinds {
		if c.Of(k) > 0 && !f.Has(k.Feature()) {
			return fmt.Errorf("backup: backend %s does not store %ss, and the backup holds %d", st.Name(), k, c.Of(k))
		}
	}
	return nil
}

// What happened to one record of a restore.
type restResult uint8

const (
	restWritten restResult = iota
	restExisted            // a record with its key was there (skip mode)
	restExpired            // its TTL ran out before it was written
)

// restoreChunk restores recs (at most chunkSize), expiring each its TTL
// after from. An item error fails the chunk.
func restoreChunk(ctx context.Context, st *host.Store, recs []*Record, mode abi.RestoreMode, from time.Time) ([]restResult, error) {
	items := make([]host.Restore, len(recs))
	for i, r := range recs {
		items[i] = r.restore(from, mode)
	}
	return restoreItems(ctx, st, items)
}

func restoreItems(ctx context.Context, st *host.Store, items []host.Restore) ([]restResult, error) {
	res, err := st.Restore(ctx, items)
	if err != nil {
		return nil, fmt.Errorf("backup: restoring into %s: %w", st.Name(), err)
	}
	after := time.Now()
	out := make([]restResult, len(items))
	for i, r := range res {
		switch {
		case r.Err != nil:
			return nil, fmt.Errorf("backup: restoring %s into %s: %w", describe(&items[i]), st.Name(), r.Err)
		case r.Value:
			out[i] = restWritten
		case items[i].Expired(after):
			out[i] = restExpired
		default:
			out[i] = restExisted
		}
	}
	return out, nil
}

// describe names the record of it for an error message.
func describe(it *host.Restore) string {
	switch it.Kind {
	case abi.KindMetric:
		return fmt.Sprintf("metric %s/%s@%s", it.Metric.AgentID, it.Metric.Name, it.Metric.Timestamp.UTC().Format(time.RFC3339Nano))
	case abi.KindAlert:
		return fmt.Sprintf("alert %s", it.Alert.ID)
	case abi.KindAgentState:
		return fmt.Sprintf("agent state %s", it.State.AgentID)
	}
	return it.Kind.String()
}

// checkAbsent returns ErrExists, with how many and the first, if st holds
// a record with the key of one in r.
func checkAbsent(ctx context.Context, st *host.Store, r *Reader, last lastFrames) error {
	var (
		chunk chunker
		found int64
		first string
		frame int64
	)
	flush := func() error {
		if len(chunk.recs) == 0 {
			return nil
		}
		exist, err := existing(ctx, st, chunk.recs)
		if err != nil {
			return err
		}
		for i, e := range exist {
			if e != nil {
				if found == 0 {
					it := chunk.recs[i].restore(time.Time{}, abi.RestoreFail)
					first = describe(&it)
				}
				found++
			}
		}
		chunk.reset()
		return nil
	}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		frame++
		if last.superseded(frame-1, rec) {
			continue
		}
		if chunk.add(rec) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if found > 0 {
		return fmt.Errorf("%w: backend %s holds %d of its records (the first: %s); nothing was written; restore with mode skip or overwrite to choose", ErrExists, st.Name(), found, first)
	}
	return nil
}

// readBack reads the records of recs at idx, all of one kind, with one
// bulk get, and sets out at each index to the record found there; a
// missing record leaves it nil.
func readBack[K, V any](ctx context.Context, recs []*Record, idx []int, out []*Record,
	get func(context.Context, []K) ([]host.Result[V], error), key func(*Record) K, found func(V) *Record) error {
	keys := make([]K, len(idx))
	for j, i := range idx {
		keys[j] = key(recs[i])
	}
	res, err := get(ctx, keys)
	if err != nil {
		return err
	}
	// Items a backend answers LIMIT in a batch of several (their records
	// would not fit in its answer beside the others: the redis plugin's)
	// are read again in another batch, or two halves when none of the
	// batch was answered; a record alone answers its own.
	var again []int
	for j, r := range res {
		switch {
		case r.Err == nil:
			out[idx[j]] = found(r.Value)
		case errors.Is(r.Err, host.ErrLimit) && len(idx) > 1:
			again = append(again, idx[j])
		case !errors.Is(r.Err, host.ErrNotFound):
			return r.Err
		}
	}
	if len(again) == 0 {
		return nil
	}
	if len(again) < len(idx) {
		return readBack(ctx, recs, again, out, get, key, found)
	}
	half := len(again) / 2
	if err := readBack(ctx, recs, again[:half], out, get, key, found); err != nil {
		return err
	}
	return readBack(ctx, recs, again[half:], out, get, key, found)
}

// existing returns, for each of recs (all of one batch), the record st
// holds with its key, or nil.
func existing(ctx context.Context, st *host.Store, recs []*Record) ([]*Record, error) {
	out := make([]*Record, len(recs))
	for _, k := range kinds {
		var idx []int
		for i, r := range recs {
			if r.Kind == k {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		var err error
		switch k {
		case abi.KindMetric:
			err = readBack(ctx, recs, idx, out, st.GetMetrics, func(r *Record) host.MetricKey { return r.Metric.Key() },
				func(m host.Metric) *Record { return &Record{Kind: k, Metric: m} })
		case abi.KindAlert:
			err = readBack(ctx, recs, idx, out, st.GetAlerts, func(r *Record) string { return r.Alert.ID },
				func(a host.Alert) *Record { return &Record{Kind: k, Alert: a} })
		case abi.KindAgentState:
			err = readBack(ctx, recs, idx, out, st.GetAgentStates, func(r *Record) string { return r.State.AgentID },
				func(v host.AgentState) *Record { return &Record{Kind: k, State: v} })
		}
		if err != nil {
			return nil, fmt.Errorf("backup: reading %ss of %s: %w", k, st.Name(), err)
		}
	}
	return out, nil
}
