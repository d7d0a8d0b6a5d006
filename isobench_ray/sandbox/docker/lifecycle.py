"""Containers that never outlive their purpose, and a network that cannot reach the harness.

- **Owner labels.** Every container carries `isobench.run` (the run's folder), `isobench.driver`
  (`host/pid/start time` of the driver that planned it) and `isobench.owner` (the same of the process that
  made it: a Ray worker, or the driver).
- **A deadline the harness keeps pushing.** PID 1 of every container is a loop (`TTL_LOOP`) that ends the
  container (and the engine removes it: `auto_remove`) once the deadline in a host file, bind-mounted
  read-only, has passed, or the hard cap (`docker_time_limit_s`) has. While the process that made the
  container lives, a heartbeat thread pushes the deadline to now + `docker_ttl_margin_s`; a killed
  driver or worker stops pushing, and its containers end within the margin. The command in the container
  cannot move the deadline (the file is on a read-only mount).
- **Orphans.** `reap_orphans` removes every container of this host whose driver or owner process is gone
  (their pid no longer runs with that start time): the next run on the node does it once per engine and
  process, and `isobench clean` on demand.
- **The network.** `network=True` gets a bridge network of the harness's own (`docker_network`, default
  `isobench`: containers cannot reach each other, inter-container traffic off), never the host's: 127.0.0.1
  is the container's own. Before any command, a helper container sharing its network namespace with
  NET_ADMIN (routes.py) adds `prohibit` routes for its gateway (the host), the host's own addresses and
  link-local 169.254.0.0/16 (cloud metadata), so the cluster's ports on this host are out of reach on
  every address; the sandbox's container holds no capability to remove them.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import psutil

from isobench_ray.sandbox.docker.client import LABEL
from isobench_ray.sandbox.docker.scripts import HELPERS

TTL_DIR = "/.isobench-ttl"  # in every container: the deadline file's folder, read-only
# $1: the hard cap (epoch seconds). The deadline file holds epoch seconds; missing or unreadable: the cap alone.
TTL_LOOP = ('cap=$1; while :; do now=$(date +%s); [ "$now" -ge "$cap" ] && exit 0; '
            f'd=$(cat {TTL_DIR}/deadline 2>/dev/null); '
            '[ -n "$d" ] && [ "$d" -gt 0 ] 2>/dev/null && [ "$now" -ge "$d" ] && exit 0; sleep 5; done')
OWN_NETWORKS = ("host", "bridge", "none", "default")  # the engine's own: used as they are, never created


def process_id(pid: int | None = None) -> str:
    """`host/pid/start time` of a process: what tells a live driver from a dead one whose pid was reused."""
    pid = pid or os.getpid()
    try:
        started = int(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        started = 0
    return f"{socket.gethostname()}/{pid}/{started}"


def alive(ident: str) -> bool | None:
    """Whether the process `host/pid/start` still runs; None when it is another host's (cannot tell here)."""
    host, _, rest = ident.partition("/")
    pid, _, started = rest.partition("/")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        return int(psutil.Process(int(pid)).create_time()) == int(started or 0)
    except psutil.NoSuchProcess:
        return False


# ---------------------------------------------------------------- the deadline


@dataclass
class Deadline:
    """The host side of one container's deadline file."""

    folder: Path

    def push(self, margin_s: float) -> None:
        tmp = self.folder / f".deadline.{os.getpid()}"
        tmp.write_text(str(int(time.time() + margin_s)))
        tmp.replace(self.folder / "deadline")  # whole: the loop never reads half a number

    def remove(self) -> None:
        for path in self.folder.glob("*") if self.folder.is_dir() else ():
            path.unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass


class Heartbeat:
    """One thread per process: pushes the deadline of every live container this process made."""

    def __init__(self):
        self._lock = threading.Lock()
        self._live: "weakref.WeakKeyDictionary[Any, tuple[Deadline, float]]" = weakref.WeakKeyDictionary()
        self._thread: threading.Thread | None = None

    def add(self, owner: Any, deadline: Deadline, margin_s: float) -> None:
        deadline.push(margin_s)
        with self._lock:
            self._live[owner] = (deadline, margin_s)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="isobench-container-heartbeat")
                self._thread.start()

    def drop(self, owner: Any) -> None:
        with self._lock:
            entry = self._live.pop(owner, None)
        if entry:
            entry[0].remove()

    def _run(self) -> None:
        while True:
            with self._lock:
                entries = list(self._live.values())
            for deadline, margin_s in entries:
                try:
                    deadline.push(margin_s)
                except OSError:
                    pass
            time.sleep(min(30.0, max(1.0, min((m for _, m in entries), default=60.0) / 4)))


HEARTBEAT = Heartbeat()


# ---------------------------------------------------------------- orphans


def reap_orphans(client, everything: bool = False) -> list[str]:
    """Remove this engine's isobench containers whose driver or owner process is gone (`everything`: all of
    them, whoever runs them). Returns what was removed, with why."""
    removed = []
    for info in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
        labels = info.get("Labels") or {}
        idents = [labels[k] for k in ("isobench.driver", "isobench.owner") if labels.get(k)]
        gone = [i for i in idents if alive(i) is False]
        if not everything and not gone:
            continue
        why = f"its process {gone[0]} is gone" if gone else "asked to remove all"
        name = (info.get("Names") or ["?"])[0].lstrip("/")
        remove_containers(client, [info["Id"]])
        removed.append(f"{name} (run {labels.get('isobench.run', '?')}, {why})")
    return removed


