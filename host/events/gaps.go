package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A host appends a write's event after the write, from a queue: a host
// that dies (SIGKILL, a crash, the machine lost) takes the events still
// queued with it, and one whose queue overflowed dropped some. Their
// writes were acknowledged; without a word, a subscriber resuming from
// before them, or another host's read cache, would never learn of them.
// So the log says where it has a gap. A gap is an entry of the stream
// (field "g", no event), and its ID in a sorted set beside the stream:
//
//   - every host that has published to a Redis log beats: it keeps a key
//     of its own alive (live:<host>, expiring after liveFor) and its name
//     in the set of hosts, and takes both away when it closes cleanly;
//   - every beat, a host looks for hosts whose key has expired: the
//     first to remove such a host from the set appends a gap for it;
//   - a host whose queue dropped events appends a gap before the next
//     events it appends.
//
// Readers do not deliver a gap: the fan-out ends its subscriptions and
// flushes its observers at one, as at a loss of the stream, and a
// subscription catching up ends with ErrLost. A position before a gap is
// not retained: resuming from it is ErrLost.

// beatEvery and liveFor: how often a host beats, and how long its key
// lives without a beat (several beats missed: a host stalled that long is
// taken for dead, and a gap costs its subscribers a re-read, not data).
const (
	beatEvery = 2 * time.Second
	liveFor   = 10 * time.Second
)

// maxGaps bounds the gaps a log remembers beside its stream; markTimeout
// bounds the marking of one.
const (
	maxGaps     = 1000
	markTimeout = 5 * time.Second
)

func newHostName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (l *redisLog) hostsKey() string           { return l.key + ":hosts" }
func (l *redisLog) gapsKey() string            { return l.key + ":gaps" }
func (l *redisLog) liveKey(host string) string { return l.key + ":live:" + host }

// beat keeps this host alive in the log's set of hosts, and appends a gap
// for each host found dead (its key expired): the one that removes it
// from the set does.
//
// register says whether this host joins the set (it has published);
// reap, whether it may take others for dead: only once its own beats have
// reached Redis for a whole live period, so that a Redis that was away,
// or failed over, and let every host's key expire, does not have its
// first host back mark a gap for each of the others, which only queued
// their events meanwhile.
func (l *redisLog) beat(ctx context.Context, live time.Duration, register, reap bool) error {
	if register {
		if err := l.join(ctx, live); err != nil {
			return err
		}
	}
	if !reap {
		return nil
	}
	hosts, err := l.client.SMembers(ctx, l.hostsKey()).Result()
	if err != nil {
		return err
	}
	others := hosts[:0]
	for _, h := range hosts {
		if h != l.host {
			others = append(others, h)
		}
	}
	if len(others) == 0 {
		return nil
	}
	alive := make([]*redis.IntCmd, len(others))
	if _, err := l.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range others {
			alive[i] = p.Exists(ctx, l.liveKey(h))
		}
		return nil
	}); err != nil {
		return err
	}
	for i, h := range others {
		if alive[i].Val() != 0 {
			continue
		}
		if n, err := l.client.SRem(ctx, l.hostsKey(), h).Result(); err != nil || n == 0 {
			if err != nil {
				return err
			}
			continue // another host took it
		}
		if err := l.markGap(ctx, "host "+h+" stopped without a clean close"); err != nil {
			// Back in the set, for this host or another to mark next
			// time: removed from it, the dead host is marked by none.
			l.client.SAdd(context.WithoutCancel(ctx), l.hostsKey(), h)
			return err
		}
	}
	return nil
}

// join puts this host in the log's set of hosts, alive for live: again at
// every beat, so that a set lost with Redis's data (a restart, a flush) has
// it back within a beat.
func (l *redisLog) join(ctx context.Context, live time.Duration) error {
	_, err := l.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, l.liveKey(l.host), 1, live)
		p.SAdd(ctx, l.hostsKey(), l.host)
		return nil
	})
	return err
}

// leave takes this host out of the log's set of hosts: it closed with
// every event it published appended.
func (l *redisLog) leave(ctx context.Context) error {
	_, err := l.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, l.hostsKey(), l.host)
		p.Del(ctx, l.liveKey(l.host))
		return nil
	})
	return err
}

