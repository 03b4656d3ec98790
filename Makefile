# OCVR Realtime. `make run` starts the dev stack; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
MODULES := pkg gateway ticketsvc
PKGS := $(foreach m,$(MODULES),./$(m)/...)
BIN := $(CURDIR)/bin

NATS_PORT ?= 4222
TICKETSVC_ADDR ?= 127.0.0.1:8080
TICKETSVC_ADMIN ?= 127.0.0.1:9080
GATEWAY_PORT ?= 8081
GATEWAY_ADMIN_PORT ?= 9081
GATEWAYS ?= 1
DATA ?= $(CURDIR)/.data

.PHONY: all build run test test-go lint fmt vet clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./gateway/cmd/gateway ./ticketsvc/cmd/ticketsvc ./pkg/cmd/...

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

test: lint test-go

test-go:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

clean:
	rm -rf $(BIN) $(DATA)
