# pingpong — `make help` lists the targets.
CARGO ?= cargo
BIN := target/release/pingpong
HOST ?= 127.0.0.1
PORT ?= 8000
N ?= 5
M ?= 10
ARGS ?=

.PHONY: help build test lint check-platforms run-epoll run-kqueue run-poll run-select run-threads \
        run-pool run-blocking client demo-stall

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## build the release binary
	$(CARGO) build --release

$(BIN): build

test: ## run every test: unit, selector contract suite, integration
	$(CARGO) test --all-targets
	$(CARGO) test --doc

check-platforms: ## type-check and lint the crate for macOS, FreeBSD, NetBSD, OpenBSD
	XCHECK_CLIPPY=1 scripts/check-platforms.sh

lint: ## rustfmt and clippy, as CI runs them
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

run-epoll: build ## the selector server on epoll(7), 127.0.0.1:8000
	$(BIN) serve --mode epoll --host $(HOST) --port $(PORT) $(ARGS)
run-kqueue: build ## the selector server on kqueue(2) (macOS, BSD)
	$(BIN) serve --mode kqueue --host $(HOST) --port $(PORT) $(ARGS)
run-poll: build ## the selector server on poll(2)
	$(BIN) serve --mode poll --host $(HOST) --port $(PORT) $(ARGS)
run-select: build ## the selector server on select(2)
	$(BIN) serve --mode select --host $(HOST) --port $(PORT) $(ARGS)
run-threads: build ## a thread per client
	$(BIN) serve --mode threads --host $(HOST) --port $(PORT) $(ARGS)
run-pool: build ## a fixed pool of threads (--workers)
	$(BIN) serve --mode pool --host $(HOST) --port $(PORT) $(ARGS)
run-blocking: build ## one client at a time
	$(BIN) serve --mode blocking --host $(HOST) --port $(PORT) $(ARGS)

client: build ## N clients (default 5) x M pings (default 10) against HOST:PORT
	$(BIN) client --host $(HOST) --port $(PORT) --num-clients $(N) --messages $(M) $(ARGS)

demo-stall: build ## slow handler (200 ms): the selector stalls everyone, threads do not
	@scripts/demo-stall.sh $(BIN)
