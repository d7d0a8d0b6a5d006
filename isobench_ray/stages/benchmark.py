"""Stage 3, the 3-way benchmark on one benchmark slot: baseline, human and agent, in interleaved rounds.

Every arm runs the same workload: the benchmark script is taken from the baseline tree (an agent that
edits the benchmark cannot change what is measured), with the same command, model, server flags and slot.
A second baseline arm (baseline2, same tree) measures the task's own noise in the same rounds.
This module prepares the arms (environments, trees, the patch, setup) and asks the engine, once, for the
task's `BenchCommand`; stages/rounds.py runs the rounds (from `rounds` to `max_rounds`, until the strict verdict
is decided, cannot be, or the attempt's slot budget is spent); then stages/correctness.py has each arm's server answer fixed
prompts greedily (and lm-eval where configured), on the same slot.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path

from isobench_ray.config import Settings
from isobench_ray.engines import engine_named
from isobench_ray.engines.scripts import ScriptBench, tree_files
from isobench_ray.environments import prepare
from isobench_ray.hardware import Gpus
from isobench_ray.sandbox.base import ImageMissing, Sandbox, SandboxFactory
from isobench_ray.schema import ARMS, NOISE_ARM, Arm, Attempt, BenchSlot, FailureCause, Measurements, StageError, Task
from isobench_ray.stages.bench_context import BenchContext, DirtySlot, arm_sandbox
from isobench_ray.stages.correctness import check_arms, check_equivalence
from isobench_ray.stages.guard import ArmGuard
from isobench_ray.stages.rounds import arm_results, run_rounds
from isobench_ray.workspace import PatchApplyError, TreeEscape, apply_patch, detached_tree, links_on_path, mirror, scratch, write_in_tree

__all__ = ["DirtySlot", "ThreeWayBenchmark"]  # DirtySlot: where the cluster layer and the simulated stages find it


class ThreeWayBenchmark:
    def __init__(self, slot: BenchSlot, settings: Settings, *, sandboxes: SandboxFactory):
        self.slot, self.settings, self.sandboxes = slot, settings, sandboxes
        self.gpus = Gpus(slot.gpu_ids)

    def _arm_sandboxes(self, task: Task, tag: str, folders: dict[Arm, list[Path]], held: ExitStack) -> dict[Arm, Sandbox]:
        """Each arm's own sandbox, in its engine environment at its commit (repo.python, repo.image, repo.wheel),
        with only its own folders writable (`folders`: its tree and its io) and the others' out of sight; the
        noise arm shares the baseline's. Per-commit wheel environments stay held until `held` closes."""
        by_arm: dict[Arm, Sandbox] = {}
        try:
            for arm in ARMS:
                env, image = prepare(task, task.arm_commit(arm), self.settings, self.sandboxes, held)
                by_arm[arm] = arm_sandbox(self.sandboxes, self.settings, task, f"{tag}.{arm}", folders[arm], env=env,
                                          image=image, slot_env=self.slot.env)
        except BaseException as exc:
            for sandbox in by_arm.values():
                sandbox.cleanup()
            if isinstance(exc, ImageMissing):
                raise StageError(FailureCause.image_missing, str(exc)) from None
            raise
        by_arm[NOISE_ARM] = by_arm["baseline"]
        return by_arm

    def _trees(self, task: Task, base: Path) -> tuple[dict[Arm, Path], dict[Arm, Path]]:
        """(the arms' trees: the parent, the human commit, the parent again for the patch; each arm's io folder),
        made before the sandboxes that mount them."""
        mirror_path = mirror(task.repo.url, self.settings.paths.cache, (task.parent_commit, task.human_commit))
        commits = {"baseline": task.parent_commit, "human": task.human_commit, "agent": task.parent_commit}
        trees: dict[Arm, Path] = {arm: detached_tree(mirror_path, commit, base / arm) for arm, commit in commits.items()}
        io: dict[Arm, Path] = {arm: base / "io" / arm for arm in ARMS}
        for folder in io.values():
            (folder / "results").mkdir(parents=True)
        return trees | {NOISE_ARM: trees["baseline"]}, io | {NOISE_ARM: io["baseline"]}

    def _set_up(self, sandbox_of: dict[Arm, Sandbox], script: str | None, task: Task, patch: str,
                trees: dict[Arm, Path], io: dict[Arm, Path], base: Path) -> None:
        """The patch applied in the agent's tree, the baseline's benchmark script copied over the others', and
        each tree set up where the task says, each in its own arm's sandbox."""
        try:
            apply_patch(sandbox_of["agent"], trees["agent"], patch, io["agent"] / "agent.diff")
        except PatchApplyError as exc:  # validation applied it: something changed between the two
            raise StageError(FailureCause.patch_does_not_apply, f"the validated patch no longer applies: {exc}") from None
        # the same benchmark code for every arm: the baseline's script, or the module a `python -m` or
        # `vllm bench` form runs, copied over the human's and the agent's (a patch cannot change what measures it)
        if script and (trees["baseline"] / script).is_file():
            _copy_script(trees, script)
        if task.repo.setup_command:
            for arm in ARMS:
                res = sandbox_of[arm].exec(task.repo.setup_command, cwd=trees[arm], timeout_s=self.settings.limits.setup_timeout_s,
                                           log_path=base / "logs" / f"{arm}.setup.log")
                if not res.ok:
                    raise StageError(FailureCause.setup_failed, f"setup of the {arm} tree failed: {res.tail()}")

    def _context(self, task: Task, patch: str, base: Path, tag: str, held: ExitStack,
                 logs: dict[str, str]) -> BenchContext:
        """The arms prepared in their sandboxes, and the task's BenchCommand: the engine asked twice (which file
        defines the command line; then, with the baseline's copy of it, everything the rounds need)."""
        engine = engine_named(task.repo.engine_name)
        script = engine.script_file(task.benchmark.command)
        trees, io = self._trees(task, base)
        sandbox_of = self._arm_sandboxes(task, tag, {arm: [trees[arm], io[arm]] for arm in ARMS}, held)
        logs["bench/sandboxes.txt"] = "".join(f"{arm}: {sandbox_of[arm].kind}\n" for arm in ARMS)
        try:
            self._set_up(sandbox_of, script, task, patch, trees, io, base)
            guarded = (script,) if script else ()
            if task.benchmark.kind == "script":  # its tests and their runner, the same files in every tree
                bench, files = ScriptBench(task.benchmark.scripts), tree_files(task.benchmark.scripts)
                for arm in ARMS:
                    for rel, data in files.items():
                        write_in_tree(trees[arm], rel, data)
                guarded = tuple(files)
            else:
                script_source = None  # the baseline's script decides whether the JSON flags exist, for every arm
                if script and (trees["baseline"] / script).is_file():
                    script_source = (trees["baseline"] / script).read_text(errors="replace")
                bench = engine.bench_command(task.benchmark, script_source)
            if bench.text_reason:
                logs["bench/metrics_source.txt"] = f"numbers from the output text: {bench.text_reason}\n"
            return BenchContext(slot=self.slot, settings=self.settings, gpus=self.gpus, engine=engine, task=task,
                                bench=bench, sandbox_of=sandbox_of, trees=trees, io=io, base=base, logs=logs,
                                guard=ArmGuard.snapshot(trees, guarded))
        except BaseException:
            _clean_up(sandbox_of)
            raise

    def run(self, attempt: Attempt, task: Task, patch: str) -> tuple[Measurements, dict[str, str]]:
        started = time.monotonic()
        measurements, logs = self._run(attempt, task, patch, started)
        # the slot was held until here: sandboxes cleaned up, scratch trees removed, environments released
        return measurements.model_copy(update={"slot_s": time.monotonic() - started}), logs

    def _run(self, attempt: Attempt, task: Task, patch: str, started: float) -> tuple[Measurements, dict[str, str]]:
        logs: dict[str, str] = {}
        with scratch(self.settings.paths.work, attempt.id, "bench") as base, ExitStack() as held:
            (base / "logs").mkdir()
            ctx = self._context(task, patch, base, f"{attempt.id}.bench", held, logs)
            try:
                prepare_s = time.monotonic() - started
                states, order, stop_reason = run_rounds(ctx, ARMS + ((NOISE_ARM,) if self.settings.measurement.noise_arm else ()))
                checks: dict[Arm, dict] = {}
                if self.settings.correctness.enabled and not any(states[arm].failure for arm in ARMS):
                    checks = _correctness(ctx)
                arms = arm_results(ctx, states, checks)
                metric = ctx.bench.primary(r for a in arms for r in a.runs) or "unknown"
                return Measurements(attempt_id=attempt.id, slot=self.slot.name, primary_metric=metric,
                                    higher_is_better=ctx.bench.knows_metric(metric) and ctx.bench.higher_is_better(metric),
                                    arms=arms, order=order, stop_reason=stop_reason, duration_s=time.monotonic() - started,
                                    prepare_s=prepare_s, server_s=sum(st.server_s for st in states.values())), logs
            finally:
                _clean_up(ctx.sandbox_of)  # whatever outlived its server's process group


