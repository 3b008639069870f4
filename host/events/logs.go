package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// memLog is an in-process log: a ring of the newest events. Its IDs are
// (the log's start time in ms, sequence from 1).
type memLog struct {
	epoch uint64

	mu      sync.Mutex
	ring    []Event
	next    uint64        // sequence of the next event
	wake    chan struct{} // closed and replaced by an append when waiting
	waiting bool          // a reader waits on wake
}

func newMemLog(retention int) *memLog {
	return &memLog{
		epoch: uint64(time.Now().UnixMilli()),
		ring:  make([]Event, retention),
		next:  1,
		wake:  make(chan struct{}),
	}
}

func (l *memLog) async() bool { return false }

func (l *memLog) append(_ context.Context, evs []Event) error {
	l.mu.Lock()
	// IDs are formatted when read: most events of a busy backend are
	// never read, and a write should not pay for the string.
	for i := range evs {
		l.ring[l.next%uint64(len(l.ring))] = evs[i]
		l.next++
	}
	if l.waiting {
		close(l.wake)
		l.wake, l.waiting = make(chan struct{}), false
	}
	l.mu.Unlock()
	return nil
}

// oldest returns the sequence of the oldest retained event; under mu.
func (l *memLog) oldest() uint64 {
	if n := uint64(len(l.ring)); l.next > n {
		return l.next - n
	}
	return 1
}

// seqAfter maps a position to the sequence it ends at in this log: a
// foreign position (another process's log) counts as the beginning.
func (l *memLog) seqAfter(after id) uint64 {
	if after.hi != l.epoch {
		return 0
	}
	return after.lo
}

