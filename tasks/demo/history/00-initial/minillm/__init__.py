"""minillm: a minimal LLM serving engine shaped like vLLM, on NumPy.

Continuous batching over a paged KV cache, an offline LLM class and an OpenAI-compatible server, around
a tiny random-weight transformer that runs on a laptop CPU.
"""

import os

# The model's matrices are tiny: BLAS threads would cost more than they save, and spin on the cores
# that the benchmark client needs. Set before NumPy is first imported; an explicit setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from minillm.config import EngineArgs  # noqa: E402
from minillm.engine import LLMEngine  # noqa: E402
from minillm.entrypoints.llm import LLM  # noqa: E402
from minillm.outputs import CompletionOutput, RequestOutput  # noqa: E402
from minillm.sampling_params import SamplingParams  # noqa: E402

__version__ = "0.1.0"

__all__ = ["LLM", "LLMEngine", "EngineArgs", "SamplingParams", "RequestOutput", "CompletionOutput", "__version__"]
