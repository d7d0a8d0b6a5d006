"""The command line's shared parts: the Typer apps, the quiet defaults set before any library loads, and
the options that set a setting (their help is the setting's own, config.setting_help)."""

from __future__ import annotations

import os

# Quiet, offline defaults for libraries that phone home at import (users can override them).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# RAY_AUTH_MODE is not set here: a cluster this command starts gets token authentication (cluster.driver.connect),
# one it joins keeps what its owner chose (docs/security.md)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import typer  # noqa: E402

from isobench_ray.config import Settings, setting_help  # noqa: E402

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ISO-Bench on Ray: agents, 3-way benchmarks, reports.")
tasks_app = typer.Typer(no_args_is_help=True, help="Work with task files.")
app.add_typer(tasks_app, name="tasks")
images_app = typer.Typer(no_args_is_help=True, help="The Docker sandbox's images on this node (docs/docker.md).")
app.add_typer(images_app, name="images")


JUDGE_HELP = ("A litellm model string (repeatable: several judges vote), e.g. anthropic/claude-sonnet-4-5 or "
              "openai/NAME with --api-base; none: the rule-based judge.")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


# Options that set a setting: option name -> the setting's flat name (config.FLAT). Their help is the setting's
# own description and default (config.setting_help), so a setting is written once, in config.py.
OPTION_SETTINGS = {
    "rounds": "rounds", "max_rounds": "max_rounds", "slot_budget": "slot_budget_min", "warmup": "warmup_runs",
    "runs_per_round": "runs_per_round", "validate_server": "validate_server", "host_cores": "host_cores",
    "sandbox": "sandbox", "server_timeout": "server_start_timeout_s", "import_timeout": "import_timeout_s",
    "setup_timeout": "setup_timeout_s", "bench_timeout": "bench_timeout_s", "judge": "judges", "api_base": "judge_api_base",
}


def _opt(option: str, *flags: str, **kwargs):
    """A typer option whose help comes from the setting it sets."""
    return typer.Option(None, *flags, help=setting_help(OPTION_SETTINGS[option]), **kwargs)


def _settings(**options) -> Settings:
    """Settings from the options given (None: not given), by OPTION_SETTINGS, over the environment."""
    given = {OPTION_SETTINGS.get(k, k): v for k, v in options.items() if v is not None}
    if isinstance(given.get("judges"), list):
        given["judges"] = tuple(given["judges"])
    rounds, max_rounds = given.get("rounds"), given.get("max_rounds")
    if rounds is not None and max_rounds is not None and max_rounds < rounds:
        given["max_rounds"] = rounds  # "at least 5 rounds" with a smaller maximum means exactly 5
    try:
        return Settings(**given)
    except ValueError as exc:  # pydantic's message names the setting
        _fail(f"bad setting: {exc}")
