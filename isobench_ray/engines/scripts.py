"""The `script` benchmark kind: a task's performance tests (ISO-Bench's and GSO's generated ones) run in every arm.

A `script` task carries its tests' text (`BenchmarkSpec.scripts`). The stage writes them, and a runner this
module writes, under `.isobench-perf/` of every arm's tree: the same files and the same command for every
arm (the agent's copies are checked against the baseline's after each step, stages/guard.py). The runner
calls each test in its convention and appends what it reports to the harness's result file, one line per
test, `NAME PAYLOAD`:

- `iso` (ISO-Bench): `python TEST.py [--reference|--eqcheck] --prefix P` prints one JSON line with `avg_ms`;
- `gso` (GSO): `python TEST.py RESULT_FILE [--reference|--eqcheck] --file_prefix P` appends
  `Execution time: <seconds>s` to RESULT_FILE.

The tree's root is on PYTHONPATH (a test imports the engine as when run from the repository). Every arm gets
`IMPL_TAG=isobench` and `COMMIT_HASH=reference`, so the reference a test stores in the baseline's
tree (`--reference`) has the name the human's and the agent's runs look for (`--eqcheck`, after the harness
copies it over). The metric is `script_ms` (lower is better): the geometric mean of the tests' times in
milliseconds, each test's own as `script_ms.NAME`. Pure: the stage runs the command and reads the file.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from isobench_ray.engines.base import BadMetrics
from isobench_ray.engines.parsing import NoMetricsError
from isobench_ray.schema import PerfScript, Run

PERF_DIR = ".isobench-perf"
METRIC = "script_ms"
RUNNER = f"{PERF_DIR}/run.sh"
_GSO_TIME = re.compile(r"Execution time:\s*([0-9.eE+-]+)\s*s")


def runner_text(scripts: Iterable[PerfScript]) -> str:
    """The runner: `bash .isobench-perf/run.sh RESULT_FILE [--reference|--eqcheck]`, from the tree's root."""
    lines = ["# Written by isobench (engines/scripts.py): runs this task's performance tests, the same in every arm.",
             'set -u', 'result="$1"; shift', 'export IMPL_TAG=isobench COMMIT_HASH=reference PYTHONUNBUFFERED=1',
             '# the tree is the package a test imports, as when it runs from the repository root',
             'export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"',
             'status=0']
    for s in scripts:
        name, test, prefix = s.name, shlex.quote(f"{PERF_DIR}/{s.name}"), shlex.quote(f"{PERF_DIR}/{s.name}")
        out = shlex.quote(f"{PERF_DIR}/{s.name}.out")
        if s.convention == "iso":
            lines += [f'python {test} "$@" --prefix {prefix} > {out} 2>&1 || status=1', f"cat {out}",
                      f"grep '^{{' {out} | tail -n 1 | sed 's/^/{name} /' >> \"$result\""]
        else:
            lines += [f': > {out}', f'python {test} {out} "$@" --file_prefix {prefix} || status=1', f"cat {out}",
                      f"grep 'Execution time' {out} | tail -n 1 | sed 's/^/{name} /' >> \"$result\""]
    return "\n".join([*lines, 'exit "$status"']) + "\n"


def tree_files(scripts: Iterable[PerfScript]) -> dict[str, bytes]:
    """What the stage writes into every arm's tree (paths from the tree's root)."""
    scripts = tuple(scripts)
    return {RUNNER: runner_text(scripts).encode(), **{f"{PERF_DIR}/{s.name}": s.text.encode() for s in scripts}}


def parse_results(text: str, scripts: tuple[PerfScript, ...]) -> dict[str, float]:
    """`script_ms` and each test's `script_ms.NAME` from the runner's result file. NoMetricsError when a test
    reported nothing (it failed, or printed no result); BadMetrics when a time is no positive number."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, payload = line.partition(" ")
        script = next((s for s in scripts if s.name == name), None)
        if script is None:
            continue
        found[name] = _time_ms(script, payload)
    missing = [s.name for s in scripts if s.name not in found]
    if missing:
        raise NoMetricsError(f"no result from {', '.join(missing)} (see its output in the run's log)")
    return {METRIC: math.exp(sum(math.log(v) for v in found.values()) / len(found)),
            **{f"{METRIC}.{name}": v for name, v in found.items()}}


def _time_ms(script: PerfScript, payload: str) -> float:
    if script.convention == "iso":
        try:
            value = float(json.loads(payload)["avg_ms"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BadMetrics(f"{script.name}: its JSON line has no avg_ms number ({exc})") from None
    else:
        match = _GSO_TIME.search(payload)
        if not match:
            raise BadMetrics(f"{script.name}: no 'Execution time: <s>s' in {payload[:200]!r}")
        value = float(match.group(1)) * 1000.0
    if not math.isfinite(value) or value <= 0:
        raise BadMetrics(f"{script.name}: a time of {value} ms is no time a test can take")
    return value


@dataclass(frozen=True)
class ScriptBench:
    """A `script` task's BenchCommand (engines/base.py has the engines' own): the same interface to the rounds."""

    scripts: tuple[PerfScript, ...]
    primary_metric: str | None = METRIC
    warmup_runs: int = 1  # the first run of a fresh tree imports and compiles: discarded
    engine: str = "script"
    kind: str = "script"
    script: str | None = None  # no engine benchmark script to copy between trees: the runner is the harness's
    text_reason: str = ""

    @property
    def command(self) -> str:
        return f"bash {RUNNER}"

    @property
    def serving(self) -> bool:
        return False

    def client_command(self, host: str, port: int) -> str:
        raise TypeError("a script task has no server to run a client against")

    def result_flags(self, path: str) -> list[str]:
        return [path]

    def parse(self, output: str, result_file: Path | None = None, read: Callable[[Path], bytes] | None = None) -> dict:
        if result_file is None or read is None:
            raise NoMetricsError("a script task's numbers come from its result file only")
        try:
            text = read(result_file).decode(errors="replace")
        except OSError:
            raise NoMetricsError(f"the runner wrote no result file ({result_file.name})") from None
        return {**parse_results(text, self.scripts), "source": "json"}

    def primary(self, runs: Iterable[Run]) -> str | None:
        return self.primary_metric

    def higher_is_better(self, metric: str) -> bool:
        return False

    def knows_metric(self, metric: str) -> bool:
        return metric == METRIC or metric.startswith(f"{METRIC}.")
