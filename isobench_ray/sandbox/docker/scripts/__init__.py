"""The Docker sandbox's shell helpers and the base image's build script, shipped as package data.

In every container, under HELPERS: `run.sh` (the wrapper of every command), `kill.sh` (signal a launch's
processes), `cpu.sh` (CPU ticks of a launch), `idle.sh` (between arms, kill all but the container's own), `probe_http.py`
(the HTTP probe from inside) and `lib.sh`,
which the shell helpers source. `ROUTES` (isobench_ray/sandbox/routes.py, shared with bubblewrap) is what
the helper container that cuts the host off a bridged container runs. On the host: `build_base.sh` (the base image's file system, debootstrap).
"""

from __future__ import annotations

import functools
import io
import tarfile
import time
from importlib import resources
from pathlib import Path

HELPERS = "/.isobench"  # where the helpers are in every container (short command lines in `ps`)
IN_CONTAINER = ("lib.sh", "run.sh", "kill.sh", "cpu.sh", "idle.sh", "probe_http.py")


def script(name: str) -> Path:
    """The file of one script of this package (found in a checkout and in an installed package alike)."""
    found = Path(str(resources.files(__name__).joinpath(name)))
    if not found.is_file():
        raise FileNotFoundError(f"{found}: a script of {__name__} is missing (is the package data installed?)")
    return found


ROUTES = Path(__file__).resolve().parents[2] / "routes.py"  # isobench_ray/sandbox/routes.py
BUILD_SCRIPT = Path(str(resources.files(__name__).joinpath("build_base.sh")))  # debootstrap: the base image


@functools.cache
def helpers_archive() -> bytes:
    """A tar of the container helpers at HELPERS, to unpack at the container's "/"."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in IN_CONTAINER:
            data = script(name).read_bytes()
            info = tarfile.TarInfo(f"{HELPERS.strip('/')}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o755, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
