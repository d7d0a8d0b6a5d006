"""The Docker engine's client: one per engine URL and process (a factory only holds the URL, so it pickles)."""

from __future__ import annotations

import os
import threading
from typing import Any

from isobench_ray.sandbox.base import SandboxUnavailable

LABEL = "isobench"  # every container and built image of this package carries isobench=1

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def default_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def client_for(base_url: str | None):
    """The engine's client, pinged once; SandboxUnavailable when it cannot be reached."""
    url = base_url or default_host()
    with _lock:
        if url in _clients:
            return _clients[url]
        try:
            import docker
        except ImportError:
            raise SandboxUnavailable("the docker sandbox needs the docker Python package (pip install docker)") from None
        try:
            client = docker.DockerClient(base_url=url, timeout=120)
            client.ping()
        except Exception as exc:
            raise SandboxUnavailable(f"cannot reach the Docker engine at {url}: {exc}") from None
        _clients[url] = client
        return client
