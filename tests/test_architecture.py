"""The layers of docs/architecture.md hold in the code: no module imports from a layer above
its own, no two modules import each other in a circle, and every module has a layer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "splat_lion"
DOC = ROOT / "docs" / "architecture.md"


def declared_layers() -> dict[str, int]:
    """Unit name -> layer number, from the table rows `| <n> | <name> | `a`, `b` |`."""
    layers = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for unit in re.findall(r"`([\w.]+)`", cells[2]):
                layers[unit] = int(cells[0])
    return layers


def unit_of(module: str) -> str:
    """The unit of the table a module belongs to: a top-level module or a subpackage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """The package modules `path` imports, anywhere in it (functions included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "splat_lion"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "splat_lion":
                continue
            for alias in node.names:  # `from . import kernels` imports a module
                sub = f"{target}.{alias.name}"
                found.add(sub if is_module(sub) else target)
    return {m for m in found if m != name}


def package_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_declared_layer():
    layers = declared_layers()
    assert len(set(layers.values())) >= 5, "docs/architecture.md: no layer table found"
    missing = sorted({unit_of(m) for m in package_graph()} - set(layers))
    assert not missing, f"add these to the layer table of docs/architecture.md: {missing}"
    extra = sorted(set(layers) - {unit_of(m) for m in package_graph()})
    assert not extra, f"docs/architecture.md names modules that do not exist: {extra}"


def test_no_module_imports_from_a_layer_above_its_own():
    layers = declared_layers()
    wrong = []
    for module, imported in package_graph().items():
        for target in imported:
            here, there = layers.get(unit_of(module)), layers.get(unit_of(target))
            if here is not None and there is not None and there > here:
                wrong.append(f"{module} (layer {here}) imports {target} (layer {there})")
    assert not wrong, "imports that run up the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_circles():
    graph = package_graph()
    # a package's __init__ hands names on from its own modules: its arrows down are not loops
    edges = {m: {t for t in ts if not m.startswith(t + ".") and not t.startswith(m + ".")}
             for m, ts in graph.items()}
    state, stack, circles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == "open":
                circles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_checks_see_real_imports():
    """The reader resolves relative imports (a test of the test: it could otherwise pass on
    an empty graph)."""
    graph = package_graph()
    assert "splat_lion.ledger" in graph["splat_lion.backend"]
    assert "splat_lion.kernels" in graph["splat_lion.optim.lion"]
    assert "splat_lion.quaternion" in graph["splat_lion.reference.project"]
    assert not graph["splat_lion.ledger"]  # the bottom floor imports nothing of the package


@pytest.mark.parametrize("module", ["errors", "ledger", "checks", "sh", "quaternion", "config"])
def test_the_bottom_floor_imports_nothing_of_the_package_but_its_errors(module):
    assert imports_of(PACKAGE / f"{module}.py") <= {"splat_lion.errors"}
    assert not imports_of(PACKAGE / "errors.py")
