"""`litellm`: the built-in agent, a bash-only loop in the spirit of mini-swe-agent, for any model litellm
reaches (a hosted API, a local vLLM or Ollama server).

mini-swe-agent's conventions: the model answers with exactly one ```bash block per reply; the block runs
as its own command in the session's sandbox (no state carries over but the files) and its output is the
next message; the session ends when a command prints COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT as its first
line. A reply with no block or several gets a format-error message and counts as a step. The model is
called from the harness (the sandbox needs no network); limits on steps, cost and wall time end the
session with the tree as it is. The trajectory is written after every step.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from isobench_ray.agents.base import AgentOutcome, BuiltinAgent, SessionContext, hashed_env
from isobench_ray.schema import LitellmSpec, Task, content_hash
from isobench_ray.text import head_and_tail

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
        from isobench_ray.llm_client import TRANSIENT, complete  # litellm only where a model runs

        spec = self.spec
        api_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ctx.prompt_file.read_text()}]
        steps, tokens, cost, priced = 0, 0, 0.0, True
        deadline = time.monotonic() + ctx.time_limit_s
        log = (ctx.log_dir / "agent.log").open("a")

        def save(exit_status: str) -> None:
            trajectory = {"agent": spec.name, "model": spec.model, "exit_status": exit_status, "steps": steps,
                          "tokens": tokens, "cost_usd": cost if priced else None, "messages": messages}
            tmp = ctx.log_dir / ".trajectory.json.tmp"
            tmp.write_text(json.dumps(trajectory, indent=1))
            tmp.replace(ctx.log_dir / "trajectory.json")

        def end(exit_status: str) -> AgentOutcome:
            save(exit_status)
            log.write(f"--- {exit_status}\n")
            log.close()
            return AgentOutcome(exit_status, steps=steps, tokens=tokens, cost_usd=cost if priced else None)

        while True:
            if steps >= spec.step_limit:
                return end("step limit")
            if spec.cost_limit and priced and cost >= spec.cost_limit:
                return end("cost limit")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return end("time limit")
            try:
                reply = complete(spec.model, messages, api_base=spec.api_base, api_key=api_key,
                                 temperature=spec.temperature, timeout_s=min(remaining, 600.0))
            except TRANSIENT:  # still failing after the backoff: the endpoint, not the agent; the session is retried
                end("model unreachable")
                raise
            steps += 1
            tokens += reply.tokens
            priced = priced and reply.cost_usd is not None
            cost += reply.cost_usd or 0.0
            messages.append({"role": "assistant", "content": reply.text})
            log.write(f"--- step {steps}\n{reply.text}\n")
            blocks = bash_blocks(reply.text)
            if len(blocks) != 1:
                messages.append({"role": "user", "content": FORMAT_ERROR.format(n=len(blocks), submit=SUBMIT)})
                save("running")
                continue
            timeout_s = max(1.0, min(spec.command_timeout_s, deadline - time.monotonic()))
            result = ctx.sandbox.exec(blocks[0], cwd=ctx.workdir, timeout_s=timeout_s, log_path=ctx.log_dir / "step.log")
            log.write(f"--- output (exit {result.returncode}{', timed out' if result.timed_out else ''})\n{result.output[-4000:]}\n")
            lines = result.output.lstrip().splitlines()
            if lines and lines[0].strip() == SUBMIT:
                messages.append({"role": "user", "content": result.output})
                return end("submitted")
            output = shown(result.output) + (f"\n[the command was killed after {timeout_s:.0f}s]" if result.timed_out else "")
            messages.append({"role": "user", "content": OBSERVATION.format(code=result.returncode, output=output)})
            save("running")
