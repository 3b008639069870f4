package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/storage-host/storage-host/host/config"
)

// validate checks a configuration file as serve would load it, without
// opening any backend or connecting to Redis.
func validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: storage-host validate FILE") }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errReported
	}
	f, err := config.Load(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	names := make([]string, len(f.Backends))
	for i, b := range f.Backends {
		names[i] = b.Name
	}
	fmt.Fprintf(stdout, "%s: ok: backends %s; metrics → %s, alerts → %s, agent_states → %s; %d token(s)\n",
		f.Path, strings.Join(names, ", "), f.Routes.Metrics, f.Routes.Alerts, f.Routes.AgentStates, len(f.Auth.Tokens))
	return nil
}
