# bih-nfq — build, test and demo targets. `make test` is exactly what CI runs.
GO          ?= go
BIN         ?= bin/bih-nfq
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME    ?= 30s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test unit lint fmt-check fuzz demo demo-router demo-replay clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/bih-nfq

# Everything CI runs: formatting, vet, staticcheck, unit + e2e tests with the
# race detector (root-only tests run when root), then each fuzz target.
test: lint unit fuzz

unit: build
	$(GO) test -race -count=1 ./...

lint: fmt-check
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Run every Fuzz* target for FUZZTIME each.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# The namespace lab with the live daemon (root).
demo: build
	./scripts/demo.sh

# The same lab with the host as the router of two IPv4-only LAN hosts (root).
demo-router: build
	./scripts/demo-router.sh

# Native IPv6 vs TAYGA vs bih-nfq in one namespace lab (root; ~6 min):
# tests/bench/results/ and tests/bench/RESULTS.md.
.PHONY: bench
bench: build
	./tests/bench/bench.sh

# The offline translator on a bundled capture (no root).
demo-replay: build
	./scripts/demo-replay.sh

clean:
	rm -rf bin
