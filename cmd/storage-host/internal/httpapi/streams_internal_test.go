package httpapi

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
