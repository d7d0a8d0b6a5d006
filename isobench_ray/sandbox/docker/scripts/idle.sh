# Between two arms, when none of the container's commands should be running: SIGKILL every process but the
# container's own (its init, PID 1; the deadline loop, the oldest child of PID 1, and that loop's children)
# and this helper's (itself and the `timeout` that runs it), marker or no marker: a command that cleared
# its environment to leave its launch goes too. Prints "PID COMMAND" for each.
. "${0%/*}/lib.sh"
loop=""
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$(isobench_ppid "$p")" = 1 ] || continue
  if [ -z "$loop" ] || [ "$p" -lt "$loop" ]; then loop=$p; fi
done
me=$$; helper=$(isobench_ppid $$)
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  case "$p" in 1|"$me"|"$helper"|"$loop") continue ;; esac
  [ "$(isobench_ppid "$p")" = "$loop" ] && continue
  isobench_live "$p" || continue
  name=$(isobench_name "$p")
  kill -KILL "$p" 2>/dev/null && echo "$name"
done
