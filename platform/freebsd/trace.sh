#!/bin/sh
# Watch a pingpong server's system calls on FreeBSD, OpenBSD or NetBSD.
# (Plain sh: the BSDs do not ship bash.)
#
#   platform/freebsd/trace.sh [MODE] [serve flags...]     e.g. trace.sh kqueue --edge
#
#   MODE     kqueue (default), poll, select, threads, pool, hybrid, blocking
#   TRACER   truss (default on FreeBSD) or ktrace (default elsewhere)
#   OUT      where the transcript goes (default: pingpong-MODE.truss / .ktr)
#   BIN      the pingpong binary (default: target/release/pingpong, built if missing)
set -eu

os=$(uname -s)
case $os in
  FreeBSD | OpenBSD | NetBSD | DragonFly) ;;
  *) echo "this is the BSD script; see platform/README.md for $os" >&2; exit 1 ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-kqueue}
[ $# -gt 0 ] && shift

bin=${BIN:-${CARGO_TARGET_DIR:-$root/target}/release/pingpong}
if [ ! -x "$bin" ]; then
  echo "building $bin ..." >&2
  (cd "$root" && cargo build --release --quiet)
fi

# The serve flags: the user's, plus the course's port unless one was given.
port=8000
case " $* " in
  *" --port "*) port=$(echo " $* " | sed -n 's/.* --port \([0-9]*\) .*/\1/p') ;;
  *) set -- --port "$port" "$@" ;;
esac
[ "$port" = 0 ] && port='PORT   # the port in the start-up line'

default=ktrace
[ "$os" = FreeBSD ] && command -v truss >/dev/null && default=truss
tracer=${TRACER:-$default}

cat >&2 <<EOF
== $mode server on $os, watched with $tracer. In another terminal:
     $bin client --num-clients 2 --messages 3 --port $port
   Ctrl-C here stops the server; the transcript is then ready to read.
   platform/freebsd/README.md says what to look for.
EOF

case $tracer in
  truss)
    out=${OUT:-pingpong-$mode.truss}
    # -f: children too; -H: thread ids; -d: seconds since the start.
    truss -f -H -d -o "$out" "$bin" serve --mode "$mode" "$@" || true
    echo "transcript: $out   (the story: grep -E 'kevent|accept|read|sendto|shutdown|close' $out)" >&2
    ;;
  ktrace)
    out=${OUT:-pingpong-$mode.ktr}
    # c: system calls, i: the bytes read and written, s: signals; -i: inherit.
    ktrace -i -t cis -f "$out" "$bin" serve --mode "$mode" "$@" || true
    if [ "$os" = FreeBSD ]; then
      kdump -H -f "$out" >"$out.txt" # -H: thread ids
    else
      kdump -f "$out" >"$out.txt"
    fi
    echo "transcript: $out.txt   (kdump -f $out prints it again; each call is a CALL line, then its RET)" >&2
    ;;
  *) echo "TRACER must be truss or ktrace" >&2; exit 1 ;;
esac
