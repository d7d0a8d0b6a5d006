"""Sandboxes by kind: the protocol in base.py, one module per implementation, the run's factory here."""

from __future__ import annotations

from isobench_ray.config import Settings
from isobench_ray.sandbox.base import ExecResult, ImageMissing, Process, Sandbox, SandboxFactory, SandboxUnavailable, tail


def make_sandboxes(settings: Settings) -> SandboxFactory:
    if settings.sandbox.kind in ("local", "none"):  # "none": the same processes, agents not contained
        from isobench_ray.sandbox.local import LocalSandboxes

        hidden = tuple(p for p in (settings.cache_dir, settings.work_dir, settings.run_dir) if p)
        return LocalSandboxes(passthrough=tuple(settings.env_passthrough), hidden=hidden)
    if settings.sandbox.kind == "docker":
        from pathlib import Path

        from isobench_ray.sandbox.docker import DockerSandboxes

        return DockerSandboxes(host=settings.docker_host, image=settings.docker_image, shm_size=settings.docker_shm_size,
                               time_limit_s=settings.docker_time_limit_s, network_mode=settings.docker_network,
                               mounts=tuple(settings.docker_mounts), user=settings.docker_user,
                               run=Path(settings.run_dir).name if settings.run_dir else "",
                               passthrough=tuple(settings.env_passthrough), min_free_gb=settings.docker_min_free_gb,
                               cache_dir=settings.cache_dir)
    raise SandboxUnavailable(f"unknown sandbox {settings.sandbox.kind!r}")


__all__ = ["ExecResult", "ImageMissing", "Process", "Sandbox", "SandboxFactory", "SandboxUnavailable", "make_sandboxes", "tail"]
