"""A large simulated run killed half-way resumes with no attempt lost or repeated (issue: scale).

The real driver (cluster/driver.py) on a local Ray with 16 logical GPUs, stages that do nothing
(cluster/simulate.py, scale 0), 10,000 attempts (the issue's size; ISOBENCH_SCALE_ATTEMPTS=1000 for a quick
look): killed with everything it started once half of the records are written, then run again to the end.
Every attempt has exactly one record, and the index says each was written once: the resumed driver redid
none of the first half. 8 minutes here for both runs (about 50 ms of Ray's calls per attempt on 2 cores),
so it is marked `scale`: `make test-scale`, which CI runs, not `make test`.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.scale, pytest.mark.timeout(3600)]

ATTEMPTS = int(os.environ.get("ISOBENCH_SCALE_ATTEMPTS", "10000"))

DRIVER = textwrap.dedent("""
    import sys, ray
    from isobench_ray.cluster import simulate
    from isobench_ray.cluster.driver import Driver
    from isobench_ray.pipeline import plan_attempts
    from isobench_ray.config import Settings
    from isobench_ray.store import RunStore
    ray.init(num_cpus=32, num_gpus=16, include_dashboard=False)  # logical: 16 slot actors of a CPU each, 16 sessions
    plan = plan_attempts(simulate.tasks(int(sys.argv[2])), [simulate.SimAgent()])
    Driver(RunStore(sys.argv[1], background_writes=True), plan,
           Settings(agent_concurrency=16, work_dir=sys.argv[1] + "-work"), stages=simulate.stages(0.0),
           show_progress=False).run()
""")


def _index_lines(path) -> list[dict]:
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:  # the line the kill cut short
            continue
    return lines


def test_a_run_killed_at_half_resumes_with_nothing_lost_or_repeated(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    out = tmp_path / "run"
    index = out / "index.jsonl"
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(ATTEMPTS)], env=env, start_new_session=True)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline and proc.poll() is None:
        if index.exists() and index.stat().st_size and len(_index_lines(index)) >= ATTEMPTS // 2:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    before = {line["id"] for line in _index_lines(index)}
    assert ATTEMPTS // 2 <= len(before) < ATTEMPTS, len(before)

    subprocess.run([sys.executable, str(script), str(out), str(ATTEMPTS)], env=env, check=True, timeout=1800)
    written = Counter(line["id"] for line in _index_lines(index) if not line.get("cleared"))
    records = {p.parent.name for p in out.glob("attempts/*/record.json")}
    assert len(records) == len(written) == ATTEMPTS  # nothing lost
    assert [aid for aid, n in written.items() if n > 1] == []  # nothing measured twice
