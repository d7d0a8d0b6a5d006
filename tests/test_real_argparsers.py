"""The commands the harness derives for each arm are accepted by the benchmark scripts' real argument parsers.

Five real tasks, one of each kind: vLLM serving (vllm-fc542144, benchmarks/benchmark_serving.py), vLLM latency
(vllm-fa63e710, benchmark_latency.py + EngineArgs), vLLM throughput (vllm-d7740ea4, benchmark_throughput.py),
vLLM prefix caching (vllm-2deb029d, benchmark_prefix_caching.py) and SGLang one-batch (sglang-c087ddd6,
`python -m sglang.bench_one_batch` = ServerArgs + BenchArgs). For each, the harness's own stage 3
(ThreeWayBenchmark.run, not a copy of its logic) runs on a two-commit repository whose trees hold the vendored
script where the task's command expects it, with a recording sandbox that runs no benchmark: every client
command the stage would run, per arm (baseline, human, agent), is captured with the JSON-result flags,
--host/--port (serving) and client warm-up flags exactly as the stage appends them. Each captured argv is
then parsed by the real parser of that script and must be accepted whole (an unknown or ambiguous flag, a
value of the wrong type or a missing required flag fails the test), and its key values must survive: the
model, the workload sizes, the result file in the harness's results folder outside every tree, the slot's
host and the server's port.

How the real parsers are built without torch, vllm or sglang (the scripts import them at the top):
the vendored files (tests/fixtures/argparsers/, verbatim from the PyPI releases named in SOURCES.md there,
with their Apache-2.0 notice) are read with `ast`, never imported. The statements that build the parser are
replayed in source order against a fresh argparse.ArgumentParser: in the script's `if __name__ ==
"__main__":` block, every `<p>.add_argument(...)`, `<g> = <p>.add_argument_group(...)` /
`add_mutually_exclusive_group(...)`, and `<Class>.add_cli_args(parser)` (EngineArgs, ServerArgs, BenchArgs),
which replays that method of the vendored class the same way (a class that is not vendored fails the test).
Flag names, nargs, action, const, required and literal type/choices/default come from the real code
(module-level literals of the vendored files are resolved too). What cannot be resolved without the engine
is made permissive: a name from an import or a class attribute (`choices=list(ASYNC_REQUEST_FUNCS)`,
`default=EngineArgs.model`, `type=nullable_str`, `action=StoreBoolean` from vllm.utils) means no choices,
default None, a plain string type and argparse's own store action with the real nargs/const; help texts
are dropped.
vLLM's FlexibleArgumentParser differs from argparse only by also accepting underscores in flag names
(the harness derives dashed names), so plain argparse stands in for it.

The vLLM server's flags are checked too, for the serving tasks whose perf command names server flags (which the
loader moves to the server command): each arm's server command, as the stage starts it, must pass the real
parser of `python -m vllm.entrypoints.openai.api_server` at the release nearest the task's parent commit
(cli_args.make_arg_parser, which replays AsyncEngineArgs/EngineArgs.add_cli_args), and keep the moved values.
SGLang's launch_server is not replayed (the SGLang task here has no server).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import QUICK_BENCH, git, settings_under

from isobench_ray.engines.perf_command import script_kind, split_env
from isobench_ray.sandbox.base import ExecResult
from isobench_ray.schema import Attempt, BenchSlot, NoopSpec
from isobench_ray.stages.benchmark import ARMS, ThreeWayBenchmark
from isobench_ray.tasks import load_tasks

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "argparsers"


# ---------------------------------------------------------------- the real parsers, replayed from the source

class _Unresolved:
    """A name the vendored code imports (or a class attribute of it): any attribute or call of it is unresolved too."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self


UNRESOLVED = _Unresolved()


class _Names(dict):
    """The vendored module's resolvable names; a builtin stays a builtin, anything else is unresolved."""

    def __missing__(self, key):
        return getattr(builtins, key, UNRESOLVED)


class ParserRejected(Exception):
    pass


class RealParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so a rejected argv is a test failure with argparse's words."""

    def error(self, message):
        raise ParserRejected(message)


