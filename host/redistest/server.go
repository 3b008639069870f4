package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a private redis-server of one test, for tests that kill and
// restart Redis. It keeps its port and data directory across Stop and
// Start, and is killed when the test ends.
type Server struct {
	t testing.TB
	p *process
}

// NewServer starts a redis-server for t alone on a free loopback port, in
// a directory under t.TempDir, with --save "" --appendonly no followed by
// args (later arguments win, so "--appendonly", "yes" turns persistence
// on). Without the redis-server binary the test is skipped, or fails in CI.
func NewServer(t testing.TB, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server is not on PATH")
	}
	p, err := startProcess(t.TempDir(), 0, func(int) []string { return args })
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{t: t, p: p}
	t.Cleanup(p.kill)
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.p.addr() }

// Stop kills the server (SIGKILL, like a crash) and waits until it has
// exited. Without persistence its data is gone.
func (s *Server) Stop() { s.p.kill() }

// Start starts the stopped server again on the same port and directory and
// waits until it answers PING.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.p.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Pause stops the server's process (SIGSTOP): it keeps its connections
// but answers nothing, like a hung Redis, until Resume.
func (s *Server) Pause() { s.p.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.p.signal(syscall.SIGCONT) }

// clusterNodes is the number of masters of a test cluster.
const clusterNodes = 3

// cluster is a local Redis Cluster: three masters, no replicas.
type cluster struct {
	procs []*process
	addrs []string
}

// Cluster returns the seed addresses of a three-master Redis Cluster on
// loopback ports, started once per test binary and shared by its tests
// (give each test its own Prefix). Tests that change the cluster's shape
// use NewCluster. Without redis-server and redis-cli the test is skipped,
// or fails in CI.
func Cluster(t testing.TB) []string {
	t.Helper()
	requireClusterTools(t)
	shared.clusterOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redistest-cluster-")
		if err != nil {
			shared.clusterErr = err
			return
		}
		c, err := startCluster(dir)
		if err != nil {
			shared.clusterErr = err
			return
		}
		shared.mu.Lock()
		shared.procs = append(shared.procs, c.procs...)
		shared.mu.Unlock()
		shared.cluster = c
	})
	if shared.clusterErr != nil {
		t.Fatalf("redistest: %v", shared.clusterErr)
	}
	return append([]string(nil), shared.cluster.addrs...)
}

// NewCluster starts a three-master Redis Cluster for t alone, stopped when
// the test ends.
func NewCluster(t testing.TB) []string {
	t.Helper()
	requireClusterTools(t)
	c, err := startCluster(t.TempDir())
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.kill()
		}
	})
	return append([]string(nil), c.addrs...)
}

func requireClusterTools(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			unavailable(t, "%s is not on PATH: no local Redis Cluster", bin)
		}
	}
}

// startCluster starts the nodes in subdirectories of dir, joins them with
// redis-cli --cluster create and waits until every node reports
// cluster_state:ok and knows every other node.
func startCluster(dir string) (c *cluster, err error) {
	c = &cluster{}
	defer func() {
		if err != nil {
			for _, p := range c.procs {
				p.kill()
			}
		}
	}()
	for i := range clusterNodes {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return nil, err
		}
		var busErr error
		p, err := startProcess(nodeDir, 0, func(int) []string {
			bus, err := freePort()
			busErr = err
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-port", fmt.Sprint(bus),
				"--cluster-node-timeout", "5000",
			}
		})
		if busErr != nil {
			return nil, busErr
		}
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.addrs = append(c.addrs, p.addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	for _, addr := range c.addrs {
		if err := waitClusterOK(addr); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// waitClusterOK polls CLUSTER INFO on addr until the node says
// cluster_state:ok and knows all nodes.
func waitClusterOK(addr string) error {
	n := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer n.Close()
	want := fmt.Sprintf("cluster_known_nodes:%d", clusterNodes)
	return poll(startTimeout, 20*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := n.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, want) {
			return fmt.Errorf("cluster node %s not ready: %s", addr, strings.ReplaceAll(info, "\r\n", " "))
		}
		return nil
	})
}

// Unanswering returns the address of a listener that takes connections
// and never answers, as a store frozen, or a network that drops every
// packet, looks to a client: closed, with what it took, when t ends.
func Unanswering(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}
