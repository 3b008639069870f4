package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
	"github.com/storage-host/storage-host/host/redisbridge"
	"github.com/storage-host/storage-host/host/redistest"
)

// redisBackends writes a configuration of one Redis backend per name,
// each in a key namespace of its own, and a memory backend "mem"; it
// returns the file and the namespaces.
func redisBackends(t *testing.T, names ...string) (cfg string, prefixes map[string]string) {
	t.Helper()
	addr := redistest.Addr(t)
	prefixes = map[string]string{}
	var b strings.Builder
	for _, n := range names {
		prefixes[n] = redistest.Prefix(t, addr)
		fmt.Fprintf(&b, "backend %q {\n  plugin = \"builtin:redis\"\n  redis {\n    addrs      = [%q]\n    key_prefix = %q\n    scripts    = true\n  }\n}\n", n, addr, prefixes[n])
	}
	fmt.Fprintf(&b, "backend \"mem\" {\n  plugin = \"builtin:memory\"\n}\n")
	fmt.Fprintf(&b, "routes {\n  metrics      = %q\n  alerts       = %q\n  agent_states = %q\n}\n", names[0], names[0], names[0])
	cfg = filepath.Join(t.TempDir(), "storage-host.hcl")
	require.NoError(t, os.WriteFile(cfg, []byte(b.String()), 0o600))
	return cfg, prefixes
}

// openPrefix opens the Redis backend of a namespace in the test, to fill
// and check it.
func openPrefix(t *testing.T, name, prefix string) *host.Store {
	t.Helper()
	ctx := context.Background()
	st, err := host.Open(ctx, host.Config{Name: name, Plugin: "builtin:redis", Redis: &redisbridge.Config{
		Addrs: []string{redistest.Addr(t)}, KeyPrefix: prefix, Scripts: true,
	}}, host.WithCompilationCache(filepath.Join(cacheDir, "storage-host", "wazero")))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(ctx) })
	return st
}

var bkT0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// seed writes metrics (TTL 1h), alerts (no TTL) and agent states (TTL 2h,
// written twice so their versions are past 1).
func seed(t *testing.T, st *host.Store, metrics, alerts, states int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < metrics; i += 500 {
		var batch []host.Metric
		for j := i; j < min(i+500, metrics); j++ {
			batch = append(batch, host.Metric{AgentID: fmt.Sprintf("agent-%03d", j%50), Name: "tokens", Value: float64(j),
				Timestamp: bkT0.Add(time.Duration(j) * time.Millisecond), Labels: map[string]string{"model": "m" + strconv.Itoa(j%3)}})
		}
		rs, err := st.PutMetrics(ctx, batch, host.WithTTL(time.Hour))
		require.NoError(t, err)
		for _, r := range rs {
			require.NoError(t, r.Err)
		}
	}
	for i := range alerts {
		_, err := st.PutAlert(ctx, host.Alert{ID: fmt.Sprintf("alert-%03d", i), AgentID: "agent-001", Severity: abi.SeverityWarning,
			Status: abi.AlertFiring, Message: "slow"}, host.WithPersist())
		require.NoError(t, err)
	}
	for i := 0; i < states; i += 500 {
		var batch []host.AgentState
		for j := i; j < min(i+500, states); j++ {
			batch = append(batch, host.AgentState{AgentID: fmt.Sprintf("agent-%05d", j), State: []byte(fmt.Sprintf(`{"step":%d}`, j))})
		}
		for range 2 {
			rs, err := st.PutAgentStates(ctx, batch, host.WithTTL(2*time.Hour))
			require.NoError(t, err)
			for _, r := range rs {
				require.NoError(t, r.Err)
			}
		}
	}
}

func digest(t *testing.T, st *host.Store) backup.Digests {
	t.Helper()
	d, err := backup.DigestStore(context.Background(), st)
	require.NoError(t, err)
	return d
}

