"""Run folders at scale: what status, resume and the report cost at 1k, 10k (and 100k) attempts.

    .venv/bin/python benchmarks/scale.py [--sizes 1000,10000] [--keep DIR] [--screenshot DIR]
        [--driver-sizes 1000,10000,100000] [--driver-attempts 1000]

Builds a synthetic run folder per size, records of a realistic shape in the files and lines the RunStore
writes (without its fsyncs, which only the build would wait on; a 3 kB patch, validation checks, four arms of five rounds with a warm-up and two
measured runs each, every run with a benchmark's metrics and the CPU telemetry, scores, a judgement for
half of them), then measures, each in a fresh process (so peak memory is that step's own):

- `plan`: a first start of the real driver over `n` simulated attempts: planning, the driver's set-up, and
  its writer putting down every attempt.json;
- `status`: `isobench status` in-process (the index), and the whole command with interpreter start;
- `resume`: the real driver built over the folder (half finished) up to its first possible submission;
- `regrade`: `isobench regrade` (every finished attempt rescored from its samples);
- `report`: `isobench report` (attempts.parquet, runs.parquet, report.md, report.html, attempt pages);
- the sizes of report.md and report.html.

Peak memory is the step's high-water resident set (`_mb`); for the report also its peak of anonymous memory
(`report_anon_mb`, sampled every 20 ms), since Polars reads runs.jsonl through a memory map whose pages count
in the resident set but are the page cache's, given back under pressure.

Prints one row per size and, between the two largest sizes, each step's growth exponent
(log(t2/t1) / log(n2/n1): 1 is linear). Then the driver loop (`--driver-sizes`): the real driver on a local
Ray of 16 logical GPUs over plans of each size whose stages take no time, its own CPU per attempt over
the first 1,000 attempts of each and that figure's growth, and the projection to 1,000 slots (driver_loop says how and why). Single run, this
machine; figures in docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: builds and measures one step, prints {"seconds", "peak_mb"} as its last line
STEP = r"""
import json, resource, sys, threading, time
from pathlib import Path
sys.path.insert(0, ROOT)
step, run = sys.argv[1], sys.argv[2]
anon = [0]
def watch():  # the peak of anonymous memory (RssAnon): ru_maxrss also counts the pages of files Polars maps
    while True:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    anon[0] = max(anon[0], int(line.split()[1]))
        time.sleep(0.02)
threading.Thread(target=watch, daemon=True).start()
started = time.perf_counter()
if step == "status":
    from typer.testing import CliRunner
    from isobench_ray.cli import app
    started = time.perf_counter()  # the command, not the imports
    out = CliRunner().invoke(app, ["status", run])
    assert out.exit_code == 0, out.output
elif step == "plan":  # a first start: the plan, then the driver writing each attempt.json (the writer's pace)
    sys.path.insert(0, ROOT + "/benchmarks")
    from scale import start_driver
    import isobench_ray.cluster.driver, isobench_ray.cluster.simulate, isobench_ray.pipeline  # noqa: E401
    started = time.perf_counter()  # the work, not the imports
    print(json.dumps(start_driver(Path(run), int(sys.argv[3]), first=True)))
elif step == "resume":
    sys.path.insert(0, ROOT + "/benchmarks")
    from scale import start_driver
    import isobench_ray.cluster.driver, isobench_ray.cluster.simulate, isobench_ray.pipeline  # noqa: E401
    started = time.perf_counter()
    print(json.dumps(start_driver(Path(run), 0, first=False)))
elif step == "regrade":
    from isobench_ray.regrade import regrade
    started = time.perf_counter()
    regrade(run)
elif step == "driver":
    sys.path.insert(0, ROOT + "/benchmarks")
    from scale import drive
    print(json.dumps(drive(Path(run), int(sys.argv[3]), int(sys.argv[4]))))
elif step == "wait":
    sys.path.insert(0, ROOT + "/benchmarks")
    import ray
    from scale import wait_cost
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(json.dumps({str(k): wait_cost(k) for k in (64, 1064)}))
elif step == "report":
    from isobench_ray.report.write import write_report
    write_report(run)
