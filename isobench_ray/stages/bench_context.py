"""What every round and correctness check of one attempt's benchmark uses, in one value: the slot, the task,
its `BenchCommand` (asked of the engine once), each arm's sandbox and tree, and where logs go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from isobench_ray.config import Settings
from isobench_ray.engines import Engine
from isobench_ray.engines.base import BenchCommand
from isobench_ray.engines.server import Server, launch
from isobench_ray.hardware import Gpus, cpu_telemetry, split_cores
from isobench_ray.sandbox.base import Sandbox, SandboxFactory, host_env, with_agent
from isobench_ray.schema import Arm, BenchSlot, Task
from isobench_ray.stages.guard import ArmGuard


class DirtySlot(RuntimeError):
    """Something still holds the slot's GPU: a transient failure (the attempt goes to another slot, and a
    fresh actor replaces this one)."""


@dataclass(frozen=True)
class BenchContext:
    slot: BenchSlot
    settings: Settings
    gpus: Gpus
    engine: Engine  # for its servers only (engines/server.py); the rounds ask `bench`
    task: Task
    bench: BenchCommand
    sandbox_of: dict[str, Sandbox]  # per arm, its own; the noise arm runs in the baseline's
    trees: dict[str, Path]  # per arm; the noise arm runs in the baseline's
    io: dict[str, Path]  # per arm, beside its tree and writable by it alone: its results, probes' files
    base: Path  # the stage's scratch folder (the harness's logs); no arm's sandbox sees it whole
    logs: dict[str, str]  # what the attempt's record keeps, by key
    guard: ArmGuard  # what no arm may change in another's (stages/guard.py)

    @property
    def log_dir(self) -> Path:
        return self.base / "logs"

    def results(self, arm: str) -> Path:
        """Where the arm's benchmark script writes its JSON result: outside every tree, read by the harness."""
        return self.io[arm] / "results"

    def after(self, arm: Arm, leftovers: tuple[str, ...] = ()) -> None:
        """Once an arm's step is over: whatever it left running killed, and tampering (stages/guard.py) raised."""
        killed = self.sandbox_of[arm].reap_idle()
        self.guard.check(arm, [*leftovers, *killed])

    def cores(self, serving: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(server cores, client cores): disjoint halves of the slot for a server and its client; an
        offline benchmark, which is the engine, gets the whole slot. () when pinning is off, or the slot has
        fewer than `pin_min_cores` (docs/measurement.md: on two shared vCPUs pinning measured noisier)."""
        if not self.settings.measurement.pin_cores or len(self.slot.cpus) < self.settings.measurement.pin_min_cores:
            return (), ()
        return split_cores(self.slot.cpus) if serving else ((), self.slot.cpus)

    def ensure_clean_gpus(self, arm: str) -> None:
        """Before an arm: the slot's GPUs run nothing and hold no more than at rest, or the slot is dirty."""
        check = self.gpus.wait_clean(self.settings.slots.gpu_rest_mb, reap=self.sandbox_of[arm].cleanup)
        if not check.clean:
            raise DirtySlot(f"slot {self.slot.name} is not clean before an arm: {check.detail}")

    def launch(self, arm: str, log_name: str, cpus: tuple[int, ...]) -> Server:
        """The arm's server, started in its tree and waited for (`failure` says why it never answered)."""
        return launch(self.sandbox_of[arm], self.engine, self.task, self.trees[arm], self.settings.sandbox.host,
                      self.log_dir / log_name, self.settings.limits.server_start_timeout_s, cpus=cpus)

    def telemetry(self) -> dict:
        return {**cpu_telemetry(), **self.gpus.telemetry()}


def arm_sandbox(sandboxes: SandboxFactory, settings: Settings, task: Task, tag: str, writable: list[Path], *,
                env: dict[str, str], image: str | None, slot_env: dict[str, str] | None = None) -> Sandbox:
    """The sandbox one arm's code runs in (validation's, or one benchmark arm's): contained where the run's kind
    can (`isolate_arms`: bubblewrap, or a container), with the model caches the run names and the user's lm-eval
    task folder readable and their variables passed, network out (a model download) but never to the host."""
    isolate = settings.sandbox.kind != "none" and settings.sandbox.isolate_arms and sandboxes.can_isolate
    passed = host_env(settings.sandbox.env_passthrough) if isolate else {}
    readable = [p for p in (task.model, *passed.values(), settings.lm_eval.include_path)
                if p and Path(p).is_absolute() and Path(p).is_dir()]
    made = with_agent(sandboxes, programs=readable) if isolate else sandboxes
    return made(tag, writable=writable, network=True, isolate=isolate, slot_env=slot_env, env={**passed, **env}, image=image)
