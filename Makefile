# mcpgw: the two commands users need are `make demo` and `make test`; `make help` lists the rest.
GO       ?= go
BIN      := bin/mcpgw
INTEROP  := test/interop
REVISION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BUNDLE_SIGNING_KEY ?= testdata/keys/bundle-signing.dev.pem
# Each test phase leaves its go test -json stream or counts here, so `make test` can end with one line.
RESULTS  := .make/results
HYDRA    := test/hydra/bin/hydra
HELM     := test/deploy/bin/helm
# The container image: make image builds IMAGE and an OCI layout in IMAGE_OCI.
IMAGE     ?= localhost/mcpgw:$(REVISION)
IMAGE_OCI := bin/image-oci
GO_IMAGE  ?= local
COMMIT    := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
GOTEST   := $(GO) tool gotestsum --hide-summary=skipped

SHELL       := bash
.SHELLFLAGS := -o pipefail -c

# modtest runs go test in another module of this repository ($(1): the phase, whose go test -json
# stream lands in $(RESULTS)/$(1).json; $(2): the module's folder; $(3): flags and packages).
modtest = $(GOTEST) --format pkgname-and-test-fails --jsonfile $(RESULTS)/$(1).json \
	  --raw-command -- $(GO) -C $(2) test -json -count=1 $(3)
# say prints what a phase is about to do, so a first run's long compiles are never silent.
say = @printf '\n==> %s\n' $(1)
# progress turns `go build -v` package names into a line every 50 packages;
# anything else go prints (downloads, compile errors) passes through.
progress = awk -v what='$(1)' '/^[^ :]+$$/ { n++; if (n % 50 == 0) { printf "    %s: %d packages compiled\n", what, n; fflush() }; next } { print; fflush() } END { if (n) printf "    %s: %d packages compiled\n", what, n }'

.PHONY: schema all help build demo test test-go test-opa test-interop test-hydra test-summary interop-deps lint bench bundle clean \
	image image-deps test-image test-deploy test-policy-repo

all: build

## help: this list.
help:
	@sed -n 's/^## \([a-z-]*\): /\1\t/p' Makefile | awk -F'\t' '{ printf "  make %-17s %s\n", $$1, $$2 }'

## build: bin/mcpgw.
build:
	$(GO) build -o $(BIN) ./cmd/mcpgw

## demo: the gateway with a demo identity provider, demo backends and the shipped policies (first run compiles ~5 min).
demo:
	$(call say,"demo: building bin/mcpgw (first run on 2 cores: several minutes; later: seconds)")
	@$(GO) build -v -o $(BIN) ./cmd/mcpgw 2>&1 | $(call progress,mcpgw)
	./$(BIN) demo

## test: everything CI runs: gofmt/vet/staticcheck, opa fmt/check/test, Go tests (PostgreSQL), npm interop, README, Hydra, policy repo template, Helm chart, image.
test:
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS) && date +%s > $(RESULTS)/start
	@$(MAKE) --no-print-directory lint test-opa test-go test-interop test-hydra test-policy-repo test-deploy test-image; \
	  status=$$?; $(MAKE) --no-print-directory test-summary STATUS=$$status; exit $$status

## lint: gofmt, go vet and staticcheck (the first vet compiles every dependency: the longest silent-looking step).
lint:
	$(call say,"lint: gofmt then go vet and staticcheck (the first run compiles every dependency: progress every 50 packages)")
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^$(INTEROP)/node_modules/')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@# test/hydra and test/deploy import the gateway through a replace: a new
	@# dependency of the gateway must reach their go.sum too, or their phase
	@# fails late with "missing go.sum entry".
	@for m in . test/hydra test/deploy; do 	  (cd $$m && $(GO) mod tidy -diff > /dev/null) || { echo "$$m/go.mod is not tidy: run (cd $$m && go mod tidy)"; exit 1; }; done
	@$(GO) build -v ./... 2>&1 | $(call progress,go vet deps)
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@# The other modules have no tools of their own: the root's staticcheck
	@# checks them from their folders (~30 s the first time, cached after).
	@sc=$$($(GO) tool -n staticcheck) && for m in test/hydra test/deploy; do \
	  echo "(cd $$m && staticcheck ./...)"; (cd $$m && $$sc ./...) || exit 1; done

