// Command storage-host runs the storage host daemon.
//
//	storage-host serve [-listen ADDR]
//
// With no configuration it serves the embedded memory backend on a
// loopback address and prints where it listens. The HTTP API here is the
// minimal one (agent states and health); the full daemon with config
// files, every operation, auth and metrics is tracked separately.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/storage-host/storage-host/host"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "storage-host:", err)
		os.Exit(1)
	}
}

const usage = `usage: storage-host serve [-listen ADDR]

Commands:
  serve   serve the embedded memory backend over HTTP
`

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8474", "address to listen on")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "storage-host", Level: hclog.LevelFromString(*logLevel), Output: stderr})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := host.Open(ctx, host.Config{Name: "memory"}, host.WithLogger(logger))
	if err != nil {
		return err
	}
	defer st.Close(context.Background())

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newHandler(st, logger),
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Fprintf(stdout, "storage-host: serving backend %q on http://%s\n", st.Name(), ln.Addr())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
