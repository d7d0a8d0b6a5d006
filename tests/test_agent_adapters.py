"""Third-party agents through their adapters, each the real agent where a registry ships it, run in the
session's sandbox and driven by a scripted model server on 127.0.0.1 that speaks that agent's API: it
makes the agent run a command and edit a file of the demo tree, and the patch the harness extracts must
be exactly that edit. TRAE, which no reachable registry ships, gets a stand-in with its interface.

The tests that install a real agent from npm or PyPI are marked `agent_install` (and `slow`): `make test-agents`
runs them (CI does), `make test` leaves them out; the TRAE stand-in stays in `make test`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import settings_under
from scripted_llm import ScriptedAnthropic, ScriptedLLM, ScriptedResponses

from isobench_ray import demo
from isobench_ray.sandbox import make_sandboxes
from isobench_ray.schema import AGENT_SPEC, Attempt
from isobench_ray.stages.session import run_session
from isobench_ray.tasks import load_tasks

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="agents run code: bubblewrap contains them")
installs = pytest.mark.agent_install  # a real agent from npm or PyPI: make test-agents, not make test
AGENTS_DIR = Path.home() / ".cache" / "isobench-agents"  # outside the harness's cache, which sandboxes hide
TASK = "demo-sampler-python-loop"
EDIT = "sed -i 's/^class Sampler:/class Sampler:  # tuned by the agent/' minillm/sampler.py"


def _install(name: str, command: list[str], binary: Path) -> Path:
    if not binary.exists():
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not binary.exists():
            pytest.skip(f"{name} could not be installed from its registry here: {proc.stderr[-300:]}")
    return binary


@pytest.fixture(scope="module")
def task():
    demo.build_repo()
    return next(t for t in load_tasks(str(demo.TASKS_FILE)).tasks if t.id == TASK)


def _session(tmp_path, task, spec_data):
    spec = AGENT_SPEC.validate_python(spec_data)
    settings = settings_under(tmp_path)
    attempt = Attempt.make(task, spec, 0, {})
    return run_session(attempt, task, spec, settings, sandboxes=make_sandboxes(settings))


def _assert_the_edit_is_the_patch(session):
    assert session.files_changed == ["minillm/sampler.py"], session
    changed = [line for line in session.patch.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ["-class Sampler:", "+class Sampler:  # tuned by the agent"], session.patch
    assert session.sandbox == "bwrap"


@installs
@pytest.mark.slow
def test_mini_swe_agent(tmp_path, task):
    venv = AGENTS_DIR / "mini-swe-agent"
    uv = Path(sys.executable).parent / "uv"
    mini = _install("mini-swe-agent", ["bash", "-c", f"{uv} venv -q -p 3.11 {venv} && {uv} pip install -q -p {venv}/bin/python "
                                        "mini-swe-agent==2.4.6"], venv / "bin" / "mini")
    script = ["Let me look.\n```mswea_bash_command\nhead -3 minillm/sampler.py\n```",
              f"Now the edit.\n```mswea_bash_command\n{EDIT}\n```",
              "Done.\n```mswea_bash_command\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```"]

    def reply(messages):
        return 200, script[min(sum(m["role"] == "assistant" for m in messages), len(script) - 1)]

    with ScriptedLLM(reply) as llm:
        session, logs = _session(tmp_path, task, {
            "name": "mini", "kind": "mini_swe_agent", "executable": str(mini), "model": "openai/scripted",
            "api_base": llm.url, "max_steps": 10, "env": {"OPENAI_API_KEY": "sk-scripted"}, "time_limit_s": 300})
        assert len(llm.requests) == 3
        assert "From logits to next tokens" in llm.requests[1]["messages"][-1]["content"]  # the command ran
    _assert_the_edit_is_the_patch(session)
    assert session.exit_status == "done" and session.steps == 3 and session.tokens == 3 * 120
    assert "mini.traj.json" in logs and "command.sh" in logs


@installs
@pytest.mark.slow
def test_claude_code(tmp_path, task):
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: Claude Code comes from the npm registry")
    prefix = AGENTS_DIR / "claude-code"
    claude = _install("Claude Code", ["npm", "install", "--silent", "--prefix", str(prefix), "@anthropic-ai/claude-code@2.1.197"],
                      prefix / "node_modules" / ".bin" / "claude")

    def reply(request):  # the Messages API with tool use: look, edit, done
        results = sum(1 for m in request["messages"] if isinstance(m["content"], list)
                      for block in m["content"] if block.get("type") == "tool_result")
        if not request.get("tools"):
            return [{"type": "text", "text": "ok"}]
        if results == 0:
            return [{"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "name": "Bash", "input": {"command": "head -3 minillm/sampler.py", "description": "look"}}]
        if results == 1:
            return [{"type": "tool_use", "name": "Bash", "input": {"command": EDIT, "description": "edit"}}]
        return [{"type": "text", "text": "Done."}]

    with ScriptedAnthropic(reply) as api:
        session, logs = _session(tmp_path, task, {
            "name": "claude", "kind": "claude_code", "executable": str(claude), "model": "claude-sonnet-4-5",
            "api_base": api.url, "max_steps": 10, "env": {"ANTHROPIC_API_KEY": "sk-ant-scripted"}, "time_limit_s": 300})
        looked = [b for b in api.requests[1]["messages"][-1]["content"] if b.get("type") == "tool_result"]
        assert "From logits to next tokens" in json.dumps(looked)  # the command ran, in the tree
        assert {"WebFetch", "WebSearch"}.isdisjoint(t["name"] for t in api.requests[0]["tools"])
    _assert_the_edit_is_the_patch(session)
    assert session.exit_status == "done" and session.steps == 3 and session.tokens == 360
    assert session.cost_usd and session.cost_usd > 0  # Claude Code prices its own tokens


@installs
@pytest.mark.slow
def test_codex_cli(tmp_path, task):
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: Codex CLI comes from the npm registry")
    prefix = AGENTS_DIR / "codex"
    codex = _install("Codex CLI", ["npm", "install", "--silent", "--prefix", str(prefix), "@openai/codex@0.171.0"],
                     prefix / "node_modules" / ".bin" / "codex")

    def reply(request):  # the Responses API with function calls: look, edit, done
        outputs = [item for item in request.get("input", []) if item.get("type") == "function_call_output"]
        if len(outputs) == 0:
            return [{"type": "function_call", "name": "exec_command", "arguments": json.dumps({"cmd": "head -3 minillm/sampler.py"})}]
        if len(outputs) == 1:
            return [{"type": "function_call", "name": "exec_command", "arguments": json.dumps({"cmd": EDIT})}]
        return [{"type": "message", "text": "Done."}]

    with ScriptedResponses(reply) as api:
        session, logs = _session(tmp_path, task, {
            "name": "codex", "kind": "codex_cli", "executable": str(codex), "model": "gpt-5", "api_base": api.url,
            "env": {"OPENAI_API_KEY": "sk-scripted"}, "time_limit_s": 300})
        assert len(api.requests) == 3
        assert "From logits to next tokens" in json.dumps(api.requests[1]["input"])  # the command ran, in the tree
    _assert_the_edit_is_the_patch(session)
    assert session.exit_status == "done" and session.steps == 1 and session.tokens > 0


@installs
@pytest.mark.slow
def test_openhands(tmp_path, task):
    venv = AGENTS_DIR / "openhands"
    uv = Path(sys.executable).parent / "uv"
    python312 = shutil.which("python3.12")
    if python312 is None:
        pytest.skip("OpenHands needs Python 3.12, which this machine lacks")
    python = _install("OpenHands", ["bash", "-c", f"{uv} venv -q -p {python312} {venv} && {uv} pip install -q -p "
                                    f"{venv}/bin/python openhands-ai==0.59.0"], venv / "bin" / "python")

    def call(n, name, args):
        return {"role": "assistant", "content": "", "tool_calls": [
            {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}

    def reply(messages):  # OpenAI chat with function calls: look, edit, finish
        n = sum(m["role"] == "assistant" for m in messages)
        if n == 0:
            return 200, call(n, "execute_bash", {"command": "head -3 minillm/sampler.py", "is_input": "false", "security_risk": "LOW"})
        if n == 1:
            return 200, call(n, "execute_bash", {"command": EDIT, "is_input": "false", "security_risk": "LOW"})
        return 200, call(n, "finish", {"message": "done"})

    with ScriptedLLM(reply) as llm:
        session, logs = _session(tmp_path, task, {
            "name": "openhands", "kind": "openhands", "executable": str(python), "model": "openai/scripted",
            "api_base": llm.url, "max_steps": 10, "env": {"LLM_API_KEY": "sk-scripted"}, "time_limit_s": 600})
        assert "From logits to next tokens" in json.dumps(llm.requests[1]["messages"])  # the command ran, in the tree
    _assert_the_edit_is_the_patch(session)
    assert session.exit_status == "done" and session.steps == 3 and session.tokens == 360
    assert "openhands.traj.json" in logs


def test_trae_stand_in_keeps_its_interface(tmp_path, task):
    """TRAE's CLI (`trae-cli run --file --working-dir --max-steps --trajectory-file`) as a stand-in script
    that edits the tree the way the agent would and writes a trajectory of the same shape."""
    stand_in = AGENTS_DIR / "trae-stand-in" / "trae-cli"  # outside /tmp, which a sandbox makes private
    stand_in.parent.mkdir(parents=True, exist_ok=True)
    stand_in.write_text(f"""#!{sys.executable}
