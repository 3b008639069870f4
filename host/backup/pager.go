package backup

import (
	"context"

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
	st    *host.Store
	ahead chan fetched // nil once done
}

func newPager(ctx context.Context, st *host.Store, from position) *pager {
	p := &pager{ctx: ctx, st: st}
	p.fetch(from.settle(st))
	return p
}

func (p *pager) fetch(at position) {
	if at.done {
		p.ahead = nil
		return
	}
	ch := make(chan fetched, 1) // never blocks: an abandoned fetch ends by itself
	p.ahead = ch
	go func() {
		recs, next, err := page(p.ctx, p.st, at.kind, at.cursor)
		after := position{kind: at.kind, cursor: next}
		if len(next) == 0 {
			after = at.nextKind().settle(p.st)
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
