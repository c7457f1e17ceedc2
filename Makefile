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

.PHONY: help build server test test-kqueue lint check-platforms run-epoll run-kqueue run-poll run-select run-threads \
        run-pool run-hybrid run-uring run-blocking client demo-stall lab check-server faults

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## build the release binaries: pingpong, with its check and watch tools
	$(CARGO) build --release -p pingpong -p pingpong-check -p pingpong-watch

# The server and client alone: what run-*, lab, client and the strace targets
# need, so that a first `make run-epoll` compiles no terminal-UI crates.
server:
	$(CARGO) build --release -p pingpong

$(BIN): server

test: ## run every test: unit, selector contract suite, integration, the benchmark's
	$(CARGO) test $(PACKAGES) --all-targets
	$(CARGO) test $(PACKAGES) --doc

# The kqueue backend, run on Linux: linked against libkqueue (a user-space
# kqueue on top of epoll), built here with cmake from its source. build.rs
# reads PINGPONG_LIBKQUEUE; the filters pick the kqueue modules of three suites.
# LIBKQUEUE_SRC: a checkout of github.com/mheily/libkqueue at the commit tested
# here, f96608964f7d (`git describe`: v2.7.0-265-gf966089, 265 commits after
# the v2.7.0 release); by default the copy vendored beside this clone in
# $(SHARED), else target/libkqueue-src.
SHARED ?= ../shared
LIBKQUEUE_REPO := https://github.com/mheily/libkqueue
LIBKQUEUE_COMMIT := f96608964f7d
LIBKQUEUE_SRC ?= $(firstword $(wildcard $(SHARED)/vendor/libkqueue) target/libkqueue-src)
LIBKQUEUE_DIR := $(CURDIR)/target/libkqueue

test-kqueue: ## the kqueue backend on Linux via libkqueue: contract suite, servers, hostile clients
ifneq ($(shell uname -s),Linux)
	@echo "test-kqueue: skipped, this OS has kqueue in its kernel and make test runs it"
else ifeq ($(wildcard $(LIBKQUEUE_SRC)/CMakeLists.txt),)
	@echo "test-kqueue: skipped, no libkqueue source in $(LIBKQUEUE_SRC). To run it, fetch the commit tested here"
	@echo "(v2.7.0-265-gf966089: the v2.7.0 release and 265 commits) and build it:"
	@echo "  git clone $(LIBKQUEUE_REPO) $(LIBKQUEUE_SRC)"
	@echo "  git -C $(LIBKQUEUE_SRC) checkout $(LIBKQUEUE_COMMIT)"
	@echo "  make test-kqueue        (or, with the source elsewhere: make test-kqueue LIBKQUEUE_SRC=DIR)"
	@echo "It is built with cmake and cc (Debian: apt-get install cmake build-essential), into target/libkqueue/."
