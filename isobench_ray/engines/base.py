"""The Engine seam: everything the harness knows about one inference engine, in one value.

An engine answers, for a task: the server command and its readiness path, which flags of a perf command
belong to the server and which to the client, the benchmark kind of a command, the flags that make the
benchmark write its result as JSON, how to parse its output, and the primary metric and its direction,
read from a table (never guessed from a metric's name). Pure data and pure functions: no processes here.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from isobench_ray.engines import parsing, perf_command
from isobench_ray.engines.perf_command import PerfCommand
from isobench_ray.schema import MAY_BE_INFINITE


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
    server_flags: frozenset[str] = perf_command.SERVER_FLAGS
    # benchmark script or module -> the flags that make it write its result as JSON to {path}
    json_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # module or subcommand -> the file in the tree that defines its flags (for json_result_flags)
    module_files: dict[str, str] = field(default_factory=dict)
    metric_directions: tuple[tuple[str, bool], ...] = METRIC_DIRECTIONS
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
        # only these three are placeholders: a shell's ${VAR} or a JSON flag's braces stay as written
        values = {"model": model or "", "host": host, "port": str(port)}
        return re.sub(r"\{(model|host|port)\}", lambda m: values[m.group(1)], template)

    def analyze(self, command: str | None, *, model: str | None = None, declared_kind: str | None = None) -> PerfCommand:
        """The perf command split into client and server flags, with every problem found."""
        return perf_command.analyze(command, model=model, declared_kind=declared_kind, server_flags=self.server_flags)

    def bench_kind(self, argv: list[str]) -> str | None:
        return perf_command.script_kind(argv)[0]

    def json_output_flags(self, command: str, path: str) -> list[str]:
        """Flags to append so the benchmark also writes its result as JSON to `path` ([] when unknown)."""
        _, argv = perf_command.split_env(command.split())
        _, script = perf_command.script_kind(argv)
        for pattern, flags in self.json_flags.items():
            if re.search(pattern, script):
                return [f.format(path=path, dir=path.rsplit("/", 1)[0] or ".", name=path.rsplit("/", 1)[-1]) for f in flags]
        return []

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
        _, argv = perf_command.split_env(shlex.split(command))
        _, script = perf_command.script_kind(argv)
        if script.endswith(".py"):
            return script
        return self.module_files.get(script)

    def json_result_flags(self, command: str, path: str, script_source: str | None) -> tuple[list[str], str]:
        """(flags that make this benchmark write its result as JSON to `path`, why not when []). Flags are used
        only when the script's own source defines every one of them: an older script would stop on an
        unknown argument. Without them the result is read from the output text."""
        flags = self.json_output_flags(command, path)
        if not flags:
            return [], "this benchmark form writes no JSON result"
        if script_source is None:
            return [], "the benchmark script is not in the tree"
        missing = [f for f in flags if f.startswith("--") and not re.search(rf"""["']{re.escape(f)}["']""", script_source)]
        if missing:
            return [], f"the script at this commit has no {' '.join(missing)}"
        return flags, ""

    def parse(self, output: str | None, json_data: dict | None = None, *, num_prompts: int | None = None) -> dict:
        """Metrics of a benchmark's output; NoMetricsError when there are none, BadMetrics when one is not a number."""
        return check_metrics(parsing.parse_metrics(output, json_data=json_data, num_prompts=num_prompts), output)

    def higher_is_better(self, metric: str) -> bool:
        for pattern, higher in self.metric_directions:
            if re.fullmatch(pattern, metric):
                return higher
        raise UnknownMetric(f"engine {self.name}: unknown metric {metric!r}; known: {self.known_metrics()}")

    def knows_metric(self, metric: str) -> bool:
        return any(re.fullmatch(p, metric) for p, _ in self.metric_directions)

    def known_metrics(self) -> str:
        return " | ".join(p for p, _ in self.metric_directions)

    def primary_metric(self, kind: str, metrics: dict) -> str | None:
        return next((m for m in PRIMARY_METRICS.get(kind, ()) if m in metrics), None)
