"""A node's container images: where one would come from, making it present, and disk that does not fill up.

`ImageStore` is one engine's images as the harness sees them. `locate` says, before a run is planned and
without pulling or building, where an image would come from (this engine, a Dockerfile template, its
registry). `ensure` makes it present: kept if there, else built from the task's Dockerfile template (keyed
by content: the template and its build args hashed into the `isobench.recipe` label, so another version is
built again), else pulled.

Upstream lost 49 of 96 commits of one run to a full disk, because pulled images were never removed. Here,
before an image is pulled, built or imported, the node checks the free space of the engine's data root;
under `min_free_gb`, images are removed least recently used first, never one that a container of this
node uses. A pull or build that still fails for space is `DiskFull`: transient (the attempt is retried
after eviction), never a lost attempt. "Last used" is recorded by the harness whenever it starts a
container (the engine keeps no such time); an image never used here counts from its creation.

The base image (`isobench images build`): a Debian root file system made by `scripts/build_base.sh` with
debootstrap, cached as a tarball keyed by the script's content, imported with the engine's import API.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

from isobench_ray.config import BASE_IMAGE, DEFAULT_CACHE_DIR
from isobench_ray.sandbox.base import ImageMissing
from isobench_ray.sandbox.docker.client import LABEL
from isobench_ray.sandbox.docker.scripts import BUILD_SCRIPT
from isobench_ray.store import write_atomic

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the base image's, and every container's
RECIPE_LABEL = "isobench.recipe"  # what a built image was built from: Dockerfile template and build args
_NO_SPACE = ("no space left on device", "enospc", "not enough space")

_build_locks: dict[str, threading.Lock] = {}
_lock = threading.Lock()


class DiskFull(RuntimeError):
    """The node's disk is full even after eviction: transient, the attempt is retried (elsewhere or later)."""


def recipe_key(dockerfile: Path, buildargs: dict[str, str]) -> str:
    text = Path(dockerfile).read_bytes() + "".join(f"\0{k}={v}" for k, v in sorted(buildargs.items())).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def split_image_name(image: str) -> tuple[str, str]:
    """(repository, tag) of `name[:tag]`; a registry's port (`host:5000/name`) is not a tag."""
    repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    return repository, tag


def _building_lock(image: str) -> threading.Lock:
    """One build or pull of an image at a time in this process (two arms of one commit, two slots)."""
    with _lock:
        return _build_locks.setdefault(image, threading.Lock())


