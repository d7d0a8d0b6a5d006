import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "upstream-samples"

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


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
def shared_samples() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"upstream samples not found at {SHARED}")
    return SHARED


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 that answers every GET with `hello from the host`; yields its URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello from the host")

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
