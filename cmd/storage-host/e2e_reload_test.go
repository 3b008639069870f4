package main_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// memoryConfig is a configuration of one memory backend whose agent
// states expire ttl seconds after their last write: the option a reload
// test changes, and observes in every PUT's expires_at.
func memoryConfig(ttl int) []byte {
	return fmt.Appendf(nil, "backend \"memory\" {\n  plugin  = \"builtin:memory\"\n  options = { agent_state_ttl_seconds = %d }\n}\n", ttl)
}

// putTTL writes an agent state and returns how long it will live.
func putTTL(t *testing.T, d *daemon, agent string) time.Duration {
	t.Helper()
	r := call(t, "PUT", d.url+"/v1/agents/"+agent+"/state", `{"agent":"`+agent+`"}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	s, ok := r.object(t)["expires_at"].(string)
	require.True(t, ok, "no expires_at: %s", r.body)
	exp, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return time.Until(exp).Round(time.Minute)
}

var (
	reloading = regexp.MustCompile(`storage-host\.reload: reloading the configuration; `)
	reloaded  = regexp.MustCompile(`storage-host\.reload: configuration reloaded: `)
	rejected  = regexp.MustCompile(`storage-host\.reload: configuration rejected; the previous one keeps serving: `)
)

// TestReloadOnSIGHUP: SIGHUP rereads the file and what it refers to, the
// watcher off: a rotated token secret that is bad is rejected and the old
// token keeps working; a good one replaces it, and the backend, which did
// not change, keeps serving with its data.
func TestReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	secret := filepath.Join(dir, "agent.token")
	require.NoError(t, os.WriteFile(cfg, []byte(`backend "memory" {
  plugin = "builtin:memory"
}

auth {
  token "agent" {
    secret_file = "agent.token"
    scopes      = ["agent_states:read", "agent_states:write"]
  }
}
`), 0o600))
	const first, second = "first-secret-0123456789", "second-secret-0123456789"
	require.NoError(t, os.WriteFile(secret, []byte(first+"\n"), 0o600))
	d := startDaemon(t, nil, "-config", cfg, "-watch=false") // SIGHUP is handled before it serves
	url := d.url + "/v1/agents/a1/state"
	r := call(t, "PUT", url, `{"v":1}`, bearer(first)...)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	stored := r.object(t)
	serves := func(token, after string) {
		t.Helper()
		r := call(t, "GET", url, "", bearer(token)...)
		require.Equal(t, http.StatusOK, r.code, "after %s: %s", after, r.body)
		require.Equal(t, stored, r.object(t), "after %s, the same backend serves", after)
	}

	// Nothing changed: everything is kept.
	d.signal(syscall.SIGHUP)
	require.Regexp(t, `trigger=SIGHUP added=\[\] replaced=\[\] removed=\[\] kept=\["memory"\]$`, d.waitLog(reloaded, 1)[0])
	serves(first, "a reload that changes nothing")

	// A rotation gone wrong: the file is refused, the old token stays.
	replaceFile(t, secret, []byte("short\n"))
	d.signal(syscall.SIGHUP)
	require.Contains(t, d.waitLog(rejected, 1)[0], `trigger=SIGHUP error="`+cfg+`:7:19: Token secret too short;`)
	serves(first, "a rejected rotation")
	require.Equal(t, float64(1), d.metric(`storage_host_reloads_total{result="failed"}`, bearer(first)...))

	// A good rotation: the new token in, the old one out, the data kept.
	replaceFile(t, secret, []byte(second+"\n"))
	d.signal(syscall.SIGHUP)
	require.Regexp(t, `trigger=SIGHUP added=\[\] replaced=\[\] removed=\[\] kept=\["memory"\]$`, d.waitLog(reloaded, 2)[1])
	require.Equal(t, http.StatusUnauthorized, call(t, "GET", url, "", bearer(first)...).code, "the old secret is refused")
	serves(second, "a rotation")
	require.Equal(t, float64(2), d.metric(`storage_host_reloads_total{result="ok"}`, bearer(second)...))
	require.Equal(t, float64(1), d.metric(`storage_host_reloads_total{result="failed"}`, bearer(second)...))
	require.Equal(t, 3, d.logCount(reloaded)+d.logCount(rejected), "only the signals reloaded")

	d.stop()
}

// TestReloadOnFileChange: with the watcher (the default), editing the
// file is enough, whether the editor renames a new file over it or
// rewrites it in place; a changed backend is replaced, and an edit that
// does not load, or whose backend does not open, leaves the running
// configuration serving.
func TestReloadOnFileChange(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "storage-host.hcl")
	require.NoError(t, os.WriteFile(cfg, memoryConfig(3600), 0o600))
	d := startDaemon(t, nil, "-config", cfg)
	d.waitWatching(1)
	require.Equal(t, time.Hour, putTTL(t, d, "a1"))

	// A changed option: the backend is replaced by a new, empty one.
	replaceFile(t, cfg, memoryConfig(7200))
	require.Regexp(t, `trigger="file change" added=\[\] replaced=\["memory"\] removed=\[\] kept=\[\]$`, d.waitLog(reloaded, 1)[0])
	require.True(t, strings.HasSuffix(d.waitLog(reloading, 1)[0], `trigger="file change" file=`+cfg+` changed=`+cfg),
		"the reload names the file that changed")
	require.Equal(t, http.StatusNotFound, call(t, "GET", d.url+"/v1/agents/a1/state", "").code,
		"a replaced memory backend starts empty")
	require.Equal(t, 2*time.Hour, putTTL(t, d, "a1"), "the new option applies")
	require.Equal(t, float64(1), d.metric(`storage_host_reloads_total{result="ok"}`))
	a1 := call(t, "GET", d.url+"/v1/agents/a1/state", "")
	require.Equal(t, http.StatusOK, a1.code, "%s", a1.body)
	serves := func(after string) {
		t.Helper()
		r := call(t, "GET", d.url+"/v1/agents/a1/state", "")
		require.Equal(t, http.StatusOK, r.code, "after %s: %s", after, r.body)
		require.Equal(t, a1.object(t), r.object(t), "after %s, the same backend serves", after)
		require.Equal(t, 2*time.Hour, putTTL(t, d, "a2"), "after %s, the same options apply", after)
	}

	// An edit that does not load.
	replaceFile(t, cfg, []byte("backend \"memory\" {\n  plugin = \"builtin:memory\"\n  colour = \"blue\"\n}\n"))
	require.Contains(t, d.waitLog(rejected, 1)[0], `trigger="file change" error="`+cfg+`:3:3: Unsupported argument; An argument named \"colour\" is not expected here."`)
	serves("a file that does not load")

	// An edit that loads, with a backend that does not open: its data
	// directory cannot be made, under a regular file. (Configuration
	// checks create nothing, so only opening finds out.)
	blocker := filepath.Join(filepath.Dir(cfg), "blocker")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	replaceFile(t, cfg, fmt.Appendf(nil, "backend \"memory\" {\n  plugin   = \"builtin:local\"\n  data_dir = %q\n}\n", filepath.Join(blocker, "kv")))
	require.Contains(t, d.waitLog(rejected, 2)[1], `trigger="file change" error="backend memory: `)
	require.Contains(t, d.waitLog(rejected, 2)[1], `not a directory`)
	serves("a backend that does not open")
	require.Equal(t, float64(2), d.metric(`storage_host_reloads_total{result="failed"}`))

	// Fixed in place (truncated and rewritten, as `cat > file` does).
	require.NoError(t, os.WriteFile(cfg, memoryConfig(60), 0o600))
	require.Regexp(t, `trigger="file change" added=\[\] replaced=\["memory"\] removed=\[\] kept=\[\]$`, d.waitLog(reloaded, 2)[1])
	require.Equal(t, time.Minute, putTTL(t, d, "a3"))

	require.Equal(t, float64(d.logCount(reloaded)), d.metric(`storage_host_reloads_total{result="ok"}`), "the log and the counter agree")
	require.Equal(t, float64(d.logCount(rejected)), d.metric(`storage_host_reloads_total{result="failed"}`))
	d.stop()
}

