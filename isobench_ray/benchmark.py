"""Stage 3, the 3-way benchmark on one benchmark slot: baseline, human and agent, in interleaved rounds.

Every arm runs the same workload: the benchmark script is taken from the baseline tree (an agent that
edits the benchmark cannot change what is measured), with the same command, model, server flags and slot.
A second baseline arm (baseline2, same tree) measures the task's own noise in the same rounds.
Rounds rotate the arm order (B H A B2, H A B2 B, ...) so that drift in the machine hits every arm alike.
Each (arm, round) starts the server (serving tasks), runs `warmup_runs` discarded and `runs_per_round`
measured benchmark runs, then stops the server and its whole process group. Rounds go on from
`rounds` to `max_rounds` until both speedup intervals are narrower than `ci_target_pct`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from isobench_ray import commands
from isobench_ray.models import ArmResult, Attempt, FailureCause, Measurements, Run, Task
from isobench_ray.parsing import NoMetricsError, parse_metrics
from isobench_ray.sandbox import LocalSandbox, reap_tagged, tail
from isobench_ray.scoring import default_primary_metric, higher_is_better
from isobench_ray.stats import speedup_interval
from isobench_ray.servers import start_server, wait_healthy
from isobench_ray.settings import Settings
from isobench_ray.stages import BenchSlot
from isobench_ray.workspace import apply_patch, detached_tree, mirror, scratch

ARMS = ("baseline", "human", "agent")
NOISE_ARM = "baseline2"
LOG_LIMIT = 200_000


def arm_order(round_index: int, arms: tuple[str, ...] = ARMS) -> list[str]:
    k = round_index % len(arms)
    return list(arms[k:] + arms[:k])


def interval_half_widths(arms: dict[str, list[float]], higher_is_better: bool, confidence: float) -> float:
    """The wider of the agent-vs-baseline and agent-vs-human intervals, in percent (inf if unknown)."""
    widths = []
    for ref in ("baseline", "human"):
        iv = speedup_interval(arms["agent"], arms[ref], higher_is_better, confidence=confidence)
        widths.append(iv.half_width_pct if iv else float("inf"))
    return max(widths)


def _num_prompts(command: str) -> int | None:
    match = re.search(r"--num-prompts?[ =](\d+)", command)
    return int(match.group(1)) if match else None


def _script_path(command: str) -> str | None:
    _, argv = commands.split_env(shlex.split(command))
    _, script = commands.script_kind(argv)
    return script if script.endswith(".py") else None


@dataclass
class _ArmState:
    result_runs: list[Run] = field(default_factory=list)
    failure: tuple[FailureCause, str] | None = None
    server_command: str | None = None


class ThreeWayBenchmark:
    def __init__(self, slot: BenchSlot, settings: Settings):
        self.slot, self.settings = slot, settings

    def _prepare(self, attempt: Attempt, task: Task, patch: str, base: Path) -> dict[str, Path]:
        mirror_path = mirror(task.repo.url, self.settings.cache_path, (task.parent_commit, task.human_commit))
        trees = {
            "baseline": detached_tree(mirror_path, task.parent_commit, base / "baseline"),
            "human": detached_tree(mirror_path, task.human_commit, base / "human"),
            "agent": detached_tree(mirror_path, task.parent_commit, base / "agent"),
        }
        apply_patch(trees["agent"], patch)
        script = _script_path(task.benchmark.command)
        if script and (trees["baseline"] / script).is_file():
            for arm in ("human", "agent"):
                (trees[arm] / script).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(trees["baseline"] / script, trees[arm] / script)
        return trees

    def _round(self, sandbox: LocalSandbox, task: Task, arm: str, tree: Path, rnd: int, state: _ArmState,
               logs: dict[str, str], log_dir: Path) -> None:
        settings, bench = self.settings, task.benchmark
        proc, command = None, bench.command
        try:
            if bench.kind == "serving":
                proc, state.server_command, port = start_server(sandbox, task, tree, settings.host, log_dir / f"{arm}.r{rnd}.server.log")
                cause, detail = wait_healthy(proc, f"http://{settings.host}:{port}{task.repo.health_path}", settings.server_start_timeout_s)
                if cause:
                    state.failure = (cause, detail)
                    return
                command = f"{bench.command} --host {settings.host} --port {port}"
            for i in range(settings.warmup_runs + settings.runs_per_round):
                warm = i < settings.warmup_runs
                res = sandbox.exec(command, cwd=tree, timeout_s=bench.timeout_s, log_path=log_dir / f"{arm}.r{rnd}.{i}.log")
                logs[f"bench/{arm}.r{rnd}.{i}.log"] = res.output[-LOG_LIMIT:]
                run = Run(arm=arm, round=rnd, warmup=warm, duration_s=res.duration_s)
                if proc is not None and proc.poll() is not None:
                    state.failure = (FailureCause.server_crash, f"server exited with {proc.poll()} during the benchmark:\n{tail(proc.output(), 15)}")
                elif res.timed_out:
                    state.failure = (FailureCause.bench_timeout, f"benchmark ran past {bench.timeout_s:.0f}s:\n{res.tail()}")
                else:
                    try:
                        metrics = parse_metrics(res.output, kind=None, num_prompts=_num_prompts(command))
                        if metrics.get("partial"):
                            state.failure = (FailureCause.partial_metrics, f"{metrics.get('failed')} requests failed")
                        run = run.model_copy(update={"metrics": metrics})
                    except NoMetricsError as exc:
                        cause = FailureCause.bench_error if res.returncode else FailureCause.no_metrics
                        state.failure = (cause, f"exit {res.returncode}: {exc}\n{res.tail()}")
                if state.failure:
                    run = run.model_copy(update={"failure_cause": state.failure[0], "detail": state.failure[1]})
                state.result_runs.append(run)
                if state.failure:
                    return
        finally:
            if proc is not None:
                proc.stop()
                logs[f"bench/{arm}.r{rnd}.server.log"] = proc.output()[-LOG_LIMIT:]

    def _stop_reason(self, task: Task, states: dict[str, "_ArmState"], rounds: int) -> str:
        settings = self.settings
        failed = [arm for arm, st in states.items() if st.failure]
        if failed:
            return f"{', '.join(failed)} failed"
        if rounds < settings.rounds:
            return ""
        metric = task.benchmark.primary_metric or next(
            (default_primary_metric(task.benchmark.kind, r.metrics) for st in states.values() for r in st.result_runs if r.metrics), None)
        if metric is None:
            return "no metric"
        samples = {arm: [float(r.metrics[metric]) for r in st.result_runs if not r.warmup and metric in r.metrics]
                   for arm, st in states.items()}
        width = interval_half_widths(samples, higher_is_better(metric), settings.confidence)
        if width <= settings.ci_target_pct:
            return f"interval half-width {width:.2f}% <= {settings.ci_target_pct}% after {rounds} rounds"
        if rounds >= settings.max_rounds:
            return f"max rounds ({rounds}); interval half-width still {width:.2f}%"
        return ""

    def run(self, attempt: Attempt, task: Task, patch: str) -> tuple[Measurements, dict[str, str]]:
        started = time.monotonic()
        logs: dict[str, str] = {}
        tag = f"{attempt.id}.bench"
        with scratch(self.settings.work_path, attempt.id, "bench") as base:
            log_dir = base / "logs"
            log_dir.mkdir()
            try:
                trees = self._prepare(attempt, task, patch, base)
                sandbox = LocalSandbox(tag, extra_env=self.slot.env)
                if task.repo.setup_command:
                    for arm, tree in trees.items():
                        res = sandbox.exec(task.repo.setup_command, cwd=tree, timeout_s=3600, log_path=log_dir / f"{arm}.setup.log")
                        if not res.ok:
                            raise RuntimeError(f"setup of the {arm} tree failed: {res.tail()}")
                arm_names = ARMS + ((NOISE_ARM,) if self.settings.noise_arm else ())
                trees[NOISE_ARM] = trees["baseline"]
                states = {arm: _ArmState() for arm in arm_names}
                order, stop_reason = [], ""
                while not stop_reason:
                    rnd = len(order)
                    order.append(arm_order(rnd, arm_names))
                    for arm in order[-1]:
                        if states[arm].failure is None:  # a failed arm is deterministic: not run again
                            self._round(sandbox, task, arm, trees[arm], rnd, states[arm], logs, log_dir)
                    stop_reason = self._stop_reason(task, states, len(order))
                arms = []
                for arm in arm_names:
                    st = states[arm]
                    arms.append(ArmResult(
                        arm=arm, commit=task.human_commit if arm == "human" else task.parent_commit,
                        command=task.benchmark.command, server_command=st.server_command, runs=st.result_runs,
                        failure_cause=st.failure[0] if st.failure else None, detail=st.failure[1] if st.failure else ""))
                metric = task.benchmark.primary_metric or _first_primary(task, arms) or "unknown"
                return Measurements(attempt_id=attempt.id, slot=self.slot.name, primary_metric=metric, arms=arms,
                                    order=order, stop_reason=stop_reason, duration_s=time.monotonic() - started), logs
            finally:
                reap_tagged(tag)  # whatever outlived its server's process group


def _first_primary(task: Task, arms: list[ArmResult]) -> str | None:
    for arm in arms:
        for run in arm.runs:
            if run.metrics:
                return default_primary_metric(task.benchmark.kind, run.metrics)
    return None

