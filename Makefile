# pingpong — `make help` lists the targets.
CARGO ?= cargo
BIN := target/release/pingpong
BENCH := target/release/pingpong-bench
# The workspace's second package, the benchmark (bench/), reads /proc: on
# Linux `make test` and `make lint` cover it too, elsewhere the library only.
PACKAGES := $(if $(filter Linux,$(shell uname -s)),--workspace)
HOST ?= 127.0.0.1
PORT ?= 8000
N ?= 5
M ?= 10
ARGS ?=

.PHONY: help build test test-kqueue lint check-platforms run-epoll run-kqueue run-poll run-select run-threads \
        run-pool run-hybrid run-uring run-blocking client demo-stall lab faults

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## build the release binary
	$(CARGO) build --release -p pingpong -p pingpong-check -p pingpong-watch

$(BIN): build

test: ## run every test: unit, selector contract suite, integration, the benchmark's
	$(CARGO) test $(PACKAGES) --all-targets
	$(CARGO) test $(PACKAGES) --doc

# The kqueue backend, run on Linux: linked against libkqueue (a user-space
# kqueue on top of epoll) when its source is beside this clone. build.rs reads
# PINGPONG_LIBKQUEUE; the filters pick the kqueue modules of three suites.
SHARED ?= ../shared
LIBKQUEUE_BUILD := $(SHARED)/vendor/build-libkqueue.sh
LIBKQUEUE_DIR := $(CURDIR)/target/libkqueue

test-kqueue: ## the kqueue backend on Linux via libkqueue: contract suite, servers, hostile clients
ifneq ($(shell uname -s),Linux)
	@echo "test-kqueue: skipped, this OS has kqueue in its kernel and make test runs it"
else ifeq ($(wildcard $(LIBKQUEUE_BUILD)),)
	@echo "test-kqueue: skipped, no libkqueue source in $(SHARED)/vendor (make test-kqueue SHARED=DIR)"
else
	$(LIBKQUEUE_BUILD) $(LIBKQUEUE_DIR)
	PINGPONG_LIBKQUEUE=$(LIBKQUEUE_DIR) $(CARGO) test --test selector --test servers --test hostile \
		-- kqueue:: every_available_backend_is_tested
	PINGPONG_LIBKQUEUE=$(LIBKQUEUE_DIR) $(CARGO) clippy --all-targets -- -D warnings
endif

check-platforms: ## type-check and lint the crate for macOS, FreeBSD, NetBSD, OpenBSD, aarch64 Linux
	XCHECK_CLIPPY=1 scripts/check-platforms.sh

lint: ## rustfmt, clippy and rustdoc, as CI runs them
	$(CARGO) fmt --all --check
	$(CARGO) clippy $(PACKAGES) --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc $(PACKAGES) --no-deps

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
run-hybrid: build ## a selector loop for I/O, a pool of threads for the work (--workers)
	$(BIN) serve --mode hybrid --host $(HOST) --port $(PORT) $(ARGS)
run-uring: build ## one io_uring: completions instead of readiness (Linux 6.1+)
	$(BIN) serve --mode uring --host $(HOST) --port $(PORT) $(ARGS)
run-blocking: build ## one client at a time
	$(BIN) serve --mode blocking --host $(HOST) --port $(PORT) $(ARGS)

NAME ?=
lab: build ## a break-it lab: make lab NAME=no-spare-fd (NAME=all runs every one; no NAME lists them)
	$(BIN) lab $(if $(filter all,$(NAME)),--all,$(if $(NAME),$(NAME),--list))

client: build ## N clients (default 5) x M pings (default 10) against HOST:PORT
	$(BIN) client --host $(HOST) --port $(PORT) --num-clients $(N) --messages $(M) $(ARGS)

# demo-stall measures and draws with pingpong-stall, a small program of the
# benchmark's package (bench/src/bin/pingpong-stall.rs).
STALL := target/release/pingpong-stall

demo-stall: build ## slow handler (200 ms): epoll stalls everyone; threads, pool and hybrid do not; demo-out/stall-timeline.svg
	@$(CARGO) build --release --quiet -p pingpong-bench --bin pingpong-stall
	@scripts/demo-stall.sh $(BIN) $(STALL)

# ---- strace: watch the system calls go by (Linux; platform/ has the other OSes)
.PHONY: strace-epoll strace-poll strace-select strace-threads strace-pool strace-hybrid strace-uring strace-blocking trace-diff
LEFT ?= epoll
RIGHT ?= threads

strace-epoll: build ## the epoll server under strace: a scripted session, traces/epoll.strace, counts
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh epoll $(BIN)
strace-poll: build ## the same for poll(2): traces/poll.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh poll $(BIN)
strace-select: build ## the same for select(2): traces/select.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh select $(BIN)
strace-threads: build ## the same for a thread per client: traces/threads.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh threads $(BIN)
strace-pool: build ## the same for a fixed pool of threads: traces/pool.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh pool $(BIN)
strace-hybrid: build ## the same for a selector loop and a worker pool: traces/hybrid.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh hybrid $(BIN)
strace-uring: build ## the same for io_uring: traces/uring.strace (strace sees only io_uring_enter; ARGS=--trace shows the SQEs and CQEs)
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh uring $(BIN)
strace-blocking: build ## the same for one client at a time: traces/blocking.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh blocking $(BIN)
# COLUMNS: the page width (default: the terminal's, else 160).
trace-diff: build ## two modes under strace, side by side (LEFT=epoll RIGHT=threads; pids, times, ports stripped)
	@scripts/strace-diff.sh $(BIN) $(LEFT) $(RIGHT)

# ---- bench: every mode side by side; table on stdout, report and charts in bench-out/
# The benchmark is a package of its own (bench/, binary pingpong-bench), built
# only here, so `make build` never compiles its charting dependencies. It
# starts target/release/pingpong, the binary beside it, as the server.
.PHONY: bench bench-full bench-build
PEERS ?= ../shared/peers
C_EPOLL := target/peers/c-epoll
# The C reference server joins the run when its source is beside this clone.
BENCH_PEER = $(if $(and $(wildcard $(PEERS)/c-epoll-server.c),$(shell command -v cc)),--peer c-epoll='$(C_EPOLL) {port}')

$(C_EPOLL): $(PEERS)/c-epoll-server.c
	mkdir -p $(dir $@) && cc -O2 -o $@ $<

bench-build: build
	$(CARGO) build --release -p pingpong-bench

bench: bench-build $(if $(BENCH_PEER),$(C_EPOLL)) ## quick benchmark of every mode (~1 min): bench-out/report.md
	$(BENCH) --quick $(BENCH_PEER) $(ARGS)
bench-full: bench-build $(if $(BENCH_PEER),$(C_EPOLL)) ## full benchmark (~6 min): 1 to 10,000 connections, 3 s windows
	$(BENCH) $(BENCH_PEER) $(ARGS)

# ---- faults: every system call failure the policy lists, made to happen with
# strace --inject while clients talk (tests/faults.rs); the table is
# docs/faults.md's, as measured here. Linux, with strace.
faults: ## each system call made to fail (strace --inject): the matrix as measured, docs/faults.md
	@$(CARGO) test --quiet --test faults -- --nocapture
