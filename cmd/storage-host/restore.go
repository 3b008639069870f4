package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/backup"
)

const restoreUsage = `usage: storage-host restore -config FILE -backend NAME [-mode fail|skip|overwrite] [-keep-expiry] [-data-dir DIR] FILE|-
`

// restoreCmd restores a backup file into one backend of a configuration.
func restoreCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, restoreUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file naming the backend (required)")
	name := fs.String("backend", "", "the backend to restore into (required)")
	modeName := fs.String("mode", "fail", "when the backend holds a record of the backup: fail (write nothing), skip (keep the backend's), overwrite")
	dataDir := dataDirFlag(fs)
	keepExpiry := fs.Bool("keep-expiry", false, "count each record's TTL from when the backup was made, not from the restore: a record whose time is up is left out (as restore_on_start does)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" || *name == "" || fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	mode, ok := abi.ParseRestoreMode(*modeName)
	if !ok {
		return usagef("restore: -mode %q is not fail, skip or overwrite", *modeName)
	}
	path := fs.Arg(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var src *os.File
	if path == "-" {
		// The whole file is verified before anything is written, so it
		// is read twice: standard input is kept in a temporary file.
		tmp, err := os.CreateTemp("", "storage-host-restore-*"+backup.Ext)
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if _, err := io.Copy(tmp, os.Stdin); err != nil {
			return fmt.Errorf("restore: reading standard input: %w", err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		src = tmp
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	}

	bs, err := newBackends(ctx, *configPath, *dataDir, stderr)
	if err != nil {
		return err
	}
	defer bs.close()
	st, err := bs.get(ctx, *name, "restore into", false)
	if err != nil {
		return err
	}
	bar := newProgress(stderr, "restore")
	sum, err := backup.Restore(ctx, st, src, backup.RestoreOptions{
		Mode:       mode,
		KeepExpiry: *keepExpiry,
		Progress:   func(p backup.RestoreProgress) { bar.update("restore", p.Done, p.Total) },
	})
	bar.finish()
	if err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "restored %s into backend %s (mode %s): written %s; skipped %d (the backend held them); expired %d\n",
		path, *name, mode, sum.Written, sum.Skipped.Total(), sum.Expired.Total())
	return nil
}
