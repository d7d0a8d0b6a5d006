# Signal every process carrying a launch's marker: $1 signal, $2 marker, $3 `leader` to signal only the
# command itself (the wrapper's child; the wrapper is the marked process whose parent is not marked).
# Prints the pids.
. "${0%/*}/lib.sh"
parent() { cut -d')' -f2- < "/proc/$1/stat" 2>/dev/null | cut -d' ' -f3; }
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  isobench_marked "$p" "$2" || continue
  if [ "${3:-}" = leader ]; then
    w=$(parent "$p"); isobench_marked "$w" "$2" || continue
    isobench_marked "$(parent "$w")" "$2" && continue
  fi
  kill -"$1" "$p" 2>/dev/null && echo "$p"
done