// TestRestoreKeepExpiry: a record whose time ran out after the backup
// comes back with a plain restore (its TTL counted again from the
// restore) and not with -keep-expiry, which counts it from the backup.
func TestRestoreKeepExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, prefixes := redisBackends(t, "a", "b", "c")
	a := openPrefix(t, "a", prefixes["a"])
	_, err := a.PutAgentState(ctx, host.AgentState{AgentID: "long", State: []byte(`2`)}, host.WithTTL(time.Hour))
	require.NoError(t, err)
	// brief must outlive the backup, which starts a binary: seconds on a
	// loaded machine, more on a very loaded one, where it is tried again
	// with a longer TTL.
	file := filepath.Join(t.TempDir(), "a.shbk")
	var put host.AgentState
	for _, brief := range []time.Duration{8 * time.Second, 30 * time.Second, 90 * time.Second} {
		put, err = a.PutAgentState(ctx, host.AgentState{AgentID: "brief", State: []byte(`1`)}, host.WithTTL(brief))
		require.NoError(t, err)
		stdout, stderr, code := runCommand(t, nil, "backup", "-config", cfg, "-backend", "a", "-o", file)
		require.Equal(t, 0, code, "stderr: %s", stderr)
		if time.Now().Before(put.ExpiresAt) {
			require.Contains(t, stdout, "2 agent states")
			break
		}
		t.Logf("the backup took longer than a TTL of %v; again with a longer one", brief)
	}
	require.Less(t, time.Now(), put.ExpiresAt, "the backup took longer than the record's TTL")
	time.Sleep(time.Until(put.ExpiresAt) + 200*time.Millisecond)

	stdout, stderr, code := runCommand(t, nil, "restore", "-config", cfg, "-backend", "b", "-keep-expiry", file)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "written 0 metrics, 0 alerts, 1 agent states")
	b := openPrefix(t, "b", prefixes["b"])
	_, err = b.GetAgentState(ctx, "brief")
	require.ErrorIs(t, err, host.ErrNotFound, "a record whose time was up came back")
	_, err = b.GetAgentState(ctx, "long")
	require.NoError(t, err)

	stdout, stderr, code = runCommand(t, nil, "restore", "-config", cfg, "-backend", "c", file)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "written 0 metrics, 0 alerts, 2 agent states")
}

