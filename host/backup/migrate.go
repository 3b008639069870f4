package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// MigrateOptions change how Migrate copies.
type MigrateOptions struct {
	// Mode says what happens when the target holds a record with the key
	// of one of the source's, and a different content: abi.RestoreFail
	// refuses (a fresh migration checks every key before it writes
	// anything), abi.RestoreSkip keeps the target's record,
	// abi.RestoreOverwrite replaces it. A target record equal to the
	// source's counts as copied in every mode, which is what makes a
	// resumed or repeated migration safe.
	// Default: abi.RestoreFail.
	Mode abi.RestoreMode
	// State is the checkpoint file. After each page copied, Migrate
	// writes there (atomically) how far it got; given the same file
	// again, it resumes after the last page recorded. It removes the file
	// once the migration has finished. Empty: no checkpoint, and an
	// interrupted migration starts over.
	State string
	// Progress, when set, is called as the migration advances: while it
	// counts, after each page copied, and while it compares.
	Progress func(MigrateProgress)
}

// Phases of a migration, as MigrateProgress.Phase names them.
const (
	PhaseCount   = "count"
	PhaseCopy    = "copy"
	PhaseCompare = "compare"
)

// MigrateProgress says how far a migration is.
type MigrateProgress struct {
	// Phase is PhaseCount, PhaseCopy or PhaseCompare.
	Phase string
	// Done counts the source records handled in this phase so far, Total
	// the source's records (counted first; zero while counting).
	Done, Total int64
}

// MigrateSummary says what a migration did.
type MigrateSummary struct {
	// Resumed is set when the migration went on from a checkpoint.
	Resumed bool
	// Total are the source's records, counted when the migration began.
	Total Counts
	// Copied are the records the target holds as the source does: written,
	// or found equal there.
	Copied Counts
	// Skipped are the records whose key the target held with another
	// content, which it kept (abi.RestoreSkip).
	Skipped Counts
	// Expired are the records whose TTL ran out during the migration.
	Expired Counts
	// Source and Target are the digests of both backends once the copy
	// was over.
	Source, Target Digests
	// Took is how long the migration ran, the earlier runs of a resumed
	// one excluded.
	Took time.Duration
}

// ErrMismatch is returned by Migrate when, after the copy, the target's
// records differ from the source's (counts or checksums).
var ErrMismatch = errors.New("backup: the target's records differ from the source's")

// checkpoint is the content of MigrateOptions.State.
type checkpoint struct {
	Format int    `json:"format"`
	From   string `json:"from"`
	To     string `json:"to"`
	Mode   string `json:"mode"`
	// Kind is the kind being copied, Cursor the source's cursor of its
	// next page; Done is set once every kind is copied.
	Kind    abi.RecordKind `json:"kind"`
	Cursor  []byte         `json:"cursor"`
	Done    bool           `json:"done"`
	Total   Counts         `json:"total"`
	Copied  Counts         `json:"copied"`
	Skipped Counts         `json:"skipped"`
	Expired Counts         `json:"expired"`
	Updated time.Time      `json:"updated"`
}

const checkpointFormat = 1

