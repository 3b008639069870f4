package events

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// gapOptions beat fast, so that a host taken for dead is found within a
// second or two, and live long enough that a live host stalled by a
// loaded machine (the race detector, other packages' tests) is not taken
// for dead.
var gapOptions = Options{beat: 100 * time.Millisecond, live: time.Second}

func gapBus(t *testing.T, c redis.UniversalClient, key string) *Bus {
	b := NewRedis(c, key, gapOptions, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// gapStream is a client of the shared test Redis and a stream key of
// the test's own.
func gapStream(t *testing.T, name string) (*redis.Client, string) {
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr(t)})
	t.Cleanup(func() { _ = c.Close() })
	return c, redistest.Prefix(t) + "__host__:" + name + ":events"
}

// gapEntries counts the gap entries of the stream at key.
func gapEntries(t *testing.T, c *redis.Client, key string) int {
	entries, err := c.XRange(context.Background(), key, "-", "+").Result()
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if _, ok := e.Values["g"]; ok {
			n++
		}
	}
	return n
}

func publishOne(t *testing.T, b *Bus, key string) {
	t.Helper()
	before := b.Stats().Published
	b.Publish(Event{Kind: "agent_states", Op: OpPut, AgentID: key, Key: key, Version: 1, Time: time.Now()})
	require.Eventually(t, func() bool { return b.Stats().Published > before }, 5*time.Second, 5*time.Millisecond)
}

func nextEvent(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		require.True(t, ok, "the subscription ended: %v", s.Err())
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return Event{}
	}
}

// A host that dies with events of acknowledged writes still queued takes
// them with it. The hosts sharing its log find it gone (its key expired
// without a clean close) and mark a gap: their subscriptions end, and
// resuming from before the gap is ErrLost, never a silent skip. A host
// that closes cleanly leaves no gap.
func TestAHostThatDiesLeavesAGap(t *testing.T) {
	ctx := context.Background()
	c, key := gapStream(t, "gaps")

	survivor := gapBus(t, c, key)
	publishOne(t, survivor, "s0") // the survivor beats from its first event
	sub, err := survivor.Subscribe(ctx, Filter{}, "")
	require.NoError(t, err)
	t.Cleanup(sub.Close)

	// A host that closes cleanly: no gap, the subscription goes on.
	clean := gapBus(t, c, key)
	publishOne(t, clean, "c1")
	require.Equal(t, "c1", nextEvent(t, sub).Key)
	require.NoError(t, clean.Close(ctx))
	time.Sleep(3 * gapOptions.live)
	publishOne(t, survivor, "s1")
	s1 := nextEvent(t, sub)
	require.Equal(t, "s1", s1.Key, "a clean close leaves no gap")

	// A host that dies: its beat stops, nothing leaves the set of hosts.
	dying := gapBus(t, c, key)
	publishOne(t, dying, "d1")
	ev := nextEvent(t, sub)
	require.Equal(t, "d1", ev.Key)
	resumeAt := ev.ID
	dying.cancel() // as a SIGKILL: no Close, no clean leave
	select {
	case _, ok := <-sub.Events():
		require.False(t, ok, "no event but the end")
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription did not end at the gap")
	}
	require.ErrorIs(t, sub.Err(), ErrUnavailable)
	require.ErrorContains(t, sub.Err(), "the event log has a gap")
	require.ErrorContains(t, sub.Err(), "stopped without a clean close")

	_, err = survivor.Subscribe(ctx, Filter{}, resumeAt)
	require.ErrorIs(t, err, ErrLost, "a position before the gap")
	_, err = survivor.Subscribe(ctx, Filter{}, s1.ID)
	require.ErrorIs(t, err, ErrLost)

	// From now, and from the beginning, events flow again.
	fresh, err := survivor.Subscribe(ctx, Filter{}, "")
	require.NoError(t, err)
	t.Cleanup(fresh.Close)
	publishOne(t, survivor, "s2")
	require.Equal(t, "s2", nextEvent(t, fresh).Key)
	all, err := survivor.Subscribe(ctx, Filter{}, Beginning)
	require.NoError(t, err)
	t.Cleanup(all.Close)
	var keys []string
	for range 5 {
		keys = append(keys, nextEvent(t, all).Key)
	}
	require.Equal(t, []string{"s0", "c1", "s1", "d1", "s2"}, keys, "the beginning passes over the gap")
}

