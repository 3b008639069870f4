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

// pageSize is the query limit used to read a backend: abi.MaxQueryLimit.
const pageSize = 1000

// Options bound a backup. A backend's plugin decides how many pages its
// queries take and what they hold; the bounds make sure a backup of one
// that never ends (or that holds far more than expected) stops, with an
// error matching host.ErrLimit, instead of filling the disk.
type Options struct {
	// MaxBytes bounds the backup file's size: a backup that would write
	// more stops there, having written at most MaxBytes bytes. 0 means
	// DefaultMaxBytes; a negative value, no bound.
	MaxBytes int64
	// MaxDuration bounds the backup's time, the replay of the event log
	// included. 0 means DefaultMaxDuration; a negative value, no bound.
	MaxDuration time.Duration
}

// The bounds Options take by default.
const (
	DefaultMaxBytes    = 16 << 30 // 16 GiB
	DefaultMaxDuration = time.Hour
)

func (o Options) withDefaults() Options {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxDuration == 0 {
		o.MaxDuration = DefaultMaxDuration
	}
	return o
}

// Backup writes every record of st to w as a backup file and returns its
// summary, within the default Options. It reads the backend with its queries, page by page (metrics,
// then alerts, then agent states), so it needs the query feature for each
// kind the backend stores. Records that expire while it reads are left
// out.
//
// The backup is a snapshot of the backend as of its end: the scan is
// fuzzy, but Backup then replays the backend's event log from where it
// stood before the scan, re-reading every record written meanwhile and
// appending its value (or its absence) until a round of the replay finds
// no new writes; Summary.Settled and Summary.Position say so. When the
// backend's events are disabled, or the log no longer holds the start of
// the scan, or writes keep coming for five rounds, the backup is still
// written, consistent per record only (every record whole, as one read
// returned it), and Settled is false.
func Backup(ctx context.Context, st *host.Store, w io.Writer) (Summary, error) {
	return BackupWith(ctx, st, w, Options{})
}

// errTooLong is the cause of a backup's context ending at MaxDuration.
var errTooLong = errors.New("backup: past its time bound")

// BackupWith is Backup within the bounds of o. A plugin whose query
// answers a cursor it answered before in the same listing fails the
// backup with an error matching host.ErrInternal.
func BackupWith(ctx context.Context, st *host.Store, w io.Writer, o Options) (Summary, error) {
	o = o.withDefaults()
	if o.MaxDuration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.MaxDuration, errTooLong)
		defer cancel()
	}
	if o.MaxBytes > 0 {
		w = &boundedWriter{w: w, left: o.MaxBytes}
	}
	sum, err := backup(ctx, st, w)
	switch {
	case err == nil:
	case errors.Is(err, errOverBound):
		err = fmt.Errorf("backup: backend %s: the backup is over its bound of %d bytes (Options.MaxBytes): %w", st.Name(), o.MaxBytes, host.ErrLimit)
	case errors.Is(context.Cause(ctx), errTooLong):
		err = fmt.Errorf("backup: backend %s: the backup ran past its bound of %v (Options.MaxDuration): %w", st.Name(), o.MaxDuration, host.ErrLimit)
	}
	return sum, err
}

// errOverBound is what a boundedWriter answers past its bound.
var errOverBound = errors.New("backup: over its size bound")

// boundedWriter passes at most left bytes on to w.
type boundedWriter struct {
	w    io.Writer
	left int64
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		return 0, errOverBound
	}
	n, err := b.w.Write(p)
	b.left -= int64(n)
	return n, err
}

func backup(ctx context.Context, st *host.Store, w io.Writer) (Summary, error) {
	meta := st.Metadata()
	if err := canList(st); err != nil {
		return Summary{}, err
	}
	from, err := logPosition(ctx, st)
	if err = noLog(err); err != nil {
		return Summary{}, err
	}
	logged := from != ""
	bw, err := NewWriter(w, Header{
		Created: time.Now(), Backend: st.Name(),
		Plugin: meta.Name, PluginVersion: meta.Version, ABI: meta.ABI,
	})
	if err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	err = scan(ctx, st, func(rec *Record, expired bool) error {
		if expired {
			return nil
		}
		return bw.Write(rec)
	})
	if err != nil {
		return Summary{}, err
	}
	var pos string
	if logged {
		var settled bool
		if pos, settled, err = redo(ctx, st, bw, from); err != nil {
			return Summary{}, err
		}
		if settled {
			bw.Settle(pos)
		}
	}
	return bw.Close()
}

