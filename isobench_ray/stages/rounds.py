"""The interleaved rounds of a 3-way benchmark: every arm, round after round, until the speedup intervals are
narrow enough and every arm has `min_samples` clean samples (or `max_rounds`).

Rounds rotate the arm order (B H A B2, H A B2 B, ...) so that drift in the machine hits every arm alike.
Each (arm, round) starts the server (serving tasks), runs `warmup_runs` discarded and `runs_per_round`
measured benchmark runs (a run disturbed by outside load on the slot's cores is never counted and is measured
again, a bounded number of times), then stops the server and its whole process group.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

from isobench_ray.config import MeasurementSettings
from isobench_ray.engines.base import BadMetrics
from isobench_ray.engines.parsing import NoMetricsError
from isobench_ray.engines.server import Server
from isobench_ray.hardware import busy_seconds, outside_share, throttled
from isobench_ray.sandbox.base import ExecResult
from isobench_ray.schema import ARMS, Arm, ArmResult, FailureCause, HardClass, Measurements, Run, Scores, VerdictCause
from isobench_ray.scoring.hard import score
from isobench_ray.scoring.verdicts import samples_needed
from isobench_ray.stages.bench_context import BenchContext
from isobench_ray.text import log_tail, tail

Failure = tuple[FailureCause, str]


def arm_order(round_index: int, arms: tuple[Arm, ...] = ARMS) -> list[Arm]:
    k = round_index % len(arms)
    return list(arms[k:] + arms[:k])


@dataclass
class ArmState:
    result_runs: list[Run] = field(default_factory=list)
    failure: Failure | None = None
    server_command: str | None = None
    server_s: float = 0.0  # starting and stopping its servers
    server_cpus: tuple[int, ...] = ()
    client_cpus: tuple[int, ...] = ()
    leftovers: list[str] = field(default_factory=list)  # what its benchmark commands left running (this round)


@dataclass(frozen=True)
class _Round:
    """One (arm, round): what each of its benchmark runs uses."""

    arm: Arm
    index: int
    command: str  # the client command (serving: against this round's server)
    client_cpus: tuple[int, ...]
    server: Server | None = None
    server_start_s: float | None = None  # launch to ready

    def name(self, run: int | str) -> str:
        return f"{self.arm}.r{self.index}.{run}"


def run_rounds(ctx: BenchContext, arms: tuple[Arm, ...]) -> tuple[dict[Arm, ArmState], list[list[Arm]], str]:
    """Rounds until `stop_reason` says why: (each arm's state, the arm order of every round, the reason)."""
    states = {arm: ArmState() for arm in arms}
    order: list[list[Arm]] = []
    reason, started = "", time.monotonic()
    while not reason:
        order.append(arm_order(len(order), arms))
        for arm in order[-1]:
            if states[arm].failure is None:  # a failed arm is deterministic: not run again
                run_round(ctx, arm, len(order) - 1, states[arm])
        reason = stop_reason(ctx, states, len(order), time.monotonic() - started)
    return states, order, reason


def run_round(ctx: BenchContext, arm: Arm, index: int, state: ArmState) -> None:
    """One arm's round: its server started (serving), its runs, its server stopped."""
    server_cpus, client_cpus = ctx.cores(ctx.bench.serving)
    state.server_cpus, state.client_cpus = server_cpus, client_cpus
    ctx.ensure_clean_gpus(arm)
    server = None
    try:
        rnd = _Round(arm, index, ctx.bench.command, client_cpus)
        if ctx.bench.serving:
            t0 = time.monotonic()
            server = ctx.launch(arm, f"{arm}.r{index}.server.log", server_cpus)
            state.server_command = server.command
            started_s = time.monotonic() - t0
            state.server_s += started_s
            if server.failure:
                state.failure = server.failure
                return
            rnd = _Round(arm, index, ctx.bench.client_command(ctx.settings.sandbox.host, server.port), client_cpus, server,
                         started_s)
        _runs(ctx, rnd, state)
    finally:
        if server is not None:
            t0 = time.monotonic()
            ctx.logs[f"bench/{arm}.r{index}.server.log"] = log_tail(server.stop())
            state.server_s += time.monotonic() - t0
        left, state.leftovers = tuple(state.leftovers), []
        ctx.after(arm, left)  # nothing of this arm runs into the next, and no tree but its own changed


def _runs(ctx: BenchContext, rnd: _Round, state: ArmState) -> None:
    """The round's warm-ups and measured runs, until one fails."""
    settings = ctx.settings
    warmups = ctx.bench.warmup_runs if settings.measurement.warmup_runs is None else settings.measurement.warmup_runs
    # A disturbed run (something outside the slot used its cores meanwhile) is kept for the record, never
    # counted, and measured again in this round, its server still warm: every time, up to runs_per_round
    # extra tries per round. The bound keeps a slot under lasting outside load from holding an arm's round
    # (and the slot) without end, or piling one arm's runs into one stretch of time, which interleaving is
    # there to avoid; the next rounds try again, and the stop rule waits for min_samples clean samples.
    planned, extra_tries, i = warmups + settings.measurement.runs_per_round, settings.measurement.runs_per_round, 0
    while i < planned:
        run, failure = _measure(ctx, rnd, i, warm=i < warmups, left=state.leftovers)
        if run.disturbed and extra_tries > 0:
            planned, extra_tries = planned + 1, extra_tries - 1
        state.result_runs.append(run)
        if failure:
            state.failure = failure
            return
        i += 1


def _measure(ctx: BenchContext, rnd: _Round, i: int, *, warm: bool, left: list[str]) -> tuple[Run, Failure | None]:
    """One benchmark run, with the share of the slot's cores that something outside it used meanwhile (what
    the command left running goes to `left`)."""
    settings, sandbox = ctx.settings, ctx.sandbox_of[rnd.arm]
    timeout_s = settings.limits.bench_timeout_s or ctx.task.benchmark.timeout_s
    proc = rnd.server.process if rnd.server else None
    before = ctx.telemetry()
    busy, server_cpu = busy_seconds(ctx.slot.cpus), proc.cpu_seconds() if proc else 0.0
    # The result as the benchmark script wrote it, into a folder outside every tree that only the
    # harness reads: an engine that prints a fake result block to the output changes nothing there.
    result_file = ctx.results(rnd.arm) / f"{rnd.name(i)}.json"
    json_flags = ctx.bench.result_flags(str(result_file))
    ran = f"{rnd.command} {shlex.join(json_flags)}" if json_flags else rnd.command
    res = sandbox.exec(ran, cwd=ctx.trees[rnd.arm], timeout_s=timeout_s, log_path=ctx.log_dir / f"{rnd.name(i)}.log",
                       cpus=rnd.client_cpus)
    left.extend(res.leftovers)
    own = res.cpu_s + ((proc.cpu_seconds() - server_cpu) if proc else 0.0)
    outside = outside_share(busy_seconds(ctx.slot.cpus) - busy, own, res.duration_s, ctx.slot.cpus)
    ctx.logs[f"bench/{rnd.name(i)}.log"] = log_tail(res.output)
    after = ctx.telemetry()
    # disturbed: outside load on the slot's cores, or a GPU held down by power or heat (throttle reasons at
    # either end): never counted, measured again like any disturbed run
    held_down = throttled(before) or throttled(after)
    run = Run(arm=rnd.arm, round=rnd.index, warmup=warm, duration_s=res.duration_s, outside_load=round(outside, 4),
              disturbed=not warm and (outside > settings.slots.outside_load_max or held_down), command=ran,
              server_command=rnd.server.command if rnd.server else "",
              server_start_s=None if rnd.server_start_s is None else round(rnd.server_start_s, 3),
              telemetry={"start": before, "end": after})
    failure, metrics = _outcome(ctx, rnd, res, timeout_s, result_file if json_flags else None)
    if metrics is not None:
        run = run.model_copy(update={"metrics": metrics})
    if failure:
        run = run.model_copy(update={"failure_cause": failure[0], "detail": failure[1]})
    return run, failure


def _outcome(ctx: BenchContext, rnd: _Round, res: ExecResult, timeout_s: float,
             result_file) -> tuple[Failure | None, dict | None]:
    """(why the run failed, its metrics): a crashed server, a timeout, no or bad numbers, failed requests."""
    proc = rnd.server.process if rnd.server else None
    if proc is not None and proc.poll() is not None:
        return (FailureCause.server_crash,
                f"server exited with {proc.poll()} during the benchmark:\n{tail(proc.output(), 15)}"), None
    if res.timed_out:
        return (FailureCause.bench_timeout, f"benchmark ran past {timeout_s:.0f}s:\n{res.tail()}"), None
    try:
        metrics = ctx.bench.parse(res.output, result_file, ctx.sandbox_of[rnd.arm].read_file)
    except NoMetricsError as exc:
        cause = FailureCause.bench_error if res.returncode else FailureCause.no_metrics
        return (cause, f"exit {res.returncode}: {exc}\n{res.tail()}"), None
    except BadMetrics as exc:
        return (FailureCause.bad_metrics, str(exc)), None
    if metrics.get("partial"):
        return (FailureCause.partial_metrics, f"{metrics.get('failed')} requests failed"), metrics
    return None, metrics


def arm_results(ctx: BenchContext, states: dict[Arm, ArmState], checks: dict[Arm, dict] | None = None) -> list[ArmResult]:
    """Each arm's runs and failure as the Measurements hold them (with its correctness check's fields)."""
    return [ArmResult(arm=arm, commit=ctx.task.arm_commit(arm), command=ctx.bench.command,
                      server_command=st.server_command, runs=st.result_runs, server_cpus=st.server_cpus,
                      client_cpus=st.client_cpus, failure_cause=st.failure[0] if st.failure else None,
                      detail=st.failure[1] if st.failure else "", **(checks or {}).get(arm, {}))
            for arm, st in states.items()]


def _provisional(ctx: BenchContext, states: dict[Arm, ArmState], rounds: int) -> Scores | None:
    """The attempt scored on the rounds so far, as the record will be (None without a primary metric)."""
    arms = arm_results(ctx, states)
    metric = ctx.bench.primary(r for a in arms for r in a.runs)
    if metric is None or not ctx.bench.knows_metric(metric):
        return None
    m = Measurements(attempt_id="provisional", slot=ctx.slot.name, primary_metric=metric,
                     higher_is_better=ctx.bench.higher_is_better(metric), arms=arms, order=[[]] * rounds)
    s = ctx.settings.measurement
    return score(m, s.hard_band_pct, s.confidence, s.min_samples, method=s.interval_method,
                 implausible_speedup=s.implausible_speedup)


def _out_of_reach(scores: Scores, settings: MeasurementSettings) -> bool:
    """Too noisy to decide even at max_rounds: the samples a ±margin interval needs (a lower bound, from
    the interval's width now) exceed what the remaining rounds can give."""
    if scores.verdict_cause is not VerdictCause.too_noisy or scores.agent_vs_human_ci_pct is None:
        return False
    low, high = scores.agent_vs_human_ci_pct
    have = scores.rounds * settings.runs_per_round
    needed = samples_needed((high - low) / 2, max(have, 1), settings.hard_band_pct)
    return needed is not None and needed > settings.max_rounds * settings.runs_per_round


def stop_reason(ctx: BenchContext, states: dict[Arm, ArmState], rounds: int, elapsed_s: float = 0.0) -> str:
    """Why the rounds stop after `rounds` ("" to go on), never on an interval's width alone: an arm failed;
    the strict verdict is decided (beats, similar or worse, from clean samples only); it cannot be decided
    within max_rounds at the measured noise; the attempt's slot budget is spent; or max_rounds."""
    s = ctx.settings.measurement
    failed = [arm for arm, st in states.items() if st.failure]
    if failed:
        return f"{', '.join(failed)} failed"
    if rounds < s.min_rounds:
        return ""
    scores = _provisional(ctx, states, rounds)
    if scores is None:
        return "no metric"
    verdict = scores.hard_class_ci
    if scores.verdict_cause is VerdictCause.implausible:  # more rounds cannot make it plausible: a person looks
        return f"implausible after {rounds} rounds: {scores.verdict_reason}"
    if verdict in (HardClass.beats, HardClass.similar, HardClass.worse):
        return f"decided after {rounds} rounds: {scores.verdict_reason}"
    if _out_of_reach(scores, s):
        return f"cannot be decided within max_rounds ({s.max_rounds}) at this noise, after {rounds} rounds: " \
               f"{scores.verdict_reason}"
    if s.slot_budget_min and elapsed_s >= s.slot_budget_min * 60:
        return f"slot budget ({s.slot_budget_min:g} min) spent after {rounds} rounds: {scores.verdict_reason}"
    if rounds >= s.max_rounds:
        return f"max rounds ({rounds}): {scores.verdict_reason or verdict.value}"
    return ""
