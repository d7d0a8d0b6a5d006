"""Stage 3, the 3-way benchmark on one benchmark slot: baseline, human and agent, in interleaved rounds.

Every arm runs the same workload: the benchmark script is taken from the baseline tree (an agent that
edits the benchmark cannot change what is measured), with the same command, model, server flags and slot.
A second baseline arm (baseline2, same tree) measures the task's own noise in the same rounds.
Rounds rotate the arm order (B H A B2, H A B2 B, ...) so that drift in the machine hits every arm alike.
Each (arm, round) starts the server (serving tasks), runs `warmup_runs` discarded and `runs_per_round`
measured benchmark runs, then stops the server and its whole process group. Rounds go on from
`rounds` to `max_rounds` until both speedup intervals are narrower than `ci_target_pct`. Then, on the
same slot, each arm's server answers fixed prompts greedily (and lm-eval where configured): the outputs
that scoring/correctness.py compares.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from isobench_ray.config import Settings
from isobench_ray.engines import Engine, engine_named
from isobench_ray.engines.base import BadMetrics
from isobench_ray.engines import greedy_client
from isobench_ray.engines.parsing import NoMetricsError
from isobench_ray.engines.server import launch
from isobench_ray.environments import prepare
from isobench_ray.hardware import Gpus, busy_seconds, cpu_telemetry, outside_share, split_cores
from isobench_ray.sandbox.base import ImageMissing, Sandbox, SandboxFactory, tail
from isobench_ray.schema import ArmResult, Attempt, BenchSlot, FailureCause, Measurements, Run, StageError, Task
from isobench_ray.scoring.stats import speedup_interval
from isobench_ray.workspace import PatchApplyError, apply_patch, detached_tree, mirror, scratch

ARMS = ("baseline", "human", "agent")


class DirtySlot(RuntimeError):
    """Something still holds the slot's GPU: a transient failure (the attempt goes to another slot, and a
    fresh actor replaces this one)."""
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


@dataclass
class _ArmState:
    result_runs: list[Run] = field(default_factory=list)
    failure: tuple[FailureCause, str] | None = None
    server_command: str | None = None
    server_s: float = 0.0  # starting and stopping its servers
    server_cpus: tuple[int, ...] = ()
    client_cpus: tuple[int, ...] = ()


class ThreeWayBenchmark:
    def __init__(self, slot: BenchSlot, settings: Settings, *, sandboxes: SandboxFactory):
        self.slot, self.settings, self.sandboxes = slot, settings, sandboxes
        self.gpus = Gpus(slot.gpu_ids)

    def _arm_sandboxes(self, task: Task, tag: str, base: Path, held: ExitStack) -> dict[str, Sandbox]:
        """Each arm's sandbox, in its engine environment at its commit (repo.python, repo.image, repo.wheel):
        one per distinct environment, so arms that share one share a sandbox (one container, for the docker
        sandbox). Per-commit wheel environments stay held (not evictable) until `held` closes."""
        made: dict[tuple, Sandbox] = {}
        by_arm: dict[str, Sandbox] = {}
        try:
            for arm in ARMS:
                env, image = prepare(task, task.arm_commit(arm), self.settings, self.sandboxes, held)
                key = (image, tuple(sorted(env.items())))
                if key not in made:
                    made[key] = self.sandboxes(tag, writable=[base], network=True, slot_env=self.slot.env, env=env,
                                               image=image)
                by_arm[arm] = made[key]
        except BaseException as exc:
            for sandbox in made.values():
                sandbox.cleanup()
            if isinstance(exc, ImageMissing):
                raise StageError(FailureCause.image_missing, str(exc)) from None
            raise
        by_arm[NOISE_ARM] = by_arm["baseline"]
        return by_arm

    def _prepare(self, sandbox: Sandbox, engine: Engine, task: Task, patch: str, base: Path) -> dict[str, Path]:
        mirror_path = mirror(task.repo.url, self.settings.cache_path, (task.parent_commit, task.human_commit))
        trees = {
            "baseline": detached_tree(mirror_path, task.parent_commit, base / "baseline"),
            "human": detached_tree(mirror_path, task.human_commit, base / "human"),
            "agent": detached_tree(mirror_path, task.parent_commit, base / "agent"),
        }
        try:
            apply_patch(sandbox, trees["agent"], patch, base / "agent.diff")
        except PatchApplyError as exc:  # validation applied it: something changed between the two
            raise StageError(FailureCause.patch_does_not_apply, f"the validated patch no longer applies: {exc}") from None
        # the same benchmark code for every arm: the baseline's script, or the module a `python -m` or
        # `vllm bench` form runs, copied over the human's and the agent's (a patch cannot change what measures it)
        script = engine.script_file(task.benchmark.command)
        if script and (trees["baseline"] / script).is_file():
            for arm in ("human", "agent"):
                (trees[arm] / script).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(trees["baseline"] / script, trees[arm] / script)
        return trees

    def _cores(self, serving: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(server cores, client cores): disjoint halves of the slot for a server and its client; an
        offline benchmark, which is the engine, gets the whole slot. () when pinning is off, or the slot has
        fewer than `pin_min_cores` (docs/measurement.md: on two shared vCPUs pinning measured noisier)."""
        if not self.settings.pin_cores or len(self.slot.cpus) < self.settings.pin_min_cores:
            return (), ()
        return split_cores(self.slot.cpus) if serving else ((), self.slot.cpus)

    def _ensure_clean_gpus(self, sandbox: Sandbox) -> None:
        """Before an arm: the slot's GPUs run nothing and hold no more than at rest, or the slot is dirty."""
        check = self.gpus.wait_clean(self.settings.gpu_rest_mb, reap=sandbox.cleanup)
        if not check.clean:
            raise DirtySlot(f"slot {self.slot.name} is not clean before an arm: {check.detail}")

    def _round(self, sandbox: Sandbox, engine: Engine, task: Task, arm: str, tree: Path, rnd: int, state: _ArmState,
               logs: dict[str, str], log_dir: Path, script_source: str | None = None) -> None:
        settings, bench = self.settings, task.benchmark
        server, proc, command, started_s = None, None, bench.command, None
        server_cpus, client_cpus = self._cores(bench.kind == "serving")
        state.server_cpus, state.client_cpus = server_cpus, client_cpus
        warmups = engine.warmup_runs if settings.warmup_runs is None else settings.warmup_runs
        self._ensure_clean_gpus(sandbox)
        try:
            if bench.kind == "serving":
                t0 = time.monotonic()
                server = launch(sandbox, engine, task, tree, settings.host, log_dir / f"{arm}.r{rnd}.server.log",
                                settings.server_start_timeout_s, cpus=server_cpus)
                proc, state.server_command = server.process, server.command
                started_s = time.monotonic() - t0
                state.server_s += started_s
                if server.failure:
                    state.failure = server.failure
                    return
                warm_flags = engine.client_warmup_flags(bench.command, script_source)
                command = f"{bench.command} --host {settings.host} --port {server.port} {shlex.join(warm_flags)}".rstrip()
            planned, remeasures, i = warmups + settings.runs_per_round, settings.runs_per_round, 0
            while i < planned:
                warm = i < warmups
                timeout_s = settings.bench_timeout_s or bench.timeout_s
                before = {**cpu_telemetry(), **self.gpus.telemetry()}
                busy, server_cpu = busy_seconds(self.slot.cpus), proc.cpu_seconds() if proc else 0.0
                # The result as the benchmark script wrote it, into a folder outside every tree that only the
                # harness reads: an engine that prints a fake result block to the output changes nothing there.
                result_file = log_dir.parent / "results" / f"{arm}.r{rnd}.{i}.json"
                json_flags, _ = engine.json_result_flags(command, str(result_file), script_source)
                ran = f"{command} {shlex.join(json_flags)}" if json_flags else command
                res = sandbox.exec(ran, cwd=tree, timeout_s=timeout_s, log_path=log_dir / f"{arm}.r{rnd}.{i}.log",
                                   cpus=client_cpus)
                own = res.cpu_s + ((proc.cpu_seconds() - server_cpu) if proc else 0.0)
                outside = outside_share(busy_seconds(self.slot.cpus) - busy, own, res.duration_s, self.slot.cpus)
                logs[f"bench/{arm}.r{rnd}.{i}.log"] = res.output[-LOG_LIMIT:]
                # a sample taken while something outside the slot used its cores is kept, flagged, and
                # measured again (once per measured run)
                disturbed = not warm and outside > settings.outside_load_max and remeasures > 0
                run = Run(arm=arm, round=rnd, warmup=warm, duration_s=res.duration_s, outside_load=round(outside, 4),
                          disturbed=disturbed, command=ran, server_command=server.command if server else "",
                          server_start_s=None if started_s is None else round(started_s, 3),
                          telemetry={"start": before, "end": {**cpu_telemetry(), **self.gpus.telemetry()}})
                if disturbed:
                    planned, remeasures = planned + 1, remeasures - 1
                if proc is not None and proc.poll() is not None:
                    state.failure = (FailureCause.server_crash, f"server exited with {proc.poll()} during the benchmark:\n{tail(proc.output(), 15)}")
                elif res.timed_out:
                    state.failure = (FailureCause.bench_timeout, f"benchmark ran past {timeout_s:.0f}s:\n{res.tail()}")
                else:
                    try:
                        metrics = _parse_run(engine, sandbox, res.output, result_file if json_flags else None,
                                             _num_prompts(command))
                        if metrics.get("partial"):
                            state.failure = (FailureCause.partial_metrics, f"{metrics.get('failed')} requests failed")
                        run = run.model_copy(update={"metrics": metrics})
                    except NoMetricsError as exc:
                        cause = FailureCause.bench_error if res.returncode else FailureCause.no_metrics
                        state.failure = (cause, f"exit {res.returncode}: {exc}\n{res.tail()}")
                    except BadMetrics as exc:
                        state.failure = (FailureCause.bad_metrics, str(exc))
                if state.failure:
                    run = run.model_copy(update={"failure_cause": state.failure[0], "detail": state.failure[1]})
                state.result_runs.append(run)
                if state.failure:
                    return
                i += 1
        finally:
            if server is not None:
                t0 = time.monotonic()
                logs[f"bench/{arm}.r{rnd}.server.log"] = server.stop()[-LOG_LIMIT:]
                state.server_s += time.monotonic() - t0

    def _correctness(self, sandbox: Sandbox, engine: Engine, task: Task, arm: str, tree: Path, base: Path,
                     logs: dict[str, str], log_dir: Path) -> dict:
        """Greedy completions of fixed prompts from the arm's own server (and, where wanted, an lm-eval
        accuracy): ArmResult's greedy_outputs, greedy_detail and accuracy. Nothing here fails the arm."""
        settings = self.settings
        server_cpus, client_cpus = self._cores(True)
        self._ensure_clean_gpus(sandbox)
        server = launch(sandbox, engine, task, tree, settings.host, log_dir / f"{arm}.correctness.server.log",
                        settings.server_start_timeout_s, cpus=server_cpus)
        found: dict = {}
        try:
            if server.failure:
                return {"greedy_detail": f"the {arm} server did not start for the check: {server.failure[0].value}"}
            url = f"http://{settings.host}:{server.port}/v1/completions"
            out_file = base / f"{arm}.greedy.json"
            probe = shlex.join(["python", str(base / "greedy_client.py"), url, task.model or "default",
                                str(base / "prompts.json"), str(out_file), str(settings.greedy_max_tokens)])
            res = sandbox.exec(probe, cwd=tree, timeout_s=600, log_path=log_dir / f"{arm}.greedy.log", cpus=client_cpus)
            logs[f"bench/{arm}.greedy.log"] = res.output[-LOG_LIMIT:]
            if res.ok:
                found["greedy_outputs"] = json.loads(sandbox.read_file(out_file))["outputs"]
            else:
                found["greedy_detail"] = f"the greedy probe of the {arm} arm failed: {res.tail(5)}"
            if settings.lm_eval_tasks and (self.slot.gpu_ids or settings.lm_eval_on_cpu):
                found.update(self._lm_eval(sandbox, task, arm, tree, url, base, logs, log_dir))
        finally:
            logs[f"bench/{arm}.correctness.server.log"] = server.stop()[-LOG_LIMIT:]
        return found

    def _lm_eval(self, sandbox: Sandbox, task: Task, arm: str, tree: Path, url: str, base: Path, logs: dict[str, str],
                 log_dir: Path) -> dict:
        """lm-evaluation-harness against the arm's server, with the same tasks, limit, batch size and seed for
        every arm; the mean of each task's first reported accuracy."""
        s = self.settings
        out_dir = base / f"{arm}.lm_eval"
        argv = ["python", "-m", "lm_eval", "--model", "local-completions", "--model_args",
                f"model={task.model},base_url={url},num_concurrent=8,max_retries=3,tokenized_requests=False",
                "--tasks", ",".join(s.lm_eval_tasks), "--batch_size", str(s.lm_eval_batch_size),
                "--seed", str(s.lm_eval_seed), "--output_path", str(out_dir)]
        if s.lm_eval_limit:
            argv += ["--limit", str(s.lm_eval_limit)]
        if s.lm_eval_include_path:
            argv += ["--include_path", s.lm_eval_include_path]  # absolute: the runner resolved it on the driver
        res = sandbox.exec(shlex.join(argv), cwd=tree, timeout_s=s.bench_timeout_s or 7200,
                           log_path=log_dir / f"{arm}.lm_eval.log")
        logs[f"bench/{arm}.lm_eval.log"] = res.output[-LOG_LIMIT:]
        results = sorted(out_dir.glob("**/results_*.json"))
        if not res.ok or not results:
            return {"greedy_detail": f"lm-eval did not finish for the {arm} arm: {res.tail(5)}"}
        reported = results[-1].read_text()
        logs[f"bench/{arm}.lm_eval.json"] = reported  # as lm-eval wrote it: scores, configs, samples, versions
        scores = json.loads(reported)["results"]
        accuracies = [next(v for k, v in metrics.items() if isinstance(v, (int, float)) and "stderr" not in k
                           and k.split(",")[0] in ("exact_match", "acc", "acc_norm"))
                      for metrics in scores.values()]
        return {"accuracy": sum(accuracies) / len(accuracies)} if accuracies else {}

    def _stop_reason(self, engine: Engine, task: Task, states: dict[str, "_ArmState"], rounds: int) -> str:
        settings = self.settings
        failed = [arm for arm, st in states.items() if st.failure]
        if failed:
            return f"{', '.join(failed)} failed"
        if rounds < settings.min_rounds:
            return ""
        metric = _primary(engine, task, [r for st in states.values() for r in st.result_runs])
        if metric is None:
            return "no metric"
        samples = {arm: [float(r.metrics[metric]) for r in st.result_runs if r.is_sample and metric in r.metrics]
                   for arm, st in states.items()}
        width = interval_half_widths(samples, engine.higher_is_better(metric), settings.confidence)
        if width <= settings.ci_target_pct:
            return f"interval half-width {width:.2f}% <= {settings.ci_target_pct}% after {rounds} rounds"
        if rounds >= settings.max_rounds:
            return f"max rounds ({rounds}); interval half-width still {width:.2f}%"
        return ""

    def run(self, attempt: Attempt, task: Task, patch: str) -> tuple[Measurements, dict[str, str]]:
        started = time.monotonic()
        logs: dict[str, str] = {}
        tag = f"{attempt.id}.bench"
        engine = engine_named(task.repo.engine_name)
        with scratch(self.settings.work_path, attempt.id, "bench") as base, ExitStack() as held:
            log_dir = base / "logs"
            log_dir.mkdir()
            sandbox_of = self._arm_sandboxes(task, tag, base, held)
            try:
                trees = self._prepare(sandbox_of["agent"], engine, task, patch, base)
                if task.repo.setup_command:
                    for arm, tree in trees.items():
                        res = sandbox_of[arm].exec(task.repo.setup_command, cwd=tree, timeout_s=self.settings.setup_timeout_s,
                                           log_path=log_dir / f"{arm}.setup.log")
                        if not res.ok:
                            raise StageError(FailureCause.setup_failed, f"setup of the {arm} tree failed: {res.tail()}")
                prepare_s = time.monotonic() - started
                script = engine.script_file(task.benchmark.command)
                script_source = None  # the baseline's script decides whether the JSON flags exist, for every arm
                if script and (trees["baseline"] / script).is_file():
                    script_source = (trees["baseline"] / script).read_text(errors="replace")
                (base / "results").mkdir()
                _, text_reason = engine.json_result_flags(task.benchmark.command, str(base / "results" / "x.json"), script_source)
                if text_reason:
                    logs["bench/metrics_source.txt"] = f"numbers from the output text: {text_reason}\n"
                arm_names = ARMS + ((NOISE_ARM,) if self.settings.noise_arm else ())
                trees[NOISE_ARM] = trees["baseline"]
                states = {arm: _ArmState() for arm in arm_names}
                order, stop_reason = [], ""
                while not stop_reason:
                    rnd = len(order)
                    order.append(arm_order(rnd, arm_names))
                    for arm in order[-1]:
                        if states[arm].failure is None:  # a failed arm is deterministic: not run again
                            self._round(sandbox_of[arm], engine, task, arm, trees[arm], rnd, states[arm], logs, log_dir,
                                        script_source)
                    stop_reason = self._stop_reason(engine, task, states, len(order))
                checks: dict[str, dict] = {}
                if self.settings.check_correctness and not any(states[arm].failure for arm in ARMS):
                    sandbox_of["baseline"].write_file(base / "greedy_client.py", Path(greedy_client.__file__).read_bytes())
                    sandbox_of["baseline"].write_file(base / "prompts.json", json.dumps(greedy_client.PROMPTS))
                    for arm in ARMS:  # (under `base`, which every arm's sandbox mounts)
                        checks[arm] = self._correctness(sandbox_of[arm], engine, task, arm, trees[arm], base, logs, log_dir)
                arms = []
                for arm in arm_names:
                    st = states[arm]
                    arms.append(ArmResult(
                        arm=arm, commit=task.arm_commit(arm),
                        command=task.benchmark.command, server_command=st.server_command, runs=st.result_runs,
                        server_cpus=st.server_cpus, client_cpus=st.client_cpus,
                        failure_cause=st.failure[0] if st.failure else None, detail=st.failure[1] if st.failure else "",
                        **checks.get(arm, {})))
                metric = _primary(engine, task, [r for a in arms for r in a.runs]) or "unknown"
                return Measurements(attempt_id=attempt.id, slot=self.slot.name, primary_metric=metric,
                                    higher_is_better=engine.knows_metric(metric) and engine.higher_is_better(metric),
                                    arms=arms, order=order, stop_reason=stop_reason, duration_s=time.monotonic() - started,
                                    prepare_s=prepare_s, server_s=sum(st.server_s for st in states.values())), logs
            finally:
                for sandbox in {id(s): s for s in sandbox_of.values()}.values():
                    sandbox.cleanup()  # whatever outlived its server's process group


