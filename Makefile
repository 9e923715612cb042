# mcpgw: the two commands users need are `make demo` and `make test`.
GO       ?= go
BIN      := bin/mcpgw
INTEROP  := test/interop
REVISION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BUNDLE_SIGNING_KEY ?= testdata/keys/bundle-signing.dev.pem

.PHONY: all build demo test test-go test-opa test-interop test-hydra interop-deps lint bench bundle clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mcpgw

## demo: the gateway with a demo identity provider, demo backends and the shipped policies.
demo: build
	./$(BIN) demo

## test: Go tests (with PostgreSQL), opa test, and the interoperability tests against real npm peers.
test: lint test-opa test-go test-interop test-hydra

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^$(INTEROP)/node_modules/')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test-opa:
	$(GO) tool opa fmt --fail --list policies opa-tests
	$(GO) tool opa check --strict policies opa-tests
	$(GO) tool opa test policies opa-tests --coverage --threshold 90 --format=json > /dev/null || \
	  { $(GO) tool opa test policies opa-tests -v; $(GO) tool opa test policies opa-tests --coverage --threshold 90 --format=json | tail -5; exit 1; }
	$(GO) tool opa test policies opa-tests

interop-deps:
	cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error

test-go:
	$(GO) test -count=1 -timeout 12m $$($(GO) list ./... | grep -v '/test/interop')

## test-hydra: the jwt-bearer step against ORY Hydra, a real OAuth server (its own module; first build ~2.5 min).
test-hydra:
	cd test/hydra && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

## test-interop: real npm peers and the official conformance suite, directly and through mcpgw (-v shows the summaries).
test-interop: interop-deps
	$(GO) test -count=1 -v -timeout 8m ./$(INTEROP)/

## bench: Go benchmarks for the hot path (policy, identity, token cache, relay).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./internal/... ./gateway/...

## bundle: build and sign bundles/mcpgw.tar.gz from policies/ (roots in policies/.manifest).
bundle:
	@mkdir -p bundles
	$(GO) tool opa build -b policies --ignore '*_test.rego' --revision '$(REVISION)' \
	  --signing-key '$(BUNDLE_SIGNING_KEY)' --signing-alg RS256 -o bundles/mcpgw.tar.gz
	@echo "bundles/mcpgw.tar.gz: revision $(REVISION), signed with $(BUNDLE_SIGNING_KEY)"

clean:
	rm -rf bin bundles/*.tar.gz
