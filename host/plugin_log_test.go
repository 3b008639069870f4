package host_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host"
)

// What a plugin writes to the host's log, and the error messages it
// answers, through testdata/plugins/hostile/logforge, logged as the daemon
// logs (cmd/storage-host/serve.go: hclog's text format).

func openLogForge(t *testing.T) (*host.Store, *foreignLog) {
	t.Helper()
	out := &foreignLog{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "storage-host", Level: hclog.Info, Output: out})
	st, err := host.Open(context.Background(), host.Config{Name: "evil", Plugin: hostilePath("logforge")},
		host.WithCompilationCache(""), host.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st, out
}

// requirePrintableLine requires s to be one line of printable UTF-8.
func requirePrintableLine(t *testing.T, s string) {
	t.Helper()
	require.True(t, utf8.ValidString(s), "valid UTF-8: %q", s)
	for _, r := range s {
		require.True(t, r == ' ' || unicode.IsGraphic(r) && !unicode.IsSpace(r), "%U is not printable in %q", r, s)
	}
}

// TestPluginLogMessageIsOneEscapedLine: one storagehost_log.write whose
// message holds newlines before lines in the host's own format about
// another backend, a carriage return, ANSI escapes, a NUL, bytes that are
// not UTF-8, a C1 control, a line separator and a bidirectional override
// is one line of the log, attributed to the plugin's backend, with every
// character that is not printable escaped.
func TestPluginLogMessageIsOneEscapedLine(t *testing.T) {
	st, out := openLogForge(t)
	_, err := st.GetAgentState(context.Background(), "L")
	require.NoError(t, err)
	log := out.String()
	require.Equal(t, 1, strings.Count(log, "\n"), "one line: %q", log)
	line := strings.TrimSuffix(log, "\n")
	requirePrintableLine(t, line)
	require.Contains(t, line, " [ERROR] storage-host.plugin.evil: hello\\n2026-12-04T01:02:03.456Z [ERROR] storage-host.plugin.billing:",
		"the forged lines are part of the plugin's line")
	for _, escaped := range []string{`builtin:memory\r\x1b[2J\x1b[31mRED\x1b[0m \x00NUL \xff\xfe invalid-utf8`, `\u0085nel`, `\u2028ls`, `\u202ertl\ttab`} {
		require.Contains(t, line, escaped)
	}
}

// TestPluginLogNewlinesDoNotMultiplyLines: 1000 writes of 4096 newlines
// each are 1000 lines for the rate limit, not four million: at most the
// burst and the rate of Limits.LogLinesPerSecond reach the log.
func TestPluginLogNewlinesDoNotMultiplyLines(t *testing.T) {
	st, out := openLogForge(t)
	start := time.Now()
	_, err := st.GetAgentState(context.Background(), "N")
	require.NoError(t, err)
	rate := host.DefaultLimits.LogLinesPerSecond
	allowed := int(rate) + int(rate*time.Since(start).Seconds()) + 1
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	written := 0
	for _, l := range lines {
		requirePrintableLine(t, l)
		if strings.Contains(l, `storage-host.plugin.evil: \n\n\n`) {
			written++
		}
	}
	require.Positive(t, written)
	require.LessOrEqual(t, written, allowed, "at most the burst and the rate get through")
	require.LessOrEqual(t, len(lines), 2*allowed, "and a count of the dropped ones with each line after the burst")
	require.Contains(t, lines[0], `storage-host.plugin.evil: \n\n\n`)
}

// TestPluginErrorMessageIsOneLine: the error message a plugin answers
// reaches the caller, who may log it, as one printable line.
func TestPluginErrorMessageIsOneLine(t *testing.T) {
	st, _ := openLogForge(t)
	_, err := st.GetAgentState(context.Background(), "E")
	require.ErrorIs(t, err, host.ErrInternal)
	requirePrintableLine(t, err.Error())
	require.Contains(t, err.Error(), `hello\n2026-12-04T01:02:03.456Z [ERROR] storage-host.plugin.billing:`)
}
