package main_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// binary is the storage-host command, built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "storage-host-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "storage-host")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// start runs `storage-host serve` on a free loopback port, as a user
// would, and returns its base URL once it has printed where it listens.
func start(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "-listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line := <-lines:
		m := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)$`).FindStringSubmatch(line)
		require.NotNil(t, m, "first line should say where it listens: %q", line)
		return cmd, m[1]
	case <-time.After(60 * time.Second):
		t.Fatal("storage-host did not say where it listens within 60s")
	}
	return nil, ""
}

func do(t *testing.T, method, url, body string, header ...string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "body %q", raw)
	}
	return resp.StatusCode, resp.Header, out
}

func TestServeAgentStates(t *testing.T) {
	cmd, base := start(t)
	url := base + "/v1/agents/a1/state"

	code, _, _ := do(t, "GET", base+"/healthz", "")
	require.Equal(t, http.StatusNoContent, code)

	code, _, body := do(t, "GET", url, "")
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "not_found", body["code"])

	code, hdr, body := do(t, "PUT", url, `{"step":3}`)
	require.Equal(t, http.StatusOK, code, "%v", body)
	version := body["version"].(string)
	require.Equal(t, `"`+version+`"`, hdr.Get("ETag"))

	code, _, body = do(t, "GET", url, "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, map[string]any{"step": float64(3)}, body["state"])
	require.Equal(t, version, body["version"])

	code, _, body = do(t, "PUT", url, `{"step":4}`, "If-Match", `"999999"`)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "conflict", body["code"])
	code, _, body = do(t, "PUT", url, `{"step":4}`, "If-Match", `"`+version+`"`)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.NotEqual(t, version, body["version"], "every write changes the version")

	code, _, body = do(t, "PUT", url, `{"step":`)
	require.Equal(t, http.StatusBadRequest, code, "malformed JSON is refused")
	require.Equal(t, "invalid", body["code"])
	code, _, body = do(t, "GET", url, "")
	require.Equal(t, map[string]any{"step": float64(4)}, body["state"], "a refused write loses nothing")

	code, _, body = do(t, "PUT", base+"/v1/agents/a2/state?ttl=1h", `{}`)
	require.Equal(t, http.StatusOK, code, "%v", body)
	exp, err := time.Parse(time.RFC3339Nano, body["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), exp, 10*time.Second)

	code, _, _ = do(t, "DELETE", url, "")
	require.Equal(t, http.StatusNoContent, code)
	code, _, _ = do(t, "DELETE", url, "")
	require.Equal(t, http.StatusNotFound, code)

	// SIGTERM: a graceful exit with status 0.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "storage-host should exit cleanly on SIGTERM")
	case <-time.After(30 * time.Second):
		t.Fatal("storage-host did not exit within 30s of SIGTERM")
	}
}

func TestUnknownCommand(t *testing.T) {
	out, err := exec.Command(binary, "frobnicate").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), `unknown command "frobnicate"`)
}
