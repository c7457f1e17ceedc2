#!/usr/bin/env bash
# The course's lesson in one run: a handler that takes 200 ms per reply,
# 5 clients x 2 pings each, against each server design in turn. It prints
# how long the clients took and how many threads the server had meanwhile.
set -euo pipefail
bin=${1:-target/release/pingpong}
work_ms=${WORK_MS:-200}
clients=${CLIENTS:-5}
messages=${MESSAGES:-2}
modes=${MODES:-"epoll threads pool hybrid"}
[ "$(uname)" = Linux ] || modes=${modes/epoll/kqueue}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

threads_of() { # the server's thread count, where /proc exists
  if [ -d "/proc/$1/task" ]; then ls "/proc/$1/task" | wc -l; else echo '?'; fi
}

echo "handler: ${work_ms} ms per reply; ${clients} clients x ${messages} pings each, all at once"
for mode in $modes; do
  "$bin" serve --mode "$mode" --port 0 --work-ms "$work_ms" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
  if ! grep -q listening "$out"; then
    echo "  $mode: not available ($(head -1 "$out"))"; kill $pid 2>/dev/null || true; continue
  fi
  port=$(sed -n 's/^listening on .*:\([0-9]*\) (.*/\1/p' "$out")
  "$bin" client --port "$port" --num-clients "$clients" --messages "$messages" --quiet >"$out.client" &
  client=$!
  sleep 0.1
  threads=$(threads_of $pid)
  wait $client || true
  printf '  %-8s %s  (server threads: %s)\n' "$mode" "$(cat "$out.client")" "$threads"
  rm -f "$out.client"
  kill -TERM $pid; wait $pid >/dev/null 2>&1 || true
done
