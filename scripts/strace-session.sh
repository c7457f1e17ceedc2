#!/usr/bin/env bash
# Watch one server mode under strace (`make strace-epoll`, `make strace-threads`, ...).
#
#   scripts/strace-session.sh MODE [BIN]
#
# Runs `pingpong serve --mode MODE --port 0` under `strace -f -tt` with a filter
# that shows the story (sockets, the wait, threads), drives a short scripted
# session (3 clients x 3 pings, then one client that half-closes), stops the
# server with SIGTERM, and leaves the transcript in traces/MODE.strace. Then it
# runs the same session again under `strace -c` and prints the call counts.
#
# Environment: TRACES=dir (default traces), SERVE_ARGS="--edge ..." (extra
# `serve` flags), COUNTS=0 (transcript only, no second run; trace-diff uses it).
set -euo pipefail

mode=${1:?usage: $0 MODE [BIN]   (MODE: epoll poll select threads pool hybrid uring blocking)}
bin=${2:-${CARGO_TARGET_DIR:-target}/release/pingpong}
traces=${TRACES:-traces}
serve_args=${SERVE_ARGS:-}

# The calls that tell the story. A leading `?` means "no error if this
# architecture lacks it": aarch64 has no epoll_wait, poll or select (only
# epoll_pwait, ppoll, pselect6), and older kernels have no clone3.
FILTER='socket,setsockopt,bind,listen,?accept,accept4,read,recvfrom,write,sendto,shutdown,close'
FILTER+=',epoll_create1,epoll_ctl,?epoll_wait,epoll_pwait,?poll,ppoll,?select,pselect6'
FILTER+=',pipe2,eventfd2,clone,?clone3'
# io_uring: the ring's setup and mappings, the one call it serves with, and
# its teardown (the same mappings undone with munmap before the ring's close).
FILTER+=',io_uring_setup,io_uring_enter,io_uring_register'
[ "$mode" = uring ] && FILTER+=',mmap,munmap'
# Every fd the transcript closes is opened in it: the selector modes' spare fd
# (`openat(AT_FDCWD, "/dev/null", ...)`, server/spare_fd.rs), and the files
# the runtime reads (the loader's libraries, the cgroup's CPU quota).
FILTER+=',openat'

die() { echo "strace-session: $*" >&2; exit 1; }

command -v strace >/dev/null || die "strace is not installed (Debian/Ubuntu: apt-get install strace)"
[ -x "$bin" ] || die "no binary at $bin (run: cargo build --release)"
strace -f -o /dev/null "$bin" --version >/dev/null 2>&1 ||
  die "strace cannot trace here: ptrace is not permitted (in a container, run it with --cap-add=SYS_PTRACE)"
mkdir -p "$traces"

# The scripted session against 127.0.0.1:$1.
session() {
  echo "  3 clients x 3 pings:"
  "$bin" client --port "$1" --num-clients 3 --messages 3 --quiet | sed 's/^/    /'
  printf '%s\n' '  one client sends "ping\nhello" (no final newline), then shuts down its side:'
  if command -v python3 >/dev/null; then
    python3 - "$1" <<'EOF' | sed 's/^/    /'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"ping\nhello")      # the last line has no newline yet
s.shutdown(socket.SHUT_WR)     # our FIN: "no more requests"
replies = b""
while chunk := s.recv(1024):   # the server answers both lines, then closes
    replies += chunk
print("replies:", replies)
EOF
  else
    # No python3: the pingpong client also half-closes after its last ping.
    "$bin" client --port "$1" --messages 1 --quiet | sed 's/^/    /'
  fi
}

# Interrupted (Ctrl-C, or `| head` closing the pipe): stop the traced server
# too (the server, not strace: strace -o FILE ignores SIGTERM).
server_pid=
trap '[ -z "$server_pid" ] || kill -TERM "$server_pid" 2>/dev/null || true' EXIT

# Run the server under `strace OPTIONS...`, drive the session, stop it.
traced_run() {
  local out; out=$(mktemp)
  # shellcheck disable=SC2086  # serve_args is a list of flags
  strace "$@" "$bin" serve --mode "$mode" --port 0 $serve_args >"$out" 2>&1 &
  local strace_pid=$!
  for _ in $(seq 100); do grep -q '^listening on' "$out" && break; sleep 0.1; done
  if ! grep -q '^listening on' "$out"; then
    kill "$strace_pid" 2>/dev/null || true
    cat "$out" >&2; rm -f "$out"; die "the $mode server did not start"
  fi
  # `listening on 127.0.0.1:PORT (mode M, pid P[, ...])`: the server's own pid, not
  # strace's. strace -o FILE ignores SIGTERM, so the signal goes to the server.
  local port
  port=$(sed -n 's/^listening on .*:\([0-9]*\) (.*/\1/p' "$out")
  server_pid=$(sed -n 's/^listening on .*[(,] *pid \([0-9]*\)[,)].*/\1/p' "$out")
  session "$port"
  kill -TERM "$server_pid"
  wait "$strace_pid" || true
  server_pid=
  sed -n 's/^served/  server: served/p' "$out"
  rm -f "$out"
}

echo "== $mode under strace -f -tt"
traced_run -f -tt -e trace="$FILTER" -o "$traces/$mode.strace"

if [ "${COUNTS:-1}" != 0 ]; then
  echo
  echo "== the same session again, under strace -c -f: every call, counted"
  traced_run -f -c -S calls -o "$traces/$mode.counts"
  cat "$traces/$mode.counts"
fi

echo
echo "transcript: $traces/$mode.strace ($(wc -l <"$traces/$mode.strace") lines)"
echo "  read it beside platform/linux/README.md; the server's own story starts at socket():"
echo "    grep -n -m1 'socket(' $traces/$mode.strace"
echo "  just the waits and the sockets: grep -E 'accept|epoll|poll|select|clone|sendto|shutdown' $traces/$mode.strace"