// TestReloadBesideABusyFile: a log written beside the configuration every
// 50 ms, four times within the watcher's debounce, neither reloads
// anything nor holds an edit off: each of ten edits, renamed over the file
// or written in place, is applied.
func TestReloadBesideABusyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	require.NoError(t, os.WriteFile(cfg, memoryConfig(60), 0o600))
	d := startDaemon(t, nil, "-config", cfg)
	d.waitWatching(1)

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(filepath.Join(dir, "app.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
				if _, err := fmt.Fprintf(f, "line %d\n", i); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		require.NoError(t, <-done)
	}()

	time.Sleep(500 * time.Millisecond) // the log alone reloads nothing
	require.Zero(t, d.logCount(reloaded)+d.logCount(rejected))
	for i := 1; i <= 10; i++ {
		content := memoryConfig(60 * (i + 1))
		if i%2 == 0 {
			require.NoError(t, os.WriteFile(cfg, content, 0o600))
		} else {
			replaceFile(t, cfg, content)
		}
		require.Contains(t, d.waitLog(reloaded, i)[i-1], `trigger="file change"`, "edit %d", i)
		require.Equal(t, time.Duration(i+1)*time.Minute, putTTL(t, d, fmt.Sprintf("a%d", i)), "edit %d applies", i)
	}
	require.Zero(t, d.logCount(rejected))
	require.Equal(t, 10, d.logCount(reloaded), "one reload per edit, none for the log")
}

