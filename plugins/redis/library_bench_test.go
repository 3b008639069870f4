//go:build !wasip1

package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/storage-host/storage-host/host/redistest"
)

// BenchmarkLibrary sends the library the calls the plugin builds, one
// EVALSHA at a time, and reports Redis's own time per call (redis-µs/op,
// the evalsha usec of INFO commandstats, which counts the script and the
// commands it runs): a bulk put of 100 agent states (a '*' of 100 sput
// and one ixaddl), one indexed agent-state put ('+sput') and a delete of
// a missing key. Every put rewrites a state written before, without
// expiry (the bulk's index call lists them and no more). Other
// clients' EVALSHAs on the same Redis count too: run it on a quiet one.
//
//	go test ./plugins/redis -run '^$' -bench Library -benchtime 2000x -count 5
func BenchmarkLibrary(b *testing.B) {
	ctx := context.Background()
	addr := redistest.Addr(b)
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	prefix := redistest.Prefix(b, addr)
	sha, err := rc.ScriptLoad(ctx, string(library)).Result()
	if err != nil {
		b.Fatal(err)
	}
	ix := []string{prefix + "{idx}:s", prefix + "{idx}:s:x", prefix + "{idx}:s:t"}
	put := func(id string) [2][]string {
		return [2][]string{{prefix + "s:{" + id + "}"}, {"sput", "p", "", "1764000000000000000", `{"step":1,"goal":"benchmark"}`}}
	}
	var bulk [][2][]string
	index := [2][]string{ix, {"ixaddl", "60000"}}
	for i := range 100 {
		id := "a" + strconv.Itoa(i)
		bulk = append(bulk, put(id))
		index[1] = append(index[1], id, "inf", strconv.Itoa(i+1))
	}
	bulk = append(bulk, index)
	single := put("a0")
	single[0] = append(single[0], ix...)
	single[1] = append([]string{"+sput"}, append(single[1][1:], "60000", "a0", "inf")...)

	cases := []struct {
		name string
		keys []string
		args []any
	}{
		{"bulk100", nil, nil},
		{"+sput", single[0], strArgs(single[1])},
		{"del", []string{prefix + "missing"}, []any{"del", "1"}},
	}
	cases[0].keys, cases[0].args = packed(bulk)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			call := func() {
				if err := rc.EvalSha(ctx, sha, c.keys, c.args...).Err(); err != nil && err != redis.Nil {
					b.Fatal(err)
				}
			}
			call() // the states exist: every put is a rewrite
			before := evalshaUsec(b, rc)
			for range b.N {
				call()
			}
			b.ReportMetric((evalshaUsec(b, rc)-before)/float64(b.N), "redis-µs/op")
		})
	}
}

func strArgs(s []string) []any {
	out := make([]any, len(s))
	for i := range s {
		out[i] = s[i]
	}
	return out
}

// evalshaUsec returns the usec of evalsha in INFO commandstats.
func evalshaUsec(b *testing.B, rc *redis.Client) float64 {
	info, err := rc.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
			for f := range strings.SplitSeq(strings.TrimSpace(rest), ",") {
				if v, ok := strings.CutPrefix(f, "usec="); ok {
					n, err := strconv.ParseFloat(v, 64)
					if err != nil {
						b.Fatal(err)
					}
					return n
				}
			}
		}
	}
	return 0
}
