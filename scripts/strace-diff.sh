#!/usr/bin/env bash
# `make trace-diff`: the same session against two designs, side by side.
#
#   scripts/strace-diff.sh [BIN] [LEFT_MODE] [RIGHT_MODE]     (default: epoll threads)
#   make trace-diff LEFT=epoll RIGHT=poll
#
# Each mode runs under scripts/strace-session.sh; its transcript is then
# stripped of what differs from run to run (pids, timestamps, ports, pointers,
# the dynamic loader's start-up) so only the structure is left, in
# traces/MODE.story, and the two stories are shown side by side. Lines
# marked `<` or `>` happen in one design only; `|` marks lines that differ.
#
# The page is as wide as $COLUMNS, else as the terminal, else 160 columns;
# a line longer than its half is wrapped onto the next rows, never cut.
set -euo pipefail

bin=${1:-${CARGO_TARGET_DIR:-target}/release/pingpong}
left=${2:-epoll}
right=${3:-threads}
traces=${TRACES:-traces}
here=$(dirname "$0")

die() { echo "trace-diff: $*" >&2; exit 1; }
modes="epoll poll select threads pool hybrid uring blocking"
for mode in "$left" "$right"; do
  case " $modes " in
    *" $mode "*) ;;
    *) die "no mode '$mode' to trace here (LEFT= and RIGHT= take: $modes)" ;;
  esac
done
[ "$left" != "$right" ] || die "LEFT and RIGHT are both $left: pick two modes, e.g. LEFT=epoll RIGHT=poll"

# The page width: COLUMNS if it is a number (bash sets it in an interactive
# shell but does not export it: `make trace-diff COLUMNS=$COLUMNS`), else
# the terminal's, else 160.
cols=${COLUMNS:-}
if ! [[ $cols =~ ^[0-9]+$ ]]; then
  cols=
  if [ -t 1 ]; then cols=$(tput cols 2>/dev/null || stty size 2>/dev/null </dev/tty | cut -d' ' -f2) || true; fi
  [[ $cols =~ ^[0-9]+$ ]] || cols=160
fi
((cols >= 60)) || cols=60