// BackupFile backs st up (Backup) into a new file at path, atomically:
// it writes path + ".tmp", syncs it and renames it over path, so that
// path holds a whole backup or is left as it was.
func BackupFile(ctx context.Context, st *host.Store, path string) (Summary, error) {
	return BackupFileWith(ctx, st, path, Options{})
}

// BackupFileWith is BackupFile within the bounds of o; a backup stopped
// by one leaves path as it was and removes what it wrote.
func BackupFileWith(ctx context.Context, st *host.Store, path string, o Options) (Summary, error) {
	var sum Summary
	err := writeFileAtomic(path, func(f *os.File) error {
		var err error
		sum, err = BackupWith(ctx, st, f, o)
		return err
	})
	return sum, err
}

// canList checks that st can list every kind of record it stores.
func canList(st *host.Store) error {
	f := st.Metadata().Features
	for _, k := range kinds {
		if f.Has(k.Feature()) && !f.Has(abi.FeatureQuery) {
			return fmt.Errorf("backup: backend %s stores %ss but cannot list them (its plugin has no query feature)", st.Name(), k)
		}
	}
	return nil
}

// scan calls fn with every record st holds, kind by kind, with its TTL
// left; expired is true for a record that expired after the query
// returned it.
func scan(ctx context.Context, st *host.Store, fn func(rec *Record, expired bool) error) error {
	pg := newPager(ctx, st, position{kind: abi.KindMetric})
	defer pg.close()
	for {
		f, ok := pg.next()
		if !ok {
			return nil
		}
		if f.err != nil {
			return f.err
		}
		now := time.Now()
		for i := range f.recs {
			expired := f.recs[i].setTTL(now)
			if err := fn(&f.recs[i], expired); err != nil {
				return err
			}
		}
	}
}

// page reads one page of records of kind k from cursor on.
func page(ctx context.Context, st *host.Store, k abi.RecordKind, cursor []byte) ([]Record, []byte, error) {
	var (
		out  []Record
		next []byte
	)
	switch k {
	case abi.KindMetric:
		p, err := st.QueryMetrics(ctx, host.MetricQuery{Limit: pageSize, Cursor: cursor})
		if err != nil {
			return nil, nil, fmt.Errorf("backup: reading metrics of %s: %w", st.Name(), err)
		}
		out = make([]Record, len(p.Items))
		for i := range p.Items {
			out[i] = Record{Kind: k, Metric: p.Items[i]}
		}
		next = p.Next
	case abi.KindAlert:
		p, err := st.QueryAlerts(ctx, host.AlertQuery{Limit: pageSize, Cursor: cursor})
		if err != nil {
			return nil, nil, fmt.Errorf("backup: reading alerts of %s: %w", st.Name(), err)
		}
		out = make([]Record, len(p.Items))
		for i := range p.Items {
			out[i] = Record{Kind: k, Alert: p.Items[i]}
		}
		next = p.Next
	case abi.KindAgentState:
		p, err := st.QueryAgentStates(ctx, host.AgentStateQuery{Limit: pageSize, Cursor: cursor})
		if err != nil {
			return nil, nil, fmt.Errorf("backup: reading agent states of %s: %w", st.Name(), err)
		}
		out = make([]Record, len(p.Items))
		for i := range p.Items {
			out[i] = Record{Kind: k, State: p.Items[i]}
		}
		next = p.Next
	}
	return out, next, nil
}

// expiresAt returns the record's absolute expiry, zero for never.
func (r *Record) expiresAt() time.Time {
	switch r.Kind {
	case abi.KindMetric:
		return r.Metric.ExpiresAt
	case abi.KindAlert:
		return r.Alert.ExpiresAt
	case abi.KindAgentState:
		return r.State.ExpiresAt
	}
	return time.Time{}
}

// setTTL sets TTL from the record's expiry as of now and reports whether
// it has already passed.
func (r *Record) setTTL(now time.Time) (expired bool) {
	at := r.expiresAt()
	if at.IsZero() {
		r.TTL = 0
		return false
	}
	r.TTL = at.Sub(now)
	return r.TTL <= 0
}
