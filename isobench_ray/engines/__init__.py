"""Inference engines by name. A repository names its engine (`engine:`), or is named after one; any other
repository is read with vLLM's flags and output formats and must give its own server command.

The engine modules import engines/base.py, which Python imports through this package: the registry loads
them on first use (engine_named, ENGINES, GENERIC), so importing base never runs an engine module."""

from dataclasses import replace
from functools import cache

from isobench_ray.engines.base import Engine, UnknownMetric


@cache
def _registry() -> tuple[dict[str, Engine], Engine]:
    from isobench_ray.engines.minillm import MINILLM
    from isobench_ray.engines.sglang import SGLANG
    from isobench_ray.engines.vllm import VLLM

    return {e.name: e for e in (VLLM, SGLANG, MINILLM)}, replace(VLLM, name="generic", server_template=None,
                                                                  import_name=None)


def engine_named(name: str | None) -> Engine:
    engines, generic = _registry()
    return engines.get(name or "", generic)


def __getattr__(name: str):
    if name == "ENGINES":
        return _registry()[0]
    if name == "GENERIC":
        return _registry()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ENGINES", "Engine", "GENERIC", "UnknownMetric", "engine_named"]
