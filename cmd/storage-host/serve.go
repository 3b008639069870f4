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
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/httpapi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/manager"
	"github.com/storage-host/storage-host/host"
	"github.com/storage-host/storage-host/host/events"
)

// shutdownTimeout bounds a graceful shutdown: requests in flight get this
// long to finish.
const shutdownTimeout = 30 * time.Second

func serve(args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (HCL, or JSON with a .json name); default: the embedded local backend (builtin:local) in the data directory")
	listen := fs.String("listen", "", `address to listen on (default: the file's "listen", else 127.0.0.1:8474)`)
	logLevel := fs.String("log-level", "", "log level: trace, debug, info, warn, error (default: the file's, else info)")
	logFormat := fs.String("log-format", "", "log format: text or json (default: the file's, else text)")
	allowUnauth := fs.Bool("allow-unauthenticated", false, "serve a non-loopback address without tokens (the file's auth.allow_unauthenticated does the same)")
	watch := fs.Bool("watch", true, "reload when the configuration file, or a plugin or secret file it names, changes (SIGHUP always reloads)")
	dataDirArg := dataDirFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	if l := *logLevel; l != "" && !slices.Contains([]string{"trace", "debug", "info", "warn", "error"}, l) {
		return usagef("serve: -log-level %q is not one of trace, debug, info, warn, error", l)
	}
	if f := *logFormat; f != "" && f != "text" && f != "json" {
		return usagef("serve: -log-format %q is not text or json", f)
	}
	dataDir, err := checkDataDir(*dataDirArg)
	if err != nil {
		return err
	}

	// SIGHUP is caught from the start: loading backends takes a while,
	// and a reload asked for meanwhile must not kill the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The plugins inspected here are not inspected again at each reload,
	// unless they change.
	plugins := new(config.PluginCache)
	f := config.Default(config.WithDataDir(dataDir))
	var loaded *snapshot // what the file held before it was read
	if *configPath != "" {
		loaded = startSnapshot(*configPath)
		f, err = config.Load(*configPath, config.WithDataDir(dataDir))
		if err == nil {
			// A backend whose plugin fails when run (its start, its
			// metadata, its options: what the plugin's code decides, which
			// may change from one day to the next) does not keep the
			// others from starting: it waits, and is checked again as it
			// is tried.
			err = f.Check(context.Background(), config.WithPluginCache(plugins), config.DeferPluginRuns())
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return errReported
		}
	}
	addr := firstOf(*listen, f.Listen, "127.0.0.1:8474")
	jsonLog := firstOf(*logFormat, f.Log.Format, "text") == "json"
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "storage-host",
		Level:      hclog.LevelFromString(firstOf(*logLevel, f.Log.Level, "info")),
		JSONFormat: jsonLog,
		Output:     stderr,
	})
	redis.SetLogger(redisLog{logger.Named("redis")})
	// With a JSON log, the daemon's last word is a JSON line too (with a
	// text log, the plain "storage-host: …" line as before the log).
	defer func() {
		if jsonLog && err != nil && !errors.Is(err, errReported) {
			logger.Error("stopped", "error", err)
			err = errReported
		}
	}()
	if err := checkExposure(addr, f, *allowUnauth); err != nil {
		return err
	}
	// One daemon per data directory: a second one would share the
	// backends' files. The lock is released when the process ends,
	// however it ends.
	release, err := lockDataDir(dataDir)
	if err != nil {
		return err // printed as "storage-host: …" (main.go) as before
	}
	defer release()
	if mode, open := openDataDirMode(dataDir); open {
		logger.Warn("the data directory lets other users in; chmod 700 it", "dir", dataDir, "mode", mode)
	}
	r := &reloader{path: *configPath, log: logger.Named("reload"), root: logger, listen: addr, dataDir: dataDir,
		allowUnauth: *allowUnauth, levelFlag: *logLevel, format: firstOf(*logFormat, f.Log.Format, "text")}
	// The watcher starts before the backends load, so an edit made while
	// they do is seen.
	var changed <-chan struct{}
	if *configPath != "" && *watch {
		w, err := newWatcher(r.log, f, loaded)
		if err != nil {
			logger.Warn("not watching the configuration file; reload with SIGHUP", "error", err)
		} else {
			defer w.Close()
			changed = w.changed
			r.watcher = w
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Memory backends get their records back before anyone can read them.
	bad := new(unverified)
	restore := func(ctx context.Context, b config.Backend, st *host.Store) error {
		return restoreOnStart(ctx, b, st, logger, bad)
	}
	// The backends open while the daemon listens: one slow to open holds
	// its own routes' requests (until it opened, or their deadline), not
	// the others'.
	m, err := manager.Start(ctx, f, manager.Options{Logger: logger, Registry: reg, Plugins: plugins, Prepare: restore})
	if err != nil {
		return err
	}
	sched := newScheduler(m, logger, reg)
	closeManager := func() {
		sched.stop()
		closeCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := m.Close(closeCtx); err != nil {
			logger.Warn("closing backends", "error", err)
		}
	}
	sched.update(f)
	warnUnclaimed(logger, dataDir, f)
	h, err := httpapi.New(httpapi.Options{Backends: managerBackends{m}, Logger: logger, Tokens: f.Auth.Tokens, Registry: reg,
		MaxEventStreams: f.MaxEventStreams})
	if err != nil {
		closeManager()
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		closeManager()
		return err
	}
	conns := httpapi.NewConnLimit(f.MaxConnections, logger.Named("http"))
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnState:         conns.ConnState,
		ErrorLog:          logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	// Event streams never finish by themselves: Shutdown would wait for
	// them until its timeout. It ends them first (with an end event).
	srv.RegisterOnShutdown(h.EndStreams)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(conns.Listener(ln)) }()
	// "serving" is said once every backend's first attempt to open has
	// ended: each open, or answering 503 while it is tried again. Reloads
	// and signals are served meanwhile (one may replace a backend still
	// opening).
	go func() {
		if m.Started(ctx) == nil && ctx.Err() == nil {
			fmt.Fprintf(stdout, "storage-host: serving %s (data: %s) on http://%s\n", describeRoutes(f), describeData(f, dataDir), ln.Addr())
		}
	}()

	r.m, r.h, r.sched, r.conns = m, h, sched, conns

	for {
		select {
		case err := <-errc:
			closeManager()
			return err
		case <-hup:
			r.reload(ctx, "SIGHUP", "")
		case <-changed:
			r.reload(ctx, "file change", r.watcher.takeChanged())
		case <-ctx.Done():
			// A second SIGINT or SIGTERM now gets the default action: it
			// kills the process without waiting.
			stop()
			logger.Info("shutting down: finishing requests in flight (signal again to force)")
			shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			err := srv.Shutdown(shutdownCtx)
			cancel()
			closeManager()
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			logger.Info("stopped")
			return nil
		}
	}
}

