#!/usr/bin/env bash
# Run a command as the terminal's foreground job, alone: `make run-epoll` uses
# it so that Ctrl-C ends the server with its summary and nothing else.
#
#   scripts/foreground.sh COMMAND [ARGS...]
#
# Why: Ctrl-C sends SIGINT to the terminal's whole foreground process group,
# which is make and the server together. The server catches it, prints its
# summary and exits 0; make catches it too, and its handler waits for its
# children. When make's main loop has already reaped the server (it exits
# fast), that handler's wait finds no child, and make prints
# `make: *** wait: No child processes.  Stop.` (about one Ctrl-C in six here).
# With job control on (`set -m`), bash starts COMMAND in a process group of its
# own and hands it the terminal, so Ctrl-C reaches the server only; make never
# sees a signal, and ends when the server does, with its status.
#
# Ctrl-Z stops the server; this script then stops make's group too, so the
# shell shows `make ...` as stopped and `fg` brings it back as before: the
# script then gives the terminal back to the server (`fg` here).
#
# Without a terminal, or run in the background (`make run-epoll &`), there is
# no foreground to share: the command simply replaces this script.
set -u

# Are we the terminal's foreground process group? (tpgid: the terminal's
# foreground group; pgid: ours, which is make's.)
foreground() {
  [ -t 0 ] || return 1
  local ids
  ids=$(ps -o tpgid=,pgid= -p $$ 2>/dev/null) || return 1
  # shellcheck disable=SC2086  # two numbers, split on purpose
  set -- $ids
  [ "$#" = 2 ] && [ "$1" = "$2" ]
}

foreground || exec "$@"
set -m
"$@"
status=$?
# Stopped (Ctrl-Z): stop ourselves and make with it, then, once the user's
# shell continues us (`fg`), put the server back in the foreground.
while [ -n "$(jobs -s)" ]; do
  kill -TSTP 0
  fg >/dev/null
  status=$?
done
exit "$status"
