"""The house rules, checked on the import graph: Ray only in cluster/, stages see only protocols, no circles."""

import ast
import graphlib
from pathlib import Path

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
                                    ".server", ".greedy_client", ".scripts"))}  # shared, engine-agnostic
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
                                  "isobench_ray.scoring.hard", "isobench_ray.scoring.stats", "isobench_ray.scoring.soft",
                                  "isobench_ray.scoring.hacks", "isobench_ray.scoring.correctness",
                                  "isobench_ray.engines.perf_command", "isobench_ray.engines.base"])
def test_parsing_and_scoring_are_pure(name):
    tops = {i.split(".")[0] for i in _imports(MODULES[name])}
    assert not tops & {"subprocess", "ray", "git", "docker", "urllib", "socket", "psutil", "requests"}, name


# ---------------------------------------------------------------- sizes

MAX_FUNCTION_LINES, MAX_PARAMETERS, MAX_MODULE_LINES = 60, 8, 450
# Over the limits now, in files other engineers are changing at the moment; each xfails (not strictly) until
# it is brought under them. Everything else is held to the rule.
_BEING_SPLIT: dict[str, str] = {}


def _is_cli_command(path: Path, node: ast.AST) -> bool:
    """A typer command of the CLI (`@app.command(...)`): its parameters are the command line's options."""
    return path.parent == PACKAGE / "cli" and any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
        for d in node.decorator_list)


def _size_violations(path: Path) -> list[str]:
    text = path.read_text()
    found = []
    if text.count("\n") > MAX_MODULE_LINES:
        found.append(f"module: {text.count(chr(10))} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        lines = node.end_lineno - node.lineno + 1
        if lines > MAX_FUNCTION_LINES:
            found.append(f"{node.name} (line {node.lineno}): {lines} lines (at most {MAX_FUNCTION_LINES})")
        a = node.args
        params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")]
        if len(params) > MAX_PARAMETERS and not _is_cli_command(path, node):
            found.append(f"{node.name} (line {node.lineno}): {len(params)} parameters (at most {MAX_PARAMETERS})")
    return found


def _size_case(rel: str):
    if rel in _BEING_SPLIT:
        return pytest.param(rel, marks=pytest.mark.xfail(reason=f"{_BEING_SPLIT[rel]}: being changed by another "
                                                                "engineer", strict=False))
    return rel


@pytest.mark.parametrize("rel", [_size_case(str(p.relative_to(PACKAGE.parent))) for p in sorted(PACKAGE.rglob("*.py"))])
def test_functions_and_modules_keep_their_size(rel):
    """No function over 60 lines, none with more than 8 parameters (self/cls not counted; the CLI's commands,
    whose parameters are its options, excepted), no module over 450 lines."""
    assert not _size_violations(PACKAGE.parent / rel), _size_violations(PACKAGE.parent / rel)
