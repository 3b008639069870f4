// Command storage-host runs the storage host daemon and its tools.
//
//	storage-host serve [-config FILE] [-listen ADDR] [-data-dir DIR]   serve the configured backends over HTTP
//	storage-host validate [-offline] [-data-dir DIR] FILE   check a configuration file
//	storage-host plugin inspect FILE.wasm|builtin:NAME describe a plugin
//	storage-host plugin test [-option K=V] [-redis ADDR [-scripts]] [-json] FILE.wasm|builtin:NAME   run the conformance suite on a plugin
//	storage-host backup -config FILE -backend NAME -o FILE|-   back a backend up
//	storage-host backup verify FILE                    check a backup file
//	storage-host restore -config FILE -backend NAME [-mode fail|skip|overwrite] FILE|-
//	storage-host migrate -config FILE -from NAME -to NAME [-state FILE] [-mode ...]
//	storage-host version                               print the versions of the binary and its ABI
//	storage-host help [COMMAND]                        list the commands, or a command's flags
//	storage-host help config                           print the configuration reference
//
// With no arguments, serve runs the embedded local backend
// (builtin:local: records on disk in the data directory) on a loopback
// address and prints where it listens. See README.md for the
// configuration file and the HTTP API (cmd/storage-host/internal/httpapi/openapi.yaml).
//
// Exit status: 0 success, 1 a failure while running (an invalid
// configuration, an unreachable backend, a damaged backup), 2 a mistake
// in the command line (an unknown command or flag, a missing argument).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(exitCode(run(os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitCode reports err, unless the command did already, and returns the
// process's exit status for it.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		if ue.msg != "" {
			fmt.Fprintln(stderr, "storage-host:", ue.msg)
		}
		return exitUsage
	case errors.Is(err, errReported):
		return exitFailure
	}
	fmt.Fprintln(stderr, "storage-host:", err)
	return exitFailure
}

// errReported is returned by commands that already told the user why they
// failed.
var errReported = errors.New("failed")

// usageError is a mistake in the command line: exit status 2. msg is ""
// when the usage was printed already.
type usageError struct{ msg string }

func (e *usageError) Error() string {
	if e.msg == "" {
		return "usage error"
	}
	return e.msg
}

// errUsage is a usage error already reported (the flag package prints
// its own, and commands print their usage).
var errUsage error = &usageError{}

// usagef returns a usage error with its message.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// parseFlags parses args into fs: -h is flag.ErrHelp (exit 0), a flag
// fs does not define is a usage error, reported by the flag package.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	// Package flag stops at the first argument that is not a flag: one
	// typed after the file would otherwise be taken for another file.
	for i, a := range fs.Args() {
		if i > 0 && len(a) > 1 && a[0] == '-' {
			fmt.Fprintf(fs.Output(), "storage-host %s: flag %s after %q: flags go before it\n", fs.Name(), a, fs.Arg(i-1))
			return errUsage
		}
	}
	return nil
}

const usage = `usage: storage-host [command] [arguments]

Commands:
  serve           serve the configured backends over HTTP (the default command)
  validate        check a configuration file without serving (-offline: without its secrets)
  plugin inspect  describe a plugin module and whether this host can load it
  plugin test     run the conformance suite on a plugin module; exit 1 if a rule fails
  backup          write a backup of a backend; "backup verify" checks a backup file
  restore         restore a backup into a backend
  migrate         copy every record of a backend into another; resumable
  version         print the version of this binary, its Go and the plugin ABI it speaks
  help            print this list; "help COMMAND" prints a command's flags,
                  "help config" every block and attribute of a configuration file

With no command, storage-host serves the embedded local backend, records on disk
in the data directory, on 127.0.0.1:8474.

Exit status: 0 success, 1 failure, 2 usage error (unknown command or flag).
Run 'storage-host help COMMAND' or 'storage-host COMMAND -h' for a command's flags.
`

// commands run each command with its arguments.
var commands = map[string]func(args []string, stdout, stderr io.Writer) error{
	"serve":    serve,
	"validate": validate,
	"plugin":   pluginCmd,
	"backup":   backupCmd,
	"restore":  restoreCmd,
	"migrate":  migrateCmd,
	"version":  versionCmd,
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return serve(nil, stdout, stderr)
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) == 2 && args[0] == "help" && args[1] == "config" {
			fmt.Fprint(stdout, config.Reference())
			return nil
		}
		if len(args) > 1 && args[0] == "help" {
			cmd, ok := commands[args[1]]
			if !ok {
				fmt.Fprint(stderr, usage)
				return usagef("help: unknown command %q", args[1])
			}
			return cmd(append(args[2:], "-h"), stdout, stdout)
		}
		fmt.Fprint(stdout, usage)
		return nil
	case "-version", "--version":
		return versionCmd(args[1:], stdout, stderr)
	}
	if args[0] != "" && args[0][0] == '-' {
		// Flags alone: serve's.
		return serve(args, stdout, stderr)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprint(stderr, usage)
		return usagef("unknown command %q", args[0])
	}
	return cmd(args[1:], stdout, stderr)
}

// pluginCmd runs the plugin subcommands.
func pluginCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "inspect" {
		return inspect(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "test" {
		return pluginTest(args[1:], stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		_ = inspect([]string{"-h"}, stdout, stderr)
		return pluginTest([]string{"-h"}, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	if len(args) > 0 {
		return usagef("plugin: unknown subcommand %q: the subcommands are inspect and test", args[0])
	}
	return usagef("plugin: the subcommands are inspect and test")
}

// versionCmd prints the module version this binary was built from (as
// the go command recorded it: a tag, a pseudo-version, or "(devel)"), the
// VCS revision when recorded, the Go release and platform that built it,
// and the plugin ABI version the host speaks.
func versionCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "usage: storage-host version") }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	version, revision := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if revision != "" && modified {
			revision += " (modified)"
		}
	}
	fmt.Fprintf(stdout, "storage-host %s\n", version)
	if revision != "" {
		fmt.Fprintf(stdout, "commit: %s\n", revision)
	} else {
		fmt.Fprintln(stdout, "commit: (not recorded: built outside a git checkout, by go run, or with -buildvcs=false)")
	}
	fmt.Fprintf(stdout, "go:     %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "abi:    %s\n", abi.Current)
	return nil
}
