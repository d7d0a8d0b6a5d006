"""minillm: a small LLM-serving engine in pure Python and NumPy, shaped like vLLM."""

from minillm.engine import EngineArgs, LLMEngine, SamplingParams

__all__ = ["EngineArgs", "LLMEngine", "SamplingParams"]