// reloader applies a changed configuration file to a running daemon.
type reloader struct {
	path    string
	listen  string
	dataDir string
	m       *manager.Manager
	h       *httpapi.Handler
	conns   *httpapi.ConnLimit
	watcher *watcher
	sched   *scheduler
	log     hclog.Logger
	root    hclog.Logger // its level follows the file unless -log-level set it
	// allowUnauth is the -allow-unauthenticated flag, which a reload
	// cannot change.
	allowUnauth bool
	levelFlag   string
	format      string // the log format in use, which takes a restart
}

func (r *reloader) reload(ctx context.Context, why, changed string) {
	if r.path == "" {
		r.log.Info("no configuration file to reload", "trigger", why)
		return
	}
	// Building the new backends (compiling their plugins, opening their
	// stores) takes seconds; the old ones serve meanwhile.
	args := []any{"trigger", why, "file", r.path}
	if changed != "" {
		args = append(args, "changed", changed)
	}
	r.log.Info("reloading the configuration; the backends serve as before until it is done", args...)
	var before *snapshot // what the files held before this reload read them
	if r.watcher != nil {
		before = r.watcher.snapshot()
	}
	f, ch, err := r.m.ReloadFile(ctx, r.path, func(f *config.File) error {
		// A reload must not open the listener it cannot move.
		return checkExposure(r.listen, f, r.allowUnauth)
	})
	if err != nil {
		r.log.Error("configuration rejected; the previous one keeps serving", "trigger", why, "error", err)
		return
	}
	r.h.SetTokens(f.Auth.Tokens)
	r.h.SetMaxEventStreams(f.MaxEventStreams)
	r.conns.SetMax(f.MaxConnections)
	r.sched.update(f)
	if r.watcher != nil {
		r.watcher.follow(f, before)
	}
	if f.Listen != "" && f.Listen != r.listen {
		r.log.Warn("listen address changed in the file; it takes a restart", "serving", r.listen, "file", f.Listen)
	}
	if r.levelFlag == "" {
		r.root.SetLevel(hclog.LevelFromString(firstOf(f.Log.Level, "info")))
	}
	if format := firstOf(f.Log.Format, "text"); format != r.format {
		r.log.Warn("log format changed in the file; it takes a restart", "serving", r.format, "file", format)
	}
	r.log.Info("configuration reloaded", "trigger", why,
		"added", ch.Added, "replaced", ch.Replaced, "removed", ch.Removed, "kept", ch.Kept)
	if len(ch.Rerouted) > 0 {
		r.log.Warn("record kinds routed to another backend: the records written through the one they leave stay there, and are not read from here until they are routed back (or migrated)",
			"rerouted", ch.Rerouted)
	}
	if len(ch.Added) > 0 || len(ch.Removed) > 0 || len(ch.Replaced) > 0 {
		// A replaced backend may have another data_dir now, and an added
		// one's must be recorded.
		warnUnclaimed(r.log, r.dataDir, f)
	}
}

