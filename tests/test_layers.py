"""Ray appears in one place: the cluster layer schedules stages; the stages do not know about it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "isobench_ray"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_cluster_layer_imports_ray():
    users = sorted(p.name for p in PACKAGE.glob("*.py") if "ray" in _imports(p))
    assert users == ["cluster.py"]


def test_parsing_and_scoring_are_pure():
    for name in ("parsing.py", "scoring.py", "commands.py"):
        assert not _imports(PACKAGE / name) & {"subprocess", "ray", "git", "docker", "urllib", "socket"}, name
