"""What a person watching the run sees: a tqdm bar per stage in the job's log, and status.json (read by
`isobench status`), written at most once a second."""

from __future__ import annotations

import collections
import time
from typing import Callable

from tqdm import tqdm

STAGES = (("session", "agent sessions"), ("validation", "validation"), ("measurements", "3-way benchmarks"))


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
        if time.monotonic() - self._written < 1.0 and self.counts["done"] < self.total:
            return  # nobody needs it faster
        self._written = time.monotonic()
        self.write_status({"total": self.total, **self.counts, "running": dict(running),
                           "queued_for_benchmark": queued_for_benchmark, "updated": time.time()})

    def close(self) -> None:
        for bar in [*self.bars.values(), self.bar]:
            bar.close()
