"""`litellm`: the built-in agent, a bash-only loop in the spirit of mini-swe-agent, for any model litellm
reaches (a hosted API, a local vLLM or Ollama server).

mini-swe-agent's conventions: the model answers with exactly one ```bash block per reply; the block runs
as its own command in the session's sandbox (no state carries over but the files) and its output is the
next message; the session ends when a command prints COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT as its first
line. A reply with no block or several gets a format-error message and counts as a step. The model is
called from the harness (the sandbox needs no network); limits on steps and cost end the session with the
tree as it is. The wall-time limit covers the model's calls too (each gets what is left, retries included):
past it the session is `agent_timeout`, as for every agent. The trajectory is written after every step.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from isobench_ray.agents.base import AgentOutcome, BuiltinAgent, SessionContext, hashed_env
from isobench_ray.schema import FailureCause, LitellmSpec, Task, content_hash
from isobench_ray.text import head_and_tail
from isobench_ray.workspace import write_in_tree

SUBMIT = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
OUTPUT_CHARS = 10_000  # of a command's output shown to the model: head and tail beyond this

SYSTEM = f"""You are a performance engineer working in a shell. Each of your replies must contain exactly one
```bash code block with one command (or a few joined with && or a here-document); it runs in a fresh shell
in the repository root, and its output comes back as the next message. Directory changes and variables do
not carry over between commands; files do. Think briefly before the block. Edit files with standard tools
(sed, cat with a here-document, python3 scripts). When you are done, reply with a block whose command is:

```bash
echo {SUBMIT}
```
"""

FORMAT_ERROR = """Your reply must contain exactly one ```bash block; it contained {n}. Reply again with one block
(to finish: echo {submit})."""

OBSERVATION = "<returncode>{code}</returncode>\n<output>\n{output}</output>"

_BLOCK = re.compile(r"```bash\s*\n(.*?)\n?```", re.S)


def bash_blocks(text: str) -> list[str]:
    return _BLOCK.findall(text)


def shown(output: str) -> str:
    return head_and_tail(output, OUTPUT_CHARS, "characters left out; narrow the command")


class LitellmAgent(BuiltinAgent):
    executes_code = True  # the model's commands run code: contained, or refused
    spec: LitellmSpec

    def fingerprint(self, task: Task) -> Any:
        spec = self.spec
        return {"kind": "litellm", "model": spec.model, "api_base": spec.api_base, "step_limit": spec.step_limit,
                "cost_limit": spec.cost_limit, "time_limit_s": spec.time_limit_s, "temperature": spec.temperature,
                "command_timeout_s": spec.command_timeout_s, "system": content_hash(SYSTEM, 16),
                "env": hashed_env(spec.env),
                **({"image": spec.image} if spec.image else {})}

    def run(self, ctx: SessionContext) -> AgentOutcome:
        from isobench_ray.llm_client import TRANSIENT, DeadlinePassed, complete_by  # litellm only where a model runs

        spec = self.spec
        api_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        loop = _Loop(spec, ctx)
        while (limit := loop.limit()) is None:
            try:  # the session's clock covers the model: no call outlives the deadline
                reply = complete_by(loop.deadline, spec.model, loop.messages, api_base=spec.api_base, api_key=api_key,
                                    temperature=spec.temperature)
            except DeadlinePassed:
                return loop.end("time limit")
            except TRANSIENT as exc:
                if loop.left() <= 0:
                    return loop.end("time limit")
                loop.end("model unreachable")  # still failing after the backoff: the endpoint, not the agent
                raise RuntimeError(f"{spec.model} did not answer after retries: {type(exc).__name__}: "
                                   f"{str(exc)[:500]}") from None  # a plain error: litellm's may not pickle
            if loop.step(reply):
                return loop.end("submitted")
        return loop.end(limit)


class _Loop:
    """One session of the loop: the conversation, its counts, the deadline, the log and the trajectory."""

    def __init__(self, spec: LitellmSpec, ctx: SessionContext):
        self.spec, self.ctx = spec, ctx
        self.messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ctx.prompt_file.read_text()}]
        self.steps, self.tokens, self.cost, self.priced = 0, 0, 0.0, True
        self.deadline = time.monotonic() + ctx.time_limit_s
        self.log = (ctx.log_dir / "agent.log").open("a")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def limit(self) -> str | None:
        """The limit that ends the session now, if any."""
        if self.steps >= self.spec.step_limit:
            return "step limit"
        if self.spec.cost_limit and self.priced and self.cost >= self.spec.cost_limit:
            return "cost limit"
        return "time limit" if self.left() <= 0 else None

    def save(self, exit_status: str) -> None:
        """The trajectory, written anew after every step into the log folder, where the agent's commands can
        write too: never through a link they left there."""
        trajectory = {"agent": self.spec.name, "model": self.spec.model, "exit_status": exit_status, "steps": self.steps,
                      "tokens": self.tokens, "cost_usd": self.cost if self.priced else None, "messages": self.messages}
        tmp = write_in_tree(self.ctx.log_dir, ".trajectory.json.tmp", json.dumps(trajectory, indent=1).encode())
        tmp.replace(self.ctx.log_dir / "trajectory.json")

    def end(self, exit_status: str) -> AgentOutcome:
        """The outcome; past the time limit it is the agent's `agent_timeout`, as for every agent."""
        self.save(exit_status)
        self.log.write(f"--- {exit_status}\n")
        self.log.close()
        timed_out = exit_status == "time limit"
        return AgentOutcome(exit_status, FailureCause.agent_timeout if timed_out else None,
                            f"the session's {self.ctx.time_limit_s:.0f}s ran out (model calls included)" if timed_out else "",
                            steps=self.steps, tokens=self.tokens, cost_usd=self.cost if self.priced else None)

    def step(self, reply) -> bool:
        """The model's reply counted, its one command run and its output added; True when it submitted."""
        self.steps += 1
        self.tokens += reply.tokens
        self.priced = self.priced and reply.cost_usd is not None
        self.cost += reply.cost_usd or 0.0
        self.messages.append({"role": "assistant", "content": reply.text})
        self.log.write(f"--- step {self.steps}\n{reply.text}\n")
        blocks = bash_blocks(reply.text)
        if len(blocks) != 1:
            self.messages.append({"role": "user", "content": FORMAT_ERROR.format(n=len(blocks), submit=SUBMIT)})
            self.save("running")
            return False
        timeout_s = max(1.0, min(self.spec.command_timeout_s, self.left()))
        result = self.ctx.sandbox.exec(blocks[0], cwd=self.ctx.workdir, timeout_s=timeout_s,
                                       log_path=self.ctx.log_dir / "step.log")
        self.log.write(f"--- output (exit {result.returncode}{', timed out' if result.timed_out else ''})\n"
                       f"{result.output[-4000:]}\n")
        lines = result.output.lstrip().splitlines()
        if lines and lines[0].strip() == SUBMIT:
            self.messages.append({"role": "user", "content": result.output})
            return True
        output = shown(result.output) + (f"\n[the command was killed after {timeout_s:.0f}s]" if result.timed_out else "")
        self.messages.append({"role": "user", "content": OBSERVATION.format(code=result.returncode, output=output)})
        self.save("running")
        return False
