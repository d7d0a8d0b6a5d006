"""The house rules, checked on the import graph: Ray only in cluster/, stages see only protocols, no circles."""

import ast
from pathlib import Path

import graphlib
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "isobench_ray"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Full module names imported by a file (`from a.b import c` gives a.b and, if it is a module, a.b.c)."""
    tree = ast.parse(path.read_text())
    names = set()
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _internal(path: Path, top_level_only: bool = False) -> set[str]:
    return {n for n in _imports(path, top_level_only) if n in MODULES}


def test_only_the_cluster_package_imports_ray():
    users = sorted(name for name, path in MODULES.items() if any(i.split(".")[0] == "ray" for i in _imports(path)))
    assert users and all(u.startswith("isobench_ray.cluster") for u in users), users


def test_stages_see_sandboxes_and_engines_only_through_their_protocols():
    concrete = {n for n in MODULES if n.startswith(("isobench_ray.sandbox.", "isobench_ray.engines."))
                and not n.endswith((".base", ".parsing", ".text_rows", ".text_results", ".json_results", ".perf_command",
                                    ".server", ".greedy_client"))}  # shared, engine-agnostic
    for name, path in MODULES.items():
        if name.startswith("isobench_ray.stages"):
            assert not _internal(path) & concrete, f"{name} imports {_internal(path) & concrete}"


def test_no_import_circle_in_the_package():
    graph = {}
    for name, path in MODULES.items():
        # module-level imports make circles; imports inside functions are deliberate and lazy
        graph[name] = {d for d in _internal(path, top_level_only=True) if d != name and not name.startswith(d + ".")}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("name", ["isobench_ray.engines.parsing", "isobench_ray.engines.text_rows",
                                  "isobench_ray.engines.text_results", "isobench_ray.engines.json_results",
                                  "isobench_ray.scoring.hard", "isobench_ray.scoring.stats", "isobench_ray.scoring.soft", "isobench_ray.scoring.hacks", "isobench_ray.scoring.correctness",
                                  "isobench_ray.engines.perf_command", "isobench_ray.engines.base"])
def test_parsing_and_scoring_are_pure(name):
    tops = {i.split(".")[0] for i in _imports(MODULES[name])}
    assert not tops & {"subprocess", "ray", "git", "docker", "urllib", "socket", "psutil", "requests"}, name
