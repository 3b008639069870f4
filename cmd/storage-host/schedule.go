package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
)

// scheduler runs the scheduled backups of the daemon's backends: one job
// per backend with a backup block, restarted when the block changes and
// stopped when it goes.
type scheduler struct {
	m   *manager.Manager
	log hclog.Logger

	mu   sync.Mutex
	jobs map[string]*job // by backend

	runs        *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

type job struct {
	cfg    config.Backup
	cancel context.CancelFunc
	done   chan struct{}
}

func newScheduler(m *manager.Manager, log hclog.Logger, reg prometheus.Registerer) *scheduler {
	s := &scheduler{
		m: m, log: log.Named("backup"), jobs: map[string]*job{},
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "storage_host_backups_total",
			Help: "Scheduled backups, by backend and result (ok, failed).",
		}, []string{"backend", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "storage_host_backup_last_success_timestamp_seconds",
			Help: "When the last scheduled backup of the backend that succeeded finished, in Unix seconds.",
		}, []string{"backend"}),
	}
	if reg != nil {
		reg.MustRegister(s.runs, s.lastSuccess)
	}
	return s
}

// update makes the jobs those of f: new backup blocks start a job, changed
// ones restart theirs, removed ones stop theirs.
func (s *scheduler) update(f *config.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]config.Backup{}
	for _, b := range f.Backends {
		if b.Backup != nil {
			want[b.Name] = *b.Backup
		}
	}
	for name, j := range s.jobs {
		if cfg, ok := want[name]; !ok || cfg != j.cfg {
			j.stop()
			delete(s.jobs, name)
			if !ok {
				s.log.Info("scheduled backups stopped", "backend", name)
			}
		}
	}
	for name, cfg := range want {
		if _, ok := s.jobs[name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		j := &job{cfg: cfg, cancel: cancel, done: make(chan struct{})}
		s.jobs[name] = j
		s.log.Info("scheduled backups", "backend", name, "interval", cfg.Interval.String(), "directory", cfg.Directory, "keep", cfg.Keep)
		go func() {
			defer close(j.done)
			s.run(ctx, name, cfg)
		}()
	}
}

func (j *job) stop() {
	j.cancel()
	<-j.done
}

// stop stops every job, waiting for a backup in progress to give up.
func (s *scheduler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, j := range s.jobs {
		j.stop()
		delete(s.jobs, name)
	}
}

func (s *scheduler) run(ctx context.Context, name string, cfg config.Backup) {
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		started := time.Now()
		path, sum, err := s.once(ctx, name, cfg)
		switch {
		case err != nil && ctx.Err() != nil:
			return // stopped: not a failure
		case err != nil:
			s.runs.WithLabelValues(name, "failed").Inc()
			s.log.Error("backup failed", "backend", name, "error", err)
		default:
			s.runs.WithLabelValues(name, "ok").Inc()
			s.lastSuccess.WithLabelValues(name).SetToCurrentTime()
			s.log.Info("backup written", "backend", name, "file", path, "metrics", sum.Counts.Metrics,
				"alerts", sum.Counts.Alerts, "agent_states", sum.Counts.AgentStates, "bytes", sum.Bytes,
				"settled", sum.Settled, "took", time.Since(started).Round(time.Millisecond).String())
			if !sum.Settled {
				s.log.Warn("backup is not a point-in-time snapshot: writes kept changing records while it ran, or events are off",
					"backend", name, "file", path)
			}
		}
	}
}

// backupTime is the timestamp in a backup's file name: UTC, to the
// millisecond, so that names sort in time order.
const backupTime = "20060102T150405.000Z"

