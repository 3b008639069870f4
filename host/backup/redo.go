package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// The redo rounds of a backup: after its scan, Backup replays the
// backend's event log, re-reading every record written since the scan
// began, until a round finds nothing new.
const (
	// maxRounds bounds the redo rounds: a backend written faster than a
	// round re-reads is backed up unsettled rather than forever.
	maxRounds = 5
	// roundTimeout bounds the wait for one round's events.
	roundTimeout = 30 * time.Second
)

// errNoLog says the event log cannot serve the redo: events disabled,
// the position lost, the log unavailable. The backup goes on unsettled.
var errNoLog = errors.New("backup: no event log to replay")

// logPosition returns the position of st's event log now.
func logPosition(ctx context.Context, st *host.Store) (string, error) {
	sub, err := st.Subscribe(ctx, events.Filter{}, "")
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: %w", errNoLog, err)
	}
	defer sub.Close()
	return sub.Start(), nil
}

// redo writes override and tombstone frames until the records bw holds
// are those of st as of one log position, which it returns with settled
// true; after maxRounds rounds, or when the log cannot serve, it returns
// settled false. from is the position taken before the scan. Only an
// error reading st or of ctx fails it.
func redo(ctx context.Context, st *host.Store, bw *Writer, from string) (pos string, settled bool, err error) {
	for round := 0; round < maxRounds; round++ {
		to, err := logPosition(ctx, st)
		if err != nil {
			return "", false, noLog(err)
		}
		if to == from {
			return to, true, nil
		}
		keys, err := changed(ctx, st, from, to)
		if err != nil {
			return "", false, noLog(err)
		}
		if len(keys) == 0 {
			return to, true, nil
		}
		if err := reread(ctx, st, bw, keys); err != nil {
			return "", false, err
		}
		from = to
	}
	return "", false, nil
}

// noLog turns errNoLog into no error: the backup goes on unsettled.
func noLog(err error) error {
	if errors.Is(err, errNoLog) {
		return nil
	}
	return err
}

// changed returns the distinct records changed by the events in
// (from, to], in the order of their first change. Plugin events are
// ignored.
func changed(ctx context.Context, st *host.Store, from, to string) ([]recKey, error) {
	rctx, cancel := context.WithTimeout(ctx, roundTimeout)
	defer cancel()
	sub, err := st.Subscribe(rctx, events.Filter{}, from)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", errNoLog, err)
	}
	defer sub.Close()
	var (
		keys []recKey
		seen = map[recKey]bool{}
	)
	for ev := range sub.Events() {
		if k, ok := eventKey(&ev); ok && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		if ev.ID == to {
			return keys, nil
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w: the subscription ended before %s: %v", errNoLog, to, sub.Err())
}

// eventKey returns the record ev changed; ok is false for a plugin's own
// event.
func eventKey(ev *events.Event) (recKey, bool) {
	switch ev.Kind {
	case abi.KindAlert.Name():
		return recKey{kind: abi.KindAlert, a: ev.Key}, ev.Key != ""
	case abi.KindAgentState.Name():
		return recKey{kind: abi.KindAgentState, a: ev.Key}, ev.Key != ""
	case abi.KindMetric.Name():
		// The key is name@timestamp; a name may hold '@', a timestamp not.
		i := strings.LastIndexByte(ev.Key, '@')
		if i < 0 {
			return recKey{}, false
		}
		ts, err := time.Parse(time.RFC3339Nano, ev.Key[i+1:])
		if err != nil {
			return recKey{}, false
		}
		return recKey{kind: abi.KindMetric, a: ev.AgentID, b: ev.Key[:i], ts: ts.UnixNano()}, true
	}
	return recKey{}, false
}

// reread reads each of keys from st now and writes it to bw as an
// override frame, or a tombstone when st no longer holds it (deleted, or
// expired).
func reread(ctx context.Context, st *host.Store, bw *Writer, keys []recKey) error {
	for len(keys) > 0 {
		n := min(len(keys), chunkSize)
		batch := make([]*Record, n)
		for i, k := range keys[:n] {
			batch[i] = k.record()
		}
		cur, err := existing(ctx, st, batch)
		if err != nil {
			return err
		}
		now := time.Now()
		for i, rec := range cur {
			if rec == nil || rec.setTTL(now) {
				err = bw.Write(keys[i].record())
			} else {
				rec.Override = true
				err = bw.Write(rec)
			}
			if err != nil {
				return err
			}
		}
		keys = keys[n:]
	}
	return nil
}
