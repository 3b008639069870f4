package redisbridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/abi"
)

// A Lua script can build key names from ARGV, so prefixing its KEYS does
// not confine it. When scripts are granted, the bridge's connections log
// in as a Redis ACL user of the backend's own, which Redis itself holds to
// the namespace:
//
//	ACL SETUSER storage-host:<prefix> on ><password> clearselectors
//	    resetkeys ~<prefix>* resetchannels
//	    -@all +@read +@write -@dangerous -scan -randomkey -dbsize -move -copy
//	    +ping +time +echo +multi +exec +discard
//	    +eval +evalsha +eval_ro +evalsha_ro
//	    +command +asking +cluster|slots +cluster|shards [+select]
//	    [-lcs -sinter ... : the costly commands the backend is not allowed]
//
// Data commands only, keys under the prefix only, no channels; not the
// commands whose cost grows with whole collections (costly, bounds.go)
// unless the backend's AllowCommands names them, so redis.call in a script
// cannot run them either; no
// keyspace-wide reads (KEYS is @dangerous; SCAN, RANDOMKEY and DBSIZE are
// named), no moving keys to another database (MOVE, COPY). MULTI, EXEC and
// DISCARD serve RedisTransaction mode (if MULTI were refused, go-redis
// would still send the queued commands, each on its own). COMMAND, ASKING
// and CLUSTER SLOTS|SHARDS are what go-redis needs to route on a cluster;
// SELECT only when Config.DB is not 0 (go-redis selects it on connect; a
// script may then SELECT too, still held to the prefix, which is why a
// prefix is the backend's in every database of the Redis: registry.go).
// A redis.call
// outside these walls fails with NOPERM.
//
// Open runs the command with the configured connection's rights, on every
// node of a cluster (masters and replicas) and on the master of a Sentinel
// setup (a replica promoted later gets the user when the bridge next fails
// to log in, below). Each bridge adds a password of its own (so two
// bridges of one prefix, during a hot swap say, do not lock each other
// out) and Close removes it. ACL users live in memory: when the bridge's
// login fails (WRONGPASS, a Redis restarted without an ACL file), it runs
// the command again and retries the request once.

// userPrefix starts the name of every ACL user the bridge creates.
const userPrefix = "storage-host:"

// ACLUser is the name of the Redis ACL user a bridge granted scripts makes
// for the key prefix prefix. Close leaves the user, without the bridge's
// password, for other bridges of the prefix; a tool that drops a prefix
// for good deletes it (ACL DELUSER).
func ACLUser(prefix string) string { return userPrefix + prefix }

// aclUser is a backend's Redis user and the client that manages it.
type aclUser struct {
	name, password string
	rules          []any // the ACL SETUSER command
	admin          redis.UniversalClient
	killer         redis.UniversalClient // SCRIPT KILL, with a read timeout that outlasts busy-reply-threshold
	killerClosed   sync.Once
	killerErr      error

	mu   sync.Mutex
	last time.Time // of the last recreate
}

// createUser connects with opts, the configured rights, and creates the
// confined user for prefix; if Redis cannot be reached, the user is
// created at the first login that fails. A refusal by Redis (NOPERM, a
// wrong password) is an error.
func createUser(ctx context.Context, opts *redis.UniversalOptions, prefix string, allowed map[string]*command) (*aclUser, error) {
	var pw [32]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, err
	}
	adminOpts := *opts
	adminOpts.PoolSize = 2
	adminOpts.MinIdleConns = 0
	// Database 0: ACL and SCRIPT KILL are server-wide, and SELECT, which
	// Redis refuses while a script runs, would keep a kill from connecting.
	adminOpts.DB = 0
	killOpts := adminOpts
	killOpts.PoolSize = 1
	killOpts.ReadTimeout = killWait
	u := &aclUser{
		name:     ACLUser(prefix),
		password: hex.EncodeToString(pw[:]),
		admin:    redis.NewUniversalClient(&adminOpts),
		killer:   redis.NewUniversalClient(&killOpts),
	}
	u.rules = []any{
		"acl", "setuser", u.name, "on", ">" + u.password, "clearselectors",
		"resetkeys", "~" + prefix + "*", "resetchannels",
		"-@all", "+@read", "+@write", "-@dangerous",
		"-scan", "-randomkey", "-dbsize", "-move", "-copy",
		"+ping", "+time", "+echo", "+multi", "+exec", "+discard",
		"+eval", "+evalsha", "+eval_ro", "+evalsha_ro",
		"+command", "+asking", "+cluster|slots", "+cluster|shards",
	}
	if opts.DB != 0 {
		u.rules = append(u.rules, "+select")
	}
	for _, name := range costly {
		if allowed[name] == nil {
			u.rules = append(u.rules, "-"+name)
		}
	}
	if err := u.apply(ctx, u.rules); err != nil {
		var reply redis.Error
		if !errors.As(err, &reply) {
			// Redis cannot be reached (no reply at all): the user is made
			// once it can, at the first command that fails to log in, as
			// after a restart of Redis that forgot it (relogin). A backend
			// with a fallback starts, or is rebuilt, during an outage.
			return u, nil
		}
		_ = u.admin.Close()
		_ = u.killer.Close()
		if strings.Contains(err.Error(), "NOPERM") {
			return nil, fmt.Errorf("%w: redisbridge: scripts need a Redis user allowed to run ACL SETUSER, to create the backend's user confined to %q: %w", abi.StatusInvalid, prefix, err)
		}
		return nil, fmt.Errorf("%w: redisbridge: creating the scripts user %q: %w", abi.StatusInvalid, u.name, err)
	}
	return u, nil
}

// apply runs an ACL command on every node.
func (u *aclUser) apply(ctx context.Context, cmd []any) error {
	if cc, ok := u.admin.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
			return node.Do(ctx, cmd...).Err()
		})
	}
	return u.admin.Do(ctx, cmd...).Err()
}

// recreate runs ACL SETUSER again, at most once a second; a caller that
// finds it just done goes ahead as if it had done it.
func (u *aclUser) recreate(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if time.Since(u.last) < time.Second {
		return nil
	}
	u.last = time.Now()
	return u.apply(ctx, u.rules)
}

// close closes the admin client and the killer.
func (u *aclUser) close() error {
	return errors.Join(u.admin.Close(), u.closeKiller())
}

// removePassword removes the bridge's password from the user (best
// effort: Redis may be down).
func (u *aclUser) removePassword(ctx context.Context) error {
	err := u.apply(ctx, []any{"acl", "setuser", u.name, "<" + u.password})
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		err = nil // Redis restarted and forgot it
	}
	if err != nil {
		err = fmt.Errorf("redisbridge: removing the password of %q: %w", u.name, err)
	}
	return err
}

// closeKiller closes the killer's connections, once: a round of SCRIPT
// KILL waiting on a Redis that does not answer returns then, which a
// cancelled context does not make it do.
func (u *aclUser) closeKiller() error {
	u.killerClosed.Do(func() { u.killerErr = u.killer.Close() })
	return u.killerErr
}