// checkExposure refuses to serve a non-loopback address without tokens,
// unless explicitly allowed.
func checkExposure(addr string, f *config.File, allow bool) error {
	if len(f.Auth.Tokens) > 0 || allow || f.Auth.AllowUnauthenticated {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to serve %s without authentication: configure auth tokens, listen on a loopback address, or pass -allow-unauthenticated", addr)
}

func describeRoutes(f *config.File) string {
	if f.Routes.Metrics == f.Routes.Alerts && f.Routes.Alerts == f.Routes.AgentStates {
		return fmt.Sprintf("backend %q", f.Routes.Metrics)
	}
	return strings.Join([]string{
		"metrics→" + f.Routes.Metrics, "alerts→" + f.Routes.Alerts, "agent_states→" + f.Routes.AgentStates,
	}, ", ")
}

// describeData names the data directory and, after it, each backend
// whose data_dir lies outside it: where a reader of the startup line
// would otherwise look for that backend's records in vain.
func describeData(f *config.File, dataDir string) string {
	text := dataDir
	for _, b := range f.Backends {
		dir := b.Config.DataDir
		if rel, err := filepath.Rel(dataDir, dir); dir == "" || err == nil && filepath.IsLocal(rel) {
			continue
		}
		text += fmt.Sprintf("; backend %q: %s", b.Name, dir)
	}
	return text
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// managerBackends serves the HTTP API from the manager: its routed
// backends, and their events (httpapi.EventBackends).
type managerBackends struct{ *manager.Manager }

// Subscribe is manager.Manager.Subscribe, as httpapi takes it.
func (b managerBackends) Subscribe(ctx context.Context, f events.Filter, from string, loss httpapi.Loss) (httpapi.Subscription, error) {
	sub, err := b.Manager.Subscribe(ctx, f, from, loss)
	if err != nil {
		return nil, err // not a nil *manager.Subscription in an interface
	}
	return sub, nil
}

// redisLog takes go-redis's own log lines (a refused dial, a connection
// pool's retry) into the daemon's log, which go-redis would otherwise
// write to stderr itself, unformatted, in the middle of a JSON log. They
// are debug lines: what they mean reaches the log and the API already (a
// backend not ready, a request answered unavailable), and a Redis outage
// makes one a refused dial.
type redisLog struct{ log hclog.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
