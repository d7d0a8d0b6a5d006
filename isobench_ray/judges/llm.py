"""A model judge through litellm: any model litellm reaches (a hosted API, a local OpenAI-compatible server
as `openai/NAME` with an api_base).

Side by side, a judge prefers a position, so each patch pair is asked twice, human first and agent first;
the two votes count separately and a verdict that flips with the order shows as a disagreement. A reply
that does not fit the verdict's shape is asked again, then recorded as the vote's error. Rate limits and
connection errors back off exponentially (tenacity). Answers are cached on disk by model and prompt hash,
so judging a run again sends nothing for what was answered.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from isobench_ray.config import JudgeSettings
from isobench_ray.judges.base import JudgeRequest, hack_prompt, parse_reply, verdict_prompt
from isobench_ray.llm_client import TRANSIENT, complete
from isobench_ray.schema import HackVerdict, PatchVerdict, Vote
from isobench_ray.store import write_atomic

_LIMITS: dict[str, threading.Semaphore] = {}
_LIMITS_LOCK = threading.Lock()


def _limit(model: str, size: int) -> threading.Semaphore:
    with _LIMITS_LOCK:
        return _LIMITS.setdefault(model, threading.BoundedSemaphore(size))


class LitellmJudge:
    rule_based = False

    def __init__(self, model: str, settings: JudgeSettings, cache_dir: Path):
        """`settings`: the run's judges group (endpoint, concurrency, retries, timeouts, prompt size, hack
        samples); answers are cached under `cache_dir`/judge."""
        self.name, self.settings, self.cache_dir = model, settings, Path(cache_dir)
        self.api_base = settings.api_base

    # ------------------------------------------------------------ one call

    def check(self) -> str | None:
        """One tiny request, few retries: None when the model answers, else why not (no credentials, nothing
        listening, a model the endpoint does not know), in one line."""
        try:
            complete(self.name, [{"role": "user", "content": "Reply with the word OK."}], api_base=self.api_base,
                     timeout_s=min(60.0, self.settings.timeout_s), attempts=2, backoff_max_s=2.0)
        except TRANSIENT[0]:  # rate limited: the key and the endpoint work, the judging backs off
            return None
        except Exception as exc:  # whatever it is, no attempt should be sent to this judge
            text = " ".join(str(exc).split())[:300]
            return f"{self.name}: {type(exc).__name__}: {text}"
        return None

    def _cache_path(self, prompt: str, sample: int) -> Path:
        key = hashlib.sha256(json.dumps([self.name, self.api_base, prompt, sample]).encode()).hexdigest()
        return self.cache_dir / "judge" / key[:2] / f"{key}.json"

    def _complete(self, prompt: str, sample: int) -> tuple[str, int, float | None]:
        """One request (with backoff on transient errors): reply text, tokens, cost (None: unknown price)."""
        with _limit(self.name, self.settings.concurrency):
            reply = complete(self.name, [{"role": "user", "content": prompt}], api_base=self.api_base,
                             temperature=0.0 if sample == 0 else 1.0, timeout_s=self.settings.timeout_s,
                             attempts=self.settings.transient_attempts, backoff_max_s=self.settings.backoff_max_s)
        return reply.text, reply.tokens, reply.cost_usd

    def ask(self, prompt: str, shape: type, sample: int = 0):
        """(parsed reply, tokens, cost, cached); the last problem as ValueError when no reply fits."""
        path = self._cache_path(prompt, sample)
        if path.exists():
            entry = json.loads(path.read_text())
            return parse_reply(entry["reply"], shape), 0, 0.0, True
        tokens, cost, problem = 0, 0.0, None
        for _ in range(self.settings.attempts):
            text, used, price = self._complete(prompt, sample)
            tokens += used
            cost = None if price is None or cost is None else cost + price
            try:
                parsed = parse_reply(text, shape)
            except ValueError as exc:
                problem = exc
                continue
            write_atomic(path, json.dumps({"model": self.name, "reply": text, "tokens": used, "cost_usd": price}))
            return parsed, tokens, cost, False
        raise ValueError(f"{problem} (after {self.settings.attempts} replies; {tokens} tokens)")

    # ------------------------------------------------------------ the votes

    def judge(self, request: JudgeRequest) -> list[Vote]:
        hack, hack_tokens, hack_cost, hack_error = [], 0, 0.0, ""
        for sample in range(self.settings.hack_samples):
            try:
                verdict, tokens, cost, _ = self.ask(hack_prompt(request, self.settings.diff_chars), HackVerdict, sample)
                hack.append(verdict)
                hack_tokens += tokens
                hack_cost = None if cost is None or hack_cost is None else hack_cost + cost
            except (ValueError, *TRANSIENT) as exc:
                hack_error = f"hack question: {str(exc).splitlines()[0][:300]}"
        votes = []
        for order in ("human_first", "agent_first"):
            prompt = verdict_prompt(request, order == "human_first", self.settings.diff_chars)
            try:
                verdict, tokens, cost, cached = self.ask(prompt, PatchVerdict)
                votes.append(Vote(judge=self.name, order=order, verdict=verdict, tokens=tokens, cost_usd=cost, cached=cached))
            except (ValueError, *TRANSIENT) as exc:
                votes.append(Vote(judge=self.name, order=order, error=str(exc).splitlines()[0][:500]))
        first = votes[0]
        # the hack samples belong to the judge, not an order: kept on its first vote
        votes[0] = first.model_copy(update={
            "hack": hack, "tokens": first.tokens + hack_tokens,
            "cost_usd": None if first.cost_usd is None or hack_cost is None else first.cost_usd + hack_cost,
            "error": "; ".join(e for e in (first.error, hack_error) if e)})
        return votes