elif step == "build":
    sys.path.insert(0, ROOT + "/benchmarks")
    from scale import build
    build(Path(run), int(sys.argv[3]))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "anon_mb": anon[0] / 1024}))
""".replace("ROOT", repr(str(ROOT)))


def build(run: Path, n: int) -> float:
    """A run folder of `n` planned attempts, half of them finished (records, half of those judged)."""
    sys.path.insert(0, str(ROOT))
    from isobench_ray.report.table import ROWS, RUNS, row_text, runs_text
    from isobench_ray.schema import (
        ArmResult,
        Attempt,
        Judgement,
        Run,
        Vote,
    )
    from isobench_ray.store import INDEX, index_line

    started = time.perf_counter()
    metrics = {k: 100.0 + i for i, k in enumerate(("output_throughput", "request_throughput", "total_token_throughput",
                                                    "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms",
                                                    "median_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "median_itl_ms",
                                                    "p99_itl_ms", "duration", "completed"))}
    telemetry = {"start": {"cpu_util": 12.5, "load1": 1.2, "gpu0_sm_mhz": 1980}, "end": {"cpu_util": 13.1, "load1": 1.3, "gpu0_sm_mhz": 1980}}
    patch = "diff --git a/x.py b/x.py\n" + "+    line of code\n" * 150
    runs = [Run(arm=arm, round=r, warmup=k == 0, metrics=metrics, duration_s=30.0, telemetry=telemetry,
                command="python benchmarks/benchmark_serving.py --model m --num-prompts 100")
            for arm in ("baseline", "human", "agent", "baseline2") for r in range(5) for k in range(3)]
    arms = [ArmResult(arm=a, commit="c" * 40, command="python benchmarks/benchmark_serving.py",
                      runs=[r for r in runs if r.arm == a]) for a in ("baseline", "human", "agent", "baseline2")]
    plan = []
    # the files and lines RunStore.save_stage writes (record.json, runs.jsonl, rows.jsonl, index.jsonl,
    # judgement.json), without its fsyncs: they cost the build, not the steps measured
    run.mkdir(parents=True, exist_ok=True)
    with open(run / RUNS, "w") as runs_file, open(run / ROWS, "w") as rows_file, open(run / INDEX, "w") as index:
        for i in range(n):
            task, agent = f"task-{i // 10 % 500:03d}", f"agent-{i % 10}"  # every agent on every task
            attempt = Attempt(task_id=task, agent=agent, rollout=i // 5000, id=f"{task}.{agent}.{i // 5000}.{i:08x}")
            plan.append(attempt.model_dump())
            folder = run / "attempts" / attempt.id
            folder.mkdir(parents=True)
            (folder / "attempt.json").write_text(attempt.model_dump_json(indent=2))
            if i >= n // 2:  # the first half of the plan finished, as a driver going through it in order leaves it
                continue
            record = synthetic_record(attempt, i, patch, arms)
            (folder / "record.json").write_text(record.model_dump_json(indent=2))
            if record.measurements:  # the stage file beside the record, as the driver leaves it
                (folder / "measurements.json").write_text(record.measurements.model_dump_json(indent=2))
            stamp = f"{i:x}"
            runs_file.write(runs_text(record, stamp))
            rows_file.write(row_text(record, None, stamp))
            index.write(json.dumps(index_line(record, stamp)) + "\n")
            if (i // 10) % 2 == 0:  # half of them judged, every agent
                judgement = Judgement(attempt_id=attempt.id, votes=[Vote(judge="rule-based")])
                (folder / "judgement.json").write_text(judgement.model_dump_json(indent=2))
                rows_file.write(row_text(record, judgement, stamp))
    (run / "plan.json").write_text(json.dumps(plan, indent=2))
    (run / "run.json").write_text(json.dumps({"planned": len(plan), "agents": [{"name": f"agent-{k}", "kind": "noop"} for k in range(10)]}))
    return time.perf_counter() - started


def synthetic_record(attempt, i: int, patch: str, arms: list):
    """A finished attempt of a plausible run: agent-k's speed-up over the baseline around 0.92 + 0.04 k (the
    human's 1.2), an interval 3 to 8 points wide each side, its classes from both, and one attempt in ten
    failed at validation (no measurements)."""
    from isobench_ray.schema import AttemptRecord, Check, FailureCause, Measurements, Scores, Session, Status, Validation
    from isobench_ray.scoring.hard import hard_class
    from isobench_ray.scoring.stats import Interval, hard_class_ci

    rng = random.Random(i)
    session = Session(attempt_id=attempt.id, patch=patch, files_changed=["x.py"], steps=40, tokens=120_000)
    checks = [Check(name=c, ok=True) for c in ("apply", "compile", "import", "server_start")]
    if rng.random() < 0.1:
        return AttemptRecord(attempt=attempt, status=Status.failed, failure_stage="validation", failure_cause=FailureCause.compile_error,
                             session=session, validation=Validation(attempt_id=attempt.id, checks=[*checks[:1], Check(name="compile", ok=False)]))
    speed = max(0.5, 0.92 + 0.04 * (i % 10) + rng.gauss(0.0, 0.06))
    half = 0.03 + 0.05 * rng.random()
    ci_class = hard_class_ci(Interval(speed / 1.2, (speed - half) / 1.2, (speed + half) / 1.2), 5.0, 1.5)  # against the human
    return AttemptRecord(
        attempt=attempt, status=Status.success, session=session, validation=Validation(attempt_id=attempt.id, checks=checks),
        measurements=Measurements(attempt_id=attempt.id, slot="node-1/gpu0", primary_metric="output_throughput", higher_is_better=True, arms=arms),
        scores=Scores(attempt_id=attempt.id, primary_metric="output_throughput", higher_is_better=True, baseline_value=100.0,
                      human_value=120.0, agent_value=100.0 * speed, speedup_vs_baseline=speed, human_speedup_vs_baseline=1.2,
                      agent_vs_human_pct=(speed / 1.2 - 1) * 100, hard_class=hard_class((speed / 1.2 - 1) * 100, 5.0),
                      hard_class_ci=ci_class, speedup_ci=(speed - half, speed + half), noise_pct=1.5, rounds=5))


def start_driver(run: Path, n: int, first: bool) -> dict:
    """The real driver built over a run folder, up to the moment it could submit its first stage (no Ray
    needed until then). `first`: a new run of `n` simulated attempts (planning, and the driver writing each
    attempt.json, waited for); else a resume of the folder's plan (half of it finished)."""
    sys.path.insert(0, str(ROOT))
    from isobench_ray.cluster import simulate
    from isobench_ray.cluster.driver import Driver
    from isobench_ray.config import Settings
    from isobench_ray.pipeline import plan_attempts
    from isobench_ray.schema import Attempt
    from isobench_ray.store import RunStore

    if first:
        plan = plan_attempts(simulate.tasks(n), [simulate.SimAgent()])
    else:
        task, agent = simulate.tasks(1)[0], simulate.SimAgent()
        plan = [(Attempt.model_validate(a), task, agent) for a in json.loads((run / "plan.json").read_text())]
    started = time.perf_counter()
    store = RunStore(run, background_writes=True)
    driver = Driver(store, plan, Settings(work_dir=str(run) + "-work"), stages=simulate.stages(0.0), show_progress=False)
    ready = time.perf_counter() - started
    store.flush()
    assert first or len(driver.queue) == len(plan) - len(plan) // 2, len(driver.queue)
    return {"ready_s": ready, "written_s": time.perf_counter() - started}


