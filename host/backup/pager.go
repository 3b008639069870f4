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

// maxEmptyPages bounds the empty pages in a row a walk of one kind
// follows: a page MAY be empty while it has a next (abi/README.md section
// 13.4, a backend that stops a scan on a budget of its own), but one that
// answers nothing but empty pages with cursors it never gave before
// would keep a migration, which has no bound of time, reading for ever.
// Ten thousand is ten million entries skipped at a budget of a thousand
// a page.
const maxEmptyPages = 10_000

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
	empty int // pages in a row without a record
	// prev is the key of the last record read of the kind (when had): a
	// listing is in order (section 13.4), so each record must sort after
	// it.
	prev recKey
	had  bool
}

func (w *cursorWalk) start(k abi.RecordKind, cursor []byte) {
	w.kind, w.pages, w.last, w.empty, w.had = k, 0, 0, 0, false
	w.seen = make(map[uint64]struct{})
	if len(cursor) > 0 {
		w.last = maphash.Bytes(w.seed, cursor)
		w.seen[w.last] = struct{}{}
	}
}

// ordered checks that the records of a page come in the listing's order
// (abi/README.md section 13.4: metrics by agent ID, name and timestamp,
// alerts by ID, agent states by agent ID), each after the one before it
// on this or an earlier page of the walk: a backend that answers records
// it answered before, however new its cursors, would keep a reader going
// for ever (a migration has no bound of time).
func (w *cursorWalk) ordered(st *host.Store, recs []Record) error {
	for i := range recs {
		k := recs[i].key()
		if w.had && w.prev.compare(k) >= 0 {
			return fmt.Errorf("backup: backend %s answered page %d of its %ss with a record that does not sort after the one before it (%s, then %s): a listing is in order, and one out of it may never end: %w",
				st.Name(), w.pages+1, w.kind, w.prev, k, host.ErrInternal)
		}
		w.prev, w.had = k, true
	}
	return nil
}

// step checks the next cursor of a page of the walk's kind (non-empty:
// there is another page) that held records records.
func (w *cursorWalk) step(st *host.Store, next []byte, records int) error {
	w.pages++
	h := maphash.Bytes(w.seed, next)
	if _, again := w.seen[h]; again || h == w.last {
		return fmt.Errorf("backup: backend %s answered page %d of its %ss with a cursor it gave before; following it would never end: %w",
			st.Name(), w.pages, w.kind, host.ErrInternal)
	}
	if w.empty++; records > 0 {
		w.empty = 0
	}
	if w.empty >= maxEmptyPages {
		return fmt.Errorf("backup: backend %s answered %d empty pages of its %ss in a row, each with a cursor to go on (page %d): its listing makes no progress: %w",
			st.Name(), w.empty, w.kind, w.pages, host.ErrInternal)
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
		if err == nil {
			err = p.walk.ordered(p.st, recs)
		}
		after := position{kind: at.kind, cursor: next}
		switch {
		case err != nil:
		case len(next) == 0:
			after = at.nextKind().settle(p.st)
			p.walk.start(after.kind, nil)
		default:
			err = p.walk.step(p.st, next, len(recs))
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
