package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/backup"
)

const migrateUsage = `usage: storage-host migrate -config FILE -from NAME -to NAME [-state FILE] [-mode fail|skip|overwrite] [-data-dir DIR]
`

// migrateCmd copies every record of one backend into another.
func migrateCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file naming both backends (required)")
	fromName := fs.String("from", "", "the backend to copy from (required)")
	toName := fs.String("to", "", "the backend to copy into (required)")
	state := fs.String("state", "", "checkpoint file: the same one resumes an interrupted migration (default: storage-host-migrate-FROM-TO.json in the current directory)")
	dataDir := dataDirFlag(fs)
	modeName := fs.String("mode", "fail", "when the target holds a record of the source's key with another content: fail (checked before anything is written), skip (keep the target's), overwrite")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" || *fromName == "" || *toName == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if *fromName == *toName {
		return usagef("migrate: -from and -to both name backend %q", *fromName)
	}
	mode, ok := abi.ParseRestoreMode(*modeName)
	if !ok {
		return usagef("migrate: -mode %q is not fail, skip or overwrite", *modeName)
	}
	if *state == "" {
		*state = fmt.Sprintf("storage-host-migrate-%s-%s.json", *fromName, *toName)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal kills at once; the checkpoint is on disk.
		<-ctx.Done()
		stop()
	}()

	bs, err := newBackends(ctx, *configPath, *dataDir, stderr)
	if err != nil {
		return err
	}
	defer bs.close()
	from, err := bs.get(ctx, *fromName, "migrate from", true)
	if err != nil {
		return err
	}
	to, err := bs.get(ctx, *toName, "migrate into", false)
	if err != nil {
		return err
	}

	bar := newProgress(stderr, "migrate")
	sum, err := backup.Migrate(ctx, from, to, backup.MigrateOptions{
		Mode:     mode,
		State:    *state,
		Progress: func(p backup.MigrateProgress) { bar.update(p.Phase, p.Done, p.Total) },
	})
	bar.finish()
	switch {
	case err == nil:
	case errors.Is(err, backup.ErrMismatch):
		printMigrated(stdout, *fromName, *toName, &sum)
		return fmt.Errorf("migrate: %w", err)
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "storage-host: migrate interrupted after %d of %d records; run the same command again to resume from %s\n",
			sum.Copied.Total()+sum.Skipped.Total()+sum.Expired.Total(), sum.Total.Total(), *state)
		return errReported
	default:
		if _, serr := os.Stat(*state); serr == nil {
			return fmt.Errorf("migrate: %w; once the cause is fixed, run the same command again to resume from %s", err, *state)
		}
		return fmt.Errorf("migrate: %w", err)
	}
	printMigrated(stdout, *fromName, *toName, &sum)
	return nil
}

func printMigrated(w io.Writer, from, to string, sum *backup.MigrateSummary) {
	how := "migrated"
	if sum.Resumed {
		how = "migrated (resumed)"
	}
	fmt.Fprintf(w, "%s %s → %s: copied %s; skipped %d; expired %d; in %s (%.0f records/s)\n",
		how, from, to, sum.Copied, sum.Skipped.Total(), sum.Expired.Total(), sum.Took.Round(time.Millisecond),
		float64(sum.Copied.Total())/max(sum.Took.Seconds(), 1e-9))
	for _, k := range abi.RecordKinds() {
		s, d := sum.Source.Of(k), sum.Target.Of(k)
		verdict := "equal"
		if *s != *d {
			verdict = "DIFFERENT"
		}
		fmt.Fprintf(w, "  %-12s source %s; target %s: %s\n", k.String()+"s", s, d, verdict)
	}
}

// progress shows how far a long command is: a bar on a terminal, plain
// lines at most every second otherwise.
type progress struct {
	w     io.Writer
	cmd   string
	bar   *progressbar.ProgressBar // on a terminal
	phase string
	last  time.Time
	done  int64
	total int64
}

// plainEvery is the least time between two plain progress lines.
const plainEvery = time.Second

func newProgress(w io.Writer, cmd string) *progress {
	p := &progress{w: w, cmd: cmd}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(cmd),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("records"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *progress) update(phase string, done, total int64) {
	changed := phase != p.phase
	p.phase, p.done, p.total = phase, done, total
	if p.bar != nil {
		if changed {
			p.bar.Reset()
			max := total
			if max <= 0 {
				max = -1 // a spinner while counting
			}
			p.bar.ChangeMax64(max)
			p.bar.Describe(p.cmd + ": " + phase)
		}
		_ = p.bar.Set64(done)
		return
	}
	// The last line of a phase with a total is always printed; while
	// counting (no total yet) every line is throttled, so that a backend
	// answering page after empty page prints a line a plainEvery at most.
	if !changed && time.Since(p.last) < plainEvery && (done != total || total <= 0) {
		return
	}
	p.last = time.Now()
	if total > 0 {
		fmt.Fprintf(p.w, "%s: %s %d/%d records (%d%%)\n", p.cmd, phase, done, total, done*100/total)
	} else {
		fmt.Fprintf(p.w, "%s: %s %d records\n", p.cmd, phase, done)
	}
}

// finish takes the bar off the terminal: a command's last words are
// printed where it was.
func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Clear()
		_ = p.bar.Exit()
	}
}
