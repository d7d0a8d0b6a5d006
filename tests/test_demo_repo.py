"""The demo repository is the same on every machine: its hashes are the ones tasks.yaml names."""

import yaml

from isobench_ray import demo


def test_build_is_deterministic_and_matches_the_task_file(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_repo", demo.DEMO_DIR / "build_repo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first, second = module.build(tmp_path / "a"), module.build(tmp_path / "b")
    assert first == second
    tasks = yaml.safe_load(demo.TASKS_FILE.read_text())["tasks"]
    shas = set(first.values())
    for task in tasks:
        assert task["human_commit"] in shas and task["parent_commit"] in shas, task["id"]
    assert len(tasks) >= 4
