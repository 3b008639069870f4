// Command sandbox is a test plugin that looks for a way out of its
// sandbox: files, directories, environment, arguments, the network. On
// configure it logs what each attempt found; host/sandbox_test.go requires
// every attempt to have found nothing.
//
// Built by the test itself: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/sdk"
)

type states struct{}

func (states) PutAgentState(*abi.PutAgentState) (abi.AgentState, error) {
	return abi.AgentState{}, sdk.ErrUnsupported
}
func (states) GetAgentState(string) (abi.AgentState, error) { return abi.AgentState{}, sdk.ErrNotFound }
func (states) DeleteAgentState(*abi.DeleteAgentState) error { return sdk.ErrNotFound }

func probe(abi.Options) error {
	var found []string
	report := func(what string, ok bool, detail any) {
		sdk.Logf(abi.LevelInfo, "sandbox probe %s: reachable=%v (%v)", what, ok, detail)
		if ok {
			found = append(found, what)
		}
	}
	for _, path := range []string{"/etc/hostname", "/etc/passwd", "go.mod", "/proc/self/environ"} {
		b, err := os.ReadFile(path)
		report("read "+path, err == nil, fmt.Sprintf("%d bytes, %v", len(b), err))
	}
	entries, err := os.ReadDir("/")
	report("list /", err == nil && len(entries) > 0, err)
	wd, err := os.Getwd()
	report("getwd", err == nil && wd != "/" && wd != "", fmt.Sprintf("%q %v", wd, err))
	err = os.WriteFile("/tmp/storage-host-sandbox-escape", []byte("x"), 0o600)
	report("write /tmp", err == nil, err)
	env := os.Environ()
	report("environment", len(env) > 0, strings.Join(env, ","))
	report("arguments", len(os.Args) > 1, os.Args)
	conn, err := net.Dial("tcp", "127.0.0.1:6379")
	if err == nil {
		conn.Close()
	}
	report("dial tcp", err == nil, err)
	if len(found) > 0 {
		return fmt.Errorf("sandbox escaped: %s", strings.Join(found, ", "))
	}
	return nil
}

func init() {
	sdk.Register(sdk.Plugin{Name: "sandbox", Version: "0", AgentStates: states{}, Configure: probe})
}

func main() {}
