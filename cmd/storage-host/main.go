// Command storage-host runs the storage host daemon and its tools.
//
//	storage-host serve [-config FILE] [-listen ADDR]   serve the configured backends over HTTP
//	storage-host validate FILE                         check a configuration file
//	storage-host plugin inspect FILE.wasm|builtin:NAME describe a plugin
//
// With no configuration, serve runs the embedded memory backend on a
// loopback address and prints where it listens. See README.md for the
// configuration file and the HTTP API (host/httpapi/openapi.yaml).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "storage-host:", err)
		}
		os.Exit(1)
	}
}

// errReported is returned by commands that already told the user why they
// failed.
var errReported = errors.New("failed")

const usage = `usage: storage-host <command> [arguments]

Commands:
  serve [-config FILE] [-listen ADDR]   serve the configured backends over HTTP
                                        (default: the embedded memory backend on 127.0.0.1:8474)
  validate FILE                         check a configuration file without serving
  plugin inspect FILE.wasm|builtin:NAME describe a plugin and whether this host can load it

Run 'storage-host <command> -h' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stdout, stderr)
	case "validate":
		return validate(args, stdout, stderr)
	case "plugin":
		if len(args) > 0 && args[0] == "inspect" {
			return inspect(args[1:], stdout, stderr)
		}
		fmt.Fprint(stderr, usage)
		return errors.New("plugin: the only subcommand is inspect")
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
