#!/usr/bin/env bash
# The course's lesson in one run: a handler that takes 200 ms per reply,
# 5 clients x 2 pings each, against each server design in turn. It prints
# how long the clients took and how many threads the server had meanwhile,
# and draws the run: one row per client, one mark per reply at the time it
# arrived (demo-out/stall-timeline.svg; the measured times are beside it in
# demo-out/stall-timings.tsv).
#
#   scripts/demo-stall.sh [BIN] [STALL]     (default: target/release/pingpong,
#                                            and pingpong-stall beside it)
#
# Environment: WORK_MS (200), CLIENTS (5), MESSAGES (2),
# MODES ("epoll threads pool hybrid"), OUT (demo-out).
set -euo pipefail
bin=${1:-target/release/pingpong}
stall=${2:-$(dirname "$bin")/pingpong-stall}
work_ms=${WORK_MS:-200}
clients=${CLIENTS:-5}
messages=${MESSAGES:-2}
modes=${MODES:-"epoll threads pool hybrid"}
[ "$(uname)" = Linux ] || modes=${modes/epoll/kqueue}
outdir=${OUT:-demo-out}
timings=$outdir/stall-timings.tsv
svg=$outdir/stall-timeline.svg
[ -x "$stall" ] || { echo "demo-stall: no $stall (run: cargo build --release -p pingpong-bench --bin pingpong-stall)" >&2; exit 1; }
mkdir -p "$outdir"
: >"$timings"
out=$(mktemp)
pid=
# Interrupted (Ctrl-C, or `| head` closing the pipe): stop the server too.
trap 'rm -f "$out" "$out.client"; [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true' EXIT

threads_of() { # the server's thread count, where /proc exists
  local tasks=("/proc/$1/task/"*)
  if [ -e "${tasks[0]}" ]; then echo "${#tasks[@]}"; else echo '?'; fi
}

# The command as typed, for the picture's caption.
command="make demo-stall"
[ -z "${WORK_MS:-}" ] || command+=" WORK_MS=$WORK_MS"
[ -z "${CLIENTS:-}" ] || command+=" CLIENTS=$CLIENTS"
[ -z "${MESSAGES:-}" ] || command+=" MESSAGES=$MESSAGES"
[ -z "${MODES:-}" ] || command+=" MODES='$MODES'"

echo "handler: ${work_ms} ms per reply; ${clients} clients x ${messages} pings each, all at once"
threads_seen=()
for mode in $modes; do
  "$bin" serve --mode "$mode" --port 0 --work-ms "$work_ms" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
  if ! grep -q listening "$out"; then
    echo "  $mode: not available ($(head -1 "$out"))"; kill $pid 2>/dev/null || true; continue
  fi
  port=$(sed -n 's/^listening on .*:\([0-9]*\) (.*/\1/p' "$out")
  # pingpong-stall measure: the course's client (N threads, M pings each),
  # noting when each reply arrives.
  "$stall" measure --port "$port" --mode "$mode" --clients "$clients" --messages "$messages" \
    --out "$timings" >"$out.client" &
  client=$!
  sleep 0.1
  threads=$(threads_of $pid)
  wait $client || true
  printf '  %-8s %s  (server threads: %s)\n' "$mode" "$(cat "$out.client")" "$threads"
  threads_seen+=(--threads "$mode=$threads")
  kill -TERM $pid; wait $pid >/dev/null 2>&1 || true
  pid=
done

"$stall" draw "$timings" --clients "$clients" --messages "$messages" --work-ms "$work_ms" \
  --command "$command" --out "$svg" "${threads_seen[@]}"
echo "timeline: $svg (one row per client, one mark per reply; open it in a browser)"
