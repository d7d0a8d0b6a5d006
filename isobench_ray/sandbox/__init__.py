"""Sandboxes by kind: the protocol in base.py, one module per implementation, the run's factory here."""

from __future__ import annotations

from isobench_ray.config import Settings
from isobench_ray.sandbox.base import ExecResult, ImageMissing, Process, Sandbox, SandboxFactory, SandboxUnavailable, tail


def make_sandboxes(settings: Settings) -> SandboxFactory:
    if settings.sandbox.kind in ("local", "none"):  # "none": the same processes, agents not contained
        from isobench_ray.sandbox.local import LocalSandboxes

        hidden = tuple(p for p in (settings.paths.cache_dir, settings.paths.work_dir, settings.paths.run_dir) if p)
        box = settings.sandbox
        return LocalSandboxes(passthrough=tuple(settings.sandbox.env_passthrough), hidden=hidden, readable=tuple(box.readable),
                              tmp_bytes=box.tmp_mb << 20, pids_limit=box.pids_limit)
    if settings.sandbox.kind == "docker":
        from pathlib import Path

        from isobench_ray.sandbox.docker import DockerSandboxes

        docker = settings.docker
        return DockerSandboxes(host=docker.host, image=docker.image, shm_size=docker.shm_size,
                               time_limit_s=docker.time_limit_s, network_mode=docker.network,
                               mounts=tuple(docker.mounts), user=docker.user,
                               run=Path(settings.paths.run_dir).name if settings.paths.run_dir else "",
                               passthrough=tuple(settings.sandbox.env_passthrough), min_free_gb=docker.min_free_gb,
                               cache_dir=settings.paths.cache_dir, pids_limit=docker.pids_limit, memory=docker.memory,
                               tmp_size=docker.tmp_size, cap_add=tuple(docker.cap_add), ttl_margin_s=docker.ttl_margin_s)
    raise SandboxUnavailable(f"unknown sandbox {settings.sandbox.kind!r}")


__all__ = ["ExecResult", "ImageMissing", "Process", "Sandbox", "SandboxFactory", "SandboxUnavailable", "make_sandboxes", "tail"]
