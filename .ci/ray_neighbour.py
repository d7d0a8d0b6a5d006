"""A Ray head that a person started by hand (a workstation's own) outlives a test run, and the run leaves no
Ray process of its own behind.

    .venv/bin/python .ci/ray_neighbour.py make test

Starts a head with `ray start --head` (its own port and temp folder), runs the command, then checks that
every process of that head is alive and that it still runs a task, and that no Ray process is left that was
neither there before nor the head's. The head is then stopped by its own processes' ids: never `ray stop`,
which would stop every Ray instance on the machine. Exits with the command's status, or 3 when a check fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def ray_processes() -> dict[int, str]:
    found = {}
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if ("/ray/" in line or line.startswith("ray::")) and proc.pid != os.getpid():
            found[proc.pid] = line[:160]
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runs_a_task(address: str, env: dict) -> str:
    probe = ("import ray; ray.init(address=__import__('sys').argv[1], log_to_driver=False); "
             "print(ray.get(ray.remote(lambda: 'alive').remote()))")
    res = subprocess.run([str(BIN / "python"), "-c", probe, address], env=env, capture_output=True, text=True, timeout=300)
    return res.stdout.strip().splitlines()[-1] if res.returncode == 0 and res.stdout.strip() else res.stderr[-800:]


def main(command: list[str]) -> int:
    before = ray_processes()
    port, temp = free_port(), tempfile.mkdtemp(prefix="rayn-", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # the head's and its client's mode, alike (never the tests')
    subprocess.run([str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                    f"--temp-dir={temp}", "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=300)
    time.sleep(2)
    head = {pid: line for pid, line in ray_processes().items() if pid not in before}
    address = f"127.0.0.1:{port}"
    print(f"ray_neighbour: a head at {address} by hand, {len(head)} processes; its first task: {runs_a_task(address, env)}",
          flush=True)
    status = subprocess.run(command).returncode
    problems = []
    gone = [f"{pid} {line}" for pid, line in head.items() if not psutil.pid_exists(pid)]
    if gone:
        problems.append("the hand-started head lost processes:\n  " + "\n  ".join(gone))
    answer = runs_a_task(address, env)
    if answer != "alive":
        problems.append(f"the hand-started head no longer runs a task: {answer}")
    left = {pid: line for pid, line in ray_processes().items() if pid not in before and pid not in head}
    if left:
        problems.append("Ray processes the command left behind:\n  " + "\n  ".join(f"{pid} {line}" for pid, line in left.items()))
    for pid in head:  # the head's own processes only
        try:
            psutil.Process(pid).terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs([p for pid in head if (p := _process(pid))], timeout=15)
    for proc in alive:  # the GCS takes no SIGTERM from outside its own shutdown
        proc.kill()
    for problem in problems:
        print(f"ray_neighbour: {problem}", file=sys.stderr)
    if not problems:
        print(f"ray_neighbour: after `{' '.join(command)}` (exit {status}): the head's {len(head)} processes alive, it "
              f"ran a task again, and no Ray process of the command's is left")
    return status if not problems else 3


def _process(pid: int):
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["make", "test"]))
