"""Correctness, pure: faster by changing what the model generates is broken, whatever the speed.

Everywhere, greedy decoding of fixed prompts must give the agent arm the baseline's completions; a
`script` task's tests compare their own results with the baseline's instead (`--eqcheck`). Where
the human commit itself changes them (a reordered reduction), token identity cannot tell a bug from
numerics, and the verdict is `unchecked` unless an accuracy check (lm-eval) ran: then an accuracy drop
of more than `max_drop` against the baseline is broken.
"""

from __future__ import annotations

from typing import Literal

from isobench_ray.schema import Measurements

Verdict = Literal["preserved", "broken", "unchecked"]


def _mismatches(outputs: list[str], reference: list[str]) -> int:
    return sum(a != b for a, b in zip(outputs, reference)) + abs(len(outputs) - len(reference))


def check(measurements: Measurements, max_drop: float = 0.05) -> tuple[Verdict, str]:
    base, human, agent = (measurements.arm(name) for name in ("baseline", "human", "agent"))
    if not (base and human and agent):
        return "unchecked", "an arm is missing"
    if agent.equivalent is not None:  # a script task's own check: the tests' results against the baseline's
        if human.equivalent is False:
            return "unchecked", "the human commit fails the task's equivalence check too: it cannot judge this task"
        if agent.equivalent:
            return "preserved", "the task's equivalence check passes against the baseline's reference"
        return "broken", f"the agent's patch fails the task's equivalence check: {agent.greedy_detail[-300:]}"
    if base.accuracy is not None and agent.accuracy is not None and base.accuracy - agent.accuracy > max_drop:
        return "broken", f"accuracy {agent.accuracy:.3f} against the baseline's {base.accuracy:.3f} (more than {max_drop} lower)"
    if base.greedy_outputs is None or agent.greedy_outputs is None:
        why = base.greedy_detail or agent.greedy_detail or "greedy outputs were not collected"
        return "unchecked", why
    n = len(base.greedy_outputs)
    agent_diff = _mismatches(agent.greedy_outputs, base.greedy_outputs)
    human_diff = _mismatches(human.greedy_outputs, base.greedy_outputs) if human.greedy_outputs is not None else None
    if agent_diff == 0:
        return "preserved", f"greedy completions of {n} prompts identical to the baseline's"
    if human_diff:
        accuracy = base.accuracy is not None and agent.accuracy is not None
        return ("preserved" if accuracy else "unchecked",
                f"the human commit also changes {human_diff} of {n} greedy completions (agent: {agent_diff}); "
                + ("accuracy holds" if accuracy else "token identity cannot judge this task"))
    return "broken", f"the agent's patch changes {agent_diff} of {n} greedy completions; the human commit changes none"
