# CPU ticks (user + system) of a launch's live processes: $1 marker.
. "${0%/*}/lib.sh"
total=0
for d in /proc/[0-9]*; do
  isobench_marked "${d#/proc/}" "$1" || continue
  rest=$(cut -d')' -f2- < "$d/stat" 2>/dev/null) || continue
  set -- "$1" $rest
  total=$((total + ${13:-0} + ${14:-0}))
done
echo "$total"
