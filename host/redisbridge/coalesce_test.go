package redisbridge

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/redistest"
)

// occupy sends, in the background, as many single-write requests as the
// bridge keeps pipelines in flight, on a paused server, so that every
// pipeline slot is taken. They wait until the server answers, a minute
// passes, or the test calls stop; wait returns their errors once they
// end. The test ends them itself: a timer of their own could free the
// slots before a loaded machine has queued what the test queues behind
// them.
func occupy(t *testing.T, b *Bridge) (stop func(), wait func() []error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	n := b.pipes.Slots()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = callCtx(t, ctx, b, &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("SET", "held"+strconv.Itoa(i), "1")}})
		})
	}
	redistest.WaitFor(t, 5*time.Second, time.Millisecond, func() bool { return b.pipes.Running() == n }, "the pipeline slots are taken")
	return cancel, func() []error { wg.Wait(); return errs }
}

// written is a hook that signals, once, when a connection the bridge
// dials writes bytes holding marker: the kernel then holds them for a
// paused server, which runs them once it wakes.
type written struct {
	marker []byte
	once   sync.Once
	done   chan struct{}
}

func watchWrites(marker string) *written {
	return &written{marker: []byte(marker), done: make(chan struct{})}
}

func (w *written) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &writeWatch{Conn: conn, w: w}, nil
	}
}

func (*written) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (*written) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

type writeWatch struct {
	net.Conn
	w *written
}

func (c *writeWatch) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 && bytes.Contains(p[:n], c.w.marker) {
		c.w.once.Do(func() { close(c.w.done) })
	}
	return n, err
}

// Concurrent requests beyond the pipelines in flight wait and then travel
// together in one pipeline on one connection, each with its own replies.
func TestConcurrentRequestsSharePipelines(t *testing.T) {
	s, b, direct := privateServer(t, Config{})
	before := b.PoolStats().TotalConns
	s.Pause()
	t.Cleanup(s.Resume)
	_, held := occupy(t, b)

	const n = 40
	replies := make([][]abi.Reply, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := "k" + strconv.Itoa(i)
			replies[i], errs[i] = callCtx(t, context.Background(), b, &abi.RedisRequest{Mode: abi.RedisPipeline,
				Commands: [][][]byte{cmd("SET", k, strconv.Itoa(i)), cmd("GET", k)}})
		})
	}
	redistest.WaitFor(t, 5*time.Second, time.Millisecond, func() bool { return b.pipes.Queued() == n },
		"every request beyond the slots queues")
	s.Resume()
	wg.Wait()
	for _, err := range held() {
		require.NoError(t, err)
	}
	for i := range n {
		require.NoError(t, errs[i], "request %d", i)
		assert.Equal(t, []abi.Reply{status("OK"), bulkR(strconv.Itoa(i))}, replies[i], "request %d", i)
		assert.Equal(t, strconv.Itoa(i), direct.Get(context.Background(), "sht:outcome:k"+strconv.Itoa(i)).Val())
	}
	// The slots' connections and one for the shared pipelines, not one per
	// request.
	assert.LessOrEqual(t, b.PoolStats().TotalConns, before+uint32(b.pipes.Slots())+1)
}

// A queued request whose context ends before a pipeline takes it was never
// sent: UNAVAILABLE, and its write never runs.
func TestQueuedRequestAbandonedIsUnavailable(t *testing.T) {
	s, b, direct := privateServer(t, Config{})
	s.Pause()
	t.Cleanup(s.Resume)
	_, held := occupy(t, b)

	err := run(t, b, 100*time.Millisecond, abi.RedisPipeline, cmd("SET", "queued", "v"))
	require.ErrorIs(t, err, abi.StatusUnavailable)
	assert.Zero(t, b.pipes.Queued(), "the abandoned request left the queue")
	s.Resume()
	held()
	_, err = pipeline(t, b, cmd("PING"))
	require.NoError(t, err)
	assert.Zero(t, direct.Exists(context.Background(), "sht:outcome:queued").Val(), "the abandoned write never ran")
}

