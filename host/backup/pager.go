package backup

import (
	"context"
	"fmt"
	"hash/maphash"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
)

// position is where a scan of a backend stands: the kind being read and
// the cursor of its next page, or done.
type position struct {
	kind   abi.RecordKind
	cursor []byte
	done   bool
}

// settle moves p past the kinds st does not store.
func (p position) settle(st *host.Store) position {
	f := st.Metadata().Features
	for !p.done && !f.Has(p.kind.Feature()) {
		p = p.nextKind()
	}
	return p
}

func (p position) nextKind() position {
	if p.kind >= abi.KindAgentState {
		return position{done: true}
	}
	return position{kind: p.kind + 1}
}

// fetched is one page of a scan and the position after it.
type fetched struct {
	kind  abi.RecordKind
	recs  []Record
	after position
	err   error
}

// pager reads a backend page by page, from a position on, one page ahead
// of its reader: the next page is on its way while the caller handles the
// current one.
type pager struct {
	ctx   context.Context
	stop  context.CancelFunc
	st    *host.Store
	ahead chan fetched // nil once done
	walk  cursorWalk   // used by one fetch at a time
}

// newPager starts reading st from a position on; close ends it.
func newPager(ctx context.Context, st *host.Store, from position) *pager {
	ctx, stop := context.WithCancel(ctx)
	p := &pager{ctx: ctx, stop: stop, st: st, walk: cursorWalk{seed: maphash.MakeSeed()}}
	from = from.settle(st)
	p.walk.start(from.kind, from.cursor)
	p.fetch(from)
	return p
}

// maxCursorsSeen bounds the cursors a walk of one kind remembers (8 bytes
// each); past it, a repeat of the ones remembered, and of the last, is
// still caught, and the backup's bounds of size and time (Options) catch
// the rest.
const maxCursorsSeen = 1 << 16

// cursorWalk remembers the cursors of the pages read of one kind. A
// backend that answers a cursor it gave before would send a client that
// follows next round in a circle for ever (abi/README.md section 13.4:
// the client follows next until it is empty).
type cursorWalk struct {
	seed  maphash.Seed
	kind  abi.RecordKind
	seen  map[uint64]struct{}
	last  uint64
	pages int
}

func (w *cursorWalk) start(k abi.RecordKind, cursor []byte) {
	w.kind, w.pages, w.last = k, 0, 0
	w.seen = make(map[uint64]struct{})
	if len(cursor) > 0 {
		w.last = maphash.Bytes(w.seed, cursor)
		w.seen[w.last] = struct{}{}
	}
}

// step checks the next cursor of a page of the walk's kind (non-empty:
// there is another page).
func (w *cursorWalk) step(st *host.Store, next []byte) error {
	w.pages++
	h := maphash.Bytes(w.seed, next)
	if _, again := w.seen[h]; again || h == w.last {
		return fmt.Errorf("backup: backend %s answered page %d of its %ss with a cursor it gave before; following it would never end: %w",
			st.Name(), w.pages, w.kind, host.ErrInternal)
	}
	if len(w.seen) < maxCursorsSeen {
		w.seen[h] = struct{}{}
	}
	w.last = h
	return nil
}

func (p *pager) fetch(at position) {
	if at.done {
		p.ahead = nil
		return
	}
	ch := make(chan fetched, 1)
	p.ahead = ch
	go func() {
		recs, next, err := page(p.ctx, p.st, at.kind, at.cursor)
		after := position{kind: at.kind, cursor: next}
		switch {
		case err != nil:
		case len(next) == 0:
			after = at.nextKind().settle(p.st)
			p.walk.start(after.kind, nil)
		default:
			err = p.walk.step(p.st, next)
		}
		ch <- fetched{kind: at.kind, recs: recs, after: after, err: err}
	}()
}

// next returns the next page; ok is false at the end. After an error it
// returns that page's error and stops.
func (p *pager) next() (f fetched, ok bool) {
	if p.ahead == nil {
		return fetched{}, false
	}
	f = <-p.ahead
	if f.err != nil {
		p.ahead = nil
		return f, true
	}
	p.fetch(f.after)
	return f, true
}

// close stops the page on its way, if any, and waits for it: nothing of
// the scan runs once close returns, so the caller's last word is the
// last thing it prints and its stores close with no call in flight.
func (p *pager) close() {
	p.stop()
	if p.ahead != nil {
		<-p.ahead
		p.ahead = nil
	}
}
