#!/usr/bin/env bash
# The course's lesson in one run: a handler that takes 200 ms per reply,
# 5 clients x 2 pings each, against each server design in turn.
set -euo pipefail
bin=${1:-target/release/pingpong}
work_ms=${WORK_MS:-200}
clients=${CLIENTS:-5}
messages=${MESSAGES:-2}
modes=${MODES:-"epoll threads pool hybrid"}
[ "$(uname)" = Linux ] || modes=${modes/epoll/kqueue}

echo "handler: ${work_ms} ms per reply; ${clients} clients x ${messages} pings each"
for mode in $modes; do
  "$bin" serve --mode "$mode" --port 0 --work-ms "$work_ms" > /tmp/pingpong-stall.$$ 2>&1 &
  pid=$!
  for _ in $(seq 50); do grep -q listening /tmp/pingpong-stall.$$ 2>/dev/null && break; sleep 0.1; done
  if ! grep -q listening /tmp/pingpong-stall.$$; then
    echo "  $mode: not available ($(head -1 /tmp/pingpong-stall.$$))"; kill $pid 2>/dev/null; continue
  fi
  port=$(sed -n 's/^listening on .*:\([0-9]*\) (.*/\1/p' /tmp/pingpong-stall.$$)
  threads_before=$(ls /proc/$pid/task 2>/dev/null | wc -l || echo '?')
  result=$("$bin" client --port "$port" --num-clients "$clients" --messages "$messages" --quiet)
  printf '  %-8s %s  (server threads: %s)\n' "$mode" "$result" "$threads_before"
  kill -TERM $pid; wait $pid >/dev/null 2>&1 || true
done
rm -f /tmp/pingpong-stall.$$