// When a shared pipeline fails after it was written, each of its requests
// is judged alone: one with a write is UNKNOWN, a read-only one
// UNAVAILABLE; and a caller that gives up while its request is in a shared
// pipeline is answered as possibly sent.
func TestSharedPipelineFailureIsJudgedPerRequest(t *testing.T) {
	sent := watchWrites("incr\r\n$13\r\nsht:outcome:n\r\n")
	s, b, _ := privateServer(t, Config{}, sent)
	s.Pause()
	t.Cleanup(s.Resume)
	stop, held := occupy(t, b)

	write, read, gaveUp := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	giveUp, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { write <- run(t, b, 10*time.Second, abi.RedisPipeline, cmd("INCR", "n")) }()
	go func() { read <- run(t, b, 10*time.Second, abi.RedisPipeline, cmd("GET", "n")) }()
	go func() {
		_, err := callCtx(t, giveUp, b, &abi.RedisRequest{Mode: abi.RedisPipeline, Commands: [][][]byte{cmd("INCR", "m")}})
		gaveUp <- err
	}()
	redistest.WaitFor(t, 5*time.Second, time.Millisecond, func() bool { return b.pipes.Queued() == 3 }, "three requests queue")
	// The slots' requests end, leaving the queue to a flusher.
	stop()
	for _, err := range held() {
		require.Error(t, err) // UNAVAILABLE on a connection still setting up
	}
	redistest.WaitFor(t, 5*time.Second, time.Millisecond, func() bool { return b.pipes.Queued() == 0 }, "a flusher takes the queue")
	select {
	case <-sent.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the shared pipeline was not written")
	}

	cancel() // while Redis is paused, its request in the flusher's pipeline
	err := <-gaveUp
	require.ErrorIs(t, err, abi.StatusUnknown)
	s.Stop()
	require.ErrorIs(t, <-write, abi.StatusUnknown)
	err = <-read
	require.ErrorIs(t, err, abi.StatusUnavailable)
	require.NotErrorIs(t, err, abi.StatusUnknown)
}

// A queued request owns its byte arguments: the caller's buffers (the
// plugin's memory) may change once it has been answered.
func TestQueuedRequestOwnsItsBytes(t *testing.T) {
	arg := []byte("value")
	c := newRawCmd(context.Background(), new(replyBudget), "set", "k", arg)
	own([]*rawCmd{c})
	copy(arg, "XXXXX")
	assert.Equal(t, []byte("value"), c.Args()[2])

	// As the bridge builds arguments (argArena): a key of the bridge's
	// own bytes, and a value aliasing the plugin's.
	arg = []byte("value")
	arena := newArgArena(2, 16, 3)
	c = newRawCmd(context.Background(), new(replyBudget), append(arena.list(3), "set", arena.key("p:", []byte("k")), arena.bytes(arg))...)
	own([]*rawCmd{c})
	copy(arg, "XXXXX")
	assert.Equal(t, "p:k", c.Args()[1].(*byteArg).String())
	assert.Equal(t, "value", c.Args()[2].(*byteArg).String())
}

// A request of more than maxSharedRequest commands does not wait for a
// pipeline slot: it is sent at once on a connection of its own (so, on a
// paused Redis, its writes time out possibly sent, where a queued request
// would have been abandoned unsent).
func TestLargeRequestKeepsItsOwnPipeline(t *testing.T) {
	s, b, _ := privateServer(t, Config{})
	s.Pause()
	t.Cleanup(s.Resume)
	_, held := occupy(t, b)

	cmds := make([][][]byte, maxSharedRequest+1)
	for i := range cmds {
		cmds[i] = cmd("INCR", "bulk")
	}
	err := run(t, b, time.Second, abi.RedisPipeline, cmds...)
	require.ErrorIs(t, err, abi.StatusUnknown, "sent, not queued")
	assert.Zero(t, b.pipes.Queued())
	s.Resume()
	held()
}
