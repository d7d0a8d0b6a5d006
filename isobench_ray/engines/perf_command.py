"""Reading a task's perf command: which benchmark it runs, which flags belong to the server, what is unusable.

Upstream ISO-Bench commands mix client and server flags (`benchmark_serving.py --dtype float16`), carry
placeholders (`--batch-size BS`), home-directory paths and typos. Every such problem is found here, when a
run is planned, instead of hours later on a GPU. Pure functions.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

# (pattern on the script or module, benchmark kind)
_SCRIPTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(^|/)benchmark_serving\.py$"), "serving"),
    (re.compile(r"^sglang\.bench_serving$"), "serving"),
    (re.compile(r"(^|/)benchmark_latency\.py$"), "latency"),
    (re.compile(r"(^|/)benchmark_prefix_caching\.py$"), "latency"),
    (re.compile(r"^sglang\.bench_one_batch$"), "latency"),
    (re.compile(r"(^|/)benchmark_throughput\.py$"), "throughput"),
    (re.compile(r"^sglang\.bench_offline_throughput$"), "throughput"),
]
_VLLM_BENCH = {"serve": "serving", "latency": "latency", "throughput": "throughput"}

# Engine flags that a serving *client* does not accept: they configure the server, so they move there.
SERVER_FLAGS = frozenset({
    "--dtype", "--tensor-parallel-size", "-tp", "--tp", "--enable-prefix-caching", "--no-enable-prefix-caching",
    "--enable-chunked-prefill", "--max-num-batched-tokens", "--use-v2-block-manager", "--quantization",
    "--speculative-model", "--num-speculative-tokens", "--trust-remote-code", "--max-model-len",
    "--load-format", "--enforce-eager", "--guided-decoding-backend", "--gpu-memory-utilization",
    "--kv-cache-dtype", "--disable-radix-cache", "--lora-paths", "--distributed-executor-backend",
})
_FLAGS_WITHOUT_VALUE = {
    "--enable-prefix-caching", "--no-enable-prefix-caching", "--use-v2-block-manager", "--trust-remote-code",
    "--enforce-eager", "--disable-radix-cache", "--ignore-eos", "--save-result", "--async-engine",
}
# Offline-benchmark flags that a serving client does not have (argparse would stop with an error).
_NOT_SERVING_CLIENT_FLAGS = {"--input-len": "--random-input-len", "--output-len": "--random-output-len",
                             "--batch-size": "--max-concurrency"}
PLACEHOLDERS = {"MODEL", "BS", "INPUT_LEN", "OUTPUT_LEN", "BATCH_SIZE", "TP", "<model>", "{model}"}
_HOME_PATH = re.compile(r"(^|[\s=\"'])(/home/|/root/|/Users/|/data/users/|~/)")
_DATASET_FLAGS = {"--dataset", "--dataset-path"}
_TP_FLAGS = {"-tp", "--tp", "--tp-size", "--tensor-parallel-size"}


def _option(argv: list[str], name: str) -> str | None:
    """The value of a `--flag value` or `--flag=value` option (the last one given), else None."""
    value = None
    for i, token in enumerate(argv):
        if _flag_name(token) == name:
            value = token.split("=", 1)[1] if "=" in token else (argv[i + 1] if i + 1 < len(argv) else "")
    return value


def script_needs_dataset_path(kind: str | None, script: str, argv: list[str]) -> bool:
    """vLLM's serving client reads ShareGPT (its default dataset) only from --dataset-path: without one it
    stops before the first request (`dataset_path must be provided`, or open(None) before 2025). SGLang's
    bench_serving downloads ShareGPT itself, and `vllm bench serve` later made `random` the default, so
    only benchmark_serving.py and an explicit `--dataset-name sharegpt` count."""
    if kind != "serving" or script.startswith("sglang") or _option(argv, "--dataset-path") or _option(argv, "--dataset"):
        return False
    name = _option(argv, "--dataset-name")
    return name == "sharegpt" or (name is None and script.endswith("benchmark_serving.py"))


@dataclass
class Finding:
    field: str
    message: str
    severity: str = "error"  # error: the task cannot run; warning: it runs, changed as described


@dataclass
class PerfCommand:
    """A perf command split into what the harness needs to run it the same way for every arm."""

    kind: str | None
    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)  # client / offline benchmark, without server-only flags
    server_args: list[str] = field(default_factory=list)  # flags moved to the server command
    server_command: str | None = None  # an explicit launch line (SGLang records carry one)
    gpus: int = 1  # GPUs the workload needs (tensor parallelism); the slot must hold that many
    findings: list[Finding] = field(default_factory=list)

    @property
    def command(self) -> str:
        envs = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return shlex.join(self.argv) if not envs else " ".join(envs) + " " + shlex.join(self.argv)


def script_kind(argv: list[str]) -> tuple[str | None, str]:
    """The benchmark kind of a command line and the script/module name it runs."""
    if len(argv) >= 3 and argv[0] == "vllm" and argv[1] == "bench":
        return _VLLM_BENCH.get(argv[2]), f"vllm bench {argv[2]}"
    if argv and re.fullmatch(r"python3?(\.\d+)?", argv[0]):
        if len(argv) >= 3 and argv[1] == "-m":
            target = argv[2]
        else:
            target = next((a for a in argv[1:] if not a.startswith("-")), "")
    else:
        target = argv[0] if argv else ""
    for pattern, kind in _SCRIPTS:
        if pattern.search(target):
            return kind, target
    return None, target


def split_env(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tokens[0]):
        key, _, value = tokens.pop(0).partition("=")
        env[key] = value
    return env, tokens


def _flag_name(token: str) -> str:
    return token.split("=", 1)[0].replace("_", "-") if token.startswith("-") else token


def _one_command(command: str | None) -> tuple[str, str | None] | Finding:
    """The benchmark line and, where the record carries one, the server's launch line; a Finding when there
    is no single benchmark command."""
    if command is None or not str(command).strip():
        return Finding("perf_command", "perf command is missing (null or empty)")
    lines = [ln.strip() for ln in str(command).strip().splitlines() if ln.strip()]
    server_command = None
    # SGLang records sometimes carry "launch_server ...\n\nbench_serving ...": the first is the server.
    launch = [ln for ln in lines if "launch_server" in ln or re.search(r"\bvllm serve\b", ln)]
    if launch and len(lines) > 1:
        server_command = launch[0]
        lines = [ln for ln in lines if ln is not launch[0]]
    if len(lines) > 1:
        return Finding("perf_command", f"perf command holds {len(lines)} commands; expected one benchmark command")
    return lines[0], server_command


def _path_findings(line: str, argv: list[str]) -> list[Finding]:
    """Placeholders and paths that cannot be found in the repository's root, where the benchmark runs."""
    found = []
    placeholders = sorted({t for t in argv if t in PLACEHOLDERS})
    if placeholders:
        found.append(Finding("perf_command", f"placeholder(s) {', '.join(placeholders)} instead of real values"))
    home = _HOME_PATH.search(line)
    if home:
        found.append(Finding("perf_command", f"path from someone's machine ({home.group(2)}...): use a path relative to the repository"))
    if any(t.startswith("../") or "=../" in t or "/../" in t for t in argv):
        found.append(Finding("perf_command", "path outside the repository (../): the benchmark runs in the repository root"))
    if any(t.startswith("/") and t.endswith(".py") for t in argv):
        found.append(Finding("perf_command", "absolute script path: the benchmark script must be a path inside the repository"))
    return found


