"""One model call through litellm, the way every part of the harness makes it: the judges and the built-in
agent. Rate limits and connection errors back off exponentially (tenacity; litellm's own retries off, so
there is one policy); the price comes from litellm's table, None for a model it does not know."""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # prices from the installed package: no fetch at import
import litellm  # noqa: E402
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential  # noqa: E402

litellm.suppress_debug_info = True  # its "Give Feedback" banner on every retried error
TRANSIENT = (litellm.RateLimitError, litellm.APIConnectionError, litellm.Timeout, litellm.InternalServerError,
             litellm.ServiceUnavailableError, litellm.BadGatewayError)


@dataclass(frozen=True)
class Reply:
    text: str
    tokens: int
    cost_usd: float | None


def complete(model: str, messages: list[dict], *, api_base: str | None = None, api_key: str | None = None,
             temperature: float = 0.0, timeout_s: float = 300.0, attempts: int = 8, backoff_max_s: float = 60.0) -> Reply:
    retrying = Retrying(retry=retry_if_exception_type(TRANSIENT), stop=stop_after_attempt(attempts),
                        wait=wait_exponential(multiplier=0.5, max=backoff_max_s), reraise=True)
    response = retrying(litellm.completion, model=model, messages=messages, api_base=api_base, api_key=api_key,
                        temperature=temperature, timeout=timeout_s, num_retries=0)
    try:
        cost = float(litellm.completion_cost(completion_response=response))
    except Exception:  # a model litellm has no price for (a local server)
        cost = None
    return Reply(response.choices[0].message.content or "", int(getattr(response.usage, "total_tokens", 0) or 0), cost)
