package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// validate parses a configuration file and checks it (config.File.Check)
// as serve does, without opening any backend, connecting to Redis or
// creating a data directory. With -offline it does not read the secrets
// either (config.Offline): the check a CI job can run on the repository,
// where the secrets are not.
func validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	const usage = "usage: storage-host validate [-offline] [-data-dir DIR] FILE"
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	offline := fs.Bool("offline", false, "check everything but the secrets: environment variables and secret files are named, not read (for CI, where the secrets are not)")
	dataDirArg := dataDirFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	// The data directory is only named: the backends' directories are
	// checked against each other, and nothing is created.
	dataDir, err := checkDataDir(*dataDirArg)
	if err != nil {
		return err
	}
	f, err := config.Load(fs.Arg(0), config.WithDataDir(dataDir))
	if err == nil {
		var opts []config.CheckOption
		if *offline {
			opts = append(opts, config.Offline())
		}
		err = f.Check(context.Background(), opts...)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	// The file's listen address is served as serve would: a non-loopback
	// one without tokens is refused there, so here too (serve's
	// -listen and -allow-unauthenticated flags are serve's to check).
	if f.Listen != "" {
		if err := checkExposure(f.Listen, f, false); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", f.Path, err)
			return errReported
		}
	}
	names := make([]string, len(f.Backends))
	for i, b := range f.Backends {
		names[i] = b.Name
	}
	var note string
	if *offline {
		note = " (offline: secrets not read)"
	}
	fmt.Fprintf(stdout, "%s: ok%s: backends %s; metrics → %s, alerts → %s, agent_states → %s; %d token(s)\n",
		f.Path, note, strings.Join(names, ", "), route(f, f.Routes.Metrics, abi.KindMetric),
		route(f, f.Routes.Alerts, abi.KindAlert), route(f, f.Routes.AgentStates, abi.KindAgentState), len(f.Auth.Tokens))
	return nil
}

// route names the backend serving kind, and says when its plugin does
// not serve it: a lone backend serves every kind's routes without a
// routes block (a routes block naming it is refused), and its requests
// of a kind it does not store answer 501.
func route(f *config.File, backend string, kind abi.RecordKind) string {
	if serves, known := f.Serves(backend, kind); serves || !known {
		return backend
	}
	return backend + " (not served by its plugin: requests answer 501)"
}
