"""Imports flow one way: the layers of ARCHITECTURE.md, read from the source with ``ast``.

Every ``import`` of a noisereg module counts, wherever it is written (inside a function too), so a
function-level import cannot hide a cycle; only the CLI imports lazily, to start fast.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# Bottom to top; a module may import its own layer and those below it, never one above.
LAYERS = [
    (
        "noise",
        "schedules",
        "seeding",
        "streams",
        "philox",
        "_allocator",
        "_checks",
        "_compat",
        "_lazy",
        "_optional",
        "_registry",
    ),
    ("layers", "sites", "metrics", "curvature", "robustness", "distributed"),
    ("engine",),
    ("study.config",),
    (
        "study.data_files",
        "study.data",
        "study.cells",
        "study.stats",
        "study.sequential",
        "study.rounds",
        "study.selection",
        "study.rundir",
        "study.store",
        "study.cell_models",
    ),
    ("study.bridge", "study.report", "study.model_plan", "study.tasks"),
    ("study.measure",),
    ("study.run", "study.export"),
    ("study", "study.api", "study.model_file", "integrations"),
    ("cli_output",),
    ("cli", "__main__", ""),
]
_RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# imports inside functions so that `noisereg report` starts without torch
_LAZY = {"noisereg.cli", "noisereg.cli_output"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "noisereg").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported noisereg module, whether the import sits inside a function) for every import."""
    tree = ast.parse(MODULES[module].read_text())
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "noisereg":
                for alias in child.names:
                    full = f"{child.module}.{alias.name}"
                    out.append((full if full in MODULES else child.module, inner))
            elif isinstance(child, ast.Import):
                out.extend((a.name, inner) for a in child.names if a.name.split(".")[0] == "noisereg")
            visit(child, inner)

    visit(tree, False)
    return out


def _layer(module: str) -> str:
    """The layer a module belongs to: ``study.<part>`` inside the study package, else its top name."""
    parts = module.split(".")[1:]
    if parts[:1] == ["study"] and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0] if parts else ""


def test_every_module_has_a_layer():
    assert {m: _layer(m) for m in MODULES if _layer(m) not in _RANK} == {}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_down_the_layers(module):
    upward = [target for target, _ in _imports(module) if _RANK[_layer(target)] > _RANK[_layer(module)]]
    assert upward == [], f"{module} ({_layer(module)}) imports from a layer above it"


def test_the_engine_never_imports_the_study_and_the_library_never_the_cli():
    for module in MODULES:
        for target, _ in _imports(module):
            if module.startswith("noisereg.engine"):
                assert not target.startswith("noisereg.study"), (module, target)
            if not module.startswith(("noisereg.cli", "noisereg.__main__")):
                assert not target.startswith("noisereg.cli"), (module, target)


def test_no_function_level_import_outside_the_cli():
    hidden = [(m, t) for m in MODULES if m not in _LAZY for t, inner in _imports(m) if inner]
    assert hidden == []


def test_the_module_graph_has_no_cycle():
    graph = {m: sorted({t for t, _ in _imports(m) if t in MODULES and t != m}) for m in MODULES}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])


@pytest.mark.parametrize("package", ["noisereg.study.config", "noisereg.noise.kinds", "noisereg.engine.vocabulary"])
def test_study_files_are_validated_without_torch(package):
    code = f"import sys, {package}\nassert 'torch' not in sys.modules, sorted(sys.modules)[:3]\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_public_name_is_defined_once_in_the_package():
    """One concept, one name: a public class, function or alias is defined in one module only."""
    where: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            overload = isinstance(node, ast.FunctionDef) and any(
                ast.unparse(d).rsplit(".", 1)[-1] == "overload" for d in node.decorator_list
            )
            # typing's overloads declare a name, they do not define it
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and not overload:
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                names = []
            for name in names:
                if not name.startswith("_"):
                    where.setdefault(name, []).append(module)
    assert {name: modules for name, modules in where.items() if len(modules) > 1} == {}