def _has_unresolved(value) -> bool:
    if value is UNRESOLVED:
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_unresolved(v) for v in value)
    if isinstance(value, dict):
        return any(_has_unresolved(k) or _has_unresolved(v) for k, v in value.items())
    return False


class _Source:
    """The vendored files of one release: their module-level literals and add_cli_args methods."""

    def __init__(self, folder: Path):
        self.trees = {p.relative_to(folder).as_posix(): ast.parse(p.read_text(), str(p)) for p in folder.rglob("*.py")}
        self.names: dict = {"argparse": argparse, "json": json}
        self.methods: dict[str, ast.FunctionDef] = {}
        self.functions: dict[str, ast.FunctionDef] = {}  # module-level ones (make_arg_parser of cli_args.py)
        for tree in self.trees.values():
            for node in tree.body:
                if isinstance(node, ast.FunctionDef):
                    self.functions[node.name] = node
                elif isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef) and item.name == "add_cli_args":
                            self.methods[node.name] = item
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        value = self.eval(node.value)
                    except Exception:
                        continue
                    if not _has_unresolved(value):
                        self.names[node.targets[0].id] = value

    def eval(self, node: ast.expr):
        code = compile(ast.Expression(node), "<vendored>", "eval")
        return eval(code, {"__builtins__": __builtins__}, _Names(self.names))  # noqa: S307 - literals of the fixtures

    def value(self, node: ast.expr):
        try:
            value = self.eval(node)
        except Exception:
            return UNRESOLVED
        return UNRESOLVED if _has_unresolved(value) else value

    def main_block(self, script: str) -> list[ast.stmt]:
        for node in self.trees[script].body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                return node.body
        raise AssertionError(f"{script}: no `if __name__ == '__main__':` block")

    def build(self, script: str) -> RealParser:
        parser = RealParser(prog=script)
        self._replay(self.main_block(script), {"parser": parser}, parser)
        return parser

    def build_from(self, function: str) -> RealParser:
        """The parser a module-level function builds on the one it is given: vLLM's api_server runs
        `parser = make_arg_parser(FlexibleArgumentParser(...))` in its __main__ block (api_server.py itself is
        not vendored: that one line is all of its parser)."""
        parser = RealParser(prog=function)
        target = self.functions[function]
        self._replay(target.body, {target.args.args[0].arg: parser}, parser)
        return parser

    def _replay(self, body: list[ast.stmt], receivers: dict, parser: RealParser) -> None:
        for stmt in body:
            for node in _calls_in_order(stmt):
                func = node.func
                if isinstance(func, ast.Name) and func.id in self.functions and node.args:
                    target = self.functions[func.id]  # a helper the parser is handed to
                    if ast.unparse(node.args[0]) in receivers:
                        self._replay(target.body, {target.args.args[0].arg: receivers[ast.unparse(node.args[0])]}, parser)
                    continue
                if not isinstance(func, ast.Attribute) or not isinstance(func.value, ast.Name):
                    continue
                owner, method = func.value.id, func.attr
                if method == "add_cli_args":
                    assert owner in self.methods, f"{owner}.add_cli_args is called but not vendored"
                    target = self.methods[owner]
                    self._replay(target.body, {target.args.args[0].arg: parser}, parser)
                elif method in ("add_argument_group", "add_mutually_exclusive_group", "add_argument"):
                    receiver = receivers.get(owner)
                    assert receiver is not None, f"{method} on unknown object {owner!r}: {ast.unparse(node)[:120]}"
                    made = self._call(receiver, method, node)
                    if method != "add_argument":
                        receivers[_assigned_name(stmt, node)] = made

    def _call(self, receiver, method: str, node: ast.Call):
        args = [self.eval(a) for a in node.args]  # flag names and group titles: literals, or the test fails
        assert all(isinstance(a, str) for a in args), ast.unparse(node)[:200]
        kwargs = {}
        for kw in node.keywords:
            if kw.arg == "help":
                continue
            value = self.value(kw.value)
            if value is UNRESOLVED:
                if kw.arg in ("choices", "type", "action", "metavar"):
                    continue
                value = None  # default, const
            kwargs[kw.arg] = value
        return getattr(receiver, method)(*args, **kwargs)


