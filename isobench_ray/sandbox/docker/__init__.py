"""The Docker sandbox (docs/docker.md): the factory here, and three rooms.

- `sandbox.py`: the container and its processes (exec, start/stop, files);
- `lifecycle.py`: what keeps containers from outliving their purpose (owner labels, the deadline and its
  heartbeat, orphans, removal) and the network that cannot reach the harness;
- `images.py`: the node's images (locate, pull, build by content key, LRU eviction, the base image);
- `scripts/`: the shell helpers copied into every container and the base image's build script (package data);
- `client.py`: one engine client per URL and process.

Containers carry labels (`isobench.tag`, `isobench.slot`, ...) so `cleanup` and `reap` find them. Image work
is not part of the generic SandboxFactory: this factory's `images()` is the node's `ImageStore`
(`sandbox.base.images_of`). `isobench images build` builds the base image.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from isobench_ray.config import BASE_IMAGE, DEFAULT_CACHE_DIR
from isobench_ray.sandbox.base import SandboxUnavailable
from isobench_ray.sandbox.docker.client import LABEL, client_for, default_host
from isobench_ray.sandbox.docker.images import (
    DiskFull,
    ImageStore,
    base_tarball,
    build_script_key,
    ensure_base_image,
    import_base_image,
    recipe_key,
    split_image_name,
)
from isobench_ray.sandbox.docker.lifecycle import Deadline, build_hint, process_id, reap_orphans, reap_orphans_once, remove_containers
from isobench_ray.sandbox.docker.sandbox import DockerProcess, DockerSandbox

# slot and tag variables (reap keys) and the labels that carry them
KEY_LABELS = {"ISOBENCH_TAG": "isobench.tag", "ISOBENCH_SLOT": "isobench.slot"}
STAGE_SUFFIXES = ("validate", "bench")  # tags of the validation and benchmark sandboxes end so


@dataclass(frozen=True)
class DockerSandboxes:
    """The factory of Docker sandboxes for one run: picklable (only settings; the client is made where it
    is used). `passthrough` names host variables that benchmark and validation commands may see."""

    host: str | None = None  # None: DOCKER_HOST, else the local socket (of the machine that runs the stage)
    image: str = BASE_IMAGE
    shm_size: str = "8g"
    time_limit_s: float = 86400.0  # the hard cap of a container's life, whoever keeps it alive
    network_mode: str = "isobench"  # what network=True gets: a bridge of the harness's own, the host cut off
    mounts: tuple[str, ...] = ()  # host folders every container sees at the same path, read-only ("path:rw": writable)
    user: str | None = None  # None: the harness's own uid:gid, so files in the bind mounts stay its own
    run: str = ""  # the run's name, a label
    passthrough: tuple[str, ...] = ()
    min_free_gb: float = 50.0  # under this, images are evicted least recently used first (images.py)
    cache_dir: str = DEFAULT_CACHE_DIR  # where each engine's image-use record lives
    pids_limit: int = 4096  # processes and threads per container
    memory: str | None = None  # per container, Docker's units ("32g"); None: three quarters of the node's memory
    tmp_size: str = "2g"  # the container's /tmp, a tmpfs (counted in its memory)
    cap_add: tuple[str, ...] = ()  # capabilities given back (none is needed by the sandbox itself)
    ttl_margin_s: float = 600.0  # a container outlives the process that made it by at most this
    endpoints: tuple[str, ...] = ()  # the agent's model endpoints (sandbox.base.with_agent): a port on this host's loopback is forwarded
    driver: str = field(default_factory=process_id)  # host/pid/start of the process that made the factory: the driver
    kind: str = "docker"
    can_isolate: bool = True
    extra_labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __call__(self, tag: str, *, writable: Sequence[Path], network: bool, isolate: bool = False,
                 env: dict[str, str] | None = None, slot_env: dict[str, str] | None = None,
                 hide: Sequence[Path] = (), image: str | None = None) -> DockerSandbox:
        # `hide` needs nothing: a container sees only its mounts
        host = {} if isolate else {k: os.environ[k] for k in self.passthrough if k in os.environ}
        slot_env = dict(slot_env or {})
        gpus = [g for g in slot_env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
        return DockerSandbox(self, tag, writable=writable, network=network, extra_env={**host, **slot_env, **(env or {})},
                             labels=self._labels(tag, slot_env), gpu_ids=gpus, image=image)

    def _labels(self, tag: str, slot_env: dict[str, str]) -> dict[str, str]:
        # the stages' tags: <attempt id> (the session), <attempt id>.validate, <attempt id>.bench
        attempt, _, stage = tag.rpartition(".")
        if stage not in STAGE_SUFFIXES:
            attempt, stage = tag, "session"
        labels = {KEY_LABELS["ISOBENCH_TAG"]: tag, "isobench.attempt": attempt, "isobench.stage": stage,
                  **({"isobench.run": self.run} if self.run else {}), **self.extra_labels}
        for key, value in slot_env.items():
            if key.startswith("ISOBENCH_"):
                labels[KEY_LABELS.get(key, key)] = value
        return labels

    def memory_bytes(self) -> int:
        if self.memory:
            from docker.utils import parse_bytes

            return int(parse_bytes(self.memory))
        import psutil

        return int(psutil.virtual_memory().total * 3 // 4)

    def images(self, client=None) -> ImageStore:
        """The images of the engine this factory talks to (locate, ensure, free space, LRU eviction, use record)."""
        engine = self.host or default_host()
        key = hashlib.sha256(engine.encode()).hexdigest()[:12]
        return ImageStore(client or client_for(self.host), Path(self.cache_dir) / "images" / f"usage-{key}.json",
                          self.min_free_gb, engine=engine)

    def check(self) -> None:
        """Before a run is planned: the engine answers and holds the image (SandboxUnavailable otherwise)."""
        import docker

        client = client_for(self.host)
        reap_orphans_once(client, self.host or default_host())  # a run on this node clears dead runs' containers
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(f"the Docker image {self.image!r} is not on the engine at "
                                     f"{self.host or default_host()}: {build_hint(self.image)}") from None

    def reap(self, key: str, value: str) -> list[str]:
        client = client_for(self.host)
        found = client.api.containers(all=True, filters={"label": [f"{LABEL}=1", f"{KEY_LABELS.get(key, key)}={value}"]})
        killed = remove_containers(client, [c["Id"] for c in found])
        for info in found:  # their deadline folders go with them
            for name in info.get("Names") or ():
                Deadline(Path(self.cache_dir) / "sandbox-ttl" / name.lstrip("/")).remove()
        return killed


__all__ = ["DiskFull", "DockerProcess", "DockerSandbox", "DockerSandboxes", "ImageStore", "base_tarball", "build_script_key",
           "client_for", "default_host", "ensure_base_image", "import_base_image", "reap_orphans", "recipe_key", "remove_containers",
           "split_image_name"]
