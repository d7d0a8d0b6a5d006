"""One model call through litellm, the way every part of the harness makes it: the judges and the built-in
agent. Rate limits and connection errors back off exponentially (tenacity; litellm's own retries off, so
there is one policy); the price comes from litellm's table, None for a model it does not know."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # prices from the installed package: no fetch at import
import litellm  # noqa: E402
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential  # noqa: E402

litellm.suppress_debug_info = True  # its "Give Feedback" banner on every retried error
DEADLINE_GRACE_S = 2.0  # complete_by: how long past its deadline a call may take to hand back its answer
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


class DeadlinePassed(TimeoutError):
    """The caller's deadline passed before the model answered (its tries and the waits between them included)."""


@dataclass(frozen=True)
class _Tries:
    """How one call retries: tries, the longest wait, each try's timeout, and a deadline (time.monotonic()) past
    which no try starts, no wait runs and no try's timeout reaches (None: none)."""

    attempts: int
    backoff_max_s: float
    timeout_s: float
    deadline: float | None = None

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def try_timeout(self) -> float:
        if self.left() <= 0:
            raise DeadlinePassed("the deadline passed before the model answered")
        return min(self.timeout_s, self.left())

    def wait(self, state) -> float:
        return max(0.0, min(wait_exponential(multiplier=0.5, max=self.backoff_max_s)(state), self.left()))


def complete(model: str, messages: list[dict], *, api_base: str | None = None, api_key: str | None = None,
             temperature: float = 0.0, timeout_s: float = 300.0, attempts: int = 8, backoff_max_s: float = 60.0) -> Reply:
    options = dict(api_base=api_base, api_key=key_for(model, api_base, api_key), temperature=temperature)
    return _complete(model, messages, options, _Tries(attempts, backoff_max_s, timeout_s))


def complete_by(deadline: float, model: str, messages: list[dict], *, api_base: str | None = None,
                api_key: str | None = None, temperature: float = 0.0, timeout_s: float = 600.0) -> Reply:
    """complete() that returns, or raises DeadlinePassed, by `deadline` (time.monotonic()): each try's timeout
    is at most what is left, no wait runs past it, and a try that still has not answered then (a server that
    trickles its reply) is left to its own timeout in a daemon thread, its answer dropped."""
    options = dict(api_base=api_base, api_key=key_for(model, api_base, api_key), temperature=temperature)
    tries = _Tries(8, 60.0, timeout_s, deadline)
    done: dict[str, Any] = {}

    def call() -> None:
        try:
            done["reply"] = _complete(model, messages, options, tries)
        except BaseException as exc:  # handed to the caller's thread
            done["error"] = exc

    thread = threading.Thread(target=call, name="llm-call", daemon=True)
    thread.start()
    thread.join(max(0.0, tries.left()) + DEADLINE_GRACE_S)
    if thread.is_alive():
        raise DeadlinePassed(f"{model} had not answered by the deadline")
    if "error" in done:
        raise done["error"]
    return done["reply"]


def _complete(model: str, messages: list[dict], options: dict[str, Any], tries: _Tries) -> Reply:
    retrying = Retrying(retry=retry_if_exception_type(TRANSIENT), stop=stop_after_attempt(tries.attempts),
                        wait=tries.wait, reraise=True, before_sleep=_say_wait(model))
    response = retrying(lambda: litellm.completion(model=model, messages=messages, timeout=tries.try_timeout(),
                                                   num_retries=0, **options))
    try:
        cost = float(litellm.completion_cost(completion_response=response))
    except Exception:  # a model litellm has no price for (a local server)
        cost = None
    return Reply(response.choices[0].message.content or "", int(getattr(response.usage, "total_tokens", 0) or 0), cost)