func (l *memLog) read(ctx context.Context, after id, n int, wait time.Duration) ([]Event, error) {
	seq := l.seqAfter(after)
	var timer <-chan time.Time
	for {
		l.mu.Lock()
		from := max(seq+1, l.oldest())
		if from < l.next {
			count := min(uint64(n), l.next-from)
			out := make([]Event, count)
			for i := range out {
				out[i] = l.ring[(from+uint64(i))%uint64(len(l.ring))]
				out[i].ID = id{l.epoch, from + uint64(i)}.String()
			}
			l.mu.Unlock()
			return out, nil
		}
		if wait <= 0 {
			l.mu.Unlock()
			return nil, nil
		}
		wake := l.wake
		l.waiting = true
		l.mu.Unlock()
		if timer == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-wake:
		case <-timer:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (l *memLog) last(context.Context) (id, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return id{l.epoch, l.next - 1}, nil
}

func (l *memLog) forget() {}

// anchor is the newest position (with first, the beginning of a log
// without events, and zero in one with events: a start at Beginning as
// before): its epoch makes it another process's once this one ends, and
// an in-process log loses nothing else.
func (l *memLog) anchor(ctx context.Context, first bool) (id, error) {
	last, err := l.last(ctx)
	if first && last.lo > 0 {
		return id{}, err
	}
	return last, err
}

func (l *memLog) retained(_ context.Context, after id) (bool, error) {
	if after == (id{}) {
		return true, nil // Beginning
	}
	if after.hi != l.epoch {
		return false, nil // another process's log
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return after.lo+1 >= l.oldest() && after.lo < l.next, nil
}

// redisLog is a Redis Stream. Each entry holds one event in short fields.
type redisLog struct {
	client    redis.UniversalClient
	key       string
	retention int64
	host      string // this host's name in the log's set of hosts (gaps.go)

	mu sync.Mutex
	// top is the newest ID this log has appended or read, under mu: a
	// stream that has to be created again starts after it (see append),
	// and positions up to it that a loss took are remembered (gone).
	top id
	// gone are the positions this log has learnt were lost, under mu: at
	// each loss found (see lose), those after the newest entry the stream
	// still held up to top. They stay lost though the stream gives their
	// IDs again (a Redis whose clock is behind the lost entries'). Ranges
	// the stream has trimmed past are dropped (see prune).
	gone []span

	// anchoring is held by anchor from its look at the stream to the
	// anchor it adds: subscriptions starting at once on an empty stream
	// share one.
	anchoring sync.Mutex

	// added is the stream's count of entries ever added, as the fan-out's
	// last read saw it (Redis 7 and later; 0 before): it only grows in
	// one life of the stream. Set by the fan-out (see checkLife), cleared
	// by forget.
	added atomic.Int64
}

// lostError is what the fan-out's read returns when the log is not the
// one it was reading: Redis lost its data (FLUSHALL, FLUSHDB, a failover
// to an empty replica, the key deleted) with or without a new stream
// created since, PostgreSQL's event table was truncated, created again or
// restored (pgLog.checkLife), or entries after the read position were
// trimmed before they were read. Either way events were missed without
// the connection failing. Reading goes on after resume.
//
// With records, the log is whole but the backend's records were lost
// without events (a PostgreSQL record table truncated): only observers
// are told.
type lostError struct {
	after   id // the position read from when the loss was found (set by the Bus)
	resume  id
	why     string
	records bool
	gap     bool // a gap the log marks (gaps.go): why says whose
}

func (e *lostError) Error() string {
	if e.records {
		return "events: the backend's records were lost without events (" + e.why + ")"
	}
	if e.gap {
		return "events: the event log has a gap: events of acknowledged writes may be missing (" + e.why + ")"
	}
	return "events: the event log lost events (" + e.why + ")"
}

func (l *redisLog) async() bool { return true }

// forget clears the count of entries added: the Bus took the stream for
// a new life, whose count starts again.
func (l *redisLog) forget() { l.added.Store(0) }

// saw records an ID this log has appended or read.
func (l *redisLog) saw(s string) {
	i, err := parseID(s)
	if err != nil {
		return
	}
	l.mu.Lock()
	if l.top.less(i) {
		l.top = i
	}
	l.mu.Unlock()
}

// newest returns the newest ID this log has appended or read.
func (l *redisLog) newest() id {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.top
}

// span is the positions after from, up to and including to.
type span struct{ from, to id }

func (s span) has(i id) bool { return s.from.less(i) && !s.to.less(i) }

// maxGone bounds the ranges of lost positions a log remembers; past it
// the oldest is forgotten (the entry check of retained still refuses its
// positions unless the stream gave them again).
const maxGone = 64

// lose records that the stream lost the positions it no longer holds up
// to top, the newest ID this log knew before it found the loss: those
// after the newest entry at or before top that the stream still holds
// (after none, when it holds none). A Redis restarted from an older
// snapshot gives the entries appended since IDs from its clock, past the
// lost ones, and would otherwise take a lost position for one of its own.
func (l *redisLog) lose(ctx context.Context, top id) error {
	if top == (id{}) {
		return nil
	}
	msgs, err := l.client.XRevRangeN(ctx, l.key, top.String(), "-", 1).Result()
	if err != nil {
		return err
	}
	var held id
	if len(msgs) > 0 {
		if held, err = parseID(msgs[0].ID); err != nil {
			return err
		}
	}
	l.addGone(span{held, top})
	return nil
}

// addGone adds s to the lost ranges, unless one already covers it.
func (l *redisLog) addGone(s span) {
	if !s.from.less(s.to) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range l.gone {
		if !s.from.less(g.from) && !g.to.less(s.to) {
			return
		}
	}
	if len(l.gone) == maxGone {
		l.gone = slices.Delete(l.gone, 0, 1)
	}
	l.gone = append(l.gone, s)
}

// prune drops the lost ranges wholly before oldest, the stream's oldest
// entry: their positions are refused as trimmed.
func (l *redisLog) prune(oldest id) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gone = slices.DeleteFunc(l.gone, func(g span) bool { return g.to.less(oldest) })
}

// isGone reports whether pos is in a range of lost positions.
func (l *redisLog) isGone(pos id) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.gone, func(g span) bool { return g.has(pos) })
}

