package redisbridge

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backends whose prefixes overlap on one Redis read, delete and forge each
// other's records and events: "app" covers every key of "app:billing:",
// and an ACL pattern ~app* lets the first one's scripts reach them. Open
// therefore claims its prefix in a process-wide registry of the open
// bridges, keyed by the Redis they use, and Close gives it back. The
// registry sees this process only, and knows a Redis by its addresses,
// host names resolved (HostKey: localhost and 127.0.0.1 are one server);
// a Sentinel and the master it names are not told apart. Configuration validation refuses
// overlapping prefixes in one file before anything opens.
//
// Databases of one Redis do not set prefixes apart: a backend granted
// scripts on a database other than 0 has SELECT (go-redis selects on
// connect), and its ACL user's key pattern holds in every database, so a
// script of "app" in database 1 reaches "app" in database 0. A prefix is
// claimed on the server, whatever the database.

var registry = struct {
	mu      sync.Mutex
	claimed map[string][]*claim // by Redis (redisID)
}{claimed: map[string][]*claim{}}

type claim struct {
	prefix, owner string
}

// redisID names the Redis server opts connect to, whatever its database.
func redisID(o *redis.UniversalOptions) string {
	addrs := make([]string, len(o.Addrs))
	for i, a := range o.Addrs {
		addrs[i] = addrKey(a)
	}
	slices.Sort(addrs)
	return o.MasterName + "|" + strings.Join(addrs, ",")
}

// addrKey is host:port with the host as HostKey names it.
func addrKey(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(HostKey(host), port)
}

// HostKey names a server's host so that two spellings of one compare
// equal: an IP address in its canonical form, a name as the least of the
// addresses it resolves to (localhost and 127.0.0.1 are one host), and a
// name that does not resolve (within a second) or a socket path as given,
// lower-cased. Two names of one host resolving to disjoint address sets
// stay apart.
func HostKey(host string) string {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	if host == "" || strings.HasPrefix(host, "/") {
		return host
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return strings.ToLower(host)
	}
	keys := make([]string, len(ips))
	for i, ip := range ips {
		keys[i] = ip.IP.String()
	}
	return slices.Min(keys)
}

// Target names the Redis server cfg connects to, as the registry of open
// bridges tells them apart (its databases are one target: see above), or
// says why cfg is invalid.
func Target(cfg Config) (string, error) {
	_, opts, err := cfg.check()
	if err != nil {
		return "", err
	}
	return redisID(opts), nil
}

// Overlap reports whether two key prefixes overlap: one starts with the
// other, so the keys of one are keys of the other.
func Overlap(a, b string) bool { return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) }

// claimPrefix registers prefix on the Redis of opts, or says which open
// bridge's prefix it overlaps. The function it returns releases it.
func claimPrefix(opts *redis.UniversalOptions, prefix, owner string) (func(), error) {
	id := redisID(opts)
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for _, c := range registry.claimed[id] {
		if c.prefix == prefix && owner != "" && c.owner == owner {
			continue // the same backend, a new generation of it
		}
		if Overlap(c.prefix, prefix) {
			return nil, fmt.Errorf("redisbridge: KeyPrefix %q overlaps %q, the prefix of a backend open on the same Redis (%s; databases do not set prefixes apart): their keys would mix", prefix, c.prefix, c.describe())
		}
	}
	c := &claim{prefix: prefix, owner: owner}
	registry.claimed[id] = append(registry.claimed[id], c)
	var once sync.Once
	return func() {
		once.Do(func() {
			registry.mu.Lock()
			defer registry.mu.Unlock()
			list := slices.DeleteFunc(registry.claimed[id], func(x *claim) bool { return x == c })
			if len(list) == 0 {
				delete(registry.claimed, id)
			} else {
				registry.claimed[id] = list
			}
		})
	}, nil
}

func (c *claim) describe() string {
	if c.owner == "" {
		return "unnamed"
	}
	return "backend " + c.owner
}