def _kind(argv: list[str], declared_kind: str | None, found: list[Finding]) -> tuple[str | None, str]:
    """The kind the command runs (the command wins over a declared kind) and its script."""
    kind, script = script_kind(argv)
    if kind is None:
        found.append(Finding("benchmark.kind", f"unknown benchmark script {script!r}: expected vLLM "
                                               "benchmarks/benchmark_{serving,latency,throughput,prefix_caching}.py, "
                                               "`vllm bench serve|latency|throughput`, or "
                                               "sglang.bench_serving|bench_one_batch|bench_offline_throughput"))
    elif declared_kind and declared_kind != kind:
        found.append(Finding("benchmark.kind", f"declared kind {declared_kind!r} contradicts the command, "
                                               f"which runs {script} ({kind}); using {kind}", "warning"))
    return kind, script


def _client_args(argv: list[str], result: PerfCommand, server_flags: frozenset[str]) -> list[str]:
    """The client's arguments: server flags go to `result.server_args`, tensor parallelism to `result.gpus`,
    fixed ports and hosts are dropped, with a finding for each."""
    kind, found = result.kind, result.findings
    client: list[str] = []
    i = 0
    while i < len(argv):
        token, name = argv[i], _flag_name(argv[i])
        takes_value = (name.startswith("-") and "=" not in token and name not in _FLAGS_WITHOUT_VALUE
                       and i + 1 < len(argv) and not argv[i + 1].startswith("--"))
        group = argv[i : i + 2] if takes_value else argv[i : i + 1]
        i += len(group)
        if name in _TP_FLAGS and len(group) == 2 and group[1].isdigit() and int(group[1]) > 1:
            result.gpus = max(result.gpus, int(group[1]))
            found.append(Finding("benchmark.gpus", f"{name} {group[1]}: needs {group[1]} GPUs (tensor parallel); "
                                                   f"recorded as benchmark.gpus = {group[1]}, it runs only on a slot with that many", "warning"))
        if kind == "serving" and name in server_flags:
            result.server_args += group
            continue
        if kind == "serving" and name in _NOT_SERVING_CLIENT_FLAGS:
            found.append(Finding("perf_command", f"{name} is not an option of the serving client (did you mean {_NOT_SERVING_CLIENT_FLAGS[name]}?)"))
        if name in _DATASET_FLAGS and len(group) == 2 and group[1].endswith((".json", ".jsonl")):
            found.append(Finding("perf_command", f"needs the local dataset file {group[1]}, which the task does not provide"))
        if name in {"--port", "--host", "--base-url"} and kind == "serving":
            found.append(Finding("perf_command", f"fixed {name} {group[-1]} is replaced by the benchmark slot's own", "warning"))
            continue
        client += group
    return client


