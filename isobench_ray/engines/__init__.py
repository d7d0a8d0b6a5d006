"""Inference engines by name. A repository names its engine (`engine:`), or is named after one; any other
repository is read with vLLM's flags and output formats and must give its own server command."""

from dataclasses import replace

from isobench_ray.engines.base import Engine, UnknownMetric
from isobench_ray.engines.minillm import MINILLM
from isobench_ray.engines.sglang import SGLANG
from isobench_ray.engines.vllm import VLLM

ENGINES: dict[str, Engine] = {e.name: e for e in (VLLM, SGLANG, MINILLM)}
GENERIC = replace(VLLM, name="generic", server_template=None, import_name=None)


def engine_named(name: str | None) -> Engine:
    return ENGINES.get(name or "", GENERIC)


__all__ = ["ENGINES", "Engine", "GENERIC", "UnknownMetric", "engine_named"]