# a benchmark without a server (an offline script, and no server command for the engine or the repository)
NO_SERVER = "not checked: the task has no server to ask for greedy completions (no repo.server_command)"


def _correctness(ctx: BenchContext) -> dict[Arm, dict]:
    """The arms' outputs compared: a script task's own equivalence check, else the servers' greedy completions."""
    if ctx.task.benchmark.kind == "script":
        return check_equivalence(ctx)
    if ctx.task.repo.server_command or ctx.engine.server_template:
        return check_arms(ctx)
    return {arm: {"greedy_detail": NO_SERVER} for arm in ARMS}


def _clean_up(sandbox_of: dict[Arm, Sandbox]) -> None:
    for sandbox in {id(s): s for s in sandbox_of.values()}.values():
        sandbox.cleanup()


def _copy_script(trees: dict[Arm, Path], script: str) -> None:
    """The baseline's benchmark script written over the human's and the agent's, never through a symbolic link:
    a link on the script's path that the agent's tree has and the baseline's has not is tampering (validation
    refuses it first); a link at the script itself is replaced, a folder linked out of a tree refused."""
    source = trees["baseline"] / script
    planted = [p for p in links_on_path(trees["agent"], script)
               if not ((trees["baseline"] / p).is_symlink()
                       and os.readlink(trees["baseline"] / p) == os.readlink(trees["agent"] / p))]
    if planted:
        raise StageError(FailureCause.tampering, "the agent's tree makes the benchmark script's path a symbolic link: "
                         + ", ".join(f"{p} -> {os.readlink(trees['agent'] / p)}" for p in planted))
    data, mode = source.read_bytes(), source.stat().st_mode & 0o777
    for arm in ("human", "agent"):
        try:
            write_in_tree(trees[arm], script, data, mode)
        except TreeEscape as exc:
            cause = FailureCause.tampering if arm == "agent" else FailureCause.baseline_failed
            raise StageError(cause, f"the benchmark script cannot be copied into the {arm} tree: {exc}") from None
