"""Inference servers for serving benchmarks: start from the task's template, wait until healthy, stop."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from isobench_ray.models import FailureCause, Task
from isobench_ray.sandbox import Process, Sandbox, tail


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_command(task: Task, host: str, port: int) -> str:
    assert task.repo.server_command, f"task {task.id}: no server command"
    return task.repo.server_command.format(model=task.model or "", host=host, port=port)


def wait_healthy(proc: Process, url: str, timeout_s: float) -> tuple[FailureCause | None, str]:
    """None when `url` answers 200; otherwise server_crash (it exited) or server_timeout, with the log tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            return FailureCause.server_crash, f"server exited with code {code} before it answered:\n{tail(proc.output(), 15)}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return None, ""
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    return FailureCause.server_timeout, f"no answer from {url} within {timeout_s:.0f}s:\n{tail(proc.output(), 15)}"


def start_server(sandbox: Sandbox, task: Task, tree: Path, host: str, log_path: Path,
                 env: dict[str, str] | None = None) -> tuple[Process, str, int]:
    port = free_port(host)
    command = server_command(task, host, port)
    return sandbox.start(command, cwd=tree, env=env, log_path=log_path), command, port

