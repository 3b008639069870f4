package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/storage-host/storage-host/host/redistest"
)

// TestGracefulShutdown: on SIGTERM the daemon stops listening, lets the
// requests in flight finish, and exits 0. The requests in flight are
// uploads whose handler is already reading the body (the daemon sent
// "100 Continue") when the signal arrives and whose body is sent only
// once the daemon no longer accepts connections; meanwhile other clients
// keep a steady load until the daemon turns them away.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, nil)
	addr := strings.TrimPrefix(d.url, "http://")

	// The steady load: keep-alive clients looping PUT and GET until the
	// daemon stops answering.
	var (
		signalled atomic.Bool // set just before SIGTERM is sent
		wg        sync.WaitGroup
		mu        sync.Mutex
		problems  []string
		rounds    atomic.Int64
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: exitTimeout}
			defer client.CloseIdleConnections()
			url := fmt.Sprintf("%s/v1/agents/steady-%d/state", d.url, i)
			for n := 1; ; n++ {
				body := fmt.Sprintf(`{"n":%d}`, n)
				r, err := send(client, "PUT", url, body)
				if err == nil && r.code == http.StatusOK {
					r, err = send(client, "GET", url, "")
				}
				switch {
				case err != nil && signalled.Load():
					return // turned away after SIGTERM: expected
				case err != nil:
					problem("client %d, round %d, before SIGTERM: %v", i, n, err)
					return
				case r.code != http.StatusOK:
					problem("client %d, round %d: %d %s", i, n, r.code, r.body)
					return
				case !strings.Contains(string(r.body), `"state":`+body):
					problem("client %d, round %d: read %s, wrote %s", i, n, r.body, body)
					return
				}
				rounds.Add(1)
			}
		}()
	}

	// The uploads in flight.
	type upload struct {
		body      *io.PipeWriter
		continued chan struct{} // closed on "100 Continue": the handler reads the body
		done      chan reply
		err       error
	}
	uploads := make([]*upload, 8)
	for i := range uploads {
		pr, pw := io.Pipe()
		u := &upload{body: pw, continued: make(chan struct{}), done: make(chan reply, 1)}
		uploads[i] = u
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got100Continue: func() { close(u.continued) },
		})
		req, err := http.NewRequestWithContext(ctx, "PUT", fmt.Sprintf("%s/v1/agents/upload-%d/state", d.url, i), pr)
		require.NoError(t, err)
		req.Header.Set("Expect", "100-continue")
		client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: exitTimeout}}
		go func() {
			resp, err := client.Do(req)
			if err != nil {
				u.err = err
				close(u.done)
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			u.err = err
			u.done <- reply{code: resp.StatusCode, header: resp.Header, body: b}
		}()
	}
	for i, u := range uploads {
		select {
		case <-u.continued:
		case <-u.done:
			t.Fatalf("upload %d ended before its body was sent: %v", i, u.err)
		case <-time.After(waitTimeout):
			t.Fatalf("upload %d: no 100 Continue", i)
		}
	}
	redistest.WaitFor(t, waitTimeout, 5*time.Millisecond, func() bool { return rounds.Load() >= 100 },
		"the steady clients made no progress")

	signalled.Store(true)
	d.signal(syscall.SIGTERM)
	d.waitLog(regexp.MustCompile(`storage-host: shutting down: finishing requests in flight`), 1)
	redistest.WaitFor(t, waitTimeout, 5*time.Millisecond, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}, "the daemon still accepts connections after SIGTERM")
	select {
	case <-d.exited:
		t.Fatalf("the daemon exited (%v) with %d requests in flight", d.exitErr, len(uploads))
	default:
	}

	// Now the bodies, slowly.
	for i, u := range uploads {
		go func() {
			for _, part := range []string{`{"upload":`, fmt.Sprint(i), `,"pad":"` + strings.Repeat("x", 4096) + `"`, `}`} {
				if _, err := io.WriteString(u.body, part); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond) // a slow client
			}
			u.body.Close()
		}()
	}
	for i, u := range uploads {
		var r reply
		select {
		case r = <-u.done:
		case <-time.After(exitTimeout):
			t.Fatalf("upload %d: no answer", i)
		}
		require.NoError(t, u.err, "upload %d", i)
		require.Equal(t, http.StatusOK, r.code, "upload %d: %s", i, r.body)
		var got struct {
			State struct {
				Upload int    `json:"upload"`
				Pad    string `json:"pad"`
			} `json:"state"`
		}
		require.NoError(t, json.Unmarshal(r.body, &got))
		require.Equal(t, i, got.State.Upload, "upload %d stored its body", i)
		require.Len(t, got.State.Pad, 4096)
	}

	require.Equal(t, 0, d.wait(), "exit status after SIGTERM")
	require.Contains(t, d.log.last(), "storage-host: stopped")
	require.NotContains(t, d.log.String(), "closing backends", "the backends closed cleanly")
	wg.Wait()
	require.Empty(t, problems)
	require.Positive(t, rounds.Load())
}
