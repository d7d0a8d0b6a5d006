# The wrapper of every command: "$@" is the command. Its stderr carries only `times` (CPU of the waited
# children) for the harness; the command's stdout and stderr share the wrapper's stdout. When the command
# ends, every process of its launch (ISOBENCH_PROC) is killed, children that called setsid included.
. "${0%/*}/lib.sh"
"$@" 2>&1 </dev/null
rc=$?
times >&2
isobench_reap; isobench_reap
exit $rc