// TestBackupRestore: backup, verify and restore with the real binary,
// into another Redis namespace, in each mode; a damaged file restores
// nothing.
func TestBackupRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, prefixes := redisBackends(t, "a", "b", "c")
	a := openPrefix(t, "a", prefixes["a"])
	seed(t, a, 300, 20, 50)
	dir := t.TempDir()
	file := filepath.Join(dir, "a.shbk")

	backedUp := time.Now()
	stdout, stderr, code := runCommand(t, nil, "backup", "-config", cfg, "-backend", "a", "-o", file)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Regexp(t, `^backup of backend a: 300 metrics, 20 alerts, 50 agent states \(\d+ bytes, sha256 [0-9a-f]{64}\) written to `+regexp.QuoteMeta(file)+"\n$", stdout)
	require.NoFileExists(t, file+".tmp")

	stdout, stderr, code = runCommand(t, nil, "backup", "verify", file)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, file+": ok\n")
	require.Contains(t, stdout, "  backend:  a (plugin redis 1.0.0, ABI 1.9)\n")
	require.Contains(t, stdout, "  records:  300 metrics, 20 alerts, 50 agent states\n")

	// To standard output: the same records.
	cmd := exec.Command(binary, "backup", "-config", cfg, "-backend", "a", "-o", "-")
	cmd.Env = environ(dataEnv(t))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Run(), errOut.String())
	require.Contains(t, errOut.String(), "written to standard output")
	sum, err := backup.Verify(bytes.NewReader(out.Bytes()))
	require.NoError(t, err)
	require.Equal(t, backup.Counts{Metrics: 300, Alerts: 20, AgentStates: 50}, sum.Counts)

	// Into the empty b: the default mode, fail, has nothing to refuse.
	stdout, stderr, code = runCommand(t, nil, "restore", "-config", cfg, "-backend", "b", file)
	restored := time.Since(backedUp)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Equal(t, "restored "+file+" into backend b (mode fail): written 300 metrics, 20 alerts, 50 agent states; skipped 0 (the backend held them); expired 0\n", stdout)
	b := openPrefix(t, "b", prefixes["b"])
	require.Equal(t, digest(t, a), digest(t, b))

	// Versions and TTLs are kept: a CAS with a's version works on b.
	sa, err := a.GetAgentState(ctx, "agent-00042")
	require.NoError(t, err)
	sb, err := b.GetAgentState(ctx, "agent-00042")
	require.NoError(t, err)
	require.Equal(t, sa.Version, sb.Version)
	require.Greater(t, sb.Version, uint64(1))
	// A backup keeps what a record had left: restored later, it expires
	// later, by the time between the two at most (and a second of
	// rounding).
	require.False(t, sb.ExpiresAt.Before(sa.ExpiresAt.Add(-time.Second)), "restored expiry %v before the original %v", sb.ExpiresAt, sa.ExpiresAt)
	require.WithinDuration(t, sa.ExpiresAt, sb.ExpiresAt, restored+time.Second)
	cas, err := b.PutAgentState(ctx, host.AgentState{AgentID: "agent-00042", State: []byte(`"cas"`)}, host.IfVersion(sb.Version), host.WithKeepTTL())
	require.NoError(t, err)
	require.Greater(t, cas.Version, sb.Version)

	// fail again: b holds every record, nothing is written.
	before := digest(t, b)
	_, stderr, code = runCommand(t, nil, "restore", "-config", cfg, "-backend", "b", "-mode", "fail", file)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "backend b holds 370 of its records")
	require.Contains(t, stderr, "nothing was written; restore with mode skip or overwrite to choose")
	require.Equal(t, before, digest(t, b))

	// skip keeps b's newer state.
	stdout, stderr, code = runCommand(t, nil, "restore", "-config", cfg, "-backend", "b", "-mode", "skip", file)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "written 0 metrics, 0 alerts, 0 agent states; skipped 370")
	got, err := b.GetAgentState(ctx, "agent-00042")
	require.NoError(t, err)
	require.Equal(t, cas.Version, got.Version)

	// overwrite puts the backup's back.
	stdout, stderr, code = runCommand(t, nil, "restore", "-config", cfg, "-backend", "b", "-mode", "overwrite", file)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "written 300 metrics, 20 alerts, 50 agent states; skipped 0")
	require.Equal(t, digest(t, a), digest(t, b))

	// A damaged file: verify says so, restore refuses it and writes
	// nothing, whatever the mode.
	good, err := os.ReadFile(file)
	require.NoError(t, err)
	flipped := filepath.Join(dir, "flipped.shbk")
	bad := bytes.Clone(good)
	bad[len(bad)*2/3] ^= 0x10
	require.NoError(t, os.WriteFile(flipped, bad, 0o600))
	truncated := filepath.Join(dir, "truncated.shbk")
	require.NoError(t, os.WriteFile(truncated, good[:len(good)-40], 0o600))

	_, stderr, code = runCommand(t, nil, "backup", "verify", flipped)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "storage-host: "+flipped+": backup: file is corrupt")
	_, stderr, code = runCommand(t, nil, "backup", "verify", truncated)
	require.Equal(t, 1, code)
	require.Equal(t, fmt.Sprintf("storage-host: %s: backup: file is corrupt: truncated after %d bytes\n", truncated, len(good)-40), stderr)

	c := openPrefix(t, "c", prefixes["c"])
	for _, f := range []string{flipped, truncated} {
		for _, mode := range []string{"fail", "skip", "overwrite"} {
			_, stderr, code = runCommand(t, nil, "restore", "-config", cfg, "-backend", "c", "-mode", mode, f)
			require.Equal(t, 1, code, "%s, %s", f, mode)
			require.Contains(t, stderr, "backup: file is corrupt", "%s, %s", f, mode)
			require.Zero(t, digest(t, c).Counts().Total(), "%s, %s: nothing written", f, mode)
		}
	}

	// Tools refuse a memory backend: its records are in the daemon.
	_, stderr, code = runCommand(t, nil, "backup", "-config", cfg, "-backend", "mem", "-o", filepath.Join(dir, "mem.shbk"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `cannot back up backend "mem" from this command: it keeps its records in the memory of the daemon serving it`)
	require.Contains(t, stderr, "give it a backup block in "+cfg)
	require.NoFileExists(t, filepath.Join(dir, "mem.shbk"))
	_, stderr, code = runCommand(t, nil, "restore", "-config", cfg, "-backend", "mem", file)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `cannot restore into backend "mem"`)
}

