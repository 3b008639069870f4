package host_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// sentinelWrite is one write of the Sentinel load: its agent and when it
// was answered.
type sentinelWrite struct {
	agent string
	at    time.Time
}

// TestSentinelFailover: a Redis backend configured with Sentinels (a
// master, a replica, three Sentinels) keeps serving across a failover,
// whether the master is killed or Sentinel is told to fail it over while
// it runs. Writers put states of fresh agents throughout; every write
// acknowledged is then read back through the store, from the new master.
//
// Replication is asynchronous and the store waits for no replica (no
// WAIT), so a write the old master acknowledged and had not yet sent on
// is lost; so is one it acknowledged between the promotion of the replica
// and its own demotion. The product promises Redis's own durability, not
// more (README, "what survives what"): the loss is logged, not asserted.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five redis-servers")
	}
	for _, how := range []string{"kill", "sentinel-failover"} {
		t.Run(how, func(t *testing.T) { sentinelFailover(t, how) })
	}
}

func sentinelFailover(t *testing.T, how string) {
	ctx := context.Background()
	s := redistest.NewSentinels(t)
	st, err := host.Open(ctx, host.Config{
		Plugin: "builtin:redis",
		Redis: &redisbridge.Config{Addrs: s.Addrs, MasterName: redistest.SentinelMaster, KeyPrefix: "sentinel:", Scripts: true,
			ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond},
	}, host.WithCompilationCache(benchCache))
	require.NoError(t, err)
	defer st.Close(ctx)
	require.NoError(t, st.Ready(ctx))

	started := time.Now()
	const writers = 4
	var (
		mu               sync.Mutex
		acked            []sentinelWrite
		unknown, refused atomic.Int64
		stop             = make(chan struct{})
		wg               sync.WaitGroup
		lastErr          atomic.Pointer[error]
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				agent := fmt.Sprintf("w%d-%d", w, i)
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := st.PutAgentState(cctx, host.AgentState{AgentID: agent, State: []byte(`{}`)})
				cancel()
				time.Sleep(time.Millisecond) // about a thousand writes a second per writer at most
				switch {
				case err == nil:
					mu.Lock()
					acked = append(acked, sentinelWrite{agent, time.Now()})
					mu.Unlock()
				case errors.Is(err, host.ErrOutcomeUnknown):
					unknown.Add(1)
				default:
					refused.Add(1)
					lastErr.Store(&err)
					time.Sleep(10 * time.Millisecond) // no busy loop while Redis is away
				}
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	redistest.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() bool { return count() >= 500 }, "writes before the failover")

	failedAt := time.Now()
	switch how {
	case "kill":
		s.Master.Stop()
	case "sentinel-failover":
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0]})
		require.NoError(t, c.Failover(ctx, redistest.SentinelMaster).Err())
		require.NoError(t, c.Close())
	}
	var newMaster string
	redistest.WaitFor(t, 20*time.Second, 20*time.Millisecond, func() bool {
		newMaster, _ = s.MasterAddr(ctx)
		return newMaster == s.Replica.Addr()
	}, "the Sentinels promote the replica")
	promotedAt := time.Now()
	before := count()
	// The store serves again: acknowledged writes resume, past the promotion.
	redistest.WaitFor(t, 20*time.Second, 10*time.Millisecond, func() bool {
		return count() >= before+500 && time.Since(promotedAt) > 3*time.Second
	}, "writes after the failover (last error: %v)", lastErr.Load())
	close(stop)
	wg.Wait()
	_, err = st.PutAgentState(ctx, host.AgentState{AgentID: "after", State: []byte(`{}`)})
	require.NoError(t, err, "the store serves after the failover")
	require.NoError(t, st.Ready(ctx))
	redistest.WaitFor(t, 5*time.Second, 50*time.Millisecond, func() bool {
		n := st.RedisInfo(ctx)
		return len(n) == 1 && n[0].Addr == newMaster && n[0].Fields["role"] == "master"
	}, "the server figures are the new master's")

	var phase [3]int // before the failover, until the promotion, after
	var lost [3]int
	var firstAfter, lastLost time.Time
	for _, w := range acked {
		p := 0
		switch {
		case w.at.After(promotedAt):
			p = 2
			if firstAfter.IsZero() || w.at.Before(firstAfter) {
				firstAfter = w.at
			}
		case w.at.After(failedAt):
			p = 1
		}
		phase[p]++
		var err error
		for range 50 { // a connection to the old master may yet be closed under a read
			if _, err = st.GetAgentState(ctx, w.agent); err == nil || errors.Is(err, host.ErrNotFound) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if errors.Is(err, host.ErrNotFound) {
			lost[p]++
			if w.at.After(lastLost) {
				lastLost = w.at
			}
			continue
		}
		require.NoError(t, err)
	}
	t.Logf("%s: the Sentinels named the new master %s %v after the failover began; the first write acknowledged after that came %v after it began",
		how, newMaster, promotedAt.Sub(failedAt).Round(time.Millisecond), firstAfter.Sub(failedAt).Round(time.Millisecond))
	if !lastLost.IsZero() {
		t.Logf("%s: the last lost write was acknowledged %v after the failover began", how, lastLost.Sub(failedAt).Round(time.Millisecond))
	}
	t.Logf("%s: %d writers, %.0f writes acknowledged a second on average", how, writers, float64(len(acked))/time.Since(started).Seconds())
	t.Logf("%s: acknowledged before the failover %d, lost %d; during it %d, lost %d; after it %d, lost %d; outcome unknown %d, refused %d",
		how, phase[0], lost[0], phase[1], lost[1], phase[2], lost[2], unknown.Load(), refused.Load())
}