// once writes one backup of the backend name and prunes the old ones.
func (s *scheduler) once(ctx context.Context, name string, cfg config.Backup) (string, backup.Summary, error) {
	if err := os.MkdirAll(cfg.Directory, 0o700); err != nil {
		return "", backup.Summary{}, err
	}
	path := filepath.Join(cfg.Directory, name+"-"+time.Now().UTC().Format(backupTime)+backup.Ext)
	var (
		sum backup.Summary
		err error
	)
	// A reload may retire the store under the backup: then the new one
	// is backed up.
	for range 3 {
		st, ok := s.m.Store(name)
		if !ok {
			return "", sum, fmt.Errorf("backend %s is not open", name)
		}
		sum, err = backup.BackupFile(ctx, st, path)
		if !errors.Is(err, host.ErrClosed) {
			break
		}
	}
	if err != nil {
		return "", sum, err
	}
	removed, err := prune(cfg.Directory, name, cfg.Keep)
	for _, r := range removed {
		s.log.Debug("old backup removed", "backend", name, "file", r)
	}
	if err != nil {
		return path, sum, fmt.Errorf("backup %s written, but pruning: %w", path, err)
	}
	return path, sum, nil
}

// backups returns the backup files of backend name in dir, oldest first.
func backups(dir, name string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-\d{8}T\d{6}\.\d{3}Z` + regexp.QuoteMeta(backup.Ext) + `$`)
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && re.MatchString(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// prune removes the backups of backend name in dir but the newest keep.
func prune(dir, name string, keep int) ([]string, error) {
	files, err := backups(dir, name)
	if err != nil || len(files) <= keep {
		return nil, err
	}
	var removed []string
	for _, f := range files[:len(files)-keep] {
		if err := os.Remove(f); err != nil {
			return removed, err
		}
		removed = append(removed, f)
	}
	return removed, nil
}

// unverified remembers the backup files found not to verify.
type unverified struct {
	mu   sync.Mutex
	seen map[string]bool
}

// first reports whether file is found not to verify for the first time.
func (u *unverified) first(file string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen[file] {
		return false
	}
	if u.seen == nil {
		u.seen = map[string]bool{}
	}
	u.seen[file] = true
	return true
}

// restoreOnStart restores, into the backend b with restore_on_start that
// st opened, the newest of its backups that verifies, with the expiries
// its records had (backup.RestoreOptions.KeepExpiry), before it serves
// (manager.Options.Prepare). A backend with no backup yet starts empty;
// one whose backups all fail to verify does not open, rather than serve
// empty and soon write an empty backup over the good ones' place: it is
// tried again (a good backup may be put in place meanwhile), and the
// daemon's other backends serve.
func restoreOnStart(ctx context.Context, b config.Backend, st *host.Store, log hclog.Logger, bad *unverified) error {
	if b.Backup == nil || !b.Backup.RestoreOnStart {
		return nil
	}
	log = log.Named("backup")
	files, err := backups(b.Backup.Directory, b.Name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore_on_start: %w", err)
	}
	if len(files) == 0 {
		log.Info("no backup to restore: starting empty", "backend", b.Name, "directory", b.Backup.Directory)
		return nil
	}
	for i := len(files) - 1; i >= 0; i-- {
		started := time.Now()
		sum, err := backup.RestoreFile(ctx, st, files[i], backup.RestoreOptions{Mode: abi.RestoreOverwrite, KeepExpiry: true})
		switch {
		case errors.Is(err, backup.ErrCorrupt), errors.Is(err, backup.ErrNotBackup), errors.Is(err, backup.ErrUnsupportedVersion):
			level := hclog.Debug // said before: a backend tried again every 30 s says it once
			if bad.first(files[i]) {
				level = hclog.Error
			}
			log.Log(level, "backup does not verify; trying the one before", "backend", b.Name, "file", files[i], "error", err)
		case err != nil:
			return fmt.Errorf("restoring %s: %w", files[i], err)
		default:
			log.Info("backup restored", "backend", b.Name, "file", files[i], "metrics", sum.Written.Metrics,
				"alerts", sum.Written.Alerts, "agent_states", sum.Written.AgentStates, "expired", sum.Expired.Total(),
				"took", time.Since(started).Round(time.Millisecond).String())
			return nil
		}
	}
	return fmt.Errorf("restore_on_start: none of the %d backups in %s verifies; move them away to start empty", len(files), b.Backup.Directory)
}
