# Rebound. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/rebound
FUZZTIME  ?= 20s
PKGS      := ./...

.PHONY: help build test unit lint bench microbench fuzz generate generate-check demo soak clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## build bin/rebound (static, no cgo)
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/rebound

test: lint unit ## lint, every test with -race, the allocation tests without it, each benchmark once

unit:
	$(GO) test -count=1 -run 'Alloc' $(PKGS)
	$(GO) test -run '^$$' -bench . -benchtime=1x -count=1 $(PKGS)
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

lint: ## gofmt, go mod tidy, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

bench: build ## the report: every mode on the veth lab, one run, as a markdown table (root)
	BIN=$(BIN) scripts/bench.sh

microbench: ## go test benchmarks with allocations
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

demo: build ## the run command: xdp vs udp on the veth lab as root, else udp on loopback
	BIN=$(BIN) scripts/bench.sh --demo

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done
	REBOUND_FUZZ_TIME=$(FUZZTIME) REBOUND_FUZZ_SEED=$$(date +%s) $(GO) test -count=1 -run '^TestDifferentialFuzz' ./userspace/mcserve/

generate: ## regenerate the BPF objects and their Go bindings (needs clang, llvm, libbpf-dev)
	$(GO) generate ./bpf/...

generate-check: generate ## regenerate and fail if anything differs from what is committed
	@git diff --exit-code --stat -- bpf/ || { echo "generated BPF files differ from the committed ones: run 'make generate' and commit"; exit 1; }

clean:
	rm -rf bin

soak: ## the 60-second soak on the veth lab (root): mixed load and malformed frames
	$(GO) test -count=1 -v -run '^TestSoak$$' -timeout 10m ./e2e -soak 60s