def sweep_deadlines(client, cache_dir: str | Path) -> int:
    """Remove the deadline folders (cache_dir/sandbox-ttl/<name>) of containers this engine no longer has."""
    import docker

    removed = 0
    root = Path(cache_dir) / "sandbox-ttl"
    for folder in root.iterdir() if root.is_dir() else ():
        try:
            client.api.inspect_container(folder.name)
        except docker.errors.NotFound:
            Deadline(folder).remove()
            removed += 1
        except docker.errors.APIError:
            continue
    return removed


def clean_node(host: str | None, cache_dir: str | Path, everything: bool = False) -> list[str]:
    """`isobench clean`: the containers of dead drivers (or all, `everything`) on the engine at `host`, their
    deadline folders, and bubblewrap's empty process cgroups. Returns what was removed, one line each."""
    from isobench_ray.sandbox import limits
    from isobench_ray.sandbox.docker.client import client_for

    limits.sweep()
    client = client_for(host)  # SandboxUnavailable where there is no engine
    removed = [f"container {line}" for line in reap_orphans(client, everything=everything)]
    folders = sweep_deadlines(client, cache_dir)
    return removed + ([f"{folders} deadline folders of gone containers"] if folders else [])


_swept: set[str] = set()
_swept_lock = threading.Lock()


def reap_orphans_once(client, engine: str) -> None:
    """The first container of a run on a node clears the orphans of dead runs (once per engine and process)."""
    with _swept_lock:
        if engine in _swept:
            return
        _swept.add(engine)
    try:
        reap_orphans(client)
    except Exception:  # a container another process is removing at the same moment: the next sweep gets it
        pass


# ---------------------------------------------------------------- the network


_networks: set[tuple[str, str]] = set()


def ensure_network(client, engine: str, name: str) -> str:
    """The network for containers with network=True: the engine's own modes as they are; any other name is a
    bridge network of the harness's, made once (inter-container traffic off)."""
    import docker

    if name in OWN_NETWORKS or name.startswith("container:") or (engine, name) in _networks:
        return name
    if not client.networks.list(names=[name]):
        try:
            client.networks.create(name, driver="bridge", labels={LABEL: "1"}, check_duplicate=True,
                                   options={"com.docker.network.bridge.enable_icc": "false"})
        except docker.errors.APIError as exc:
            if getattr(exc, "status_code", None) != 409:  # 409: another process made it a moment ago
                raise
    _networks.add((engine, name))
    return name


def host_destinations(gateway: str | None) -> list[str]:
    """What a container on a bridge must not reach: the host through its gateway, the host's own addresses
    (seen from here: the same host when the engine is local), link-local (cloud metadata)."""
    from isobench_ray.sandbox.netns import blocked_destinations

    found = set(blocked_destinations())
    if gateway:
        found.add(f"{gateway}/32" if ":" not in gateway else f"{gateway}/128")
    return sorted(found)


def cut_host_off(client, container, image: str, network: str) -> str:
    """Prohibit routes in the container's network namespace, set by a short-lived helper container that
    shares it and holds NET_ADMIN (the sandbox's own container holds no capability, so it cannot undo
    them): '' when in place, else why not."""
    import docker

    from isobench_ray.sandbox.docker.scripts import ROUTES

    gateway = (((container.attrs or {}).get("NetworkSettings") or {}).get("Networks") or {}).get(network, {}).get("Gateway")
    argv = ["python3", "-I", "-c", ROUTES.read_text(), *host_destinations(gateway)]
    try:
        client.containers.run(image, argv, network_mode=f"container:{container.id}", cap_drop=["ALL"], cap_add=["NET_ADMIN"],
                              user="0:0", remove=True, labels={LABEL: "1", "isobench.helper": "routes"},
                              name=f"{container.name}-routes", security_opt=["no-new-privileges"])
    except docker.errors.ContainerError as exc:
        return (exc.stderr or b"").decode(errors="replace").strip()[-500:] or f"exit {exc.exit_status}"
    except docker.errors.DockerException as exc:
        return f"docker: {exc}"
    return ""


# ---------------------------------------------------------------- removal


def remove_containers(client, ids: Sequence[str]) -> list[str]:
    """Kill and remove containers; returns what was running in them."""
    import docker

    killed = []
    for cid in ids:
        try:
            container = client.containers.get(cid)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError:
            container = None
        if container is not None and container.status == "running":
            try:
                top = container.top(ps_args="-eo pid,args")
                procs = [" ".join(p) for p in top.get("Processes") or []]
                # PID 1 (docker-init), the deadline loop and its sleep, and the wrappers are the container's own
                procs = [p for p in procs if "docker-init" not in p and HELPERS not in p and TTL_DIR not in p
                         and not re.search(r"^\d+ sleep \d+$", p)]
            except Exception:
                procs = []
            killed.append(f"container {container.name}" + (f" ({'; '.join(procs)})" if procs else ""))
        try:
            client.api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if getattr(exc, "status_code", None) != 409:  # 409: auto_remove is removing it already
                raise
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                client.api.inspect_container(cid)
            except docker.errors.NotFound:
                break
            time.sleep(0.1)
    return killed


def build_hint(image: str) -> str:
    return f"build it with `isobench images build --image {image}` (docs/docker.md)"