// Migrate copies every record of from into to, page by page, keeping each
// record's version, timestamps and expiry (the same instant: both
// backends run on this host's clock), then reads both backends again and
// compares their digests (DigestStore): counts and checksums per kind.
// It returns ErrMismatch when they differ, which happens when the target
// held records of its own, or when the source was written during the
// migration.
//
// Interrupted (ctx ends, the process dies), it can resume: see
// MigrateOptions.State. The page that was being copied is copied again;
// records it had already written are found equal and counted once.
func Migrate(ctx context.Context, from, to *host.Store, opts MigrateOptions) (MigrateSummary, error) {
	started := time.Now()
	if opts.Mode == 0 {
		opts.Mode = abi.RestoreFail
	}
	if !opts.Mode.Valid() {
		return MigrateSummary{}, fmt.Errorf("backup: unknown restore mode %d", opts.Mode)
	}
	if err := canList(from); err != nil {
		return MigrateSummary{}, err
	}
	progress := func(phase string, done, total int64) {
		if opts.Progress != nil {
			opts.Progress(MigrateProgress{Phase: phase, Done: done, Total: total})
		}
	}
	cp, resumed, err := loadCheckpoint(opts.State, from.Name(), to.Name(), opts.Mode)
	if err != nil {
		return MigrateSummary{}, err
	}
	if !resumed {
		cp.Total, err = countAndCheck(ctx, from, to, opts.Mode, func(n int64) { progress(PhaseCount, n, 0) })
		if err != nil {
			return MigrateSummary{}, interrupted(ctx, err, "")
		}
		if err := saveCheckpoint(opts.State, cp); err != nil {
			return MigrateSummary{}, err
		}
	} else if err := canRestore(to, cp.Total); err != nil {
		return MigrateSummary{}, err
	}
	sum := func() MigrateSummary {
		return MigrateSummary{Resumed: resumed, Total: cp.Total, Copied: cp.Copied, Skipped: cp.Skipped, Expired: cp.Expired, Took: time.Since(started)}
	}
	handled := func() int64 { return cp.Copied.Total() + cp.Skipped.Total() + cp.Expired.Total() }

	pg := newPager(ctx, from, position{kind: cp.Kind, cursor: cp.Cursor, done: cp.Done})
	defer pg.close()
	for {
		if err := ctx.Err(); err != nil {
			return sum(), interrupted(ctx, err, opts.State)
		}
		f, ok := pg.next()
		if !ok {
			break
		}
		if f.err != nil {
			return sum(), interrupted(ctx, f.err, opts.State)
		}
		if err := copyPage(ctx, to, f.recs, opts.Mode, cp); err != nil {
			return sum(), interrupted(ctx, err, opts.State)
		}
		cp.Kind, cp.Cursor, cp.Done = f.after.kind, f.after.cursor, f.after.done
		if err := saveCheckpoint(opts.State, cp); err != nil {
			return sum(), err
		}
		progress(PhaseCopy, handled(), cp.Total.Total())
	}
	if !cp.Done {
		// The source stores none of the kinds left.
		cp.Done = true
		if err := saveCheckpoint(opts.State, cp); err != nil {
			return sum(), err
		}
	}

	out := sum()
	progress(PhaseCompare, 0, cp.Total.Total())
	var g errgroup.Group
	g.Go(func() (err error) { out.Source, err = DigestStore(ctx, from); return err })
	g.Go(func() (err error) { out.Target, err = DigestStore(ctx, to); return err })
	if err := g.Wait(); err != nil {
		return out, interrupted(ctx, err, opts.State)
	}
	progress(PhaseCompare, cp.Total.Total(), cp.Total.Total())
	out.Took = time.Since(started)
	if opts.State != "" {
		if err := os.Remove(opts.State); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return out, fmt.Errorf("backup: removing the checkpoint: %w", err)
		}
	}
	if out.Source != out.Target {
		return out, fmt.Errorf("%w: %s", ErrMismatch, diff(&out.Source, &out.Target))
	}
	return out, nil
}

// diff describes how two sets of digests differ.
func diff(src, dst *Digests) string {
	var msg string
	for _, k := range kinds {
		s, d := src.Of(k), dst.Of(k)
		if *s == *d {
			continue
		}
		if msg != "" {
			msg += "; "
		}
		if s.Count != d.Count {
			msg += fmt.Sprintf("%ss: the source holds %d, the target %d", k, s.Count, d.Count)
		} else {
			msg += fmt.Sprintf("%ss: %d on both sides, with different contents", k, s.Count)
		}
	}
	return msg
}

// interrupted adds to an error how to resume, and the context's error
// when it ended (a backend may report it as its own failure).
func interrupted(ctx context.Context, err error, state string) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %v", cerr, err)
	}
	if state == "" {
		return err
	}
	return fmt.Errorf("%w (the checkpoint in %s resumes the migration)", err, state)
}

