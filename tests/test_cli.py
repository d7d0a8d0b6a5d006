"""The console script as a user runs it: real subprocesses."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "bench_outputs"
ROOT = Path(__file__).resolve().parents[1]


def _isobench(*args):
    return subprocess.run([sys.executable, "-m", "isobench_ray.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_parse_metrics_prints_the_expected_json():
    proc = _isobench("parse-metrics", str(FIXTURES / "vllm_serving_2024-07_printed-twice.txt"))
    assert proc.returncode == 0, proc.stderr
    expected = json.loads((FIXTURES / "vllm_serving_2024-07_printed-twice.expected.json").read_text())
    got = json.loads(proc.stdout)
    assert got == expected  # every metric, none missing and none extra


def test_parse_metrics_without_a_result_exits_1_with_the_last_lines():
    proc = _isobench("parse-metrics", str(FIXTURES / "upstream_ad8d696a_argparse-error.log"))
    assert proc.returncode == 1
    assert "last lines" in proc.stderr and "error" in proc.stderr.lower()


@pytest.mark.slow  # three console-script starts, each importing Ray
def test_status_and_report_refuse_a_folder_that_is_not_a_run(tmp_path):
    assert _isobench("status", str(tmp_path)).returncode == 2
    assert "not a run directory" in _isobench("report", str(tmp_path)).stderr


def test_run_options_reach_the_settings(monkeypatch, tmp_path):
    """Server start, runs per server start, validation's server and host cores can be set from the command line."""
    from typer.testing import CliRunner

    from isobench_ray import cli
    from isobench_ray.cli import run as run_commands

    seen = {}
    monkeypatch.setattr(run_commands, "_execute", lambda *a, **kw: seen.update(kw))
    res = CliRunner().invoke(cli.app, ["run", "t.yaml", "--agents", "noop", "--out", str(tmp_path / "r"),
                                       "--server-timeout", "180", "--runs-per-round", "2", "--no-validate-server",
                                       "--host-cores", "4"])
    assert res.exit_code == 0, res.output
    s = seen["settings"]
    assert (s.limits.server_start_timeout_s, s.measurement.runs_per_round, s.limits.validate_server,
            s.slots.host_cores) == (180, 2, False, 4)


def test_every_setting_option_names_a_setting_and_takes_its_help():
    """A setting is written once (config.py): the options that set one name it, and show its own help."""
    import inspect

    from isobench_ray import cli
    from isobench_ray.config import FLAT, setting_help

    assert set(cli.OPTION_SETTINGS.values()) <= set(FLAT)
    params = inspect.signature(cli.run_cmd).parameters
    for option, flat in cli.OPTION_SETTINGS.items():
        if option in params and option != "judge":  # --judge keeps its own help (model strings)
            assert params[option].default.help == setting_help(flat), option
    settings = cli._settings(rounds=6, max_rounds=4, slot_budget=30.0, judge=["a/b"], sandbox="none")
    assert (settings.measurement.rounds, settings.measurement.max_rounds) == (6, 6)
    assert settings.measurement.slot_budget_min == 30.0 and settings.judges.models == ("a/b",)
    assert settings.sandbox.kind == "none"
