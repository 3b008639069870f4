package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/cmd/storage-host/internal/config"
	"github.com/storage-host/storage-host/host"
)

// inspectReport is what `plugin inspect -json` prints.
type inspectReport struct {
	File         string   `json:"file"`
	SHA256       string   `json:"sha256"`
	Name         string   `json:"name,omitempty"`
	Version      string   `json:"version,omitempty"`
	ABI          string   `json:"abi,omitempty"`
	HostABI      string   `json:"host_abi"`
	Features     []string `json:"features"`
	Capabilities []string `json:"capabilities"`
	Imports      []string `json:"imports"`
	// KVReads are the gets the host answers from the kv store (ABI 1.8),
	// each as `kind "prefix"+id`.
	KVReads []string `json:"kv_reads,omitempty"`
	// RedisReads are the gets the host answers with an HMGET of its own
	// (ABI 1.9), each as `kind "prefix"+id+"suffix"`, and its guard.
	RedisReads []string `json:"redis_reads,omitempty"`
	// PGReads are the gets the host answers with a statement it runs
	// (ABI 1.9), each as the kind and the statement.
	PGReads []string `json:"pg_reads,omitempty"`
	// Migrations is how many PostgreSQL schema migrations the plugin
	// ships (the schema version they bring a schema to).
	Migrations int    `json:"migrations,omitempty"`
	WASI       bool   `json:"wasi"`
	Loadable   bool   `json:"loadable"`
	Problem    string `json:"problem,omitempty"`
}

// inspect describes a plugin module. It exits non-zero when this host
// cannot load the module, so scripts can gate on it.
func inspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plugin inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: storage-host plugin inspect [-json] FILE.wasm|builtin:NAME")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	file := fs.Arg(0)
	var wasm []byte
	var err error
	if name, ok := strings.CutPrefix(file, host.BuiltinPrefix); ok {
		wasm, err = host.BuiltinWASM(name)
	} else {
		wasm, err = config.ReadPlugin(file)
	}
	if err != nil {
		return err
	}
	info := host.Inspect(context.Background(), wasm)
	r := inspectReport{
		File:         file,
		SHA256:       info.SHA256,
		HostABI:      abi.Current.String(),
		Features:     append([]string{}, info.Metadata.Features.Names()...),
		Capabilities: capabilityNames(info.Metadata.Capabilities),
		Imports:      capabilityNames(info.Imports),
		WASI:         info.WASI,
		Migrations:   info.Migrations,
		Loadable:     info.Err == nil,
	}
	for _, kr := range info.Metadata.KVReads {
		r.KVReads = append(r.KVReads, kr.Kind.Name()+" "+strconv.Quote(string(kr.Prefix))+"+id")
	}
	for _, rr := range info.Metadata.RedisReads {
		read := rr.Kind.Name() + " " + strconv.Quote(string(rr.KeyPrefix)) + "+id+" + strconv.Quote(string(rr.KeySuffix))
		if len(rr.Guard) > 0 {
			read += " unless kv holds " + strconv.Quote(string(rr.Guard)) + "…"
		}
		r.RedisReads = append(r.RedisReads, read)
	}
	for _, pr := range info.Metadata.PGReads {
		r.PGReads = append(r.PGReads, pr.Kind.Name()+" "+strconv.Quote(pr.SQL))
	}
	if info.Metadata.Name != "" || info.Metadata.ABI != (abi.Version{}) {
		r.Name, r.Version, r.ABI = info.Metadata.Name, info.Metadata.Version, info.Metadata.ABI.String()
	}
	if info.Err != nil {
		r.Problem = info.Err.Error()
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		w := func(k, v string) { fmt.Fprintf(stdout, "%-13s %s\n", k+":", v) }
		w("file", r.File)
		w("sha256", r.SHA256)
		w("name", orDash(r.Name))
		w("version", orDash(r.Version))
		w("abi", fmt.Sprintf("%s (host speaks %s)", orDash(r.ABI), r.HostABI))
		w("features", orDash(strings.Join(r.Features, ", ")))
		w("capabilities", orDash(strings.Join(r.Capabilities, ", ")))
		w("imports", orDash(strings.Join(r.Imports, ", "))+importsNote(&r))
		if len(r.KVReads) > 0 {
			w("kv reads", strings.Join(r.KVReads, ", ")+" (gets the host answers from the kv store)")
		}
		if len(r.RedisReads) > 0 {
			w("redis reads", strings.Join(r.RedisReads, ", ")+" (gets the host answers with an HMGET)")
		}
		if len(r.PGReads) > 0 {
			w("pg reads", strings.Join(r.PGReads, ", ")+" (gets the host answers with the plugin's statement)")
		}
		if r.Migrations > 0 {
			w("migrations", fmt.Sprintf("%d (a PostgreSQL schema at version %d)", r.Migrations, r.Migrations))
		}
		if r.Loadable {
			w("loadable", "yes (grant: "+orDash(strings.Join(r.Capabilities, ", "))+")")
		} else {
			w("loadable", "no: "+r.Problem)
		}
	}
	if !r.Loadable {
		return errReported
	}
	return nil
}

func capabilityNames(cs []abi.Capability) []string {
	out := make([]string, len(cs)) // never nil: JSON shows []
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// importsNote follows the list of imports: WASI when the module imports
// it, and the capabilities the plugin asks for without importing them. A
// grant is not an import: a plugin may ask for log and write to WASI's
// stderr instead (Go's SDK does), which the host logs as its log.
func importsNote(r *inspectReport) string {
	var note string
	if r.WASI {
		note = " (and WASI)"
	}
	var unused []string
	for _, c := range r.Capabilities {
		// redis_scripts is a grant, never a module imported.
		if c != string(abi.CapabilityRedisScripts) && !slices.Contains(r.Imports, c) {
			unused = append(unused, c)
		}
	}
	if len(unused) == 0 {
		return note
	}
	note += "; asked for, not imported: " + strings.Join(unused, ", ")
	if r.WASI && slices.Contains(unused, string(abi.CapabilityLog)) {
		note += " (what it writes to WASI's stdout and stderr is its log)"
	}
	return note
}