// TestReloadOnSecretRotation: the watcher follows the secret files the
// configuration names, so a token rotated in its file, by rename or in
// place, takes effect without SIGHUP: the new secret is accepted, the old
// one refused, and the backend kept.
func TestReloadOnSecretRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "storage-host.hcl")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "secrets"), 0o700))
	secret := filepath.Join(dir, "secrets", "agent.token")
	require.NoError(t, os.WriteFile(cfg, []byte(`backend "memory" {
  plugin = "builtin:memory"
}

auth {
  token "agent" {
    secret_file = "secrets/agent.token"
    scopes      = ["agent_states:read", "agent_states:write"]
  }
}
`), 0o600))
	secrets := []string{"first-secret-0123456789", "second-secret-0123456789", "third-secret-0123456789"}
	require.NoError(t, os.WriteFile(secret, []byte(secrets[0]+"\n"), 0o600))
	d := startDaemon(t, nil, "-config", cfg)
	d.waitWatching(2) // the configuration's directory and the secret's
	url := d.url + "/v1/agents/a1/state"
	r := call(t, "PUT", url, `{"v":1}`, bearer(secrets[0])...)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	stored := r.object(t)

	for i, rotate := range []func(content []byte){
		func(content []byte) { replaceFile(t, secret, content) },
		func(content []byte) { require.NoError(t, os.WriteFile(secret, content, 0o600)) },
	} {
		old, current := secrets[i], secrets[i+1]
		rotate([]byte(current + "\n"))
		require.Regexp(t, `trigger="file change" added=\[\] replaced=\[\] removed=\[\] kept=\["memory"\]$`, d.waitLog(reloaded, i+1)[i])
		require.Equal(t, http.StatusUnauthorized, call(t, "GET", url, "", bearer(old)...).code, "the old secret is refused")
		r := call(t, "GET", url, "", bearer(current)...)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		require.Equal(t, stored, r.object(t), "the backend is kept")
	}
	d.stop()
}