// countAndCheck counts the source's records by kind, and, with mode fail,
// checks that the target holds none of their keys with another content.
func countAndCheck(ctx context.Context, from, to *host.Store, mode abi.RestoreMode, progress func(int64)) (Counts, error) {
	var (
		c         Counts
		mu        sync.Mutex
		conflicts int64
		first     string
	)
	pg := newPager(ctx, from, position{kind: abi.KindMetric})
	defer pg.close()
	for {
		f, ok := pg.next()
		if !ok {
			break
		}
		if f.err != nil {
			return c, f.err
		}
		c.add(f.kind, int64(len(f.recs)))
		// A target that cannot take the kind is refused below, if the
		// source holds any.
		if mode == abi.RestoreFail && to.Metadata().Features.Has(f.kind.Feature()|abi.FeatureBatch) {
			err := inChunks(ctx, f.recs, func(ctx context.Context, chunk []*Record) error {
				there, err := existing(ctx, to, chunk)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				for j, t := range there {
					if t != nil && !sameRecord(t, chunk[j]) {
						if conflicts == 0 {
							it := chunk[j].restore(time.Time{}, mode)
							first = describe(&it)
						}
						conflicts++
					}
				}
				return nil
			})
			if err != nil {
				return c, err
			}
		}
		progress(c.Total())
	}
	if err := canRestore(to, c); err != nil {
		return c, err
	}
	if conflicts > 0 {
		return c, fmt.Errorf("%w: backend %s holds %d records with the keys of %s's and other contents (the first: %s); nothing was written; migrate with mode skip or overwrite to choose",
			ErrExists, to.Name(), conflicts, from.Name(), first)
	}
	return c, nil
}

// writeChunk is the size of the batches a migration sends to the target,
// and writers the most it has in flight: a Redis backend spends most of a
// batch's time waiting for the server, and four batches at once copy
// twice as fast as one.
const (
	writeChunk = 250
	writers    = 4
)

// inChunks calls fn on recs in chunks of writeChunk records, or fewer
// once they hold chunkBytes, writers at a time, and returns the first
// error.
func inChunks(ctx context.Context, recs []Record, fn func(context.Context, []*Record) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(writers)
	ptrs := make([]*Record, len(recs))
	for i := range recs {
		ptrs[i] = &recs[i]
	}
	for lo := 0; lo < len(ptrs); {
		hi, size := lo, 0
		for hi < len(ptrs) && hi-lo < writeChunk && size < chunkBytes {
			size += ptrs[hi].size()
			hi++
		}
		chunk := ptrs[lo:hi]
		g.Go(func() error { return fn(ctx, chunk) })
		lo = hi
	}
	return g.Wait()
}