## test-opa: opa fmt, check --strict and test with coverage (at least 90%).
test-opa:
	$(call say,"opa: fmt and check --strict and test with coverage")
	$(GO) tool opa fmt --fail --list policies opa-tests
	$(GO) tool opa check --strict policies opa-tests
	@mkdir -p $(RESULTS)
	@$(GO) tool opa test --timeout 10m policies opa-tests --coverage --threshold 90 --format=json > $(RESULTS)/opa-coverage.json || \
	  { $(GO) tool opa test --timeout 10m policies opa-tests -v; tail -5 $(RESULTS)/opa-coverage.json; exit 1; }
	@$(GO) tool opa test --timeout 10m policies opa-tests | tee $(RESULTS)/opa.txt
	@printf '    policy coverage: %s%% (threshold 90%%)\n' \
	  "$$(grep -o '"coverage": *[0-9.]*' $(RESULTS)/opa-coverage.json | tail -1 | grep -o '[0-9.]*$$')" | tee -a $(RESULTS)/opa.txt

# npm ci runs again only when the lock file changed (or node_modules is gone).
$(INTEROP)/node_modules/.mcpgw-installed: $(INTEROP)/package-lock.json
	$(call say,"interop: npm ci in $(INTEROP) (the lock file changed or node_modules is missing)")
	cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The browser tests (test/interop/oauth) drive Debian's chromium through playwright-core;
# playwright's own browser download cannot work here, so the distribution's build is used.
CHROMIUM := /usr/bin/chromium

interop-deps: $(INTEROP)/node_modules/.mcpgw-installed
	@if [ ! -x $(CHROMIUM) ]; then \
	  printf '\n==> %s\n' "interop: installing Debian's chromium for the browser tests (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; fi

## test-go: the Go tests (store tests against PostgreSQL on 127.0.0.1:5432, see README).
test-go:
	$(call say,"go: unit and gateway tests (one line per package)")
	@mkdir -p $(RESULTS)
	$(GOTEST) --format pkgname-and-test-fails --jsonfile $(RESULTS)/go.json -- \
	  -count=1 -timeout 12m $$($(GO) list ./... | grep -v -e '/test/interop' -e '/test/readme')

## test-interop: real npm MCP peers and the official conformance suite, directly and through mcpgw; then the README test.
test-interop: interop-deps
	$(call say,"interop: real MCP peers (npm and Go SDK and mcp-go) directly and through mcpgw")
	@mkdir -p $(RESULTS)
	$(GOTEST) --format standard-verbose --jsonfile $(RESULTS)/interop.json -- -count=1 -timeout 8m ./$(INTEROP)/
	$(call say,"readme: the README's runnable blocks in a fresh copy and every command the demo prints")
	$(GOTEST) --format standard-verbose --jsonfile $(RESULTS)/readme.json -- -count=1 -timeout 10m ./test/readme/

# Hydra is built once per version of test/hydra/tool, with visible progress (first build: ~8 min on 2 cores).
$(HYDRA): test/hydra/tool/go.mod test/hydra/tool/go.sum
	$(call say,"hydra: building ORY Hydra (first run: several minutes; progress every 50 packages)")
	@mkdir -p $(dir $@)
	@cd test/hydra/tool && CGO_ENABLED=1 $(GO) build -v -tags sqlite,sqlite_omit_load_extension \
	  -o ../bin/hydra.tmp github.com/ory/hydra/v2 2>&1 | $(call progress,hydra)
	@mv test/hydra/bin/hydra.tmp $@

## test-hydra: the jwt-bearer step against ORY Hydra, a real OAuth server (its own module).
test-hydra: $(HYDRA)
	$(call say,"hydra: jwt-bearer exchange against a real ORY Hydra")
	cd test/hydra && $(GO) vet ./...
	@mkdir -p $(RESULTS)
	HYDRA_BIN=$(CURDIR)/$(HYDRA) $(GOTEST) --format pkgname-and-test-fails --jsonfile $(RESULTS)/hydra.json \
	  --raw-command -- $(GO) -C test/hydra test -json -count=1 -timeout 10m ./...

## test-policy-repo: examples/policy-repo/ci.sh, the policy repository template's CI run locally (opa fmt/check/test, signed bundle, bundle verify); actionlint on its workflow.
test-policy-repo:
	$(call say,"policy-repo: the template's CI steps with a throwaway signing key; actionlint on its workflow")
	@mkdir -p $(RESULTS)
	./examples/policy-repo/ci.sh | tee $(RESULTS)/policy-repo.txt
	$(GO) -C test/deploy tool actionlint $(CURDIR)/examples/policy-repo/.github/workflows/policy.yml