class ImageStore:
    """One engine's images on this node. `engine` (its URL) only names it in messages."""

    def __init__(self, client, usage_file: Path, min_free_gb: float, engine: str = "this engine"):
        self.client, self.usage_file, self.min_free_gb, self.engine = client, Path(usage_file), min_free_gb, engine

    # ------------------------------------------------------------ what is known

    def usage(self) -> dict[str, float]:
        try:
            return json.loads(self.usage_file.read_text())
        except (OSError, ValueError):
            return {}

    def record_use(self, image_id: str) -> None:
        usage = self.usage()
        usage[image_id] = time.time()
        write_atomic(self.usage_file, json.dumps(usage, indent=1))

    def free_gb(self) -> float | None:
        """Free space where the engine keeps its images; None where that folder is not visible from here
        (a harness in a container that talks to the host's engine)."""
        root = self.client.info().get("DockerRootDir", "")
        try:
            return shutil.disk_usage(root).free / 1e9
        except OSError:
            return None

    def in_use(self) -> set[str]:
        return {c["ImageID"] for c in self.client.api.containers(all=True)}

    def report(self) -> dict:
        """For `isobench status` and `isobench images list`: images, their size and last use, the free space."""
        usage, used = self.usage(), self.in_use()
        images = [{"tags": img.tags, "id": img.id[:19], "gb": round(img.attrs.get("Size", 0) / 1e9, 2),
                   "in_use": img.id in used, "last_used": usage.get(img.id)} for img in self.client.images.list()]
        free = self.free_gb()
        return {"images": images, "total_gb": round(sum(i["gb"] for i in images), 2),
                "free_gb": round(free, 1) if free is not None else None, "min_free_gb": self.min_free_gb}

    # ------------------------------------------------------------ making room

    def evict(self, keep: set[str] = frozenset()) -> list[str]:
        """Remove unused images, least recently used first, until the free space is over the threshold;
        returns the ids removed in order. Images in use by any container (or in `keep`) stay."""
        removed = []
        usage = self.usage()
        while (free := self.free_gb()) is not None and free < self.min_free_gb:
            protected = self.in_use() | set(keep)
            candidates = [img for img in self.client.images.list() if img.id not in protected]
            if not candidates:
                break
            oldest = min(candidates, key=lambda img: usage.get(img.id) or _created(img))
            try:
                self.client.images.remove(oldest.id, force=True)
            except Exception:  # a container started from it meanwhile: it is in use now
                keep = set(keep) | {oldest.id}
                continue
            removed.append(oldest.id)
        return removed

    def make_room_then(self, action, *args, **kwargs):
        """Evict if needed, then pull or build; out of space anyway: evict again and try once more, then
        DiskFull (transient)."""
        self.evict()
        for attempt in range(2):
            try:
                return action(*args, **kwargs)
            except Exception as exc:
                if not any(words in str(exc).lower() for words in _NO_SPACE):
                    raise
                if attempt == 0 and self.evict():
                    continue
                raise DiskFull(f"disk_full: {exc} (free {self.free_gb()} GB after eviction)") from exc

    # ------------------------------------------------------------ a task's images

    def ensure(self, image: str, dockerfile: Path | None = None, buildargs: dict[str, str] | None = None) -> str:
        """A task's image for one commit: kept if present; else built from its Dockerfile template (the build
        context is the Dockerfile's folder; COMMIT and SHORT among `buildargs`), else pulled; eviction first.
        ImageMissing, with the reason, when none of that gives it. Images built here are keyed by content, as
        the SWE-bench harness keys its own: one built from another version of the template or other build
        args is built again (an image of that name made by someone else is kept as it is). Returns what was done."""
        import docker

        recipe = recipe_key(dockerfile, buildargs or {}) if dockerfile is not None else None
        with _building_lock(image):
            try:
                found = self.client.images.get(image).labels or {}
                if recipe is None or found.get(RECIPE_LABEL, recipe) == recipe:
                    return "present"
            except docker.errors.ImageNotFound:
                pass
            try:
                if dockerfile is not None:
                    self.make_room_then(self._build, image, dockerfile, buildargs or {}, recipe)
                    return f"built from {dockerfile}"
                self.make_room_then(self.client.images.pull, *split_image_name(image))
                return "pulled"
            except (docker.errors.BuildError, docker.errors.APIError) as exc:
                log = "".join(c.get("stream", "") or c.get("error", "") for c in getattr(exc, "build_log", []) or [])
                how = f"building it from {dockerfile} failed" if dockerfile is not None else "pulling it failed"
                raise ImageMissing(f"{self._absent(image)} and {how}: {exc}\n{log[-2000:]}".rstrip()) from None

    def _build(self, image: str, dockerfile: Path, buildargs: dict[str, str], recipe: str):
        built, _ = self.client.images.build(path=str(dockerfile.parent), dockerfile=dockerfile.name, tag=image,
                                            buildargs=buildargs, rm=True, labels={LABEL: "1", RECIPE_LABEL: recipe})
        return built

    def locate(self, image: str, dockerfile: Path | None = None) -> str:
        """Where `image` would come from, asked before a run is planned: this engine, the Dockerfile template
        (it exists; whether it builds is known only by building), or the registry, asked for the image's
        manifest without pulling it. ImageMissing when none has it."""
        import docker
        import requests

        try:
            self.client.images.get(image)
            return "present"
        except docker.errors.ImageNotFound:
            pass
        except (docker.errors.DockerException, requests.RequestException) as exc:  # a malformed name, a slow engine
            return f"not checked: {str(exc)[:300]}"
        if dockerfile is not None:
            if not dockerfile.is_file():
                raise ImageMissing(f"{self._absent(image)} and its Dockerfile template {dockerfile} does not exist")
            return f"to be built from {dockerfile}"
        try:
            self.client.images.get_registry_data(image)
            return "in its registry"
        except (docker.errors.DockerException, requests.RequestException) as exc:
            # Settled only where the registry itself says it knows no such manifest or repository (the
            # distribution API's MANIFEST_UNKNOWN / NAME_UNKNOWN); unreachable, slow, or wanting credentials
            # (a private repository may answer 401 or 404 to a stranger): the stage on the node tries again.
            words = str(exc).lower()
            if isinstance(exc, docker.errors.NotFound) and ("manifest unknown" in words or "name unknown" in words):
                raise ImageMissing(f"{self._absent(image)} and its registry does not have it: {str(exc)[:500]}") from None
            return f"not checked: its registry did not say ({str(exc)[:300]})"

    def _absent(self, image: str) -> str:
        return f"the Docker image {image!r} is not on the engine at {self.engine}"


def _created(image) -> float:
    from datetime import datetime

    text = image.attrs.get("Created", "")
    try:
        return datetime.fromisoformat(text[:26].rstrip("Z")).timestamp()
    except ValueError:
        return 0.0


# ------------------------------------------------------------------ the base image


def build_script_key(script: Path = BUILD_SCRIPT) -> str:
    return hashlib.sha256(Path(script).read_bytes()).hexdigest()[:16]


def base_tarball_path(cache_dir: Path | str, script: Path = BUILD_SCRIPT) -> Path:
    """Where the base file system tarball of this version of the build script is cached."""
    return Path(cache_dir) / "images" / f"isobench-base-{build_script_key(script)}.tar"


def base_tarball(cache_dir: Path, script: Path = BUILD_SCRIPT, log=None) -> Path:
    """The base file system tarball, built once per version of the build script and cached."""
    out = base_tarball_path(cache_dir, script)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["sh", str(script), str(out)], stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT)
    if res.returncode != 0 or not out.exists():
        detail = (res.stdout or b"").decode(errors="replace")[-3000:] if log is None else ""
        raise RuntimeError(f"building the base image failed ({script}, exit {res.returncode}):\n{detail}")
    return out


def import_base_image(client, tarball: Path, image: str = BASE_IMAGE) -> None:
    repository, tag = split_image_name(image)
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag,
                                      changes=[f"ENV PATH={DEFAULT_PATH}", "ENV LANG=C.UTF-8", 'CMD ["bash"]'])
    client.images.get(image)  # raises if the import did not take


def ensure_base_image(client, image: str = BASE_IMAGE, cache_dir: Path | str | None = None, log=None,
                      images: ImageStore | None = None) -> str:
    """Build (or reuse the cached tarball) and import the base image unless the engine has it; with an
    ImageStore, room is made first (and DiskFull raised when there is none)."""
    import docker

    try:
        client.images.get(image)
        return "present"
    except docker.errors.ImageNotFound:
        pass
    cache = Path(cache_dir or DEFAULT_CACHE_DIR)
    cached = base_tarball_path(cache).exists()
    if images is not None:
        images.make_room_then(import_base_image, client, base_tarball(cache, log=log), image)
    else:
        import_base_image(client, base_tarball(cache, log=log), image)
    return "imported from cache" if cached else "built"