class _Enough(Exception):
    """Raised from the driver's on_record once the measured attempts are recorded: the loop stops there."""


def drive(run: Path, n: int, measured: int) -> dict:
    """The real driver over a plan of `n` simulated attempts whose stages take no time, on 16 logical GPUs (16
    slot actors, 16 sessions at once), stopped once `measured` attempts are recorded: the driver process's own
    CPU seconds (user + system, its Ray threads included) per recorded attempt, and `ray.wait` calls per
    attempt. The same number of events at every plan size: what could grow with the run is the structures
    each event touches (the plan, the queue, the store's index), which are full size."""
    import resource

    sys.path.insert(0, str(ROOT))
    import ray

    from isobench_ray.cluster import simulate
    from isobench_ray.cluster.driver import Driver
    from isobench_ray.config import Settings
    from isobench_ray.pipeline import plan_attempts
    from isobench_ray.store import RunStore

    ray.init(num_cpus=32, num_gpus=16, include_dashboard=False, log_to_driver=False)
    plan = plan_attempts(simulate.tasks(n), [simulate.SimAgent()])
    store, recorded = RunStore(run, background_writes=True), [0]

    def count(_record) -> None:
        recorded[0] += 1
        if recorded[0] >= measured:
            raise _Enough

    driver = Driver(store, plan, Settings(agent_concurrency=16, work_dir=str(run) + "-work"),
                    stages=simulate.stages(0.0), show_progress=False, on_record=count)
    store.flush()  # the plan's attempt.json files are down: their writing is planning's cost, not the loop's
    driver.start_slots()  # actor start-up is not the loop's work

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    before, started = cpu(), time.perf_counter()
    try:
        driver.run()
    except _Enough:
        pass
    spent, wall = cpu() - before, time.perf_counter() - started
    ray.shutdown()
    return {"cpu_per_attempt_ms": spent / recorded[0] * 1000, "wall_per_attempt_ms": wall / recorded[0] * 1000,
            "waits_per_attempt": driver.waits / recorded[0], "recorded": recorded[0]}