// TestToolsReachALocalBackendWithoutItsDaemon: backup, restore and
// migrate open a backend that keeps its records in a data directory
// (builtin:local) only while no daemon serves it, holding the directory
// as a daemon would; a restore into a new data directory brings the
// records back, versions included, to the daemon started on it.
func TestToolsReachALocalBackendWithoutItsDaemon(t *testing.T) {
	t.Parallel()
	data, elsewhere := t.TempDir(), t.TempDir()
	cfg := configFile(t, "backend \"disk\" {\n  plugin = \"builtin:local\"\n}\nbackend \"mem\" {\n  plugin = \"builtin:memory\"\n}\n"+
		"routes {\n  metrics = \"disk\"\n  alerts = \"disk\"\n  agent_states = \"disk\"\n}\n")
	d := startDaemon(t, nil, "-config", cfg, "-data-dir", data, "-watch=false")
	versions := map[string]string{}
	for _, id := range []string{"a1", "a2", "a3"} {
		versions[id] = putState(t, d.url, id)
	}
	file := filepath.Join(t.TempDir(), "disk.shbk")

	// While the daemon serves it: refused, naming the daemon.
	_, stderr, code := runCommand(t, nil, "backup", "-config", cfg, "-backend", "disk", "-data-dir", data, "-o", file)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, fmt.Sprintf(`cannot back up backend "disk" while a daemon serves it: data directory in use: %s is used by another storage-host (pid %d)`, data, d.cmd.Process.Pid))
	require.NoFileExists(t, file)
	_, stderr, code = runCommand(t, nil, "migrate", "-config", cfg, "-from", "disk", "-to", "mem", "-data-dir", data)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `cannot migrate from backend "disk" while a daemon serves it`)

	// Stopped: backed up; a -data-dir without the backend's directory is
	// an error, not an empty backup.
	d.stop()
	_, stderr, code = runCommand(t, nil, "backup", "-config", cfg, "-backend", "disk", "-data-dir", elsewhere, "-o", file)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `cannot back up backend "disk": its data directory `+filepath.Join(elsewhere, "backends", "disk")+` does not exist (is -data-dir the daemon's?)`)
	require.NoFileExists(t, file)
	stdout, stderr, code := runCommand(t, nil, "backup", "-config", cfg, "-backend", "disk", "-data-dir", data, "-o", file)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "3 agent states")

	// Restored into a new data directory, served from it.
	stdout, stderr, code = runCommand(t, nil, "restore", "-config", cfg, "-backend", "disk", "-data-dir", elsewhere, file)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "3 agent states")
	again := startDaemon(t, nil, "-config", cfg, "-data-dir", elsewhere, "-watch=false")
	for id, v := range versions {
		require.Equal(t, v, stateVersion(t, again.url, id), "agent %s keeps its version", id)
	}
	again.stop()
}

// TestMigrateInterrupted: a migration between two Redis backends is
// interrupted with SIGINT, says how to resume, and the same command
// resumes it to an equal copy.
func TestMigrateInterrupted(t *testing.T) {
	t.Parallel()
	cfg, prefixes := redisBackends(t, "a", "b")
	a := openPrefix(t, "a", prefixes["a"])
	seed(t, a, 24_000, 500, 6_000)
	state := filepath.Join(t.TempDir(), "migrate.json")
	args := []string{"migrate", "-config", cfg, "-from", "a", "-to", "b", "-state", state}

	// Interrupted once it has copied a page or more.
	out, log := newLines(), newLines()
	cmd := exec.Command(binary, args...)
	cmd.Env = environ(dataEnv(t))
	cmd.Stdout, cmd.Stderr = out, log
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	copying := regexp.MustCompile(`^migrate: copy [1-9]\d*/30500 records \(\d+%\)$`)
	redistest.WaitFor(t, startTimeout, 5*time.Millisecond, func() bool {
		got, _ := log.matching(copying)
		return len(got) > 0
	}, "no progress line matching %s; stderr:\n%s", copying, log)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	var err error
	select {
	case err = <-exited:
	case <-time.After(waitTimeout):
		t.Fatal("migrate did not stop on SIGINT")
	}
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "stderr:\n%s", log)
	require.Equal(t, 1, exit.ExitCode())
	require.Regexp(t, `^storage-host: migrate interrupted after \d+ of 30500 records; run the same command again to resume from `+regexp.QuoteMeta(state)+`$`, log.last())
	require.FileExists(t, state)
	got, _ := log.matching(regexp.MustCompile(`^migrate: count \d+ records$`))
	require.NotEmpty(t, got, "plain progress lines while counting")

	// The same command resumes.
	stdout, stderr, code := runCommand(t, nil, args...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "migrated (resumed) a → b: copied 24000 metrics, 500 alerts, 6000 agent states; skipped 0; expired 0")
	require.Regexp(t, `(?m)^  metrics +source 24000 records, checksum [0-9a-f]{16}; target 24000 records, checksum [0-9a-f]{16}: equal$`, stdout)
	require.Regexp(t, `(?m)^  agent_states +source 6000 records, checksum [0-9a-f]{16}; target 6000 records, checksum [0-9a-f]{16}: equal$`, stdout)
	require.NoFileExists(t, state)
	b := openPrefix(t, "b", prefixes["b"])
	require.Equal(t, digest(t, a), digest(t, b))
	st, err := b.GetAgentState(context.Background(), "agent-00100")
	require.NoError(t, err)
	sa, err := a.GetAgentState(context.Background(), "agent-00100")
	require.NoError(t, err)
	require.Equal(t, sa.Version, st.Version)
}

