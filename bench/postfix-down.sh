#!/usr/bin/env bash
# Stop the private Postfix started by bench/postfix-up.sh DIR and remove DIR.
#
#   bench/postfix-down.sh DIR        KEEP=1 keeps DIR (maillog, config)
#
# SIGTERM to the master (what `postfix stop` does; it passes it on to its
# children), then waits until no process of its process group is left.
set -euo pipefail
[[ $# == 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
pidfile=$dir/queue/pid/master.pid
if [[ -f $pidfile ]] && pid=$(tr -d ' \n' <"$pidfile") && [[ -n $pid ]] &&
  [[ $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null) == */master* ]]; then
  kill -TERM "$pid"
  # Children keep the master's process group after it has exited.
  group_alive() { ps -o stat= -g "$pid" 2>/dev/null | grep -qv '^Z'; }
  for _ in $(seq 100); do group_alive || break; sleep 0.1; done
  if group_alive; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  echo "postfix (master pid $pid) stopped" >&2
else
  echo "postfix not running" >&2
fi
if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$dir"; fi
