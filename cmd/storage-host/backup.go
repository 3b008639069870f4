package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
)

const backupUsage = `usage: storage-host backup -config FILE -backend NAME -o FILE|- [-max-bytes N] [-max-duration D]
       storage-host backup verify FILE
`

// backupCmd writes a backup of one backend of a configuration, or checks
// a backup file.
func backupCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "verify" {
		return verifyCmd(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, backupUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file naming the backend (required)")
	name := fs.String("backend", "", "the backend to back up (required)")
	out := fs.String("o", "", `the backup file to write (required); "-" writes to standard output`)
	var bounds backup.Options
	fs.Int64Var(&bounds.MaxBytes, "max-bytes", backup.DefaultMaxBytes, "stop, with an error, a backup that would write more bytes than this; negative: no bound")
	fs.DurationVar(&bounds.MaxDuration, "max-duration", backup.DefaultMaxDuration, "stop, with an error, a backup that runs longer than this; negative: no bound")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" || *name == "" || *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := openBackend(ctx, *configPath, *name, "back up", stderr)
	if err != nil {
		return err
	}
	defer closeStore(st, stderr)

	var sum backup.Summary
	report := stdout
	if *out == "-" {
		report = stderr // stdout holds the backup
		sum, err = backup.BackupWith(ctx, st, stdout, bounds)
	} else {
		sum, err = backup.BackupFileWith(ctx, st, *out, bounds)
	}
	if err != nil {
		return err
	}
	where := *out
	if where == "-" {
		where = "standard output"
	}
	fmt.Fprintf(report, "backup of backend %s: %s (%d bytes, sha256 %x) written to %s\n",
		*name, sum.Counts, sum.Bytes, sum.SHA256, where)
	return nil
}

// verifyCmd checks a backup file and describes it.
func verifyCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, "usage: storage-host backup verify FILE\n") }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := backup.Verify(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	describeBackup(stdout, path, sum)
	return nil
}

func describeBackup(w io.Writer, path string, sum backup.Summary) {
	h := sum.Header
	fmt.Fprintf(w, "%s: ok\n", path)
	fmt.Fprintf(w, "  created:  %s\n", h.Created.UTC().Format("2006-01-02T15:04:05.000Z"))
	fmt.Fprintf(w, "  backend:  %s (plugin %s %s, ABI %s)\n", h.Backend, h.Plugin, h.PluginVersion, h.ABI)
	fmt.Fprintf(w, "  records:  %s\n", sum.Counts)
	if sum.Overrides+sum.Tombstones > 0 {
		fmt.Fprintf(w, "  redo:     %d overrides, %d tombstones (the last frame of a key wins)\n", sum.Overrides, sum.Tombstones)
	}
	if sum.Settled {
		fmt.Fprintf(w, "  snapshot: settled, as of event %s\n", sum.Position)
	} else {
		fmt.Fprintf(w, "  snapshot: not settled (format version %d): consistent per record only\n", sum.Version)
	}
	fmt.Fprintf(w, "  bytes:    %d\n", sum.Bytes)
	fmt.Fprintf(w, "  sha256:   %x\n", sum.SHA256)
}

// openBackend opens the backend name of the configuration file at path
// for a tool to "verb" it. A backend without Redis is refused: its
// records live in the daemon serving it (its memory, or its data
// directory, which that daemon holds), out of another process's reach.
func openBackend(ctx context.Context, path, name, verb string, stderr io.Writer) (*host.Store, error) {
	var opts []config.Option
	if dir := defaultDataDir(); dir != "" {
		opts = append(opts, config.WithDataDir(dir))
	}
	f, err := config.Load(path, opts...)
	if err == nil {
		err = f.Check(ctx)
	}
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fmt.Fprintln(stderr, err)
			return nil, errReported
		}
		return nil, err
	}
	def, ok := f.Backend(name)
	if !ok {
		names := make([]string, len(f.Backends))
		for i, b := range f.Backends {
			names[i] = b.Name
		}
		return nil, fmt.Errorf("%s has no backend %q (defined: %s)", path, name, strings.Join(names, ", "))
	}
	if def.Config.Redis == nil && def.Config.Postgres == nil {
		return nil, fmt.Errorf("cannot %s backend %q from this command: it has no redis or postgres block, so its records live in the daemon serving it (in its memory, or in its data directory, which that daemon holds), out of this process's reach; "+
			"give it a backup block in %s, and the daemon backs it up on schedule (and restores the newest backup at start with restore_on_start = true)", verb, name, path)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "storage-host", Level: hclog.Warn, Output: stderr})
	// Not the daemon's data directory, which the daemon serving the
	// backend holds: a tool never buffers a write (restores are not
	// buffered), so its Redis backend needs no fallback buffer on disk.
	def.Config.DataDir = ""
	st, err := host.Open(ctx, def.Config, host.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	return st, nil
}

func closeStore(st *host.Store, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := st.Close(ctx); err != nil {
		fmt.Fprintln(stderr, "storage-host: closing:", err)
	}
}