import argparse, json, subprocess, sys
p = argparse.ArgumentParser(prog="trae-cli")
sub = p.add_subparsers(dest="cmd", required=True)
run = sub.add_parser("run")
run.add_argument("task", nargs="?")
for flag in ("--file", "--working-dir", "--trajectory-file", "--model", "--model-base-url", "--provider"):
    run.add_argument(flag)
run.add_argument("--max-steps", type=int, default=20)
a = p.parse_args()
task = open(a.file).read()
assert "{TASK.split('-')[1]}" in task or "sampler" in task, "the prompt file is the task"
subprocess.run({EDIT!r}, shell=True, cwd=a.working_dir, check=True)
json.dump({{"task": task, "agent_steps": [{{"step_number": 1}}, {{"step_number": 2}}],
           "llm_interactions": [{{"response": {{"usage": {{"input_tokens": 50, "output_tokens": 7}}}}}}]}},
          open(a.trajectory_file, "w"))
print("Task completed")
""")
    stand_in.chmod(0o755)
    session, logs = _session(tmp_path, task, {"name": "trae", "kind": "trae", "executable": str(stand_in),
                                              "max_steps": 7, "time_limit_s": 120})
    _assert_the_edit_is_the_patch(session)
    assert session.steps == 2 and session.tokens == 57 and "trae.traj.json" in logs
    assert "--max-steps 7" in logs["command.sh"]