def wait_cost(in_flight: int, calls: int = 300) -> float:
    """Milliseconds of one `ray.wait(refs, num_returns=1, timeout=0)` over `in_flight` pending refs: actor calls
    held open by one async actor (as a thousand slots' benchmarks would be), in this process's own Ray."""
    import ray

    @ray.remote(num_cpus=0, max_concurrency=in_flight + 1)
    class Held:
        def __init__(self):
            import asyncio

            self.release = asyncio.Event()

        async def hold(self) -> None:
            await self.release.wait()

        async def free(self) -> None:
            self.release.set()

    held = Held.remote()
    refs = [held.hold.remote() for _ in range(in_flight)]
    ray.wait(refs, num_returns=1, timeout=0.5)  # every call submitted and running
    started = time.perf_counter()
    for _ in range(calls):
        ray.wait(list(refs), num_returns=1, timeout=0)
    seconds = (time.perf_counter() - started) / calls
    ray.get(held.free.remote())
    ray.get(refs)
    ray.kill(held)
    return seconds * 1000


def _env() -> dict[str, str]:
    """This process's environment with Python's bytecode cache on, as a user's interpreter has it: with
    PYTHONDONTWRITEBYTECODE set (as on this machine) every command compiles what it imports again (0.45 s of
    `isobench status`, most of it Polars)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def step(name: str, run: Path, *extra: str) -> dict:
    """One step in a fresh interpreter started from this small one: its peak memory is its own (Linux keeps a
    process's high-water mark across exec, so a parent that had built the records would show in it)."""
    proc = subprocess.run([sys.executable, "-c", STEP, name, str(run), *extra], capture_output=True, text=True, env=_env())
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    return {**json.loads(lines[-1]), "line": lines[-2] if len(lines) > 1 else ""}  # the step's own result line


def command_seconds(run: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "isobench"), "status", str(run)], capture_output=True, check=True, env=_env())
    return time.perf_counter() - started


def screenshot(page: Path, shot: Path) -> str:
    """The page's first 1400 x 2400 pixels in headless Chromium (its path), or why there is none."""
    browser = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
    if browser is None:
        return "no chromium on PATH"
    shot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                        f"--user-data-dir={profile}", "--window-size=1400,2400", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, timeout=180)
    return str(shot) if shot.exists() else "chromium wrote no screenshot"