// copyPage restores one page of the source into to and counts it in cp.
// The counts change only once the whole page is in: a page that fails is
// copied again, whole, when the migration resumes.
func copyPage(ctx context.Context, to *host.Store, recs []Record, mode abi.RestoreMode, cp *checkpoint) error {
	var (
		mu                       sync.Mutex
		copied, skipped, expired Counts
	)
	err := inChunks(ctx, recs, func(ctx context.Context, chunk []*Record) error {
		c, s, e, err := copyChunk(ctx, to, chunk, mode)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, k := range kinds {
			copied.add(k, c.Of(k))
			skipped.add(k, s.Of(k))
			expired.add(k, e.Of(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range kinds {
		cp.Copied.add(k, copied.Of(k))
		cp.Skipped.add(k, skipped.Of(k))
		cp.Expired.add(k, expired.Of(k))
	}
	return nil
}

// copyChunk restores recs into to, each with its own expiry, and counts
// them: written or found equal, kept different (skip), expired.
func copyChunk(ctx context.Context, to *host.Store, recs []*Record, mode abi.RestoreMode) (copied, skipped, expired Counts, err error) {
	now := time.Now()
	items := make([]host.Restore, 0, len(recs))
	live := make([]*Record, 0, len(recs))
	for _, r := range recs {
		if at := r.expiresAt(); !at.IsZero() && !at.After(now) {
			expired.add(r.Kind, 1)
			continue
		}
		items = append(items, abi.Restore{Kind: r.Kind, Metric: r.Metric, Alert: r.Alert, State: r.State, Mode: mode})
		live = append(live, r)
	}
	if len(items) == 0 {
		return
	}
	res, err := to.Restore(ctx, items)
	if err != nil {
		return copied, skipped, expired, fmt.Errorf("backup: restoring into %s: %w", to.Name(), err)
	}
	after := time.Now()
	var check []*Record // written false or conflict: equal or not?
	for j, r := range res {
		switch {
		case r.Err == nil && r.Value:
			copied.add(live[j].Kind, 1)
		case r.Err == nil && items[j].Expired(after):
			expired.add(live[j].Kind, 1)
		case r.Err == nil, errors.Is(r.Err, host.ErrConflict) && mode == abi.RestoreFail:
			check = append(check, live[j])
		default:
			return copied, skipped, expired, fmt.Errorf("backup: restoring %s into %s: %w", describe(&items[j]), to.Name(), r.Err)
		}
	}
	if len(check) == 0 {
		return
	}
	there, err := existing(ctx, to, check)
	if err != nil {
		return copied, skipped, expired, err
	}
	for j, t := range there {
		switch {
		case t != nil && sameRecord(t, check[j]):
			copied.add(check[j].Kind, 1)
		case t == nil:
			// Gone since: it expired, or someone deleted it.
			expired.add(check[j].Kind, 1)
		case mode == abi.RestoreSkip:
			skipped.add(check[j].Kind, 1)
		default:
			it := check[j].restore(time.Time{}, mode)
			return copied, skipped, expired, fmt.Errorf("%w: backend %s holds %s with another content", ErrExists, to.Name(), describe(&it))
		}
	}
	return
}

// loadCheckpoint reads the checkpoint at path, if there is one, and checks
// it is for this migration; otherwise it returns a new one.
func loadCheckpoint(path, from, to string, mode abi.RestoreMode) (*checkpoint, bool, error) {
	fresh := &checkpoint{Format: checkpointFormat, From: from, To: to, Mode: mode.String(), Kind: abi.KindMetric}
	if path == "" {
		return fresh, false, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fresh, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("backup: checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, false, fmt.Errorf("backup: checkpoint %s: %w", path, err)
	}
	switch {
	case cp.Format != checkpointFormat:
		return nil, false, fmt.Errorf("backup: checkpoint %s: format %d, this host reads %d", path, cp.Format, checkpointFormat)
	case cp.From != from || cp.To != to:
		return nil, false, fmt.Errorf("backup: checkpoint %s is of a migration from %s to %s, not from %s to %s", path, cp.From, cp.To, from, to)
	case cp.Mode != mode.String():
		return nil, false, fmt.Errorf("backup: checkpoint %s is of a migration in mode %s, not %s", path, cp.Mode, mode)
	case !cp.Done && !cp.Kind.Valid():
		return nil, false, fmt.Errorf("backup: checkpoint %s: unknown record kind %d", path, cp.Kind)
	}
	return &cp, true, nil
}

// saveCheckpoint replaces the checkpoint at path, atomically: a crash
// leaves the old one or the new one.
func saveCheckpoint(path string, cp *checkpoint) error {
	if path == "" {
		return nil
	}
	cp.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return fmt.Errorf("backup: checkpoint: %w", err)
	}
	if err := writeFileAtomic(path, func(f *os.File) error {
		_, err := f.Write(append(b, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("backup: checkpoint: %w", err)
	}
	return nil
}

// writeFileAtomic creates path by writing a temporary file beside it
// (path + ".tmp"), syncing it and renaming it over path: a reader sees
// the old file or the whole new one, never a part. On error the
// temporary file is removed and path is left as it was.
func writeFileAtomic(path string, write func(*os.File) error) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename is durable once the directory is synced; not every
	// system can sync a directory, and the file is whole either way.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