var backupWritten = regexp.MustCompile(`storage-host\.backup: backup written: backend=mem file=(\S+)`)

// TestScheduledBackups: a memory backend backed up every second keeps
// its newest backups, each of which verifies; a restarted daemon gets
// the records back (restore_on_start), versions included; a reload that
// changes the schedule keeps the backend and its records, and one that
// removes it stops the backups.
func TestScheduledBackups(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	block := func(keep int) string {
		return fmt.Sprintf("backend \"mem\" {\n  plugin = \"builtin:memory\"\n  backup {\n    interval         = \"1s\"\n    directory        = \"backups\"\n    keep             = %d\n    restore_on_start = true\n  }\n}\n", keep)
	}
	require.NoError(t, os.WriteFile(cfg, []byte(block(2)), 0o600))
	backups := filepath.Join(dir, "backups")

	d := startDaemon(t, nil, "-config", cfg)
	d.waitLog(regexp.MustCompile(`no backup to restore: starting empty: backend=mem`), 1)
	var versions []string
	for i := range 5 {
		r := call(t, "PUT", d.url+fmt.Sprintf("/v1/agents/sched-%d/state", i), `{"i":`+strconv.Itoa(i)+`}`)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		versions = append(versions, r.header.Get("ETag"))
	}
	// Two writes of sched-0: its version is past 1.
	r := call(t, "PUT", d.url+"/v1/agents/sched-0/state", `{"i":"again"}`)
	require.Equal(t, http.StatusOK, r.code)
	versions[0] = r.header.Get("ETag")

	// Four backups after the writes; two kept.
	n := d.logCount(backupWritten)
	d.waitLog(backupWritten, n+4)
	files := func() []string {
		m, _ := filepath.Glob(filepath.Join(backups, "mem-*.shbk"))
		return m
	}
	redistest.WaitFor(t, waitTimeout, 10*time.Millisecond, func() bool { return len(files()) == 2 }, "keep = 2: %v", files())
	for _, f := range files() {
		require.Regexp(t, `/mem-\d{8}T\d{6}\.\d{3}Z\.shbk$`, f)
		stdout, stderr, code := runCommand(t, nil, "backup", "verify", f)
		if code != 0 && strings.Contains(stderr, "no such file") {
			continue // pruned meanwhile
		}
		require.Equal(t, 0, code, "stderr: %s", stderr)
		require.Contains(t, stdout, "  backend:  mem (plugin memory 1.0.0, ABI 1.9)\n")
		require.Contains(t, stdout, "  records:  0 metrics, 0 alerts, 5 agent states\n")
	}
	require.GreaterOrEqual(t, d.metric(`storage_host_backups_total{backend="mem",result="ok"}`), 4.0)
	require.Greater(t, d.metric(`storage_host_backup_last_success_timestamp_seconds{backend="mem"}`), float64(time.Now().Add(-time.Minute).Unix()))

	// A reload changing the schedule keeps the backend and its records.
	d.waitWatching(1)
	replaceFile(t, cfg, []byte(block(3)))
	d.waitLog(regexp.MustCompile(`scheduled backups: backend=mem interval=1s directory=\S+ keep=3`), 1)
	r = call(t, "GET", d.url+"/v1/agents/sched-3/state", "")
	require.Equal(t, http.StatusOK, r.code, "the backend was kept: %s", r.body)
	redistest.WaitFor(t, waitTimeout, 10*time.Millisecond, func() bool { return len(files()) == 3 }, "keep = 3: %v", files())

	// Restarted, the daemon restores the newest backup before it serves.
	d.stop()
	d2 := startDaemon(t, nil, "-config", cfg)
	d2.waitLog(regexp.MustCompile(`backup restored: backend=mem file=\S+ metrics=0 alerts=0 agent_states=5`), 1)
	for i, v := range versions {
		r := call(t, "GET", d2.url+fmt.Sprintf("/v1/agents/sched-%d/state", i), "")
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		require.Equal(t, v, r.header.Get("ETag"), "sched-%d keeps its version", i)
	}
	r = call(t, "PUT", d2.url+"/v1/agents/sched-0/state", `{"i":"cas"}`, "If-Match", versions[0])
	require.Equal(t, http.StatusOK, r.code, "a CAS with the version from before the restart: %s", r.body)

	// Removing the block stops the backups. The same reload adds a
	// backend "tick" backed up every second: two of its backups after the
	// stop are an interval on the daemon's own clock, in which mem, had it
	// kept its schedule, would have been backed up.
	d2.waitWatching(1)
	replaceFile(t, cfg, []byte("backend \"mem\" {\n  plugin = \"builtin:memory\"\n}\n"+
		"backend \"tick\" {\n  plugin = \"builtin:memory\"\n  backup {\n    interval  = \"1s\"\n    directory = \"ticks\"\n    keep      = 1\n  }\n}\n"+
		"routes {\n  metrics      = \"mem\"\n  alerts       = \"mem\"\n  agent_states = \"mem\"\n}\n"))
	d2.waitLog(regexp.MustCompile(`scheduled backups stopped: backend=mem`), 1)
	n = d2.logCount(backupWritten)
	ticked := regexp.MustCompile(`storage-host\.backup: backup written: backend=tick `)
	d2.waitLog(ticked, d2.logCount(ticked)+2)
	require.Equal(t, n, d2.logCount(backupWritten), "mem backed up after its schedule was removed")
	d2.stop()
}

