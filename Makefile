# oomwatch: see README.md. `make demo` shows the product in a VM; `make test`
# runs every test (unit, real containerd, real kernel in qemu) and installs
# what it needs.
SHELL  := /bin/bash
GO     ?= go
BIN    := $(CURDIR)/bin
export GOBIN := $(BIN)
export PATH  := $(BIN):$(PATH)

include tools/versions.mk

BINARIES := agent aggregator oomctl
# grpcnotrace leaves out gRPC's golang.org/x/net/trace, which oomwatch never
# turns on: it imports html/template, whose reflection keeps every exported
# method of every linked type in the binary (3.5 MB of the agent's 18 MB, and
# 2.7 MiB of its RSS). The Dockerfile and the test builds use the same tag.
TAGS     := grpcnotrace
PKGS     := ./...

.PHONY: all build test test-unit lint fmt vet proto proto-check tools demo run bench faults security clean kube-bins kube-up kube-down test-kube

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -trimpath -ldflags='-s -w' -o $(BIN)/ $(addprefix ./,$(BINARIES))

# Every test, with the race detector. The e2e tests boot a real kernel in
# qemu, the runtime tests start a real containerd and test/kube a real
# single-node Kubernetes cluster: they install their Debian packages
# themselves (as root) when missing. The cluster's binaries are built first,
# once (about 15 min on a cold 2-core machine), and cached in
# /var/cache/oomwatch-kube, so that the tests' timeout never includes it.
# The system tests (test/...) run one package at a time: a VM under TCG, a
# cluster and a flood of hostile clients on 2 cores at once starve each
# other's agents, and their timing then says nothing about oomwatch.
test: vet kube-bins
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list $(PKGS) | grep -v '/test/')
	$(GO) test -race -count=1 -timeout 60m -p 1 ./test/...

# Unit tests only: no VM, no containerd.
test-unit:
	OOMWATCH_SKIP_SYSTEM_TESTS=1 $(GO) test -race -count=1 $(PKGS)

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

$(BIN)/staticcheck:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(BIN)/buf:
	$(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

tools: $(BIN)/staticcheck $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc

proto: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
	buf generate

# Fails when the committed generated code is not what `make proto` makes.
proto-check: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	  buf generate -o $$tmp && \
	  diff -ru $$tmp/proto/oomwatch proto/oomwatch -x '*.proto' && echo "generated code is up to date"

lint: vet tools proto-check
	staticcheck $(PKGS)
	buf lint
	@if git rev-parse --verify -q main >/dev/null; then \
	  buf breaking --against '.git#branch=main'; \
	else echo "no main branch: buf breaking skipped"; fi

# The scenarios in a VM, printing what oomctl shows.
demo:
	$(GO) run ./test/e2e/demo

# Aggregator and agent on this machine's own /dev/kmsg (as root).
run: build
	./test/run-local.sh

bench:
	./bench/run.sh

# Fault injection with exact counts; prints the table of results.
faults:
	@set -o pipefail; $(GO) test -count=1 -timeout 30m -run 'TestFault' -v ./test/faults/ | sed -n '/^--- /p;/^FAULTS TABLE/,$$p'

# A real single-node Kubernetes cluster on this machine (root), with
# oomwatch installed from deploy/ (test/kube/overlay swaps the image names);
# the Kubernetes binaries are built once into /var/cache/oomwatch-kube.
kube-bins:
	@if [ "$$(id -u)" = 0 ] && [ "$$OOMWATCH_SKIP_SYSTEM_TESTS" != 1 ]; then tools/kube/build.sh >/dev/null; fi

kube-up: build kube-bins
	$(GO) run ./test/kube/cmd/oomwatch-kube up -bin $(BIN)

kube-down:
	$(GO) run ./test/kube/cmd/oomwatch-kube down

# The real-cluster scenarios (test/kube): brings its own cluster up and down.
test-kube: kube-bins
	$(GO) test -count=1 -timeout 60m -v ./test/kube/

# Hostile clients against the real aggregator, beside an honest agent;
# prints the table of results (`make test` runs the same tests).
security:
	@set -o pipefail; $(GO) test -count=1 -timeout 20m -v ./test/security/ | sed -n '/^--- /p;/^    .*_test.go/p;/^SECURITY TABLE/,$$p'

clean:
	rm -rf $(BIN)
