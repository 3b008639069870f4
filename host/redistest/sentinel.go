package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the Sentinels of NewSentinels watch.
const SentinelMaster = "storage-host"

// Sentinels is a Redis master, one replica of it and three Sentinels
// watching them (quorum 2, the master deemed down after 1 s), private to
// one test and killed when it ends.
type Sentinels struct {
	// Addrs are the Sentinels' host:port addresses.
	Addrs []string
	// Master and Replica are the data servers as started; after a
	// failover the replica is the master.
	Master, Replica *Server

	sentinels []*process
}

// NewSentinels starts a master, its replica and three Sentinels on free
// loopback ports, and returns once the replica is in sync and every
// Sentinel knows the replica and the two other Sentinels. Without the
// redis-server binary the test is skipped, or fails in CI.
func NewSentinels(t testing.TB) *Sentinels {
	t.Helper()
	s := &Sentinels{Master: NewServer(t)}
	host, port, _ := strings.Cut(s.Master.Addr(), ":")
	s.Replica = NewServer(t, "--replicaof", host, port)
	conf := fmt.Sprintf("sentinel monitor %s %s %s 2\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 5000\n"+
		"sentinel parallel-syncs %[1]s 1\n", SentinelMaster, host, port)
	for range 3 {
		dir := t.TempDir()
		file := filepath.Join(dir, "sentinel.conf") // Sentinel rewrites it
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		p, err := startConf(dir, file, 0, nil)
		if err != nil {
			t.Fatalf("redistest: sentinel: %v", err)
		}
		t.Cleanup(p.kill)
		s.sentinels = append(s.sentinels, p)
		s.Addrs = append(s.Addrs, p.addr())
	}
	err := poll(startTimeout, 50*time.Millisecond, func() error {
		for _, a := range s.Addrs {
			if err := s.knows(a); err != nil {
				return fmt.Errorf("sentinel %s: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: the sentinels did not settle: %v", err)
	}
	return s
}

// knows reports whether the Sentinel at addr knows the replica, in sync,
// and the other Sentinels.
func (s *Sentinels) knows(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c := redis.NewSentinelClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	replicas, err := c.Replicas(ctx, SentinelMaster).Result()
	if err != nil {
		return err
	}
	synced := false
	for _, r := range replicas {
		if r["name"] == s.Replica.Addr() && r["master-link-status"] == "ok" && !strings.Contains(r["flags"], "down") {
			synced = true
		}
	}
	if !synced {
		return fmt.Errorf("the replica %s is not known in sync", s.Replica.Addr())
	}
	others, err := c.Sentinels(ctx, SentinelMaster).Result()
	if err != nil {
		return err
	}
	if len(others) != len(s.Addrs)-1 {
		return fmt.Errorf("knows %d other sentinels, want %d", len(others), len(s.Addrs)-1)
	}
	return nil
}

// MasterAddr returns the master's address as the first Sentinel that
// answers names it.
func (s *Sentinels) MasterAddr(ctx context.Context) (string, error) {
	var lastErr error
	for _, a := range s.Addrs {
		c := redis.NewSentinelClient(&redis.Options{Addr: a, Protocol: 2, DisableIdentity: true})
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = c.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("redistest: no sentinel names the master: %w", lastErr)
}