else
	@[ -f $(LIBKQUEUE_DIR)/libkqueue.a ] || { \
	  command -v cmake >/dev/null || { echo "test-kqueue: cmake builds libkqueue; install it (Debian: apt-get install cmake)" >&2; exit 1; }; \
	  echo "test-kqueue: building libkqueue from $(LIBKQUEUE_SRC) into $(LIBKQUEUE_DIR)"; \
	  cmake -S $(LIBKQUEUE_SRC) -B $(LIBKQUEUE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENABLE_TESTING=NO \
	    -DVERSION_OVERRIDE=2.7.0 >target/libkqueue-cmake.log 2>&1 || \
	    { echo "test-kqueue: cmake could not configure libkqueue: see target/libkqueue-cmake.log" >&2; exit 1; }; \
	  cmake --build $(LIBKQUEUE_DIR) -j2 >>target/libkqueue-cmake.log 2>&1 || \
	    { echo "test-kqueue: libkqueue did not build: see target/libkqueue-cmake.log" >&2; exit 1; }; }
	PINGPONG_LIBKQUEUE=$(LIBKQUEUE_DIR) $(CARGO) test --test selector --test servers --test hostile \
		-- kqueue:: every_available_backend_is_tested
	PINGPONG_LIBKQUEUE=$(LIBKQUEUE_DIR) $(CARGO) clippy --all-targets -- -D warnings
endif

check-platforms: ## type-check and lint the crate, its tests and the tools for macOS, FreeBSD, NetBSD, OpenBSD, aarch64 Linux
	XCHECK_CLIPPY=1 scripts/check-platforms.sh

lint: ## rustfmt, clippy and rustdoc, as CI runs them
	$(CARGO) fmt --all --check
	$(CARGO) clippy $(PACKAGES) --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc $(PACKAGES) --no-deps

# The servers run as the terminal's foreground job, alone, so that Ctrl-C
# reaches the server only: it prints its summary and make ends quietly with it
# (scripts/foreground.sh says why make would otherwise complain).
FOREGROUND := scripts/foreground.sh

run-epoll: server ## the selector server on epoll(7), 127.0.0.1:8000
	$(FOREGROUND) $(BIN) serve --mode epoll --host $(HOST) --port $(PORT) $(ARGS)
run-kqueue: server ## the selector server on kqueue(2) (macOS, BSD)
	$(FOREGROUND) $(BIN) serve --mode kqueue --host $(HOST) --port $(PORT) $(ARGS)
run-poll: server ## the selector server on poll(2)
	$(FOREGROUND) $(BIN) serve --mode poll --host $(HOST) --port $(PORT) $(ARGS)
run-select: server ## the selector server on select(2)
	$(FOREGROUND) $(BIN) serve --mode select --host $(HOST) --port $(PORT) $(ARGS)
run-threads: server ## a thread per client
	$(FOREGROUND) $(BIN) serve --mode threads --host $(HOST) --port $(PORT) $(ARGS)
run-pool: server ## a fixed pool of threads (--workers)
	$(FOREGROUND) $(BIN) serve --mode pool --host $(HOST) --port $(PORT) $(ARGS)
run-hybrid: server ## a selector loop for I/O, a pool of threads for the work (--workers)
	$(FOREGROUND) $(BIN) serve --mode hybrid --host $(HOST) --port $(PORT) $(ARGS)
run-uring: server ## one io_uring: completions instead of readiness (Linux 6.1+)
	$(FOREGROUND) $(BIN) serve --mode uring --host $(HOST) --port $(PORT) $(ARGS)
run-blocking: server ## one client at a time
	$(FOREGROUND) $(BIN) serve --mode blocking --host $(HOST) --port $(PORT) $(ARGS)

NAME ?=
lab: server ## a break-it lab: make lab NAME=no-spare-fd (NAME=all runs every one; no NAME lists them)
	$(BIN) lab $(if $(filter all,$(NAME)),--all,$(if $(NAME),$(NAME),--list))

client: server ## N clients (default 5) x M pings (default 10) against HOST:PORT
	$(BIN) client --host $(HOST) --port $(PORT) --num-clients $(N) --messages $(M) $(ARGS)

# demo-stall measures and draws with pingpong-stall, a small program of the
# benchmark's package (bench/src/bin/pingpong-stall.rs).
STALL := target/release/pingpong-stall

# Its first build compiles the benchmark package's dependencies (about 50 s on
# 2 idle cores, 2 min on busy ones): said so, with cargo's progress, not in silence.
demo-stall: server ## slow handler (200 ms): epoll stalls everyone; threads, pool and hybrid do not; demo-out/stall-timeline.svg
	@if [ -x $(STALL) ]; then $(CARGO) build --release --quiet -p pingpong-bench --bin pingpong-stall; \
	else echo "demo-stall: first, building pingpong-stall (bench/src/bin/pingpong-stall.rs), which measures and draws: once, a minute or two"; \
	  $(CARGO) build --release -p pingpong-bench --bin pingpong-stall; fi
	@scripts/demo-stall.sh $(BIN) $(STALL)

# ---- strace: watch the system calls go by (Linux; platform/ has the other OSes)
.PHONY: strace-epoll strace-poll strace-select strace-threads strace-pool strace-hybrid strace-uring strace-blocking trace-diff
LEFT ?= epoll
RIGHT ?= threads

strace-epoll: server ## the epoll server under strace: a scripted session, traces/epoll.strace, counts
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh epoll $(BIN)
strace-poll: server ## the same for poll(2): traces/poll.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh poll $(BIN)
strace-select: server ## the same for select(2): traces/select.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh select $(BIN)
strace-threads: server ## the same for a thread per client: traces/threads.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh threads $(BIN)
strace-pool: server ## the same for a fixed pool of threads: traces/pool.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh pool $(BIN)
strace-hybrid: server ## the same for a selector loop and a worker pool: traces/hybrid.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh hybrid $(BIN)
strace-uring: server ## the same for io_uring: traces/uring.strace (strace sees only io_uring_enter; ARGS=--trace shows the SQEs and CQEs)
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh uring $(BIN)
strace-blocking: server ## the same for one client at a time: traces/blocking.strace
	@SERVE_ARGS="$(ARGS)" scripts/strace-session.sh blocking $(BIN)
# COLUMNS: the page width (default: the terminal's, else 160).
trace-diff: server ## two modes under strace, side by side (LEFT=epoll RIGHT=threads; pids, times, ports stripped)
	@scripts/strace-diff.sh $(BIN) $(LEFT) $(RIGHT)

# ---- bench: every mode side by side; table on stdout, report and charts in bench-out/
# The benchmark is a package of its own (bench/, binary pingpong-bench), built
# only here, so `make build` never compiles its charting dependencies. It
# starts target/release/pingpong, the binary beside it, as the server.
.PHONY: bench bench-full bench-build
# The C reference server, bench/c/epoll-server.c: the loop a C programmer
# would write first (level-triggered epoll, one read per readiness, an
# optimistic send), run beside every mode as the peer `c-epoll`. cc is
# already needed: Rust links with it.
C_EPOLL := target/peers/c-epoll
BENCH_PEER := --peer c-epoll='$(C_EPOLL) {port}'

$(C_EPOLL): bench/c/epoll-server.c
	mkdir -p $(dir $@) && cc -O2 -Wall -Wextra -o $@ $<

bench-build: server
	$(CARGO) build --release -p pingpong-bench

bench: bench-build $(C_EPOLL) ## quick benchmark of every mode and the C epoll server (~1 min): bench-out/report.md
	$(BENCH) --quick $(BENCH_PEER) $(ARGS)
bench-full: bench-build $(C_EPOLL) ## full benchmark (~6 min): 1 to 10,000 connections, 3 s windows
	$(BENCH) $(BENCH_PEER) $(ARGS)

# ---- check-server: grade any server that speaks the protocol (docs/check.md)
# CMD starts it, with {port} where check puts a free port; ARGS go to check
# (--only line, --format junit --out report.xml, ...). Exit status 1 when a
# case fails, so a CI job or a grader can run it as it is.
check-server: ## grade a server: make check-server CMD="python3 my_server.py --port {port}"
	@test -n '$(CMD)' || { echo 'usage: make check-server CMD="python3 my_server.py --port {port}" [ARGS="--only line"]' >&2; exit 2; }
	@$(MAKE) --no-print-directory build
	$(BIN) check $(ARGS) -- $(CMD)

# ---- faults: every system call failure the policy lists, made to happen with
# strace --inject while clients talk (tests/faults.rs); the table is
# docs/faults.md's, as measured here. Linux, with strace.
faults: ## each system call made to fail (strace --inject): the matrix as measured, docs/faults.md
	@$(CARGO) test --quiet --test faults -- --nocapture
