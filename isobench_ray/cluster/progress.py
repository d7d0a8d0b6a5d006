"""What a person watching the run sees: a tqdm bar per stage in the job's log, a one-line summary every minute
(readable where the bars' carriage returns are not: a Ray job's log in the dashboard, a file), and
status.json (read by `isobench status`), written at most once a second."""

from __future__ import annotations

import collections
import sys
import time
from typing import Callable

from tqdm import tqdm

STAGES = (("session", "agent sessions"), ("validation", "validation"), ("measurements", "3-way benchmarks"))
SUMMARY_EVERY_S = 60.0


def summary_line(counts: collections.Counter, total: int, running: collections.Counter, queued: int,
                 elapsed_s: float, done_before: int) -> str:
    """One line of where the run is: done of total by status, running per stage, the queue, the rate since the
    driver started and the time left at that rate."""
    finished_now = counts["done"] - done_before
    rate = finished_now / elapsed_s * 60 if elapsed_s > 0 else 0.0
    left = total - counts["done"]
    eta = f"{left / rate / 60:.1f} h left at that rate" if rate > 0 and left else "no rate yet" if left else "all done"
    return (f"[isobench {time.strftime('%H:%M:%S')}] {counts['done']}/{total} attempts done (ok {counts['success']}, "
            f"failed {counts['failed']}, error {counts['error']}); running: session {running['session']}, validation "
            f"{running['validation']}, benchmark {running['measurements']}; queued for a slot {queued}; "
            f"{rate:.1f} attempts/min, {eta}")


class Progress:
    def __init__(self, total: int, done: int, pending: collections.Counter, write_status: Callable[[dict], None],
                 show: bool = True):
        self.total, self.write_status = total, write_status
        needs = {"session": pending["session"], "validation": pending["session"] + pending["validation"],
                 "measurements": pending["session"] + pending["validation"] + pending["measurements"]}
        self.bars = {stage: tqdm(total=needs[stage], desc=f"{label:>15}", position=i, unit="attempt", leave=True,
                                 disable=not show, dynamic_ncols=True)
                     for i, (stage, label) in enumerate(STAGES)}
        self.bar = tqdm(total=total, initial=done, desc=f"{'attempts':>15}", position=len(STAGES), unit="attempt",
                        disable=not show, dynamic_ncols=True)
        self.counts: collections.Counter = collections.Counter(done=done)
        self.stage_failed: collections.Counter = collections.Counter()
        self._written = 0.0
        self._started = self._said = time.monotonic()
        self._done_before, self._show = done, show

    def stage_done(self, stage: str, failed: bool) -> None:
        self.bars[stage].update(1)
        self.stage_failed[stage] += failed

    def attempt_done(self, status: str, last_stage: str | None) -> None:
        # an attempt that ended early will not need the later stages' bars
        names = [s for s, _ in STAGES]
        reached = (names.index(last_stage) if last_stage in ("session", "validation")
                   else -1 if last_stage == "plan" else len(names) - 1)  # plan: ended before any stage
        for later in names[reached + 1:]:
            bar = self.bars[later]
            bar.total = max(bar.n, bar.total - 1)
            bar.refresh()
        self.counts["done"] += 1
        self.counts[status] += 1
        self.bar.update(1)

    def show(self, running: collections.Counter, queued_for_benchmark: int) -> None:
        for stage, bar in self.bars.items():
            bar.set_postfix(running=running[stage], failed=self.stage_failed[stage],
                            **({"queued": queued_for_benchmark} if stage == "measurements" else {}), refresh=False)
        self.bar.set_postfix(ok=self.counts["success"], failed=self.counts["failed"], error=self.counts["error"], refresh=False)
        now = time.monotonic()
        if self._show and now - self._said >= SUMMARY_EVERY_S:
            self._said = now
            tqdm.write(summary_line(self.counts, self.total, running, queued_for_benchmark, now - self._started,
                                    self._done_before), file=sys.stderr)
        if now - self._written < 1.0 and self.counts["done"] < self.total:
            return  # nobody needs it faster
        self._written = time.monotonic()
        self.write_status({"total": self.total, **self.counts, "running": dict(running),
                           "queued_for_benchmark": queued_for_benchmark, "updated": time.time()})

    def close(self) -> None:
        for bar in [*self.bars.values(), self.bar]:
            bar.close()