# Helm is built once per version of test/deploy/go.mod, with visible progress (first build: ~10 min on 2 cores).
$(HELM): test/deploy/go.mod test/deploy/go.sum
	$(call say,"deploy: building Helm v4 from the module proxy (first run: several minutes; progress every 50 packages)")
	@mkdir -p $(dir $@)
	@cd test/deploy && $(GO) build -v -o bin/helm.tmp helm.sh/helm/v4/cmd/helm 2>&1 | $(call progress,helm)
	@mv test/deploy/bin/helm.tmp $@

## test-deploy: helm lint and template of deploy/helm/mcpgw, each manifest decoded strictly into the Kubernetes API types and checked (its own module).
test-deploy: $(HELM)
	$(call say,"deploy: helm lint and template; every manifest decoded strictly and checked; alert rules decoded")
	cd test/deploy && $(GO) vet ./...
	@mkdir -p $(RESULTS)
	HELM_BIN=$(CURDIR)/$(HELM) $(call modtest,deploy,test/deploy,-timeout 10m ./chart/ ./monitoring/)

# buildah and a static busybox (for the local builder image) are Debian packages.
image-deps:
	@if ! command -v buildah >/dev/null || ! dpkg-query -W busybox-static >/dev/null 2>&1; then \
	  printf '\n==> %s\n' "image: installing buildah and busybox-static (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah busybox-static; fi

## image: the container image from the Dockerfile, built by buildah without a daemon (IMAGE, GO_IMAGE; OCI layout in bin/image-oci).
image: image-deps
	$(call say,"image: buildah builds the Dockerfile (first run: several minutes; then seconds)")
	IMAGE='$(IMAGE)' OCI_DIR='$(IMAGE_OCI)' VERSION='$(REVISION)' REVISION='$(COMMIT)' GO_IMAGE='$(GO_IMAGE)' ./scripts/build-image

## test-image: builds the image, checks its config and files, runs its mcpgw read-only as user 65532 (version, serve, /healthz, /readyz).
test-image: image
	$(call say,"image: its config and files; its mcpgw run from the unpacked image read-only as user 65532")
	@mkdir -p $(RESULTS)
	MCPGW_IMAGE_OCI=$(CURDIR)/$(IMAGE_OCI) MCPGW_IMAGE_VERSION='$(REVISION)' MCPGW_IMAGE_REVISION='$(COMMIT)' \
	  $(call modtest,image,test/deploy,-timeout 5m ./image/)

# test-summary prints the one line `make test` ends with: status, per-phase test counts, time.
test-summary:
	@./scripts/test-summary $(RESULTS) $(STATUS)

## bench: end-to-end load (direct, plain proxy, gateway; BENCHMARKS.md), then the Go benchmarks of the hot path. BENCH_ARGS passes flags to the harness.
bench:
	$(call say,"bench: bin/mcpgw and bin/mcpgw-bench, then the load harness (~6 min), then the Go benchmarks")
	$(GO) build -o $(BIN) ./cmd/mcpgw
	$(GO) build -o bin/mcpgw-bench ./bench
	$(GO) build -o bin/mcpgw-load ./cmd/mcpgw-load
	bin/mcpgw-bench -json .make/bench.json -profile .make/profiles $(BENCH_ARGS)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./internal/... ./gateway/...

## bundle: build and sign bundles/mcpgw.tar.gz from policies/ (roots in policies/.manifest).
bundle:
	@mkdir -p bundles
	$(GO) tool opa build -b policies --ignore '*_test.rego' --revision '$(REVISION)' \
	  --signing-key '$(BUNDLE_SIGNING_KEY)' --signing-alg RS256 -o bundles/mcpgw.tar.gz
	@echo "bundles/mcpgw.tar.gz: revision $(REVISION), signed with $(BUNDLE_SIGNING_KEY)"

## schema: write deploy/config.schema.json, the configuration's JSON Schema (a test checks it is current).
schema:
	$(GO) run ./cmd/mcpgw config schema > deploy/config.schema.json

## clean: remove built binaries, bundles and test results.
clean:
	rm -rf bin bundles/*.tar.gz .make test/hydra/bin test/deploy/bin
