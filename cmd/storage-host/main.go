// Command storage-host runs the storage host daemon and its tools.
//
//	storage-host serve [-config FILE] [-listen ADDR] [-data-dir DIR]   serve the configured backends over HTTP
//	storage-host validate [-data-dir DIR] FILE         check a configuration file
//	storage-host plugin inspect FILE.wasm|builtin:NAME describe a plugin
//	storage-host plugin test [-option K=V] [-redis ADDR] [-json] FILE.wasm|builtin:NAME   run the conformance suite on a plugin
//	storage-host backup -config FILE -backend NAME -o FILE|-   back a backend up
//	storage-host backup verify FILE                    check a backup file
//	storage-host restore -config FILE -backend NAME [-mode fail|skip|overwrite] FILE|-
//	storage-host migrate -config FILE -from NAME -to NAME [-state FILE] [-mode ...]
//
// With no configuration, serve runs the embedded local backend
// (builtin:local: records on disk in the data directory) on a loopback
// address and prints where it listens. See README.md for the
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
  serve [-config FILE] [-listen ADDR] [-data-dir DIR]
                                        serve the configured backends over HTTP (default: the
                                        embedded local backend, records on disk in the data
                                        directory, on 127.0.0.1:8474)
  validate [-data-dir DIR] FILE         check a configuration file without serving
  plugin inspect FILE.wasm|builtin:NAME describe a plugin and whether this host can load it
  plugin test [-option K=V] [-redis ADDR] [-json] FILE.wasm|builtin:NAME
                                        run the conformance suite on a plugin; exit 1 if a rule fails
  backup -config FILE -backend NAME -o FILE|-
                                        write a backup of a backend ("-": to standard output)
  backup verify FILE                    check a backup file and say what it holds
  restore -config FILE -backend NAME [-mode fail|skip|overwrite] FILE|-
                                        restore a backup into a backend (default mode: fail)
  migrate -config FILE -from NAME -to NAME [-state FILE] [-mode fail|skip|overwrite]
                                        copy every record of a backend into another; resumable

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
		if len(args) > 0 && args[0] == "test" {
			return pluginTest(args[1:], stdout, stderr)
		}
		fmt.Fprint(stderr, usage)
		return errors.New("plugin: the subcommands are inspect and test")
	case "backup":
		return backupCmd(args, stdout, stderr)
	case "restore":
		return restoreCmd(args, stdout, stderr)
	case "migrate":
		return migrateCmd(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
