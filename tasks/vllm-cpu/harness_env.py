"""An interpreter for the harness whose directory's `python` is the engine's (a workaround, see docs/vllm-cpu.md).

    .venv/bin/python tasks/vllm-cpu/harness_env.py DIR ENGINE_VENV

The local sandbox puts the directory of the harness's interpreter (sys.executable) first on every command's
PATH, so `python` in validation's import check (`python -c "import vllm"`) is the harness's own interpreter,
which has no torch. DIR is a venv that runs the harness (DIR/bin/isobench-python: this interpreter, its
site-packages made visible through a .pth file) while DIR/bin/python and DIR/bin/vllm are the engine's.
Run the harness as `DIR/bin/isobench-python -m isobench_ray.cli ...`.
"""

import os
import sys
import sysconfig
from pathlib import Path


def main(dest: str, engine_venv: str) -> None:
    out, engine = Path(dest).resolve(), Path(engine_venv).resolve()
    base = Path(sys.base_prefix)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    site = out / "lib" / f"python{version}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    (out / "bin").mkdir(exist_ok=True)
    (out / "pyvenv.cfg").write_text(f"home = {base / 'bin'}\ninclude-system-site-packages = false\n"
                                    f"version = {sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}\n")
    links = {"isobench-python": Path(os.path.realpath(sys.executable)),
             "python": engine / "bin" / "python", "python3": engine / "bin" / "python", "vllm": engine / "bin" / "vllm"}
    for name, target in links.items():
        link = out / "bin" / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    harness_site = sysconfig.get_paths()["purelib"]
    (site / "isobench_harness.pth").write_text(f"import site; site.addsitedir({harness_site!r})\n")
    print(f"{out}/bin/isobench-python runs the harness of {harness_site}; python and vllm there are {engine}'s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
