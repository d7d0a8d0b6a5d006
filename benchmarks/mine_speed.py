"""How fast `isobench mine` finds candidates without a model: a synthetic history of N commits.

    .venv/bin/python benchmarks/mine_speed.py [--commits 3000] [--functions 20] [--cli]

Builds a repository in a temporary folder with one `git fast-import` (40 small Python modules of --functions
functions each; every commit rewrites one to three functions of one to three modules, and a mix of messages
and kinds: performance commits, features, fixes, docs-only, tests-only, version bumps, reverts, a large
refactor now and then), then times `mine()` on it from a cold output folder, and a second run that resumes
it (nothing left to look at). Prints commits per second and the seconds. --cli also times the command
line (`isobench mine`, its own process: the imports included).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from isobench_ray.mine import MinedFiles, MineOptions, mine

MODULES = 40
PERF = ["[Perf] Speed up {f}", "Optimize {f} for large batches", "[Kernel] Vectorize {f}", "Avoid a copy in {f}",
        "[Core] Reduce the overhead of {f}", "Make {f} faster with a cache"]
OTHER = ["[Bugfix] Fix {f} for empty input", "[Feature] Support a new option in {f}", "[Misc] Rename a variable in {f}",
         "[Refactor] Split {f}", "[Frontend] Add a flag to {f}"]
GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


def module_text(functions: list[int]) -> str:
    return "\n\n".join(f"def f{i}(x):\n    y = x * {value}\n    return y + {i}\n" for i, value in enumerate(functions))


def _commit(stream: list[bytes], mark: int, when: int, message: str, files: dict[str, str]) -> None:
    data = message.encode()
    stream += [b"commit refs/heads/main\n", f"mark :{mark}\n".encode(),
               f"committer Bench <bench@example.com> {when} +0000\n".encode(), f"data {len(data)}\n".encode(), data, b"\n"]
    if mark > 1:
        stream.append(f"from :{mark - 1}\n".encode())
    for path, text in files.items():
        blob = text.encode()
        stream += [f"M 100644 inline {path}\n".encode(), f"data {len(blob)}\n".encode(), blob, b"\n"]


def _change(rng: random.Random, state: dict[str, list[int]], n: int, version: list[int]) -> tuple[str, dict[str, str]]:
    """The n-th commit's message and the files it writes (state: each module's function constants)."""
    kind = rng.choices(["perf", "other", "docs", "tests", "version", "revert", "large"], [30, 45, 8, 8, 3, 3, 3])[0]
    if kind == "docs":
        return "[Doc] Explain the options", {f"docs/page_{n % 7}.md": f"# Page\n\nRevision {n}.\n"}
    if kind == "tests":
        return "[CI/Build] Add a test", {f"tests/test_{n % 11}.py": f"def test_it():\n    assert {n} == {n}\n"}
    if kind == "version":
        version[1] += 1
        return f"[Misc] Bump version to 0.{version[1]}.0", {"pkg/version.py": f'__version__ = "0.{version[1]}.0"\n'}
    touched = rng.sample(sorted(state), 8 if kind == "large" else rng.randint(1, 3))
    for path in touched:
        for i in rng.sample(range(len(state[path])), rng.randint(1, min(3, len(state[path])))):
            state[path][i] = rng.randint(2, 10_000) if kind != "large" else state[path][i] + 1
    function = f"f{rng.randrange(len(state[touched[0]]))}"
    message = {"perf": rng.choice(PERF), "other": rng.choice(OTHER), "revert": 'Revert "[Perf] Speed up {f}"',
               "large": "[Refactor] Move things around"}[kind].format(f=function)
    body = f"{message}\n\nThe change touches {len(touched)} modules (#{1000 + n}).\n"
    return body, {path: module_text(state[path]) for path in touched}


def build_repo(root: Path, commits: int, functions: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    state = {f"pkg/mod_{m:02d}.py": [rng.randint(2, 10_000) for _ in range(functions)] for m in range(MODULES)}
    version = [0, 1]
    stream: list[bytes] = []
    start = 1_700_000_000
    _commit(stream, 1, start, "Initial commit\n", {**{p: module_text(v) for p, v in state.items()},
                                                   "pkg/version.py": '__version__ = "0.1.0"\n', "README.md": "# pkg\n"})
    for n in range(2, commits + 1):
        message, files = _change(rng, state, n, version)
        _commit(stream, n, start + 600 * n, message, files)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=GIT_ENV)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=b"".join(stream), check=True, env=GIT_ENV)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=root, check=True, env=GIT_ENV)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=3000)
    parser.add_argument("--functions", type=int, default=20, help="functions per module")
    parser.add_argument("--cli", action="store_true", help="also time `isobench mine` as its own process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="isobench-mine-speed-") as tmp:
        repo = Path(tmp) / "repo"
        started = time.perf_counter()
        build_repo(repo, args.commits, args.functions)
        print(f"built {args.commits} commits in {time.perf_counter() - started:.1f} s")

        out = Path(tmp) / "out"
        started = time.perf_counter()
        looked_at = mine(MineOptions(repo=repo, out=out))
        seconds = time.perf_counter() - started
        print(f"mine: {looked_at} commits in {seconds:.2f} s = {looked_at / seconds:.0f} commits/s; {MinedFiles(out).summary()}")
        started = time.perf_counter()
        again = mine(MineOptions(repo=repo, out=out))
        print(f"resume: {again} commits to look at, {time.perf_counter() - started:.2f} s")
        if args.cli:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "isobench_ray.cli", "mine", str(repo), "--out", str(Path(tmp) / "cli")],
                           check=True, capture_output=True)
            print(f"isobench mine (its own process, imports included): {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
