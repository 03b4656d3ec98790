# OCVR Realtime. `make run` starts the dev stack; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
MODULES := pkg gateway ticketsvc deploy/deploytest
PKGS := $(foreach m,$(MODULES),./$(m)/...)
BIN := $(CURDIR)/bin

NATS_PORT ?= 4222
TICKETSVC_ADDR ?= 127.0.0.1:8080
TICKETSVC_ADMIN ?= 127.0.0.1:9080
GATEWAY_PORT ?= 8081
GATEWAY_ADMIN_PORT ?= 9081
GATEWAYS ?= 1
DATA ?= $(CURDIR)/.data

.PHONY: all build run test deps test-go test-bench test-js test-chart test-examples lint fmt vet clean bench bench-report soak fuzz test-bounds

all: build

# In workspace mode Go stamps no VCS revision unless asked: --version and
# go_build_info then name the commit the binaries were built from.
# Where git cannot read the checkout (a clone owned by another user, no git)
# stamping is off: Go's default would fail the build there.
BUILDVCS ?= $(shell git status --porcelain >/dev/null 2>&1 && echo true || echo false)

build:
	@mkdir -p $(BIN)
	$(GO) build -buildvcs=$(BUILDVCS) -o $(BIN)/ ./gateway/cmd/gateway ./ticketsvc/cmd/ticketsvc ./pkg/cmd/...

run: build
	$(BIN)/ocvr-devstack --bin $(BIN) --data $(DATA) --nats-port $(NATS_PORT) \
		--ticketsvc-addr $(TICKETSVC_ADDR) --ticketsvc-admin $(TICKETSVC_ADMIN) \
		--gateway-port $(GATEWAY_PORT) --gateway-admin-port $(GATEWAY_ADMIN_PORT) --gateways $(GATEWAYS)

lint: vet
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $(MODULES)

test: deps lint test-go test-bench test-js test-chart test-examples

# What make test needs besides Go, installed by the same idempotent
# installers .ci/run uses (fast when everything is present): Node.js, npm
# modules and Debian's Chromium (install-js.sh), Debian's prometheus and
# promtool (install-prometheus.sh). As root they run apt-get; otherwise sudo.
# The chart's helm is built from the Go module proxy by scripts/tools.sh.
deps:
	@bash scripts/ci/install-js.sh
	@bash scripts/ci/install-prometheus.sh
	@bash scripts/ci/install-python.sh

# Every package with the race detector, then the gateway suite again in the
# reader-goroutine mode (--reader-goroutines: the non-Linux path and a chart
# value), not only on the epoll poller.
test-go:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	OCVR_TEST_READER_GOROUTINES=1 $(GO) test -race -count=1 -timeout 10m ./gateway/internal/gateway/

# Every micro-benchmark once (-benchtime=1x), so that none of them rots;
# for figures run e.g. go test -run '^$$' -bench . -benchmem ./pkg/protocol
# (BENCHMARKS.md).
test-bench:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime=1x -benchmem $(PKGS)

# The TypeScript client and the browser test (scripts/test-js.sh).
test-js:
	@if [ -x scripts/test-js.sh ]; then scripts/test-js.sh; fi

# The backend examples (examples/: Node.js and Python publish, notify and
# revoke through a plain NATS client) against a real stack, and the JSON
# Schema of bus payloads against the gateways' check (seconds). The Python
# interpreter is the first that imports jsonschema (install-python.sh).
OCVR_PYTHON ?= $(shell for p in python3 /usr/bin/python3; do $$p -c 'import jsonschema' 2>/dev/null && echo $$p && break; done)
test-examples: build
	@cd examples/node && OCVR_PYTHON=$(OCVR_PYTHON) && { { [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; } || npm ci --no-audit --no-fund --loglevel=error; } && node --test --test-concurrency=1 test/*.test.mjs

# The Helm chart: lint, template, strict decoding, schema (scripts/test-chart.sh).
test-chart:
	@if [ -x scripts/test-chart.sh ]; then scripts/test-chart.sh; fi

# The load-generator suite against a fresh stack (not part of make test):
# make bench, or make bench WORKLOADS=fanout RUNS=3.
bench:
	RUNS=$(or $(RUNS),1) scripts/bench.sh $(WORKLOADS)

# Every table of BENCHMARKS.md: targets three times, slopes, floor (~25 min),
# then the same tables as SVG charts in OUT/charts (pkg/cmd/ocvr-benchplot).
bench-report:
	scripts/bench-report.sh

# Hardening (HARDENING.md), not part of make test; CI runs each in
# scripts/ci/extra-*.sh.
# The bounded soak: make soak, or make soak SOAK_DURATION=60s SOAK_CONNS=2000.
soak:
	SOAK_DURATION=$(or $(SOAK_DURATION),10m) SOAK_CONNS=$(or $(SOAK_CONNS),2000) scripts/soak.sh

# The Artillery scenarios of deploy/artillery/ (README there), short, against
# the stack make run starts; Artillery installed once from npm and cached
# (scripts/artillery.sh). CI runs the same script. About 2 minutes.
.PHONY: artillery
artillery:
	scripts/ci/extra-artillery.sh

# Coverage-guided fuzzing, FUZZTIME per target (make test runs the corpora):
# make fuzz, make fuzz FUZZTIME=2m FUZZ_TARGETS="FuzzValidateEvent FuzzTicket".
fuzz:
	FUZZTIME=$(or $(FUZZTIME),15s) scripts/fuzz.sh $(FUZZ_TARGETS)

# Gateway heap per connection and per subscription (5,000 connections x 50
# subscriptions) against documented bounds; without -race.
test-bounds:
	$(GO) test -count=1 -timeout 10m -run '^TestResourceBounds$$' -v ./gateway/internal/gateway/

# Debian's prometheus package (prometheus, promtool) for the observability
# tests of deploy/deploytest; .ci/run installs it with the same script.
.PHONY: prometheus
prometheus:
	bash scripts/ci/install-prometheus.sh

# Container images without a Docker engine (deploy/imagebuild): one OCI image
# tarball per service in $(IMAGE_DIR), static binaries on an empty base,
# user 65532. Push with e.g. skopeo copy oci-archive:bin/images/ocvr-gateway.tar
# docker://$(IMAGE_REGISTRY)/ocvr-gateway:$(IMAGE_TAG) (helm/ocvr-realtime/README.md).
IMAGE_DIR ?= $(BIN)/images
IMAGE_REGISTRY ?= ghcr.io/ocvr
IMAGE_TAG ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_PLATFORMS ?= linux/amd64
# Stamped into the binaries (--version, go_build_info), whatever the tag;
# with -buildvcs they also carry the commit. Same checkout, same bytes. Each
# tarball gets a CycloneDX SBOM beside it (ocvr-gateway.cdx.json).
IMAGE_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

.PHONY: images
images:
	$(GO) run ./deploy/imagebuild build --out $(IMAGE_DIR) --registry $(IMAGE_REGISTRY) --tag $(IMAGE_TAG) \
		--version "$(IMAGE_VERSION)" --buildvcs=$(BUILDVCS) \
		--platforms $(IMAGE_PLATFORMS) --revision "$$(git rev-parse HEAD 2>/dev/null)" \
		--created "$$(git log -1 --format=%ct 2>/dev/null || echo 0)" \
		--port gateway=8081,9081 --port ticketsvc=8080,9080 \
		gateway=./gateway/cmd/gateway ticketsvc=./ticketsvc/cmd/ticketsvc

clean:
	rm -rf $(BIN) $(DATA)