// A host whose queue dropped events marks a gap before the next events it
// appends: a subscriber catching up from before them is told ErrLost.
func TestDroppedEventsLeaveAGap(t *testing.T) {
	ctx := context.Background()
	c, key := gapStream(t, "drops")
	b := gapBus(t, c, key)
	publishOne(t, b, "e1")
	from, err := b.log.last(ctx)
	require.NoError(t, err)

	b.unmarked.Add(3) // as a full queue counts them
	publishOne(t, b, "e2")
	_, err = b.Subscribe(ctx, Filter{}, from.String())
	require.ErrorIs(t, err, ErrLost, "the drops came after this position")
	n, err := c.ZCard(ctx, key+":gaps").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

// A host takes others for dead only once its own beats have reached Redis
// for a whole live period: after an outage (or a failover) every key has
// expired, and the first host back would otherwise mark a gap for hosts
// that only queued their events meanwhile. A host that only reads looks
// for dead hosts too.
func TestAHostReapsOnlyOnceItsBeatsReachRedis(t *testing.T) {
	ctx := context.Background()
	c, key := gapStream(t, "reap")
	require.NoError(t, c.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"k", "agent_states"}}).Err())
	require.NoError(t, c.SAdd(ctx, key+":hosts", "ghost").Err()) // listed, its key long expired

	reader := gapBus(t, c, key)
	sub, err := reader.Subscribe(ctx, Filter{}, "") // starts its fan-out and its beat; it never publishes
	require.NoError(t, err)
	t.Cleanup(sub.Close)
	time.Sleep(gapOptions.live / 2)
	n, err := c.ZCard(ctx, key+":gaps").Result()
	require.NoError(t, err)
	require.Zero(t, n, "no gap before its beats reached Redis for a live period")
	require.Eventually(t, func() bool { return c.ZCard(ctx, key+":gaps").Val() == 1 }, 5*time.Second, 10*time.Millisecond)
	require.False(t, c.SIsMember(ctx, key+":hosts", "ghost").Val())
	require.False(t, c.SIsMember(ctx, key+":hosts", reader.log.(*redisLog).host).Val(), "a host that never published is not listed")
}

// A host is in the set of hosts before its first event is queued, so
// before the write that event tells of is acknowledged: killed at once,
// it is still found dead and its gap marked. (Its beat alone would join
// a round trip later: a host killed meanwhile lost its event unmarked.)
func TestAHostJoinsBeforeItsFirstEventIsQueued(t *testing.T) {
	c, key := gapStream(t, "join")
	b := gapBus(t, c, key)
	b.Publish(Event{Kind: "agent_states", Op: OpPut, AgentID: "a", Key: "a", Version: 1, Time: time.Now()})
	host := b.log.(*redisLog).host
	require.True(t, c.SIsMember(context.Background(), key+":hosts", host).Val(), "joined when Publish returned")
	require.EqualValues(t, 1, c.Exists(context.Background(), key+":live:"+host).Val())
}

// A gap marked while other hosts append without pause is marked at once,
// never lost to their appends, and every position given out before it is
// refused.
func TestAGapIsMarkedWhileOthersAppend(t *testing.T) {
	ctx := context.Background()
	c, key := gapStream(t, "busy")
	b := gapBus(t, c, key)
	publishOne(t, b, "first")
	before, err := b.log.last(ctx)
	require.NoError(t, err)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // another host's appends, as fast as Redis takes them
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = c.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"k", "agent_states", "o", "put", "a", "x", "y", "x", "v", i, "t", 0}}).Err()
		}
	}()
	for range 20 {
		require.NoError(t, b.log.(*redisLog).markGap(ctx, "test"))
	}
	close(stop)
	<-done
	_, err = b.Subscribe(ctx, Filter{}, before.String())
	require.ErrorIs(t, err, ErrLost)
	require.Equal(t, 20, gapEntries(t, c, key))
	require.EqualValues(t, 20, c.ZCard(ctx, key+":gaps").Val())
}

