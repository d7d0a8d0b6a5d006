# Sourced by the other helpers (`. "${0%/*}/lib.sh"`): what every one of them tests and does.
# isobench_marked PID MARKER: the process carries that launch's marker in its environment.
isobench_marked() { tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | grep -qxF "ISOBENCH_PROC=$2"; }

# isobench_reap: SIGKILL every process carrying this launch's marker ($ISOBENCH_PROC), this shell aside.
isobench_reap() {
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    isobench_marked "$p" "$ISOBENCH_PROC" && kill -KILL "$p" 2>/dev/null
  done
}
