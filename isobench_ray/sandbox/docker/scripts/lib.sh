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

# isobench_ppid PID: its parent's pid (0: started by the engine's exec, as every launch and helper is)
isobench_ppid() { cut -d')' -f2- < "/proc/$1/stat" 2>/dev/null | cut -d' ' -f3; }

# isobench_name PID: "PID command line" (200 characters at most)
isobench_name() { printf '%s %s\n' "$1" "$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | cut -c1-200)"; }

# isobench_live PID: a process that is not a zombie, by its state (a process in the middle of an exec can show
# an empty command line for a moment, and must not be missed for that)
isobench_live() { s=$(cut -d')' -f2- < "/proc/$1/stat" 2>/dev/null | cut -d' ' -f2); [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]; }