// append adds evs to the stream, never creating it with XADD's own IDs.
// A stream that is gone (deleted, or Redis lost its data) is created
// again starting at an explicit millisecond past every ID this log has
// known: Redis would otherwise number the new stream from its clock, and
// an entry added within the millisecond of an old position would reuse
// that position's ID, so a subscriber resuming there would be served the
// new stream as if it were the old one.
func (l *redisLog) append(ctx context.Context, evs []Event) error {
	if err := l.xadd(ctx, evs, ""); err != nil {
		return err
	}
	// What is left has no ID: the stream is missing. (Had another host
	// created it within the pipeline, the entries before that point come
	// after it, still once each.) The first entry creates it at an
	// explicit time, the rest follow with Redis's IDs. If that is refused
	// (another host created it first, or a Redis before 7.0 that does not
	// take "<ms>-*"), a plain append creates it.
	missing := evs[:0:0]
	for _, ev := range evs {
		if ev.ID == "" {
			missing = append(missing, ev)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	start := max(uint64(time.Now().UnixMilli()), l.newest().hi+1)
	if err := l.xadd(ctx, missing[:1], strconv.FormatUint(start, 10)+"-*"); err != nil {
		if err = l.xadd(ctx, missing[:1], "*"); err != nil {
			return err
		}
	}
	if err := l.xadd(ctx, missing[1:], "*"); err != nil {
		return err
	}
	j := 0
	for i := range evs {
		if evs[i].ID == "" {
			evs[i].ID = missing[j].ID
			j++
		}
	}
	return nil
}

// xadd appends evs in one pipeline and stores their IDs in them. With
// first == "" no entry creates a missing stream (their IDs stay empty);
// otherwise the first entry gets that ID and any may create it.
func (l *redisLog) xadd(ctx context.Context, evs []Event, first string) error {
	if len(evs) == 0 {
		return nil
	}
	// Each entry's arguments point into evs, times and one []any for
	// the whole pipeline: a pointer goes into an interface without an
	// allocation, where each string or number would take one.
	const fixed, fields = 7, 14 // XADD key [NOMKSTREAM] MAXLEN ~ n id, then k o a y v t d
	cmds := make([]*redis.StringCmd, len(evs))
	times := make([]int64, len(evs))
	all := make([]any, 0, len(evs)*(fixed+fields))
	_, err := l.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range evs {
			ev := &evs[i]
			times[i] = ev.Time.UnixNano()
			start := len(all)
			all = append(all, "xadd", &l.key)
			if first == "" {
				all = append(all, "nomkstream")
			}
			all = append(all, "maxlen", "~", &l.retention)
			if i == 0 && first != "" {
				all = append(all, &first)
			} else {
				all = append(all, "*")
			}
			all = append(all, "k", &ev.Kind, "o", &ev.Op, "a", &ev.AgentID, "y", &ev.Key, "v", &ev.Version, "t", &times[i])
			if len(ev.Data) > 0 {
				all = append(all, "d", ev.Data)
			}
			cmds[i] = redis.NewStringCmd(ctx, all[start:len(all):len(all)]...)
			_ = p.Process(ctx, cmds[i])
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for i, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		evs[i].ID = c.Val()
		if evs[i].ID != "" {
			l.saw(evs[i].ID)
		}
	}
	return nil
}

// read reads with XREAD when it may wait (the fan-out's reads, which
// also check the stream's life: see checkLife), with XRANGE when not.
func (l *redisLog) read(ctx context.Context, after id, n int, wait time.Duration) ([]Event, error) {
	var msgs []redis.XMessage
	if wait > 0 {
		streams, err := l.client.XRead(ctx, &redis.XReadArgs{Streams: []string{l.key, after.String()}, Count: int64(n), Block: wait}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for _, s := range streams {
			msgs = append(msgs, s.Messages...)
		}
		if err := l.checkLife(ctx, after, len(msgs) > 0); err != nil {
			return nil, err
		}
	} else {
		var err error
		msgs, err = l.client.XRangeN(ctx, l.key, "("+after.String(), "+", int64(n)).Result()
		if err != nil {
			return nil, err
		}
	}
	out := make([]Event, len(msgs))
	for i, m := range msgs {
		out[i] = fromMessage(m)
	}
	if len(msgs) > 0 {
		l.saw(msgs[len(msgs)-1].ID)
	}
	return cutAtGap(out)
}

// checkLife returns a *lostError when the stream, just after a read
// after `after`, cannot be the one that position was read from with
// nothing missed since: it is gone, it starts past the position (trimmed
// past it, or created again), its IDs or its count of entries added went
// backwards. XREAD itself says none of this: on a missing key it waits,
// and on a new stream it returns the entries past the position as if
// they followed it. The positions lost are remembered (lose).
func (l *redisLog) checkLife(ctx context.Context, after id, read bool) error {
	top := l.newest()
	info, err := l.client.XInfoStream(ctx, l.key).Result()
	if err != nil {
		if !strings.Contains(err.Error(), "no such key") {
			return err
		}
		if after == (id{}) && !read {
			l.added.Store(0)
			return nil // no stream yet, and none was read
		}
		if err := l.lose(ctx, top); err != nil {
			return err
		}
		l.added.Store(0)
		return &lostError{why: "the stream is gone"}
	}
	newest, err := parseID(info.LastGeneratedID)
	if err != nil {
		return err
	}
	oldest := newest
	if info.Length > 0 {
		if oldest, err = parseID(info.FirstEntry.ID); err != nil {
			return err
		}
	}
	var why string
	switch {
	case after != (id{}) && after.less(oldest):
		why = "the stream starts after the read position"
	case newest.less(after):
		why = "the stream's IDs went backwards"
	case info.EntriesAdded < l.added.Load():
		why = "the stream's count of entries added went backwards"
	default:
		l.added.Store(info.EntriesAdded)
		return nil
	}
	// Stored once the loss is remembered: a failure to is a failed read,
	// and the next finds the loss again.
	if err := l.lose(ctx, top); err != nil {
		return err
	}
	l.added.Store(info.EntriesAdded)
	return &lostError{resume: newest, why: why}
}

func fromMessage(m redis.XMessage) Event {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	if g := str("g"); g != "" {
		return Event{ID: m.ID, gap: g}
	}
	if _, ok := m.Values[anchorField]; ok {
		return Event{ID: m.ID, anchor: true}
	}
	ev := Event{ID: m.ID, Kind: str("k"), Op: str("o"), AgentID: str("a"), Key: str("y")}
	ev.Version, _ = strconv.ParseUint(str("v"), 10, 64)
	if ns, err := strconv.ParseInt(str("t"), 10, 64); err == nil && ns != 0 {
		ev.Time = time.Unix(0, ns).UTC()
	}
	if d := str("d"); d != "" {
		ev.Data = []byte(d)
	}
	return ev
}

func (l *redisLog) last(ctx context.Context) (id, error) {
	msgs, err := l.client.XRevRangeN(ctx, l.key, "+", "-", 1).Result()
	if err != nil || len(msgs) == 0 {
		return id{}, err
	}
	l.saw(msgs[0].ID)
	return parseID(msgs[0].ID)
}

// anchorField is the one field of an anchor entry, which holds the name
// of the host that added it.
const anchorField = "s"

// anchor returns the newest entry's ID (with first, the oldest's when it
// is an anchor, and zero when it is an event: no ID names the position
// before it), or, when the stream has none (it is missing, or every
// entry was deleted), adds an anchor entry and returns its ID. A
// subscription that starts there and resumes from it is told ErrLost
// once the stream loses it (deleted, Redis restarted empty), where one
// starting at the zero position would be served the events of a new
// stream as if nothing came between. The anchor is numbered past every
// ID this log has known, as append numbers a stream it creates again,
// and is trimmed as events are.
func (l *redisLog) anchor(ctx context.Context, first bool) (id, error) {
	l.anchoring.Lock()
	defer l.anchoring.Unlock()
	var msgs []redis.XMessage
	var err error
	if first {
		msgs, err = l.client.XRangeN(ctx, l.key, "-", "+", 1).Result()
	} else {
		msgs, err = l.client.XRevRangeN(ctx, l.key, "+", "-", 1).Result()
	}
	if err != nil {
		return id{}, err
	}
	if len(msgs) > 0 {
		if first && !fromMessage(msgs[0]).anchor {
			return id{}, nil
		}
		l.saw(msgs[0].ID)
		return parseID(msgs[0].ID)
	}
	add := func(at string) (string, error) {
		return l.client.XAdd(ctx, &redis.XAddArgs{
			Stream: l.key, MaxLen: l.retention, Approx: true, ID: at,
			Values: []any{anchorField, l.host},
		}).Result()
	}
	start := max(uint64(time.Now().UnixMilli()), l.newest().hi+1)
	at, err := add(strconv.FormatUint(start, 10) + "-*")
	if err != nil {
		// Refused: the stream's last ID is past start (another host
		// appended since), or a Redis before 7.0.
		if at, err = add("*"); err != nil {
			return id{}, err
		}
	}
	l.saw(at)
	return parseID(at)
}

// retained reports whether pos is an entry the stream holds, and not a
// position this log has learnt was lost (gone). Trimming removes the
// oldest first, so every entry after it is held too. A position the
// stream does not hold was trimmed (a subscriber whose last event was the
// very last one trimmed is told ErrLost too: the stream cannot tell
// whether anything came between), or is from another life of the stream
// (Redis lost its data, or came back from an older snapshot, and numbers
// new entries past it), or was never an entry (forged, or past the
// newest): lost either way, rather than a stream that delivers the
// entries after it as if they followed it, or nothing until the stream
// catches up with it. A position the stream gave again after losing it
// is refused too when this log found the loss.
func (l *redisLog) retained(ctx context.Context, pos id) (bool, error) {
	if pos == (id{}) {
		return true, nil
	}
	// Read first: what the stream says next is at least as new.
	top, added := l.newest(), l.added.Load()
	var info *redis.XInfoStreamCmd
	var at *redis.XMessageSliceCmd
	var gaps *redis.StringSliceCmd
	_, failed := l.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		info = p.XInfoStream(ctx, l.key)
		at = p.XRangeN(ctx, l.key, pos.String(), pos.String(), 1)
		gaps = p.ZRangeByScore(ctx, l.gapsKey(), &redis.ZRangeBy{Min: strconv.FormatUint(pos.hi, 10), Max: "+inf"})
		return nil
	})
	if err := info.Err(); err != nil {
		if !strings.Contains(err.Error(), "no such key") {
			return false, err
		}
		return false, l.lose(ctx, top) // a position in a stream that is not there
	}
	if err := at.Err(); err != nil {
		return false, err
	}
	if failed != nil {
		// A failure of the whole pipeline that go-redis does not copy
		// onto its commands when Redis answered it (a refused login:
		// WRONGPASS, NOAUTH), which leaves them without error or reply.
		return false, fmt.Errorf("events: reading the stream: %w", failed)
	}
	if info.Val() == nil {
		return false, errors.New("events: reading the stream: no reply")
	}
	if err := l.checkRetained(ctx, info.Val(), top, added); err != nil {
		return false, err
	}
	if err := gaps.Err(); err != nil {
		return false, err
	}
	return len(at.Val()) == 1 && !l.isGone(pos) && !gapAfter(gaps.Val(), pos), nil
}

// checkRetained remembers, for retained, a loss that the stream's info
// shows before the fan-out has read it (if it reads at all): its last ID
// below one this log has seen (top), or its count of entries added below
// the fan-out's last (added). It drops the lost ranges trimmed past.
func (l *redisLog) checkRetained(ctx context.Context, info *redis.XInfoStream, top id, added int64) error {
	newest, err := parseID(info.LastGeneratedID)
	if err != nil {
		return err
	}
	if newest.less(top) || info.EntriesAdded < added {
		if err := l.lose(ctx, top); err != nil {
			return err
		}
	}
	if info.Length > 0 {
		oldest, err := parseID(info.FirstEntry.ID)
		if err != nil {
			return err
		}
		l.prune(oldest)
	}
	return nil
}
