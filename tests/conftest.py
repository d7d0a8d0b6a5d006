import os
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM_SAMPLES = ROOT / "tests" / "fixtures" / "upstream-samples"  # the upstream data the tests read (its SOURCES.md)

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


# the private dockerd's session fixtures (tests/dockerd.py): a test that uses one needs a Docker engine and pays
# for starting one (and the base image): it is marked `docker` and `slow` (out of make test-fast)
DOCKERD_FIXTURES = {"docker_host", "docker_image", "docker_sandboxes"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if DOCKERD_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.slow)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, message: str, files: dict[str, str] | None = None) -> str:
    """Write `files` (paths from the repository's root) and commit everything, the repository made on the first
    call; returns the commit."""
    for rel, text in (files or {}).items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def tiny_repo(tmp_path: Path) -> dict:
    """A two-commit repository: `parent` has a slow function, `human` makes it fast."""
    repo = tmp_path / "tiny"
    parent = commit(repo, "initial", {"tiny/__init__.py": "def work(n):\n    return sum(i for i in range(n))\n"})
    human = commit(repo, "[Perf] closed form", {"tiny/__init__.py": "def work(n):\n    return n * (n - 1) // 2\n"})
    return {"path": repo, "parent": parent, "human": human}


@pytest.fixture
def upstream_samples() -> Path:
    """The upstream ISO-Bench data files the tests read, copied into tests/fixtures (never skipped in a clone)."""
    return UPSTREAM_SAMPLES


# a benchmark of two rounds and nothing else (no noise arm, correctness check, warm-up or pinning): stage tests
QUICK_BENCH = dict(rounds=2, max_rounds=2, noise_arm=False, check_correctness=False, warmup_runs=0, pin_cores=False)


def settings_under(base: Path, **overrides):
    """Settings with a private cache (`base`/cache) and work folder (`base`/work), any field overridden;
    for module-scoped fixtures, which cannot use `make_settings`."""
    from isobench_ray.config import Settings

    return Settings(**{"cache_dir": str(Path(base) / "cache"), "work_dir": str(Path(base) / "work"), **overrides})


@pytest.fixture
def make_settings(tmp_path: Path):
    """The tests' one way to make Settings: a private cache and work folder under the test's tmp_path (or
    `base`), any field overridden: `make_settings(rounds=3)`, `make_settings(**QUICK_BENCH)`,
    `make_settings(other_dir)`, `make_settings(work_dir=...)`."""

    def make(base: Path | None = None, **overrides):
        return settings_under(tmp_path if base is None else base, **overrides)

    return make


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1"):
    """A real HTTP server on `host` and a free port, in a thread, answering with `handler`; yields the server
    (its port: `server.server_address[1]`) and shuts it down after."""
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class HelloHandler(BaseHTTPRequestHandler):
    """Answers every GET with `hello from the host`."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the host")

    def log_message(self, *a):
        pass


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 that answers every GET with `hello from the host`; yields its URL."""
    with serve(HelloHandler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
