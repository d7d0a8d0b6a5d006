"""The Engine seam: everything the harness knows about one inference engine, in one value.

An engine answers, for a task: the server command and its readiness path, which flags of a perf command
belong to the server and which to the client, and, once per task, a `BenchCommand`: everything the
benchmark rounds need (the script file, the flags that make the benchmark write its result as JSON, the
client's warm-up flags, how to parse its output, the primary metric and its direction, read from a table,
never guessed from a metric's name). Pure data and pure functions: no processes here.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

# the shared sibling modules by their own names (the registry in engines/__init__.py loads the engines,
# which import this module, only when first asked)
from isobench_ray.engines.parsing import NoMetricsError, parse_metrics
from isobench_ray.engines.perf_command import SERVER_FLAGS, PerfCommand, script_kind, split_env
from isobench_ray.engines.perf_command import analyze as analyze_command
from isobench_ray.schema import MAY_BE_INFINITE, BenchmarkSpec, Run


class UnknownMetric(ValueError):
    pass


class BadMetrics(ValueError):
    """A result that no benchmark can give (nan, inf, zero or negative where that means nothing)."""


# Values that may be zero (configuration echoes that may be infinite: schema.MAY_BE_INFINITE).
# (TPOT and ITL are 0.00 ms with one output token: real outputs show it)
_MAY_BE_ZERO = re.compile(r"failed|completed|std_.*|total_.*|num_.*|concurrency|max_concurrency|max_concurrent_requests|"
                          r"request_goodput|accept_length|(mean|median|std|max|min|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el)_ms")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:inf(?:inity)?)|(?i:nan)")


def _offending_line(text: str | None, value: float) -> str:
    """The output line that printed `value` (the last one), for the error message."""
    for line in reversed((text or "").splitlines()):
        for token in _NUMBER.findall(line):
            number = float(token)
            if number == value or (math.isnan(value) and math.isnan(number)):
                return line.strip()
    return ""


def check_metrics(metrics: dict, text: str | None = None) -> dict:
    """Every parsed number must be one a benchmark can give: finite, and positive unless zero is meaningful."""
    for key, value in metrics.items():
        if isinstance(value, dict):
            check_metrics({f"{key}.{k}": v for k, v in value.items()}, text)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        finite = math.isfinite(value) or key in MAY_BE_INFINITE
        floor_ok = value > 0 or (value == 0 and _MAY_BE_ZERO.fullmatch(key.split(".")[0]))
        if not finite or not floor_ok:
            line = _offending_line(text, value)
            raise BadMetrics(f"{key} = {value}: not a positive finite number" + (f", from the line: {line}" if line else ""))
    return metrics


# Direction of every metric the parsers produce: (full-match pattern, higher is better).
_LATENCY_STATS = r"(mean|median|std|max|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el)_ms"
METRIC_DIRECTIONS: tuple[tuple[str, bool], ...] = (
    # serving (vLLM and SGLang bench_serving)
    (r"request_throughput|request_goodput|input_throughput|output_throughput|total_token_throughput", True),
    (r"max_output_tokens_per_s|accept_length|completed", True),
    (_LATENCY_STATS, False),
    (r"duration", False),
    # offline latency, prefix caching, SGLang one-batch
    (r"avg_latency|avg_latency_per_token|avg_latency_per_output_token|cost_time|warmup_cost_time", False),
    (r"prefill_latency|median_decode_latency|total_latency", False),
    (r"prefill_throughput|median_decode_throughput|overall_throughput", True),
    # offline throughput (vLLM and SGLang, mapped to vLLM's names)
    (r"requests_per_second|tokens_per_second|output_tokens_per_second|input_tokens_per_second|last_gen_throughput", True),
    (r"elapsed_time", False),
)
# First present wins when a task names no primary metric.
PRIMARY_METRICS = {
    "serving": ("output_throughput", "request_throughput", "total_token_throughput", "mean_tpot_ms", "mean_ttft_ms"),
    "latency": ("avg_latency", "median_decode_latency", "total_latency", "cost_time"),
    "throughput": ("requests_per_second", "tokens_per_second", "output_tokens_per_second"),
}


@dataclass(frozen=True)
class Engine:
    name: str
    server_template: str | None = None  # {model} {host} {port}
    health_path: str = "/health"
    import_name: str | None = None
    server_flags: frozenset[str] = SERVER_FLAGS
    # benchmark script or module -> the flags that make it write its result as JSON to {path}
    json_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # module or subcommand -> the file in the tree that defines its flags (for json_result_flags)
    module_files: dict[str, str] = field(default_factory=dict)
    # discarded runs after each server start, unless the run says otherwise (docs/measurement.md)
    warmup_runs: int = 1
    # the serving client's own warm-up requests (sent before its clock starts), where its script has the flag
    client_warmup: tuple[str, ...] = ()
    # (a file that marks a version of the tree, the server template of that version), newest first; trees
    # without any marker use server_template
    server_forms: tuple[tuple[str, str], ...] = ()

    def server_command(self, template: str | None, *, model: str | None, host: str, port: int,
                       tree: Path | None = None) -> str:
        """The server command for one start. `template` is the task's; where it is this engine's default (as
        the loader filled it in, server flags appended), the form the tree's version has replaces it: the
        first of `server_forms` whose marker file the tree holds (vLLM deprecated its api_server module)."""
        template = template or self.server_template
        if tree is not None and template and self.server_template and template.startswith(self.server_template):
            newer = next((form for marker, form in self.server_forms if (Path(tree) / marker).is_file()), None)
            if newer:
                template = newer + template[len(self.server_template):]
        if not template:
            raise ValueError(f"engine {self.name}: no server command for a serving benchmark")
        # only these three are placeholders: a shell's ${VAR} or a JSON flag's braces stay as written; each value
        # is one shell word, whatever it holds (the loader refuses model names outside a plain alphabet too)
        values = {"model": shlex.quote(model) if model else "", "host": shlex.quote(host), "port": str(int(port))}
        return re.sub(r"\{(model|host|port)\}", lambda m: values[m.group(1)], template)

    def analyze(self, command: str | None, *, model: str | None = None, declared_kind: str | None = None) -> PerfCommand:
        """The perf command split into client and server flags, with every problem found."""
        return analyze_command(command, model=model, declared_kind=declared_kind, server_flags=self.server_flags)

    def json_output_flags(self, command: str, path: str) -> list[str]:
        """Flags to append so the benchmark also writes its result as JSON to `path` ([] when unknown)."""
        return _fill(self._json_templates(command), path)

    def _json_templates(self, command: str) -> tuple[str, ...]:
        _, argv = split_env(command.split())
        _, script = script_kind(argv)
        return next((flags for pattern, flags in self.json_flags.items() if re.search(pattern, script)), ())

    def client_warmup_flags(self, command: str, script_source: str | None) -> list[str]:
        """`client_warmup` when the command does not set the flag itself and the script at this commit defines
        it (an older script would stop on an unknown argument)."""
        if not self.client_warmup or script_source is None:
            return []
        flag = self.client_warmup[0]
        if flag in shlex.split(command) or not re.search(rf"""["']{re.escape(flag)}["']""", script_source):
            return []
        return list(self.client_warmup)

    def script_file(self, command: str) -> str | None:
        """The file in a tree that defines the benchmark's command line: the script itself, or the module a
        `python -m` / `vllm bench` form runs (None when not known)."""
        _, argv = split_env(shlex.split(command))
        _, script = script_kind(argv)
        if script.endswith(".py"):
            return script
        return self.module_files.get(script)

    def json_result_flags(self, command: str, path: str, script_source: str | None) -> tuple[list[str], str]:
        """(flags that make this benchmark write its result as JSON to `path`, why not when []). Flags are used
        only when the script's own source defines every one of them: an older script would stop on an
        unknown argument. Without them the result is read from the output text."""
        templates, why_not = self._json_result_templates(command, script_source)
        return _fill(templates, path), why_not

    def _json_result_templates(self, command: str, script_source: str | None) -> tuple[tuple[str, ...], str]:
        templates = self._json_templates(command)
        if not templates:
            return (), "this benchmark form writes no JSON result"
        if script_source is None:
            return (), "the benchmark script is not in the tree"
        missing = [f for f in templates if f.startswith("--") and not re.search(rf"""["']{re.escape(f)}["']""", script_source)]
        if missing:
            return (), f"the script at this commit has no {' '.join(missing)}"
        return templates, ""

    def parse(self, output: str | None, json_data: dict | None = None, *, num_prompts: int | None = None) -> dict:
        """Metrics of a benchmark's output; NoMetricsError when there are none, BadMetrics when one is not a number."""
        return parse(output, json_data, num_prompts=num_prompts)

    def higher_is_better(self, metric: str) -> bool:
        return higher_is_better(metric, self.name)

    def knows_metric(self, metric: str) -> bool:
        return _direction(metric) is not None

    def known_metrics(self) -> str:
        return known_metrics()

    def bench_command(self, benchmark: BenchmarkSpec, script_source: str | None) -> "BenchCommand":
        """Everything the benchmark rounds need of this engine for one task, answered once. `script_source`
        is the baseline tree's copy of `script_file(command)` (None when it has none): it decides, for every
        arm, whether the JSON result flags and the client's warm-up flags exist."""
        command = benchmark.command
        json_templates, text_reason = self._json_result_templates(command, script_source)
        return BenchCommand(engine=self.name, command=command, kind=benchmark.kind, primary_metric=benchmark.primary_metric,
                            script=self.script_file(command), warmup_runs=self.warmup_runs,
                            warmup_flags=tuple(self.client_warmup_flags(command, script_source)),
                            json_templates=json_templates, text_reason=text_reason, num_prompts=_num_prompts(command))


def _fill(templates: tuple[str, ...], path: str) -> list[str]:
    """JSON result flags for one result file: {path}, and its folder {dir} and file name {name}."""
    folder, name = path.rsplit("/", 1)[0] or ".", path.rsplit("/", 1)[-1]
    return [f.format(path=path, dir=folder, name=name) for f in templates]


def _direction(metric: str) -> bool | None:
    """Higher is better (True), lower is better (False), or None: not a metric of the table."""
    return next((higher for pattern, higher in METRIC_DIRECTIONS if re.fullmatch(pattern, metric)), None)


def higher_is_better(metric: str, engine: str = "") -> bool:
    higher = _direction(metric)
    if higher is None:
        raise UnknownMetric(f"engine {engine}: unknown metric {metric!r}; known: {known_metrics()}")
    return higher


def known_metrics() -> str:
    return " | ".join(p for p, _ in METRIC_DIRECTIONS)


def parse(output: str | None, json_data: dict | list | None = None, *, num_prompts: int | None = None) -> dict:
    """Metrics of a benchmark's output; NoMetricsError when there are none, BadMetrics when one is not a number."""
    return check_metrics(parse_metrics(output, json_data=json_data, num_prompts=num_prompts), output)


def _num_prompts(command: str) -> int | None:
    match = re.search(r"--num-prompts?[ =](\d+)", command)
    return int(match.group(1)) if match else None


def json_records(raw: str):
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


@dataclass(frozen=True)
class BenchCommand:
    """One task's benchmark command as the rounds run it: what they asked the engine, answered once
    (`Engine.bench_command`). Pure: the stage runs the commands and reads the files."""

    engine: str
    command: str  # the task's command, as written
    kind: str
    primary_metric: str | None  # the task's own choice, if any
    script: str | None  # the file in a tree that defines the command line (None when not known)
    warmup_runs: int  # the engine's discarded runs after each server start
    warmup_flags: tuple[str, ...]  # the serving client's own warm-up, where the baseline's script has the flag
    json_templates: tuple[str, ...]  # the flags that make it write its result as JSON ({path}, {dir}, {name})
    text_reason: str  # why the numbers come from the output text ("" when from JSON)
    num_prompts: int | None

    @property
    def serving(self) -> bool:
        return self.kind == "serving"

    def client_command(self, host: str, port: int) -> str:
        """The serving client's command against a server on `port`, its warm-up flags appended."""
        return f"{self.command} --host {host} --port {port} {shlex.join(self.warmup_flags)}".rstrip()

    def result_flags(self, path: str) -> list[str]:
        """Flags that make the benchmark write its result as JSON to `path` ([]: read from the text)."""
        return _fill(self.json_templates, path)

    def parse(self, output: str, result_file: Path | None = None, read: Callable[[Path], bytes] | None = None) -> dict:
        """A run's metrics, with `source` saying where they came from: `json` (`result_file`, the file the
        benchmark script wrote, read with `read`; the output text is then only the fallback for nothing) or
        `text` (forms that write no JSON). NoMetricsError when there are none, BadMetrics when one is no number."""
        if result_file is None:
            return {**parse(output, num_prompts=self.num_prompts), "source": "text"}
        try:
            raw = read(result_file).decode(errors="replace")
        except OSError:
            # The script takes the flag but wrote nothing: no result. Reading the text instead would let an
            # engine that stops the script before it writes, after printing a block of its own, choose the numbers.
            raise NoMetricsError(f"the benchmark wrote no result file ({result_file.name}); the output text is not read "
                                 f"when the script writes JSON") from None
        return {**parse(None, json_records(raw), num_prompts=self.num_prompts), "source": "json"}

    def primary(self, runs: Iterable[Run]) -> str | None:
        """The task's primary metric, or the first of the kind's that is present in the first run with metrics."""
        if self.primary_metric:
            return self.primary_metric
        return next((next((m for m in PRIMARY_METRICS.get(self.kind, ()) if m in r.metrics), None)
                     for r in runs if r.metrics), None)

    def higher_is_better(self, metric: str) -> bool:
        """The metric's direction; UnknownMetric when the table does not know it."""
        return higher_is_better(metric, self.engine)

    def knows_metric(self, metric: str) -> bool:
        return _direction(metric) is not None