def _calls_in_order(stmt: ast.stmt):
    """The calls of a statement in source order (ast.walk is breadth-first), not entering nested functions."""
    found = []

    class Visitor(ast.NodeVisitor):
        def visit_Call(self, node):
            self.generic_visit(node)
            found.append(node)

        def visit_FunctionDef(self, node):
            pass

        visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = visit_FunctionDef

    Visitor().visit(stmt)
    return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def _assigned_name(stmt: ast.stmt, call: ast.Call) -> str:
    assert isinstance(stmt, ast.Assign) and stmt.value is call and isinstance(stmt.targets[0], ast.Name), ast.unparse(stmt)
    return stmt.targets[0].id


# ---------------------------------------------------------------- the stage's commands, recorded

@dataclass
class _Proc:
    command: str

    def poll(self):
        return None

    def stop(self, grace_s: float = 5.0):
        pass

    def output(self):
        return ""

    def cpu_seconds(self):
        return 0.0


@dataclass
class _Only:
    """A sandbox factory that hands out one sandbox, and isolates nothing."""

    sandbox: "RecordingSandbox"
    kind: str = "local"
    can_isolate: bool = False

    def __call__(self, *args, **kwargs) -> "RecordingSandbox":
        return self.sandbox


@dataclass
class RecordingSandbox:
    """Runs git for the stage (argv lists) and records every benchmark command (shell lines) instead of running it."""

    script: str | None  # the .py script whose text each arm's tree holds when its command runs
    execs: list[tuple[str, str, str | None]] = field(default_factory=list)  # (arm, command, script text)
    starts: list[tuple[str, str]] = field(default_factory=list)
    tag: str = "rec"
    kind: str = "local"
    enforces_network: bool = False
    isolated: bool = False

    def exec(self, command, *, cwd, timeout_s, env=None, log_path=None, cpus=None):
        if not isinstance(command, str):
            res = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
            return ExecResult(res.returncode, res.stdout + res.stderr, False, 0.0)
        text = (Path(cwd) / self.script).read_text() if self.script else None
        self.execs.append((Path(cwd).name, command, text))
        return ExecResult(1, "recorded, not run", False, 0.01)

    def start(self, command, *, cwd, env=None, log_path, cpus=None):
        self.starts.append((Path(cwd).name, command))
        return _Proc(command)

    def http_status(self, url, timeout_s=2.0):
        return 200

    def read_file(self, path):
        return Path(path).read_bytes()  # the result file was never written: OSError, as when a script writes none

    def write_file(self, path, data):
        Path(path).write_bytes(data.encode() if isinstance(data, str) else data)

    def reap_idle(self):
        return []

    def cleanup(self):
        return []


@dataclass
class Case:
    task_id: str
    release: str  # folder under tests/fixtures/argparsers
    script: str  # the vendored file that builds the parser (its __main__ block)
    tree_path: str  # where the task's command finds it in a tree
    json_result: bool  # the stage adds JSON-result flags (the script at this version defines them)


CASES = [
    Case("vllm-fc542144", "vllm-0.7.1", "benchmarks/benchmark_serving.py", "benchmarks/benchmark_serving.py", True),
    Case("vllm-fa63e710", "vllm-0.7.0", "benchmarks/benchmark_latency.py", "benchmarks/benchmark_latency.py", True),
    Case("vllm-d7740ea4", "vllm-0.6.2", "benchmarks/benchmark_throughput.py", "benchmarks/benchmark_throughput.py", True),
    Case("vllm-2deb029d", "vllm-0.6.2", "benchmarks/benchmark_prefix_caching.py", "benchmarks/benchmark_prefix_caching.py", False),
    Case("sglang-c087ddd6", "sglang-0.4.6.post5", "sglang/bench_one_batch.py", "python/sglang/bench_one_batch.py", True),
]


