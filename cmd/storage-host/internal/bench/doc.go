// Package bench holds the benchmarks that compare storage-host with the
// plainest code that does without it: the embedding API against go-redis,
// a sandboxed plugin against the same module trusted, and the daemon's
// HTTP API against a minimal net/http server. It lives beside the daemon
// because its HTTP figures run the daemon's own handler. It has no code of
// its own; run it with `make bench-boundary` or `make bench`.
package bench
