package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/backup"
)

const backupUsage = `usage: storage-host backup -config FILE -backend NAME -o FILE|- [-max-bytes N] [-max-duration D] [-data-dir DIR]
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
	dataDir := dataDirFlag(fs)
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
	bs, err := newBackends(ctx, *configPath, *dataDir, stderr)
	if err != nil {
		return err
	}
	defer bs.close()
	st, err := bs.get(ctx, *name, "back up", true)
	if err != nil {
		return err
	}

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

// backends opens the backends of one configuration file for a command
// (backup, restore, migrate). A backend with Redis or PostgreSQL is
// opened beside the daemon serving it, if one does; one that keeps its
// records in a data directory (builtin:local, or a plugin of its own on
// the kv store with a data directory) only while no daemon serves it:
// the command then holds the daemon's data directory, as a daemon would,
// until close. One that keeps them in memory (builtin:memory) is the
// serving daemon's alone.
type backends struct {
	path, dataDir string
	stderr        io.Writer
	file          *config.File
	release       func() // the data directory's lock, once taken
	open          []*host.Store
}

// newBackends reads and checks the configuration file at path, whose
// backends without a data_dir of their own keep their data under dataDir.
func newBackends(ctx context.Context, path, dataDir string, stderr io.Writer) (*backends, error) {
	var opts []config.Option
	if dataDir != "" {
		opts = append(opts, config.WithDataDir(dataDir))
	}
	f, err := config.Load(path, opts...)
	if err == nil {
		// Another backend's plugin failing its run does not keep this
		// command from the backend it names (get refuses that one).
		err = f.Check(ctx, config.DeferPluginRuns())
	}
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fmt.Fprintln(stderr, err)
			return nil, errReported
		}
		return nil, err
	}
	return &backends{path: path, dataDir: dataDir, stderr: stderr, file: f}, nil
}

// get opens the backend name for the command to "verb" it; source says
// the command reads the backend's records, so that a data directory
// that does not exist (a -data-dir other than the daemon's, say) is an
// error, not an empty backend.
func (b *backends) get(ctx context.Context, name, verb string, source bool) (*host.Store, error) {
	def, ok := b.file.Backend(name)
	if !ok {
		names := make([]string, len(b.file.Backends))
		for i, d := range b.file.Backends {
			names[i] = d.Name
		}
		return nil, fmt.Errorf("%s has no backend %q (defined: %s)", b.path, name, strings.Join(names, ", "))
	}
	if def.Unchecked != nil {
		return nil, fmt.Errorf("cannot %s backend %q: its plugin fails when run: %w", verb, name, def.Unchecked)
	}
	switch {
	case def.Config.Redis != nil || def.Config.Postgres != nil:
		// Not the daemon's data directory, which the daemon serving the
		// backend holds: a tool never buffers a write (restores are not
		// buffered), so its Redis backend needs no fallback buffer on disk.
		def.Config.DataDir = ""
	case def.Config.DataDir == "":
		return nil, fmt.Errorf("cannot %s backend %q from this command: it keeps its records in the memory of the daemon serving it, out of this process's reach; "+
			"give it a backup block in %s, and the daemon backs it up on schedule (and restores the newest backup at start with restore_on_start = true)", verb, name, b.path)
	default:
		if _, err := os.Stat(def.Config.DataDir); source && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cannot %s backend %q: its data directory %s does not exist (is -data-dir the daemon's?)", verb, name, def.Config.DataDir)
		}
		if b.release != nil {
			break
		}
		dir, err := checkDataDir(b.dataDir)
		if err != nil {
			return nil, err
		}
		release, err := lockDataDir(dir)
		if errors.Is(err, errDataDirInUse) {
			return nil, fmt.Errorf("cannot %s backend %q while a daemon serves it: %w; stop that daemon first (a daemon backs a backend up itself on the schedule of its backup block)", verb, name, err)
		}
		if err != nil {
			return nil, err
		}
		b.release = release
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "storage-host", Level: hclog.Warn, Output: b.stderr})
	st, err := host.Open(ctx, def.Config, host.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	b.open = append(b.open, st)
	return st, nil
}

// close closes the backends opened, the last first, and then lets the
// data directory go.
func (b *backends) close() {
	for i := len(b.open) - 1; i >= 0; i-- {
		closeStore(b.open[i], b.stderr)
	}
	if b.release != nil {
		b.release()
	}
}

func closeStore(st *host.Store, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := st.Close(ctx); err != nil {
		fmt.Fprintln(stderr, "storage-host: closing:", err)
	}
}
