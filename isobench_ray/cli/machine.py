"""Commands about this node: the Docker images, leftover containers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from isobench_ray.cli.app import _fail, app, images_app

# ---------------------------------------------------------------- isobench images: the Docker engine's images here

_HOST_OPTION = typer.Option(None, "--host", envvar="ISOBENCH_DOCKER_HOST",
                            help="The Docker engine's URL (default: DOCKER_HOST, else unix:///var/run/docker.sock).")
_CACHE_OPTION = typer.Option(None, "--cache-dir", envvar=["ISOBENCH_CACHE", "ISOBENCH_CACHE_DIR"],
                             help="Where the base tarball and the image-use record are kept (default: ~/.cache/isobench).")


@images_app.command("build")
def images_build(
    image: Optional[str] = typer.Option(None, "--image", envvar="ISOBENCH_DOCKER_IMAGE",
                                        help="The name to import it as (default: isobench-base:bookworm)."),
    host: Optional[str] = _HOST_OPTION,
    cache_dir: Optional[Path] = _CACHE_OPTION,
) -> None:
    """Build the base image with debootstrap and import it, unless the engine has it.

    The tarball is cached, keyed by the build script's content: a second build only imports it."""
    import time

    from isobench_ray.config import BASE_IMAGE
    from isobench_ray.sandbox import SandboxUnavailable
    from isobench_ray.sandbox.docker import client_for, ensure_base_image

    image = image or BASE_IMAGE
    started = time.monotonic()
    try:
        how = ensure_base_image(client_for(host), image, cache_dir, log=sys.stderr)
    except (SandboxUnavailable, RuntimeError) as exc:
        _fail(str(exc), 1)
    typer.echo(f"{image}: {how} in {time.monotonic() - started:.0f} s")


@images_app.command("list")
def images_list(
    host: Optional[str] = _HOST_OPTION,
    cache_dir: Optional[Path] = _CACHE_OPTION,
    min_free_gb: Optional[float] = typer.Option(None, envvar="ISOBENCH_DOCKER_MIN_FREE_GB",
                                                help="The eviction threshold to show (default: the sandbox's, 50)."),
    as_json: bool = typer.Option(False, "--json", help="The report as one JSON object."),
) -> None:
    """The node's image cache: images, size, use, free space.

    Each image with its size, whether a container uses it and when the harness last started one from it
    (what eviction goes by), and the free space of the engine's data root."""
    import time

    from isobench_ray.sandbox import SandboxUnavailable
    from isobench_ray.sandbox.docker import DockerSandboxes

    given = {"cache_dir": str(cache_dir) if cache_dir else None, "min_free_gb": min_free_gb}
    try:
        report = DockerSandboxes(host=host, **{k: v for k, v in given.items() if v is not None}).images().report()
    except SandboxUnavailable as exc:
        _fail(str(exc), 1)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{len(report['images'])} images, {report['total_gb']} GB; {report['free_gb']} GB free "
               f"(evicting under {report['min_free_gb']} GB)")
    for image in sorted(report["images"], key=lambda i: i["last_used"] or 0, reverse=True):
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(image["last_used"])) if image["last_used"] else "never here"
        typer.echo(f"  {', '.join(image['tags']) or image['id']}: {image['gb']} GB, last used {used}"
                   + (", in use" if image["in_use"] else ""))


@app.command()
def clean(
    host: Optional[str] = _HOST_OPTION,
    cache_dir: Optional[Path] = _CACHE_OPTION,
    everything: bool = typer.Option(False, "--all", help="Every isobench container on the engine, live runs' too."),
) -> None:
    """Remove the sandbox containers whose driver (or the worker that made them) is gone, and what else dead
    runs left here: their containers' deadline folders, bubblewrap's empty process cgroups.

    Containers carry their run and their driver's process (labels isobench.run, isobench.driver, isobench.owner);
    a run does the same on a node before its first container, and a container whose driver died ends by itself
    within docker_ttl_margin_s (docs/security.md)."""
    from isobench_ray.config import DEFAULT_CACHE_DIR
    from isobench_ray.sandbox import SandboxUnavailable
    from isobench_ray.sandbox.docker.lifecycle import clean_node

    try:
        removed = clean_node(host, cache_dir or DEFAULT_CACHE_DIR, everything)
    except SandboxUnavailable as exc:  # bubblewrap's leftovers are gone; no engine to ask about containers
        typer.echo(f"no Docker engine to clean: {exc}")
        return
    typer.echo("\n".join(f"removed {line}" for line in removed) or "nothing to remove")
