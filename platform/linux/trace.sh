#!/usr/bin/env bash
# Run a pingpong server under strace (or perf trace) on Linux, and watch it live.
#
#   platform/linux/trace.sh [MODE] [serve flags...]     e.g. trace.sh epoll --edge
#
#   MODE     epoll (default), poll, select, threads, pool, hybrid, blocking
#   TRACER   strace (default) or perf
#   OUT      a file for the transcript instead of the terminal
#   BIN      the pingpong binary (default: target/release/pingpong, built if missing)
set -euo pipefail

[ "$(uname -s)" = Linux ] || { echo "this is the Linux script; see platform/README.md for $(uname -s)" >&2; exit 1; }

root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-epoll}
[ $# -gt 0 ] && shift
tracer=${TRACER:-strace}

bin=${BIN:-${CARGO_TARGET_DIR:-$root/target}/release/pingpong}
if [ ! -x "$bin" ]; then
  if command -v pingpong >/dev/null; then
    bin=$(command -v pingpong)
  else
    echo "building $bin ..." >&2
    (cd "$root" && cargo build --release --quiet)
  fi
fi

# The story: sockets, the wait set, threads. `?` = no error if this CPU lacks
# the call (aarch64 has only epoll_pwait, ppoll, pselect6).
calls='socket,setsockopt,bind,listen,?accept,accept4,read,sendto,shutdown,close,pipe2'
calls+=',epoll_create1,epoll_ctl,?epoll_wait,epoll_pwait,?poll,ppoll,?select,pselect6'
calls+=',eventfd2,write,clone,?clone3'

args=(serve --mode "$mode")
port=8000
case " $* " in
  *" --port "*) port=$(echo " $* " | sed -n 's/.* --port \([0-9]*\) .*/\1/p') ;;
  *) args+=(--port "$port") ;;
esac
args+=("$@")
[ "$port" = 0 ] && port='PORT   # PORT: the one in the start-up line'

cat >&2 <<EOF
== $mode server under $tracer. In another terminal:
     $bin client --num-clients 2 --messages 3 --port $port
     printf 'ping\nhello' | nc -N 127.0.0.1 ${port%% *}        # a half-close by hand
   Ctrl-C here stops the server cleanly.
   The story, in order: socket/bind/listen, the wait set, a wait that sleeps,
   accept4 + register, read "ping", sendto "pong", read 0, unregister, close.
   platform/linux/README.md has the same story annotated line by line.
EOF

case $tracer in
  strace)
    command -v strace >/dev/null || { echo "no strace: apt-get install strace (or TRACER=perf, or: $bin serve --trace)" >&2; exit 1; }
    # -I3: strace ignores Ctrl-C itself, so the server gets it, stops
    # gracefully, and the stop is in the transcript too.
    out=(); [ -n "${OUT:-}" ] && out=(-o "$OUT")
    strace -f -tt -I3 -e trace="$calls" "${out[@]}" "$bin" "${args[@]}"
    ;;
  perf)
    command -v perf >/dev/null || { echo "no perf: apt-get install linux-perf (Debian) or linux-tools-\$(uname -r) (Ubuntu)" >&2; exit 1; }
    out=(); [ -n "${OUT:-}" ] && out=(-o "$OUT")
    # perf has no `?`: name only the calls this CPU has (aarch64 lacks the
    # old epoll_wait, poll, select).
    events='socket,bind,listen,accept4,read,sendto,shutdown,close,epoll_create1,epoll_ctl,epoll_pwait,ppoll,pselect6,clone3'
    [ "$(uname -m)" = x86_64 ] && events+=',epoll_wait,poll,select'
    perf trace -e "$events" "${out[@]}" -- "$bin" "${args[@]}"
    ;;
  *) echo "TRACER must be strace or perf" >&2; exit 1 ;;
esac

[ -n "${OUT:-}" ] && echo "transcript: $OUT" >&2
