#!/usr/bin/env bash
# Watch a pingpong server's system calls on macOS.
#
#   platform/macos/trace.sh [MODE] [serve flags...]     e.g. trace.sh kqueue --edge
#
#   MODE     kqueue (default), poll, select, threads, pool, hybrid, blocking
#   TRACER   dtruss, ktrace or narrate (serve --trace). Default: dtruss when SIP
#            lets DTrace work, else narrate.
#   BIN      the pingpong binary (default: target/release/pingpong, built if missing)
set -euo pipefail

[ "$(uname -s)" = Darwin ] || { echo "this is the macOS script; see platform/README.md for $(uname -s)" >&2; exit 1; }

root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-kqueue}
[ $# -gt 0 ] && shift

bin=${BIN:-${CARGO_TARGET_DIR:-$root/target}/release/pingpong}
if [ ! -x "$bin" ]; then
  echo "building $bin ..." >&2
  (cd "$root" && cargo build --release --quiet)
fi

args=(serve --mode "$mode")
port=8000
case " $* " in
  *" --port "*) port=$(echo " $* " | sed -n 's/.* --port \([0-9]*\) .*/\1/p') ;;
  *) args+=(--port "$port") ;;
esac
args+=("$@")
[ "$port" = 0 ] && port='PORT   # the port in the start-up line'

# DTrace works when SIP is off, or on with its DTrace restriction lifted
# (`csrutil enable --without dtrace`, from Recovery).
sip=$(csrutil status 2>/dev/null || true)
dtrace_ok=no
case $sip in
  *"status: disabled"* | *"DTrace Restrictions: disabled"*) dtrace_ok=yes ;;
esac
tracer=${TRACER:-$([ $dtrace_ok = yes ] && echo dtruss || echo narrate)}

next() {
  cat >&2 <<EOF
== $mode server, watched with $tracer. In another terminal:
     $bin client --num-clients 2 --messages 3 --port $port
   Ctrl-C here stops it. platform/macos/README.md explains kevent, EV_EOF and
   why there are four calls where Linux's accept4 has one.
EOF
}

case $tracer in
  narrate)
    if [ $dtrace_ok = no ] && [ -z "${TRACER:-}" ]; then
      echo "SIP restricts DTrace here, so this is the server's own narration (--trace)." >&2
      echo "For dtruss: csrutil enable --without dtrace (from Recovery), or TRACER=ktrace." >&2
    fi
    next
    exec "$bin" "${args[@]}" --trace
    ;;
  dtruss)
    next
    # -f: follow threads and children. dtruss runs the program as root.
    exec sudo dtruss -f "$bin" "${args[@]}"
    ;;
  ktrace)
    # macOS's ktrace attaches to a pid: start the server, then trace it.
    "$bin" "${args[@]}" &
    server=$!
    trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
    sleep 0.5
    next
    echo "   (Ctrl-C ends ktrace; the server is then stopped too.)" >&2
    # S0x040C: class DBG_BSD, subclass system calls; -S prints strings.
    sudo ktrace trace -S -f S0x040C -p "$server" || true
    ;;
  *) echo "TRACER must be dtruss, ktrace or narrate" >&2; exit 1 ;;
esac