// TestRestoreOnStartRefusesCorruptBackups: when every backup fails to
// verify, the backend does not serve empty (it would soon write an empty
// backup over the good ones' place): it does not open, its routes answer
// 503, and it is tried again; once the bad backup is moved away it opens,
// empty.
func TestRestoreOnStartRefusesCorruptBackups(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	require.NoError(t, os.WriteFile(cfg, []byte("backend \"mem\" {\n  plugin = \"builtin:memory\"\n  backup {\n    interval = \"1h\"\n    directory = \"bk\"\n    restore_on_start = true\n  }\n}\n"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "bk"), 0o700))
	corrupt := filepath.Join(dir, "bk", "mem-20261126T100000.000Z.shbk")
	require.NoError(t, os.WriteFile(corrupt, []byte("SHBACKUP\x01garbage"), 0o600))
	d := startDaemon(t, nil, "-config", cfg)
	d.waitLog(regexp.MustCompile(`backup does not verify; trying the one before`), 1)
	notOpen := "backend mem: backend not open: restore_on_start: none of the 1 backups in " + filepath.Join(dir, "bk") + " verifies; move them away to start empty"
	r := call(t, "GET", d.url+"/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, r.code)
	require.Contains(t, string(r.body), "backend mem: backend not open: see the daemon's log for why")
	r = call(t, "GET", d.url+"/v1/agents/a1/state", "")
	require.Equal(t, http.StatusServiceUnavailable, r.code)
	require.Contains(t, string(r.body), notOpen)

	require.NoError(t, os.Rename(corrupt, corrupt+".bad"))
	d.waitLog(regexp.MustCompile(`no backup to restore: starting empty: backend=mem`), 1)
	d.waitLog(regexp.MustCompile(`backend opened: it serves its routes now: backend=mem`), 1)
	require.Equal(t, http.StatusNotFound, call(t, "GET", d.url+"/v1/agents/a1/state", "").code)
	d.stop()
}
