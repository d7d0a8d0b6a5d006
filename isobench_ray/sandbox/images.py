"""The node's image cache: disk that does not fill up.

Upstream lost 49 of 96 commits of one run to a full disk, because pulled images were never removed. Here,
before an image is pulled, built or imported, the node checks the free space of the engine's data root;
under `min_free_gb`, images are removed least recently used first, never one that a container of this
node uses. A pull or build that still fails for space is `DiskFull`: transient (the attempt is retried
after eviction), never a lost attempt. "Last used" is recorded by the harness whenever it starts a
container (the engine keeps no such time); an image never used here counts from its creation.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from isobench_ray.store import write_atomic

_NO_SPACE = ("no space left on device", "enospc", "not enough space")


class DiskFull(RuntimeError):
    """The node's disk is full even after eviction: transient, the attempt is retried (elsewhere or later)."""


class ImageCache:
    def __init__(self, client, usage_file: Path, min_free_gb: float):
        self.client, self.usage_file, self.min_free_gb = client, Path(usage_file), min_free_gb

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
        """For `isobench status`: images, their size and last use, and the free space."""
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


def _created(image) -> float:
    from datetime import datetime

    text = image.attrs.get("Created", "")
    try:
        return datetime.fromisoformat(text[:26].rstrip("Z")).timestamp()
    except ValueError:
        return 0.0
