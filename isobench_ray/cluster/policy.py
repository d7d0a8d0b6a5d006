"""What the driver does with a stage that raised: the typed failure policy.

- `StageError` (isobench_ray.schema): a deterministic failure of the task or the machine (setup failed,
  commit or repository missing, no sandbox): recorded once as `error` with its cause, not retried, and
  not run again on resume unless --retry-failed.
- Anything else (a dead node or actor, a worker killed for memory, a full disk, an exception we did not
  foresee) may pass: retried with exponential backoff, then recorded as `infra_error`, which a rerun
  always redoes.
"""

from __future__ import annotations

import heapq
import time
import traceback
from dataclasses import dataclass, field

from ray.exceptions import RayTaskError

from isobench_ray.schema import StageError

MAX_TRIES = 3  # per attempt and stage


def stage_error(exc: BaseException) -> StageError | None:
    """The StageError a stage raised, through Ray's wrapping; None for a transient failure."""
    original = exc.cause if isinstance(exc, RayTaskError) else exc
    return original if isinstance(original, StageError) else None


def describe(exc: BaseException) -> str:
    """The reason first, then the traceback (people read the first line)."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500] + "\n\n" + "".join(traceback.format_exception(exc))


@dataclass
class RetryPolicy:
    max_tries: int = MAX_TRIES
    max_backoff_s: float = 10.0
    tries: dict[tuple[str, str], int] = field(default_factory=dict)
    delayed: list[tuple[float, str, str]] = field(default_factory=list)  # a heap of (due, attempt, stage)

    def failed(self, aid: str, stage: str) -> bool:
        """Count a transient failure; True when it is delayed for another try, False when tries are spent."""
        n = self.tries[(aid, stage)] = self.tries.get((aid, stage), 0) + 1
        if n >= self.max_tries:
            return False
        # back off without stalling the driver loop: other results keep flowing meanwhile
        heapq.heappush(self.delayed, (time.monotonic() + min(2 ** n, self.max_backoff_s), aid, stage))
        return True

    def due(self) -> list[tuple[str, str]]:
        now, ready = time.monotonic(), []
        while self.delayed and self.delayed[0][0] <= now:
            _, aid, stage = heapq.heappop(self.delayed)
            ready.append((aid, stage))
        return ready