// TestServeWithABackendThatDoesNotOpen: a backend that cannot open when
// the daemon starts (its data directory cannot be made; a plugin's
// migration failing, or role settings of its own, are the same) keeps
// neither the daemon nor the other backends from serving. Its routes
// answer 503, /readyz and the metrics name it, a stream of every
// backend's events is refused while one of the others' is served, and
// once the cause is gone it opens and serves, without a reload.
func TestServeWithABackendThatDoesNotOpen(t *testing.T) {
	t.Parallel()
	blocker := filepath.Join(t.TempDir(), "blocker")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	cfg := configFile(t, "backend \"mem\" {\n  plugin = \"builtin:memory\"\n}\n"+
		"backend \"disk\" {\n  plugin   = \"builtin:local\"\n  data_dir = %q\n}\n"+
		"routes {\n  metrics      = \"mem\"\n  alerts       = \"mem\"\n  agent_states = \"disk\"\n}\n", filepath.Join(blocker, "kv"))
	d := startDaemon(t, nil, "-config", cfg)
	d.waitLog(regexp.MustCompile(`\[ERROR\] storage-host\.manager: backend did not open; the others serve, its routes answer 503 until it opens, and it is tried again: backend=disk .*not a directory`), 1)

	metric := `{"agent_id":"a1","name":"load","value":1,"timestamp":"2026-12-01T00:00:00Z"}`
	r := call(t, "POST", d.url+"/v1/metrics", metric, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, r.code, "the other backend serves: %s", r.body)
	r = call(t, "PUT", d.url+"/v1/agents/a1/state", `{"n":1}`)
	require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
	require.Equal(t, "unavailable", r.errorCode(t))
	require.Contains(t, string(r.body), "backend disk: backend not open: ")
	r = call(t, "GET", d.url+"/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, r.code)
	require.Contains(t, string(r.body), "backend disk: backend not open: see the daemon's log for why")
	require.Equal(t, float64(0), d.metric(`storage_host_backend_open{backend="disk"}`))
	require.Equal(t, float64(1), d.metric(`storage_host_backend_open{backend="mem"}`))
	r = call(t, "GET", d.url+"/v1/events", "")
	require.Equal(t, http.StatusServiceUnavailable, r.code, "every backend's events: disk's cannot be followed: %s", r.body)
	openEvents(t, d.url, "?kind=metrics", "").resp.Body.Close()

	require.NoError(t, os.Remove(blocker))
	d.waitLog(regexp.MustCompile(`\[INFO\]  storage-host\.manager: backend opened: it serves its routes now: backend=disk attempts=\d+`), 1)
	require.Equal(t, http.StatusNoContent, call(t, "GET", d.url+"/readyz", "").code)
	r = call(t, "PUT", d.url+"/v1/agents/a1/state", `{"n":1}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, float64(1), d.metric(`storage_host_backend_open{backend="disk"}`))
	d.stop()
}

// TestServeWithAPluginThatFailsWhenRun: a plugin whose run fails the
// daemon's check at start (here its configure call traps; one that does
// so only from some date on, or by chance, is the same) keeps neither the
// daemon nor the other backends from starting. Its backend is not open,
// each attempt checks its plugin again, and a reload replaces it with the
// plugin file put right.
func TestServeWithAPluginThatFailsWhenRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plugin := filepath.Join(dir, "states.wasm")
	trap, err := os.ReadFile(repoFile("testdata", "plugins", "hostile", "trapconfig.wasm"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(plugin, trap, 0o600))
	cfg := configFile(t, "backend \"mem\" {\n  plugin = \"builtin:memory\"\n}\n"+
		"backend \"states\" {\n  plugin = %q\n}\n"+
		"routes {\n  metrics      = \"mem\"\n  alerts       = \"mem\"\n  agent_states = \"states\"\n}\n", plugin)
	d := startDaemon(t, nil, "-config", cfg, "-watch=false")
	d.waitLog(regexp.MustCompile(`backend did not open; the others serve.*backend=states .*Plugin cannot be loaded; host: incompatible plugin: host: configure plugin trapconfig`), 1)

	metric := `{"agent_id":"a1","name":"load","value":1,"timestamp":"2026-12-01T00:00:00Z"}`
	r := call(t, "POST", d.url+"/v1/metrics", metric, "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, r.code, "the other backend serves: %s", r.body)
	r = call(t, "PUT", d.url+"/v1/agents/a1/state", `{"n":1}`)
	require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
	require.Contains(t, string(r.body), "backend states: backend not open: ")
	require.Contains(t, string(r.body), "Plugin cannot be loaded")
	require.Equal(t, http.StatusServiceUnavailable, call(t, "GET", d.url+"/readyz", "").code)

	// A plugin file replaced is a change of the configuration, which a
	// reload applies (here a SIGHUP: the watcher is off); the attempts
	// only run the plugin that was loaded again.
	good, err := os.ReadFile(repoFile("testdata", "plugins", "agentstate.wasm"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(plugin, good, 0o600))
	d.waitLog(regexp.MustCompile(`backend did not open again; .*backend=states .*its plugin file or a secret changed since the configuration was loaded: a reload applies the change`), 1)
	d.signal(syscall.SIGHUP)
	d.waitLog(regexp.MustCompile(`configuration reloaded: .*replaced=\["states"\]`), 1)
	r = call(t, "PUT", d.url+"/v1/agents/a1/state", `{"n":1}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, http.StatusNoContent, call(t, "GET", d.url+"/readyz", "").code)
	d.stop()
}