// markGap appends a gap to the stream, if there is one (no stream, no
// event to miss), and records it in the gaps set, in one transaction: a
// reader that meets the gap entry finds the set holding it too. The set's
// member is not the entry's ID, which Redis chooses within the
// transaction, but a bound below it: the stream's last ID, plus one, as
// it was just before. Every position a subscriber had been given by then
// is refused at once; one of an event another host appended in between
// (before the gap, so it too would miss what the gap lost) is let in, and
// ends at the gap when its reader reaches it.
//
// It has a deadline of its own, not its caller's beat.
func (l *redisLog) markGap(ctx context.Context, why string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	info, err := l.client.XInfoStream(ctx, l.key).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return nil
		}
		return err
	}
	last, err := parseID(info.LastGeneratedID)
	if err != nil {
		return err
	}
	below := last.next()
	var add *redis.StringCmd
	_, err = l.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		add = p.XAdd(ctx, &redis.XAddArgs{Stream: l.key, NoMkStream: true, MaxLen: l.retention, Approx: true, Values: []any{"g", why}})
		p.ZAdd(ctx, l.gapsKey(), redis.Z{Score: float64(below.hi), Member: below.String()})
		p.ZRemRangeByRank(ctx, l.gapsKey(), 0, -maxGaps-1)
		return nil
	})
	switch {
	case err == nil && add.Val() != "":
		l.saw(add.Val())
		return nil
	case errors.Is(add.Err(), redis.Nil): // the stream went meanwhile: no gap
		return l.client.ZRem(ctx, l.gapsKey(), below.String()).Err()
	case err == nil:
		err = errors.New("no reply") // a refused login, which go-redis leaves on no command
	}
	// The transaction failed, but its commands may have run all the same
	// (a user refused MULTI runs what follows it): a gap written is not
	// written again, nor its host put back to be found dead again.
	if marked, rerr := l.gapWritten(ctx, last, why); rerr == nil && marked {
		return l.client.ZAdd(ctx, l.gapsKey(), redis.Z{Score: float64(below.hi), Member: below.String()}).Err()
	}
	return fmt.Errorf("events: marking a gap: %w", err)
}

// gapWritten reports whether the stream holds, after last, a gap entry
// saying why: a markGap whose transaction failed may have written it.
func (l *redisLog) gapWritten(ctx context.Context, last id, why string) (bool, error) {
	msgs, err := l.client.XRangeN(ctx, l.key, "("+last.String(), "+", 1000).Result()
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if m.Values["g"] == why {
			l.saw(m.ID)
			return true, nil
		}
	}
	return false, nil
}

// gapAfter reports whether the log has a gap after pos, from the gaps
// set: resuming from pos would miss what the gap lost.
func gapAfter(members []string, pos id) bool {
	for _, m := range members {
		if g, err := parseID(m); err == nil && pos.less(g) {
			return true
		}
	}
	return false
}

// cutAtGap returns the events of evs before the first gap, or, when evs
// starts with one, the loss it is (resume after it).
func cutAtGap(evs []Event) ([]Event, error) {
	for i := range evs {
		if evs[i].gap == "" {
			continue
		}
		if i > 0 {
			return evs[:i], nil
		}
		g, err := parseID(evs[0].ID)
		if err != nil {
			return nil, err
		}
		return nil, &lostError{resume: g, why: evs[0].gap, gap: true}
	}
	return evs, nil
}

// beatLoop beats until the bus closes, then leaves the set of hosts when
// every event was appended.
func (b *Bus) beatLoop(l *redisLog) {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.beat)
	defer t.Stop()
	var reachedSince time.Time // of the beats reaching Redis without a failure
	for {
		ctx, cancel := context.WithTimeout(b.ctx, b.opts.beat)
		if reachedSince.IsZero() {
			reachedSince = time.Now()
		}
		reap := time.Since(reachedSince) >= b.opts.live
		if err := l.beat(ctx, b.opts.live, b.registered.Load(), reap); err != nil {
			reachedSince = time.Time{}
			if b.ctx.Err() == nil {
				b.logger.Debug("events: cannot beat in the log's set of hosts", "error", err)
			}
		}
		cancel()
		select {
		case <-t.C:
		case <-b.ctx.Done():
			return
		}
	}
}

// errGapUnmarked says why a gap of dropped events could not be appended.
var errGapUnmarked = errors.New("events: the gap of dropped events is not in the log")

// markDrops appends a gap for the events this host dropped since the
// last one, before the events that follow them.
func (b *Bus) markDrops(ctx context.Context, l *redisLog) error {
	n := b.unmarked.Swap(0)
	if n == 0 {
		return nil
	}
	if err := l.markGap(ctx, "host "+l.host+" dropped "+strconv.FormatUint(n, 10)+" events"); err != nil {
		b.unmarked.Add(n)
		return errors.Join(errGapUnmarked, err)
	}
	return nil
}