@pytest.fixture(scope="module")
def tasks():
    loaded = load_tasks(ROOT / "tasks" / "vllm.yaml").tasks + load_tasks(ROOT / "tasks" / "sglang.yaml").tasks
    return {t.id: t for t in loaded}


def _run_stage(tmp_path: Path, task, case: Case):
    """Stage 3 on a two-commit repository holding the vendored script; the commands it would run, per arm."""
    script_text = (FIXTURES / case.release / case.script).read_text()
    repo = tmp_path / "repo"
    (repo / case.tree_path).parent.mkdir(parents=True)
    (repo / case.tree_path).write_text(script_text)
    (repo / "engine.py").write_text("SLOW = True\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "parent")
    parent = git(repo, "rev-parse", "HEAD")
    (repo / "engine.py").write_text("SLOW = False\n")
    (repo / case.tree_path).write_text(script_text + "\n# the human commit's copy: never run for a .py script\n")
    git(repo, "commit", "-qam", "human")
    human = git(repo, "rev-parse", "HEAD")
    fake = task.model_copy(update={"repo": task.repo.model_copy(update={"url": str(repo), "setup_command": None, "wheel": None}),
                                   "parent_commit": parent, "human_commit": human})
    patch = "--- a/engine.py\n+++ b/engine.py\n@@ -1 +1 @@\n-SLOW = True\n+SLOW = False\n"
    settings = settings_under(tmp_path, **QUICK_BENCH)
    sandbox = RecordingSandbox(script=case.tree_path if case.tree_path.startswith("benchmarks/") else None)
    bench = ThreeWayBenchmark(BenchSlot(name="rec", cpus=(0,)), settings, sandboxes=_Only(sandbox))
    measurements, logs = bench.run(Attempt.make(fake, NoopSpec(name="rec"), 0, "x"), fake, patch)
    return sandbox, measurements, logs, settings, script_text


def _client_argv(command: str, case: Case) -> tuple[dict, list[str]]:
    """(env, the argv the script's parser sees) of a recorded shell line."""
    env, argv = split_env(shlex.split(command))
    _, script = script_kind(argv)
    assert script in (case.tree_path, case.tree_path.replace("python/", "").replace("/", ".").removesuffix(".py"))
    start = argv.index("-m") + 2 if "-m" in argv[:2] else argv.index(script) + 1
    return env, argv[start:]


def _outside_trees(path: str, work: Path) -> None:
    p = Path(path)
    assert p.is_absolute() and p.parent.name == "results"
    for arm in (*ARMS, "baseline2"):
        assert not p.is_relative_to(p.parent.parent / arm)
    assert p.is_relative_to(work)


@pytest.mark.parametrize("case", CASES, ids=[c.task_id for c in CASES])
def test_derived_client_commands_pass_the_real_parser(case: Case, tasks, tmp_path):
    started = time.monotonic()
    task = tasks[case.task_id]
    parser = _Source(FIXTURES / case.release).build(case.script)
    sandbox, measurements, logs, settings, script_text = _run_stage(tmp_path, task, case)

    runs = {arm: [(cmd, text) for a, cmd, text in sandbox.execs if a == arm] for arm in ARMS}
    assert all(len(cmds) == 1 for cmds in runs.values()), sandbox.execs  # one run each, then the arm stopped
    assert {a.arm: a.failure_cause.value for a in measurements.arms} == dict.fromkeys(ARMS, "bench_error")  # no result: recorded only
    parsed = {}
    for arm, [(command, text)] in runs.items():
        if text is not None:  # a .py script: every arm runs the baseline's copy
            assert text == script_text, f"{arm} ran another script than the baseline's"
        env, argv = _client_argv(command, case)
        assert env == split_env(shlex.split(task.benchmark.command))[0]  # VLLM_USE_V1=1 and the like stay
        try:
            args = parser.parse_args(argv)
        except ParserRejected as exc:
            pytest.fail(f"{case.task_id} {arm}: the real {case.script} ({case.release}) rejects {shlex.join(argv)}: {exc}")
        parsed[arm] = (argv, args)

    work = Path(settings.paths.work)
    for arm, (_argv, args) in parsed.items():
        model = args.model_path if case.release.startswith("sglang") else args.model
        assert model == task.model
        if case.json_result:
            result = (Path(args.result_dir) / args.result_filename if case.task_id == "vllm-fc542144"
                      else Path(args.output_json if case.release.startswith("vllm") else args.result_filename))
            _outside_trees(str(result), work)
            assert result.name == f"{arm}.r0.0.json"
        else:
            assert "bench/metrics_source.txt" in logs and "has no --output-json" in logs["bench/metrics_source.txt"]
        check = CHECKS[case.task_id]
        check(args, arm=arm, settings=settings, sandbox=sandbox)
    # every arm runs the same workload: the argv differ only in the result file's name
    # (and its own results folder, beside its tree)
    normalized = {arm: [t.replace(f"{arm}.r0.0", "ARM").replace(f"/io/{arm}/", "/io/ARM/") for t in argv]
                  for arm, (argv, _) in parsed.items()}
    for arm, (argv, _) in parsed.items():  # and the port of the arm's own server
        if "--port" in argv:
            normalized[arm][argv.index("--port") + 1] = "PORT"
    assert normalized["baseline"] == normalized["human"] == normalized["agent"]
    assert time.monotonic() - started < 15


def _serving(args, *, arm, settings, sandbox):
    assert args.save_result is True and args.num_prompts == 100 and args.dataset_name == "random"
    assert args.backend == "vllm"  # the script's default
    assert args.host == settings.sandbox.host
    [server] = [cmd for a, cmd in sandbox.starts if a == arm]
    assert args.port == int(shlex.split(server)[shlex.split(server).index("--port") + 1])
    assert server == (f"python -m vllm.entrypoints.openai.api_server --model meta-llama/Llama-3.1-8B-Instruct "
                      f"--host {settings.sandbox.host} --port {args.port}")
    assert not hasattr(args, "num_warmups")  # 0.7.1 has no --num-warmups, so the harness adds none


def _latency(args, **_):
    assert (args.input_len, args.batch_size, args.tensor_parallel_size) == (1000, 32, 1)
    assert args.output_len == 128  # the script's default, untouched


def _throughput(args, **_):
    assert (args.input_len, args.output_len, args.num_prompts, args.backend) == (256, 256, 1000, "vllm")


def _prefix_caching(args, **_):
    assert args.output_len == 200 and args.enable_prefix_caching is True


def _one_batch(args, **_):
    # `--input`, `--output`, `--tp` and `--model` are unique prefixes of the real flags (argparse abbreviations)
    assert (args.batch_size, args.input_len, args.output_len, args.tensor_parallel_size) == ([1], [128], [256], 1)
    assert args.trust_remote_code is True


CHECKS = {"vllm-fc542144": _serving, "vllm-fa63e710": _latency, "vllm-d7740ea4": _throughput,
          "vllm-2deb029d": _prefix_caching, "sglang-c087ddd6": _one_batch}


def test_the_replayed_parsers_hold_the_real_flags():
    """The replay is not vacuous: whole flag sets arrive (EngineArgs through add_cli_args included), with the
    real nargs, types and actions, and an unknown flag is rejected."""
    serving = _Source(FIXTURES / "vllm-0.7.1").build("benchmarks/benchmark_serving.py")
    flags = {s for a in serving._actions for s in a.option_strings}
    assert {"--save-result", "--result-dir", "--result-filename", "--host", "--port", "--random-input-len"} <= flags
    assert next(a for a in serving._actions if "--metadata" in a.option_strings).nargs == "*"
    latency = _Source(FIXTURES / "vllm-0.7.0").build("benchmarks/benchmark_latency.py")
    flags = {s for a in latency._actions for s in a.option_strings}
    assert {"--output-json", "--model", "--tensor-parallel-size", "-tp", "--enable-chunked-prefill"} <= flags
    source = _Source(FIXTURES / "vllm-0.7.0")
    calls = [n for body in (source.main_block("benchmarks/benchmark_latency.py"), source.methods["EngineArgs"].body)
             for stmt in body for n in _calls_in_order(stmt) if getattr(n.func, "attr", "") == "add_argument"]
    assert len(latency._actions) == 1 + len(calls) > 100  # -h, then every add_argument of the script and EngineArgs
    chunked = next(a for a in latency._actions if "--enable-chunked-prefill" in a.option_strings)
    assert (chunked.nargs, chunked.const) == ("?", "True")  # StoreBoolean's own nargs/const; argparse's store action
    one_batch = _Source(FIXTURES / "sglang-0.4.6.post5").build("sglang/bench_one_batch.py")
    model = next(a for a in one_batch._actions if "--model-path" in a.option_strings)
    assert model.required and next(a for a in one_batch._actions if "--batch-size" in a.option_strings).type is int
    with pytest.raises(ParserRejected, match="unrecognized arguments: --no-such-flag"):
        latency.parse_args(["--model", "m", "--no-such-flag"])
    with pytest.raises(ParserRejected, match="required"):
        one_batch.parse_args(["--batch-size", "1"])
    # the servers' parsers: frontend flags and the engine's, and each release's own set
    old, new = (_Source(FIXTURES / r).build_from("make_arg_parser") for r in ("vllm-0.6.0", "vllm-0.8.0"))
    assert next(a for a in new._actions if "--num-speculative-tokens" in a.option_strings).type is int
    assert new.parse_args(["--model", "m", "--enable-reasoning", "--reasoning-parser", "deepseek_r1"]).enable_reasoning is True
    with pytest.raises(ParserRejected, match="unrecognized arguments: --enable-reasoning"):
        old.parse_args(["--model", "m", "--enable-reasoning"])  # added after 0.6.0


# Serving tasks whose perf command names server flags (the loader moves them to the server command, the same for
# every arm), each against the real parser of vLLM's OpenAI server at the release nearest its parent commit:
# cli_args.make_arg_parser (frontend flags) + AsyncEngineArgs/EngineArgs.add_cli_args, vendored from the sdist.
SERVER_CASES = {
    "vllm-fc542144": ("vllm-0.7.1", {}),
    "vllm-e3580537": ("vllm-0.6.0", {"enable_prefix_caching": True, "max_num_batched_tokens": 2048}),
    "vllm-e206b543": ("vllm-0.7.3", {"guided_decoding_backend": "xgrammar"}),
    "vllm-99abb8b6": ("vllm-0.8.0", {"speculative_model": "[ngram]", "num_speculative_tokens": 3}),
}


@pytest.mark.parametrize("task_id", list(SERVER_CASES))
def test_derived_server_commands_pass_the_real_server_parser(task_id, tasks, tmp_path):
    release, expected = SERVER_CASES[task_id]
    task = tasks[task_id]
    parser = _Source(FIXTURES / release).build_from("make_arg_parser")
    # the client script only decides the JSON-result flags here; the server command is what is checked
    client = Case(task_id, "vllm-0.7.1", "benchmarks/benchmark_serving.py", "benchmarks/benchmark_serving.py", True)
    sandbox, _, _, settings, _ = _run_stage(tmp_path, task, client)
    servers = {}
    for arm, command in sandbox.starts:
        _, argv = split_env(shlex.split(command))
        assert argv[:3] == ["python", "-m", "vllm.entrypoints.openai.api_server"], command
        try:
            args = parser.parse_args(argv[3:])
        except ParserRejected as exc:
            pytest.fail(f"{task_id} {arm}: vLLM {release}'s server parser rejects {shlex.join(argv[3:])}: {exc}")
        servers[arm] = (argv[3:], args)
    assert set(servers) == set(ARMS)
    for arm, (_, args) in servers.items():
        assert (args.model, args.host) == (task.model, settings.sandbox.host)
        assert {name: getattr(args, name) for name in expected} == expected, arm
    normalized = {arm: [("PORT" if i and argv[i - 1] == "--port" else t) for i, t in enumerate(argv)]
                  for arm, (argv, _) in servers.items()}
    assert normalized["baseline"] == normalized["human"] == normalized["agent"]  # one server setup for every arm
