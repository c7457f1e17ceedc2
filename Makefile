# pingpong — `make help` lists the targets.
CARGO ?= cargo
BIN := target/release/pingpong
HOST ?= 127.0.0.1
PORT ?= 8000
N ?= 5

.PHONY: help build test lint run-epoll run-kqueue run-poll run-select run-threads run-pool run-blocking client

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## build the release binary
	$(CARGO) build --release

test: ## run every test (unit, contract suite, integration)
	$(CARGO) test --all-targets
	$(CARGO) test --doc

lint: ## rustfmt and clippy, as CI runs them
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