# One transcript → its story: from the first socket() on, each line as
# `THREAD call(...) = result`. THREAD is `main`, then `t1`, `t2`... in the
# order main cloned them (the first pass reads the thread ids clone returned).
# Every fd the story closes was opened in it (socket, accept4, openat,
# pipe2, epoll_create1, eventfd2, io_uring_setup); if one was opened earlier,
# or never in this transcript, a `#` line before its close() says what it is.
# io_uring hands the server fds without a system call of their own: the
# multishot accept posts each new client's fd in a completion, which strace
# cannot see (it shows only the io_uring_enter that reaped it). So in a
# transcript with a ring, an fd above 2 that no call opened came from the
# ring; only 0, 1 and 2 come from the shell.
story() {
  awk '
    function result(s) { return match(s, / = [0-9]+$/) ? substr(s, RSTART + 3) + 0 : -1 }
    # Record the fds a finished call made (a plain line, or a `resumed>` one).
    function opened(s, where,   fd, pair, n, p) {
      if (s !~ /^(socket|accept4?|openat|epoll_create1?|eventfd2?|io_uring_setup)\(/ &&
          s !~ /^<\.\.\. (socket|accept4?|openat|epoll_create1?|eventfd2?|io_uring_setup) resumed>/ &&
          s !~ /^(<\.\.\. )?pipe2/) return
      if (s ~ /pipe2/) {
        if (result(s) != 0 || !match(s, /\[[0-9]+, [0-9]+\]/)) return
        pair = substr(s, RSTART + 1, RLENGTH - 2)
        n = split(pair, p, ", ")
        origin[p[1] + 0] = where; origin[p[2] + 0] = where
        return
      }
      fd = result(s)
      if (fd >= 0) origin[fd] = where
      if (fd >= 0 && s ~ /io_uring_setup/) ring = fd
    }
    NR == FNR {
      if (/clone3?\(|clone3? resumed>/ && $NF ~ /^[0-9]+$/ && !($NF in name)) name[$NF] = "t" ++k
      if (!main) main = $1
      next
    }
    {
      pid = $1
      line = $0
      sub(/^[0-9]+ +[0-9:.]+ +/, "", line)
    }
    !started && !/socket\(/ {
      # Before the story: the loader, the runtime. Keep what they leave open.
      if (match(line, /^close\([0-9]+/)) delete origin[substr(line, 7, RLENGTH - 6) + 0]
      opened(line, "before")
      next
    }
    { started = 1 }
    {
      who = (pid == main) ? "main" : (pid in name) ? name[pid] : "t?"
      gsub(/htons\([0-9]+\)/, "htons(PORT)", line)
      gsub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:PORT", line)
      gsub(/0x[0-9a-f]+/, "0x...", line)
      gsub(/parent_tid=\[[0-9]+\]/, "parent_tid=[TID]", line)
      gsub(/si_pid=[0-9]+/, "si_pid=PID", line)
      if (match(line, /^close\([0-9]+/)) {
        fd = substr(line, 7, RLENGTH - 6) + 0
        if (!(fd in origin) && ring != "" && fd > 2)
          printf "#    fd %d: accepted by the ring on fd %d (a completion of the multishot accept, reaped by io_uring_enter)\n", fd, ring
        else if (!(fd in origin))
          printf "#    fd %d: not opened in this transcript (inherited from the shell that started the server)\n", fd
        else if (origin[fd] == "before")
          printf "#    fd %d: opened before the first socket(), in the start-up (the full .strace has it)\n", fd
        delete origin[fd]
      }
      opened(line, "story")
      printf "%-4s %s\n", who, line
    }' "$1" "$1"
}

for mode in "$left" "$right"; do
  COUNTS=0 TRACES=$traces "$here/strace-session.sh" "$mode" "$bin" >/dev/null
  story "$traces/$mode.strace" >"$traces/$mode.story"
done

# Side by side: GNU diff marks each line of the two stories as in the left
# one only (<), the right one only (>) or both (=); awk pairs a run of `<`
# with the run of `>` after it (`|`, "differs") and wraps each half at its
# width, continuation rows indented under the call.
side_by_side() {
  # (diff exits 1 when the stories differ, which is the point: not an error.)
  { diff --old-line-format='<%L' --new-line-format='>%L' --unchanged-line-format='=%L' "$1" "$2" || true; } |
    awk -v cols="$cols" -v l="$left" -v r="$right" '
      # Cut s into rows of at most w characters, breaking after a space,
      # a comma, a bar or a slash near the end; continuation rows start with
      # 5 spaces (under the call, past the thread column).
      function rows(s, out,   n, w, cut, i) {
        n = 0
        w = half
        while (length(s) > w) {
          cut = 0
          for (i = w; i > w / 2; i--) if (index(" ,|/", substr(s, i, 1))) { cut = i; break }
          if (!cut) cut = w
          out[++n] = substr(s, 1, cut)
          s = "     " substr(s, cut + 1)
        }
        out[++n] = s
        return n
      }
      function pair(a, b, mark,   na, nb, i, A, B, row) {
        na = rows(a, A); nb = rows(b, B)
        for (i = 1; i <= na || i <= nb; i++) {
          row = sprintf("%-" half "s %s %s", (i <= na) ? A[i] : "", mark, (i <= nb) ? B[i] : "")
          sub(/ +$/, "", row)
          print row
        }
      }
      function flush(   i) {
        for (i = 1; i <= nl || i <= nr; i++)
          if (i <= nl && i <= nr) pair(L[i], R[i], "|")
          else if (i <= nl) pair(L[i], "", "<")
          else pair("", R[i], ">")
        nl = nr = 0
      }
      BEGIN {
        half = int((cols - 3) / 2)
        rule = sprintf("%" half "s", ""); gsub(/ /, "-", rule)
        printf "%-" half "s   %s\n%s   %s\n", l, r, rule, rule
      }
      {
        kind = substr($0, 1, 1); text = substr($0, 2)
        if (kind == "<") L[++nl] = text
        else if (kind == ">") R[++nr] = text
        else { flush(); pair(text, text, " ") }
      }
      END { flush() }'
}

echo "== $left (left) and $right (right), the same session: 3 clients x 3 pings, one half-close"
echo "   < only in $left, > only in $right, | different; $cols columns (COLUMNS=N for another width)"
echo
side_by_side "$traces/$left.story" "$traces/$right.story"

echo
echo "== calls per design (from socket() on)"
# A call split by another thread's (`<unfinished ...>` ... `<... resumed>`) counts once.
count() {
  grep -v -e 'resumed>' -e ' --- ' -e ' +++ ' -e '^#' "$1" | sed -E 's/^[a-z0-9?]+ +([a-z0-9_]+).*/\1/' | sort | uniq -c
}
join -1 2 -2 2 -a 1 -a 2 -e 0 -o 0,1.1,2.1 \
  <(count "$traces/$left.story" | sort -k2) <(count "$traces/$right.story" | sort -k2) |
  awk -v l="$left" -v r="$right" 'BEGIN { printf "  %-17s %8s %8s\n", "call", l, r }
                                  { printf "  %-17s %8s %8s\n", $1, $2, $3 }'
echo
echo "stories: $traces/$left.story $traces/$right.story (full transcripts: $traces/$left.strace $traces/$right.strace)"
