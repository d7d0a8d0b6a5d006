"""`isobench`: the command line. Thin: parses options, calls the runner, prints where things are.
The commands live by what they work on: cli/run.py (demo, run), cli/inspect.py (a run or task file:
judge, report, status, regrade, view, tasks validate, parse-metrics), cli/machine.py (images, clean)."""

from __future__ import annotations

import sys

# importing the command modules registers their commands, in the order the help lists them: run first
import isobench_ray.cli.run  # noqa: F401
from isobench_ray.cli import inspect, machine, mine  # noqa: F401
from isobench_ray.cli.app import OPTION_SETTINGS, _settings, app
from isobench_ray.cli.run import run_cmd

__all__ = ["OPTION_SETTINGS", "_settings", "app", "main", "run_cmd"]


def main() -> None:
    sys.exit(app())
