"""One model call through litellm, the way every part of the harness makes it: the judges and the built-in
agent. Rate limits and connection errors back off exponentially (tenacity; litellm's own retries off, so
there is one policy); the price comes from litellm's table, None for a model it does not know."""

from __future__ import annotations

import os
import sys
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


def key_for(model: str, api_base: str | None, api_key: str | None = None) -> str | None:
    """The key to send: the one given, else litellm's from the environment; a local OpenAI-compatible server
    (an api_base) without one gets a placeholder, since the client refuses to send nothing."""
    if api_key is not None or not api_base:
        return api_key
    try:
        has_key = bool(litellm.validate_environment(model=model).get("keys_in_environment"))
    except Exception:  # a model string litellm cannot place: let the call say what is wrong
        has_key = True
    return None if has_key else "none"


def _say_wait(model: str):
    def before_sleep(state) -> None:  # a retry that waits says so, with the cause
        exc = state.outcome.exception()
        print(f"isobench: {model}: {type(exc).__name__} ({str(exc).splitlines()[0][:120] if str(exc) else ''}); "
              f"retry {state.attempt_number + 1} in {state.upcoming_sleep:.1f}s", file=sys.stderr)
    return before_sleep


def complete(model: str, messages: list[dict], *, api_base: str | None = None, api_key: str | None = None,
             temperature: float = 0.0, timeout_s: float = 300.0, attempts: int = 8, backoff_max_s: float = 60.0) -> Reply:
    retrying = Retrying(retry=retry_if_exception_type(TRANSIENT), stop=stop_after_attempt(attempts),
                        wait=wait_exponential(multiplier=0.5, max=backoff_max_s), reraise=True,
                        before_sleep=_say_wait(model))
    response = retrying(litellm.completion, model=model, messages=messages, api_base=api_base,
                        api_key=key_for(model, api_base, api_key), temperature=temperature, timeout=timeout_s,
                        num_retries=0)
    try:
        cost = float(litellm.completion_cost(completion_response=response))
    except Exception:  # a model litellm has no price for (a local server)
        cost = None
    return Reply(response.choices[0].message.content or "", int(getattr(response.usage, "total_tokens", 0) or 0), cost)