// A Redis user refused MULTI (an ACL from before gaps were marked in a
// transaction) runs the commands queued after it all the same: the gap
// is then written once, its host taken out of the set, and not found
// dead, and marked, again at every beat.
func TestAGapIsMarkedOnceWithoutMulti(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = admin.Close() })
	key := "__host__:{nomulti}:events"
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "nomulti", "on", ">pw", "~*", "+@all", "-multi", "-exec").Err())
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "nomulti", Password: "pw"})
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"k", "agent_states"}}).Err())
	require.NoError(t, c.SAdd(ctx, key+":hosts", "ghost").Err())

	l := gapBus(t, c, key).log.(*redisLog)
	for range 5 {
		_ = l.beat(ctx, gapOptions.live, true, true)
	}
	require.Equal(t, 1, gapEntries(t, admin, key), "one gap, whatever the beats")
	require.EqualValues(t, 1, admin.ZCard(ctx, key+":gaps").Val())
	require.False(t, admin.SIsMember(ctx, key+":hosts", "ghost").Val())
}

// A subscription from Beginning passes over a gap even when it starts at
// an anchor (the stream held nothing but the anchor a subscription from
// now added): it asked for what the log retains.
func TestBeginningPassesOverAGapAfterAnAnchor(t *testing.T) {
	ctx := context.Background()
	c, key := gapStream(t, "anchor-gap")
	b := gapBus(t, c, key)
	now, err := b.Subscribe(ctx, Filter{}, "")
	require.NoError(t, err)
	defer now.Close()
	require.Equal(t, int64(1), c.XLen(ctx, key).Val(), "the anchor")
	require.NoError(t, b.log.(*redisLog).markGap(ctx, "a host dropped events"))
	publishOne(t, b, "after")

	all, err := b.Subscribe(ctx, Filter{}, Beginning)
	require.NoError(t, err)
	defer all.Close()
	require.Equal(t, "after", nextEvent(t, all).Key)
}

// Subscriptions starting at once on an empty stream share one anchor,
// though each looks at the stream before the first has added it (the
// looks made slow).
func TestSubscriptionsAtOnceShareAnAnchor(t *testing.T) {
	ctx := context.Background()
	c, key := gapStream(t, "anchors")
	c.AddHook(slowLooks{})
	b := gapBus(t, c, key)
	require.NoError(t, b.Observe(ctx, quietObserver{})) // the reader runs
	subs := make([]*Subscription, 32)
	var wg sync.WaitGroup
	for i := range subs {
		wg.Go(func() {
			s, err := b.Subscribe(ctx, Filter{}, "")
			if err == nil {
				subs[i] = s
			}
		})
	}
	wg.Wait()
	for _, s := range subs {
		require.NotNil(t, s)
		defer s.Close()
		require.Equal(t, subs[0].Start(), s.Start())
	}
	require.Equal(t, int64(1), c.XLen(ctx, key).Val(), "one anchor")
}

type quietObserver struct{}

func (quietObserver) Event(*Event) {}
func (quietObserver) Down(error)   {}
func (quietObserver) Up()          {}

// slowLooks delays each XREVRANGE of a client by 20 ms.
type slowLooks struct{}

func (slowLooks) DialHook(next redis.DialHook) redis.DialHook { return next }

func (slowLooks) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "xrevrange" {
			time.Sleep(20 * time.Millisecond)
		}
		return next(ctx, cmd)
	}
}

func (slowLooks) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