def _parse_run(engine: Engine, sandbox: Sandbox, output: str, result_file: Path | None, num_prompts: int | None) -> dict:
    """A run's metrics, with `source` saying where they came from: `json` (the file the benchmark script
    wrote; the output text is then only the fallback for nothing) or `text` (forms that write no JSON)."""
    if result_file is None:
        return {**engine.parse(output, num_prompts=num_prompts), "source": "text"}
    try:
        raw = sandbox.read_file(result_file).decode(errors="replace")
    except OSError:
        # The script takes the flag but wrote nothing: no result. Reading the text instead would let an
        # engine that stops the script before it writes, after printing a block of its own, choose the numbers.
        raise NoMetricsError(f"the benchmark wrote no result file ({result_file.name}); the output text is not read "
                             f"when the script writes JSON") from None
    return {**engine.parse(None, json_data=_json_records(raw), num_prompts=num_prompts), "source": "json"}


def _json_records(raw: str):
    """A JSON document, or JSON Lines (SGLang appends one record per run); Infinity and NaN as Python writes them."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        records = []
        for line in raw.splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        if not records:
            raise NoMetricsError("the benchmark's result file holds no JSON") from None
        return records


def _primary(engine: Engine, task: Task, runs: list[Run]) -> str | None:
    """The task's primary metric, or the engine's first one present in the first run with metrics."""
    if task.benchmark.primary_metric:
        return task.benchmark.primary_metric
    return next((engine.primary_metric(task.benchmark.kind, r.metrics) for r in runs if r.metrics), None)

