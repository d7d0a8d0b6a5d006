# The wrapper of every command: "$@" is the command. Its stderr carries only `times` (CPU of the waited
# children) for the harness; the command's stdout and stderr share the wrapper's stdout. When the command
# ends, every process of its launch (ISOBENCH_PROC) is killed, children that called setsid included; with
# ISOBENCH_LINGER (seconds), those still running that long after it are first named on stderr, one
# "isobench-leftover PID COMMAND" line each: what the command left behind.
. "${0%/*}/lib.sh"
"$@" 2>&1 </dev/null
rc=$?
times >&2
if [ -n "${ISOBENCH_LINGER:-}" ]; then
  end=$(( $(date +%s) + ${ISOBENCH_LINGER%.*} ))
  while :; do
    left=""
    for d in /proc/[0-9]*; do
      p=${d#/proc/}
      [ "$p" = "$$" ] && continue
      isobench_marked "$p" "$ISOBENCH_PROC" && isobench_live "$p" && left="$left $p"
    done
    [ -z "$left" ] || [ "$(date +%s)" -ge "$end" ] && break
    sleep 0.2
  done
  for p in $left; do printf 'isobench-leftover %s\n' "$(isobench_name "$p")" >&2; done
fi
isobench_reap; isobench_reap
exit $rc
