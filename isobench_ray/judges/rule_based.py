"""The judge without a model (the demo, a machine with no key): the verdict's fields from the two diffs.

Files, functions and lines the patches share decide the bottleneck target and the approach; what a diff
cannot tell (techniques, likelihood) is `other`/`uncertain`. Every vote says "rule-based" as its judge,
and the report labels it so.
"""

from __future__ import annotations

import re

from isobench_ray.judges.base import JudgeRequest
from isobench_ray.schema import PatchVerdict, Vote
from isobench_ray.scoring.hacks import parse_diff

_DEF = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)")


def _shape(diff: str) -> tuple[set[str], set[tuple[str, str]], set[str]]:
    """(files, (file, function) pairs touched, changed lines) of a diff."""
    files, functions, lines = set(), set(), set()
    for patched in parse_diff(diff):
        files.add(patched.path)
        for hunk in patched:
            context = _DEF.match(hunk.section_header or "")
            current = context.group(1) if context else None
            for line in hunk:
                match = _DEF.match(line.value)
                if match:
                    current = match.group(1)
                if line.is_added or line.is_removed:
                    if line.value.strip():
                        lines.add(("+" if line.is_added else "-") + line.value.strip())
                    if current:
                        functions.add((patched.path, current))
    return files, functions, lines


def _complexity(n_lines: int) -> str:
    return "low" if n_lines < 30 else "medium" if n_lines < 150 else "high" if n_lines < 500 else "extreme"


def compare(human_patch: str, agent_patch: str) -> PatchVerdict:
    h_files, h_funcs, h_lines = _shape(human_patch)
    a_files, a_funcs, a_lines = _shape(agent_patch)
    files, funcs, lines = h_files & a_files, h_funcs & a_funcs, h_lines & a_lines
    line_overlap = len(lines) / max(1, len(h_lines | a_lines))
    if not a_lines:
        target = "no_optimization"
    elif funcs:
        target = "same_target"
    elif files:
        target = "related_target"
    else:
        target = "different_target"
    approach = ("same_approach" if line_overlap >= 0.5 else "similar_approach" if line_overlap >= 0.2
                else "other")
    facts = (f"rule-based: {len(files)} of {len(h_files)} human files shared, {len(funcs)} of {len(h_funcs)} functions, "
             f"{len(lines)} of {len(h_lines | a_lines)} changed lines ({line_overlap:.0%})")
    return PatchVerdict.model_validate({
        "task_analysis": {"domain": "other", "complexity": _complexity(len(h_lines)),
                          "description": "rule-based: no model read the task"},
        "bottleneck_target": {"category": target, "human_target": ", ".join(sorted(f"{f}:{n}" for f, n in h_funcs)),
                              "agent_target": ", ".join(sorted(f"{f}:{n}" for f, n in a_funcs)), "discussion": facts},
        "optimization_techniques": {"human_techniques": [], "agent_techniques": [],
                                    "technique_overlap": bool(lines), "discussion": facts},
        "approach_comparison": {"category": approach, "discussion": facts},
        "speedup_likelihood": {"category": "uncertain", "discussion": "rule-based: the measurements decide"},
        "failure_mode": {"category": "localization_failure" if target == "different_target" else "not_applicable",
                         "discussion": facts},
        "observations": {"key_differences": sorted(f"only the human changes {f}" for f in h_files - a_files)
                         + sorted(f"only the agent changes {f}" for f in a_files - h_files)},
    })


class RuleBasedJudge:
    name = "rule-based"
    rule_based = True

    def check(self) -> str | None:
        return None  # no model to reach

    def judge(self, request: JudgeRequest) -> list[Vote]:
        return [Vote(judge=self.name, verdict=compare(request.human_patch, request.agent_patch))]