def _finish_client(result: PerfCommand, client: list[str], script: str, argv: list[str], model: str | None) -> list[str]:
    """The last checks on the whole command: a dataset file it needs, the server flags moved, the model."""
    kind, found = result.kind, result.findings
    if script_needs_dataset_path(kind, script, argv):
        found.append(Finding("perf_command", "the ShareGPT dataset (benchmark_serving.py's default) needs --dataset-path, a file the "
                                             "task does not provide; name a dataset that needs no file (e.g. --dataset-name random)"))
    if kind == "serving" and result.server_args:
        found.append(Finding("perf_command", f"server flags {' '.join(result.server_args)} move to the server command, "
                                             "the same for every arm", "warning"))
    if kind and not any(_flag_name(t) in {"--model", "--model-path"} for t in client):
        if model:
            client += ["--model", model]
            found.append(Finding("perf_command", f"no --model in the command; added --model {model}", "warning"))
        else:
            found.append(Finding("model", "no --model in the command and no model field"))
    return client


def analyze(command: str | None, *, model: str | None = None, declared_kind: str | None = None,
            server_flags: frozenset[str] = SERVER_FLAGS) -> PerfCommand:
    """Parse and check a perf command. Never raises: every problem becomes a Finding on `command`."""
    one = _one_command(command)
    if isinstance(one, Finding):
        return PerfCommand(kind=None, findings=[one])
    line, server_command = one
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        return PerfCommand(kind=None, findings=[Finding("perf_command", f"perf command does not parse as a shell command: {exc}")])
    env, argv = split_env(tokens)
    result = PerfCommand(kind=None, env=env, server_command=server_command, findings=_path_findings(line, argv))
    result.kind, script = _kind(argv, declared_kind, result.findings)
    result.argv = _finish_client(result, _client_args(argv, result, server_flags), script, argv, model)
    return result
