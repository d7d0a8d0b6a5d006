"""Inference servers for serving benchmarks: start from the engine's template in a sandbox, wait until it
answers its readiness path (polled from where the server runs), stop.

A port is chosen free and can still be taken before the server binds it (another slot's server, any
process): a server that dies with "address already in use" is started again on another port.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from isobench_ray.engines.base import Engine
from isobench_ray.sandbox.base import Process, Sandbox, tail
from isobench_ray.schema import FailureCause, Task

PORT_TRIES = 3
_PORT_TAKEN = ("address already in use", "errno 98", "eaddrinuse")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: Process
    command: str
    port: int
    failure: tuple[FailureCause, str] | None = None  # why it never answered

    def stop(self) -> str:
        """Stop it and its whole tree; returns its log."""
        self.process.stop()
        return self.process.output()


def wait_ready(sandbox: Sandbox, proc: Process, url: str, timeout_s: float) -> tuple[FailureCause, str] | None:
    """None once `url` answers 200; otherwise server_crash (it exited) or server_timeout, with the log tail."""
    poll = Retrying(retry=retry_if_result(lambda done: not done), wait=wait_fixed(0.1), stop=stop_after_delay(timeout_s),
                    retry_error_callback=lambda _: False)
    if not poll(lambda: proc.poll() is not None or sandbox.http_status(url) == 200):
        return FailureCause.server_timeout, f"no answer from {url} within {timeout_s:.0f}s:\n{tail(proc.output(), 15)}"
    code = proc.poll()
    if code is not None:
        return FailureCause.server_crash, f"server exited with code {code} before it answered:\n{tail(proc.output(), 15)}"
    return None


def launch(sandbox: Sandbox, engine: Engine, task: Task, tree: Path, host: str, log_path: Path, timeout_s: float,
           cpus: tuple[int, ...] = ()) -> Server:
    """Start the task's server in `tree` and wait for it; `failure` says why it never answered."""
    for _ in range(PORT_TRIES):
        port = free_port(host)
        command = engine.server_command(task.repo.server_command, model=task.model, host=host, port=port, tree=tree)
        server = Server(sandbox.start(command, cwd=tree, log_path=log_path, cpus=cpus or None), command, port)
        server.failure = wait_ready(sandbox, server.process, f"http://{host}:{port}{task.repo.health_path}", timeout_s)
        taken = server.failure and server.failure[0] is FailureCause.server_crash and any(
            words in server.failure[1].lower() for words in _PORT_TAKEN)
        if not taken:
            return server
        server.stop()
    return server
