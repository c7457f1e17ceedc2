#!/usr/bin/env bash
# `make trace-diff`: the same session against two designs, side by side.
#
#   scripts/strace-diff.sh [BIN] [LEFT_MODE] [RIGHT_MODE]     (default: epoll threads)
#
# Each mode runs under scripts/strace-session.sh; its transcript is then
# stripped of what differs from run to run (pids, timestamps, ports, pointers,
# the dynamic loader's start-up) so only the structure is left, in
# traces/MODE.story, and the two stories are shown with `diff -y`. Lines
# marked `<` or `>` happen in one design only; `|` marks lines that differ.
set -euo pipefail

bin=${1:-${CARGO_TARGET_DIR:-target}/release/pingpong}
left=${2:-epoll}
right=${3:-threads}
traces=${TRACES:-traces}
here=$(dirname "$0")

# One transcript → its story: from the first socket() on, each line as
# `THREAD call(...) = result`. THREAD is `main`, then `t1`, `t2`... in the
# order main cloned them (the first pass reads the thread ids clone returned).
story() {
  awk '
    NR == FNR {
      if (/clone3?\(|clone3? resumed>/ && $NF ~ /^[0-9]+$/ && !($NF in name)) name[$NF] = "t" ++k
      if (!main) main = $1
      next
    }
    !started && !/socket\(/ { next }
    { started = 1 }
    {
      pid = $1
      who = (pid == main) ? "main" : (pid in name) ? name[pid] : "t?"
      $1 = ""; $2 = ""; sub(/^ +/, "")
      gsub(/htons\([0-9]+\)/, "htons(PORT)")
      gsub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:PORT")
      gsub(/0x[0-9a-f]+/, "0x...")
      gsub(/parent_tid=\[[0-9]+\]/, "parent_tid=[TID]")
      gsub(/si_pid=[0-9]+/, "si_pid=PID")
      printf "%-4s %s\n", who, $0
    }' "$1" "$1"
}

for mode in "$left" "$right"; do
  COUNTS=0 TRACES=$traces "$here/strace-session.sh" "$mode" "$bin" >/dev/null
  story "$traces/$mode.strace" >"$traces/$mode.story"
done

echo "== $left (left) and $right (right), the same session: 3 clients x 3 pings, one half-close"
echo
diff -y -t -W 200 "$traces/$left.story" "$traces/$right.story" || true

echo
echo "== calls per design (from socket() on)"
# A call split by another thread's (`<unfinished ...>` ... `<... resumed>`) counts once.
count() {
  grep -v -e 'resumed>' -e ' --- ' -e ' +++ ' "$1" | sed -E 's/^[a-z0-9]+ +([a-z0-9_]+).*/\1/' | sort | uniq -c
}
join -1 2 -2 2 -a 1 -a 2 -e 0 -o 0,1.1,2.1 \
  <(count "$traces/$left.story" | sort -k2) <(count "$traces/$right.story" | sort -k2) |
  awk -v l="$left" -v r="$right" 'BEGIN { printf "  %-14s %8s %8s\n", "call", l, r }
                                  { printf "  %-14s %8s %8s\n", $1, $2, $3 }'
echo
echo "stories: $traces/$left.story $traces/$right.story (full transcripts: $traces/$left.strace $traces/$right.strace)"
