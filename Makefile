# Builds the embedded plugins and runs the checks. `go test ./...` needs
# nothing from here: the built plugins are committed.

GO ?= go
WASM_FLAGS = -trimpath -buildvcs=false -buildmode=c-shared
BUILTIN_SOURCES = $(shell find abi sdk -name '*.go' -not -name '*_test.go') go.mod go.sum

.PHONY: all plugins testdata test bench bench-boundary check lint
all: plugins test

# The built-in plugins embedded in the host (TestBuiltinsMatchSource
# checks they are current).
plugins: host/builtin/memory.wasm host/builtin/redis.wasm host/builtin/postgres.wasm

host/builtin/%.wasm: $(BUILTIN_SOURCES) $(shell find plugins -type f -not -name '*_test.go')
	GOOS=wasip1 GOARCH=wasm $(GO) build $(WASM_FLAGS) -o $@ ./plugins/$*
	$(GO) env GOVERSION > host/builtin/GOVERSION

# Foreign-language and hostile test plugins (needs wat2wasm from wabt).
testdata:
	bash testdata/plugins/build.sh

test:
	$(GO) test ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./host/ ./cmd/storage-host/internal/bench

# What the plugin boundary costs against the plainest code without it, as
# one table of ratios (needs Redis: host/redistest finds or starts one).
bench-boundary:
	$(GO) test -run '^$$' -bench '^BenchmarkBoundary$$' -benchtime 2s ./cmd/storage-host/internal/bench

check:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	$(GO) mod tidy -diff

# staticcheck at the release CI pins, on this platform and on wasip1.
lint:
	bash .ci/staticcheck