def driver_loop(sizes: list[int], base: Path, measured: int) -> None:
    """The driver's own CPU per attempt over its first `measured` attempts of plans of each size (16 slots),
    the cost of Ray's wait at 64 and at 1,064 refs in flight (16 or 1,000 slots' benchmarks and 48 sessions),
    and from both the per-attempt cost at 1,000 slots: a thousand slot actors cannot start on 2 cores (a
    process each), and besides Ray's wait the loop does the same O(1) work per event whatever the number of
    slots (counters, the queue's head; driver.py), so the wait is the part that grows with them. Running
    every attempt of a 100k plan would take 100 minutes here (60 ms of wall time each) to repeat the same
    events; the first `measured` events over full-size structures show whether an event's cost grows."""
    found = []
    for n in sizes:
        result = json.loads(step("driver", base / f"driver-{n}", str(n), str(min(n, measured)))["line"])
        found.append((n, result))
        shutil.rmtree(base / f"driver-{n}", ignore_errors=True)
        print(f"driver, plan of {n}, first {result['recorded']} attempts: cpu {result['cpu_per_attempt_ms']:.2f} ms/attempt, "
              f"wall {result['wall_per_attempt_ms']:.1f} ms/attempt, {result['waits_per_attempt']:.2f} waits/attempt", flush=True)
    if len(found) >= 2:
        (n1, a), (n2, b) = found[-2], found[-1]
        print(f"driver cpu per attempt growth exponent ({n1} -> {n2}): "
              f"{math.log(b['cpu_per_attempt_ms'] / a['cpu_per_attempt_ms']) / math.log(n2 / n1):.2f}")
    costs = json.loads(step("wait", base)["line"])
    print(f"ray.wait: {costs['64']:.3f} ms over 64 refs in flight, {costs['1064']:.3f} ms over 1,064")
    n, last = found[-1]
    extra = last["waits_per_attempt"] * (costs["1064"] - costs["64"])
    print(f"driver cpu per attempt at 1,000 slots (16-slot figure + waits per attempt x the wait's growth): "
          f"{last['cpu_per_attempt_ms'] + extra:.2f} ms; at 100,000 attempts {(last['cpu_per_attempt_ms'] + extra) * 100:.0f} s "
          f"of driver CPU in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--keep", help="build the run folders here and keep them")
    parser.add_argument("--screenshot", help="a folder: report.html of each size as headless Chromium shows it")
    parser.add_argument("--driver-sizes", default="1000,10000",
                        help="plan sizes of the real driver's simulated runs ('' for none)")
    parser.add_argument("--driver-attempts", type=int, default=1000,
                        help="attempts run (and measured) of each driver plan (about 60 ms of wall time each here)")
    args = parser.parse_args()
    base = Path(args.keep or tempfile.mkdtemp(prefix="isobench-scale-"))
    # bytecode cached before the first measured step, as any interpreter that ran the command once has it
    subprocess.run([sys.executable, "-c", "import isobench_ray.cli, isobench_ray.report.write, isobench_ray.cluster.driver, ray"],
                   check=True, env=_env())
    rows = []
    for n in map(int, args.sizes.split(",")):
        run = base / f"run-{n}"
        shutil.rmtree(run, ignore_errors=True)
        row = {"attempts": n, "records": n // 2, "build_s": step("build", run, str(n))["seconds"]}
        found = step("plan", base / f"plan-{n}", str(n))
        row["plan_s"], row["plan_mb"] = found["seconds"], found["peak_mb"]
        row["plan_ready_s"] = json.loads(found["line"])["ready_s"]  # the driver could submit; the rest is its writer
        shutil.rmtree(base / f"plan-{n}", ignore_errors=True)
        for name in ("status", "resume", "regrade", "report"):
            found = step(name, run)
            row[f"{name}_s"], row[f"{name}_mb"] = found["seconds"], found["peak_mb"]
        row["report_anon_mb"] = found["anon_mb"]  # without runs.jsonl's pages, which Polars maps to read it
        row["status_cmd_s"] = command_seconds(run)
        row["report_md_mb"] = (run / "report.md").stat().st_size / 1e6
        row["report_html_mb"] = (run / "report.html").stat().st_size / 1e6
        if args.screenshot:
            row["screenshot"] = screenshot(run / "report.html", Path(args.screenshot) / f"report-{n}.png")
        rows.append(row)
        print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        ratio = math.log(b["attempts"] / a["attempts"])
        print("growth exponents " + f"({a['attempts']} -> {b['attempts']}): " + ", ".join(
            f"{k[:-2]} {math.log(max(b[k], 1e-9) / max(a[k], 1e-9)) / ratio:.2f}"
            for k in ("plan_s", "status_s", "resume_s", "regrade_s", "report_s")))
    if args.driver_sizes:
        driver_loop([int(n) for n in args.driver_sizes.split(",")], base, args.driver_attempts)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
