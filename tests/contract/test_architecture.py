"""The house rules of the package's structure, read from the code's own imports (no import is run).

* No import cycle at all: the registry is a pure table that imports no model; the factory
  (``factory -> models -> registry``) loads the built-in architectures.
* Floors: ``cli -> jobs -> export / train -> factory -> models / runs -> data -> preprocess /
  runtime``; a module imports only its own floor or the floors below it.
* ``runtime`` and ``preprocess`` never import TensorFlow; the library never imports the ``edge``
  application; ``export`` never imports ``train``.
* A command module of ``jobs/`` never imports another command: what two commands share is a step
  module (outputs, run inputs, protocol run, report, ...).
* No file of the package or of ``edge/`` over 400 lines; no function of ``jobs/`` over 80 lines
  unless a ``# long:`` comment on the line above its ``def`` says why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mer_keras"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str] = frozenset()) -> set[str]:
    """Every module imported anywhere in the file (top level and inside functions).

    ``from package import submodule`` counts as an import of the submodule (when it is one of
    ``modules``), not of the package's ``__init__``.
    """
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(node.module)
    return out


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {m for m in imports_of(path, set(modules)) if m in modules and m != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    bad = [sorted(c) for c in cycles(graph())]
    assert not bad, f"import cycles: {bad}"


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


#: Floor of each part of the package (a module imports its floor or lower ones).
FLOORS = {"cli": 8, "jobs": 7, "export": 6, "train": 6, "explain": 6, "factory": 5, "models": 4, "layers": 4, "registry": 4,
          "runs": 4, "data": 3, "facs": 2, "preprocess": 1, "runtime": 1, "metrics": 1, "atomic": 0, "errors": 0,
          "_keras": 0, "names": 0, "native": 0, "environment": 0, "presets": 1, "": 9}


def floor(module: str) -> int:
    part = module.split(".")[1] if module.count(".") else ""
    return FLOORS[part]


def test_every_module_has_a_floor():
    unknown = sorted({m.split(".")[1] for m in graph() if m.count(".") and m.split(".")[1] not in FLOORS})
    assert not unknown, f"parts without a floor in FLOORS: {unknown}"


def test_no_import_runs_up_a_floor():
    # ``mer_keras`` itself (``__version__``, the tf_keras choice) runs before any submodule anyway.
    up = sorted(f"{a} -> {b}" for a, targets in graph().items() for b in targets
                if b != "mer_keras" and floor(b) > floor(a))
    assert not up, "imports that run up a floor:\n" + "\n".join(up)


@pytest.mark.parametrize("part", ["runtime", "preprocess"])
def test_tf_free_parts_never_import_tensorflow(part):
    for path in (PACKAGE / part).rglob("*.py"):
        heavy = {m for m in imports_of(path) if m.split(".")[0] in ("tensorflow", "tf_keras", "keras")
                 or m.startswith("mer_keras._keras") or m.startswith("mer_keras.train")}
        assert not heavy, f"{path.relative_to(ROOT)} imports {sorted(heavy)}"


def test_the_library_never_imports_the_edge_app_and_export_never_imports_train():
    for path in PACKAGE.rglob("*.py"):
        mods = imports_of(path)
        assert not {m for m in mods if m == "edge" or m.startswith("edge.")}, path
        if "export" in path.relative_to(PACKAGE).parts:
            assert not {m for m in mods if m.startswith("mer_keras.train")}, path


#: The command modules of ``jobs/`` (one per ``mer-keras`` command); every other module there is a step.
COMMANDS = ("train", "tune", "ensemble", "evaluate", "predict", "spot", "export", "explain", "merge", "prepare")


def test_the_commands_are_the_cli_s_jobs():
    """Every command module exists, and every job function the CLI calls lives in one of them."""
    called = set()
    for path in (PACKAGE / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mer_keras.jobs.") and \
                    any(a.name[0].islower() for a in node.names):
                called.add(node.module.rsplit(".", 1)[1])
    jobs = {p.stem for p in (PACKAGE / "jobs").glob("*.py")}
    assert set(COMMANDS) <= jobs
    assert called - {"resolve"} <= set(COMMANDS), f"the CLI calls jobs outside COMMANDS: {called - set(COMMANDS)}"


def test_no_command_imports_another_command():
    edges = graph()
    commands = {f"mer_keras.jobs.{c}" for c in COMMANDS}
    bad = sorted(f"{a} -> {b}" for a in commands for b in edges.get(a, ()) if b in commands)
    assert not bad, "commands that import commands (move what they share into a step module):\n" + "\n".join(bad)


def test_no_file_over_400_lines():
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "edge").rglob("*.py")]
    long = sorted(f"{p.relative_to(ROOT)}: {n}" for p in files if (n := len(p.read_text().splitlines())) > 400)
    assert not long, "files over 400 lines (split them by idea):\n" + "\n".join(long)


def test_no_job_function_over_80_lines_without_a_reason():
    long = []
    for path in (PACKAGE / "jobs").glob("*.py"):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if not lines[first - 2].strip().startswith("# long:"):
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert not long, "job functions over 80 lines (split them into named steps, or say why):\n" + "\n".join(long)
