package httpapi

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientKey: streams are shared by IPv4 address and IPv6 /64; an
// IPv4 address mapped into IPv6 is the IPv4 client, and an address that
// is not an IP is one client.
func TestClientKey(t *testing.T) {
	for remote, want := range map[string]string{
		"127.0.0.1:5000":             "127.0.0.1",
		"10.1.2.3:1":                 "10.1.2.3",
		"[::ffff:10.1.2.3]:1":        "10.1.2.3",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:443":      "2001:db8:1:3::/64",
		"[fe80::1%eth0]:80":          "fe80::/64",
		"@":                          "",
		"":                           "",
	} {
		assert.Equal(t, want, clientKey(remote), remote)
	}
}

// TestStreamSlotsShare: places go to whoever asks while some are free;
// then a client takes the newest place of the address holding at least
// two more than it, and no other.
func TestStreamSlotsShare(t *testing.T) {
	ss := newStreamSlots(4)
	var a []*streamSlot
	for range 4 {
		sl := ss.take("a")
		assert.NotNil(t, sl)
		a = append(a, sl)
	}
	assert.Nil(t, ss.take("a"))
	assert.True(t, ss.available("b"))
	b := ss.take("b") // a: 3, b: 1
	assert.NotNil(t, b)
	assert.True(t, isClosed(a[3].displaced), "the newest of a is displaced")
	assert.False(t, isClosed(a[2].displaced))
	assert.NotNil(t, ss.take("c")) // a: 2, b: 1, c: 1
	assert.True(t, isClosed(a[2].displaced))
	assert.False(t, ss.available("b"), "a holds 2, b 1")
	assert.Nil(t, ss.take("b"))
	assert.NotNil(t, ss.take("d")) // a: 1, b: 1, c: 1, d: 1
	assert.True(t, isClosed(a[1].displaced))
	assert.Nil(t, ss.take("e"))
	ss.release(a[3]) // displaced already: gives nothing back
	assert.Equal(t, 4, ss.open)
	ss.release(b)
	assert.Equal(t, 3, ss.open)
	assert.NotNil(t, ss.take("e"))
	ss.setMax(2)
	assert.Nil(t, ss.take("f"), "over a lowered bound, a new stream waits for one to end")
	ss.release(a[0])
	assert.Nil(t, ss.take("f"), "3 open, bound 2")
	assert.Equal(t, 2, ss.limit())
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestLongEventFilterIsReadInLinearTime: the thousands of agent_id values
// a query may give (10 000 at most) are read in time linear in their
// number: 10 000 distinct ones take about as long as 10 000 repeats of
// one, not the thousands of times longer that comparing each with every
// other took (210 ms a request).
func TestLongEventFilterIsReadInLinearTime(t *testing.T) {
	distinct, same := make([]string, 10_000), make([]string, 10_000)
	for i := range distinct {
		distinct[i], same[i] = fmt.Sprintf("agent-%06d", i), "agent-000000"
	}
	fastest := func(vs []string) time.Duration {
		best := time.Duration(math.MaxInt64)
		for range 5 {
			start := time.Now()
			out, err := nonEmptyList("agent_id", vs, false)
			best = min(best, time.Since(start))
			require.NoError(t, err)
			require.NotEmpty(t, out)
		}
		return best
	}
	d, s := fastest(distinct), fastest(same)
	t.Logf("10 000 distinct agent IDs read in %s, 10 000 of one in %s", d, s)
	assert.Less(t, d, 200*s+5*time.Millisecond)
	out, err := nonEmptyList("kind", []string{"a,b", " b ,c", "a"}, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c"}, out)
}
