"""The core's tree is its architecture: no import cycles, sub-packages in declared layers, no
oversized module, a tiny __init__."""

import ast
import importlib
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "tlbench"
MAX_LINES = 400
# The sub-packages, lowest layer first: each imports only from layers below its own, and packages
# sharing a layer do not import each other. Derived from the imports as they are: `plugin` is the
# vocabulary everything else speaks (contracts, errors; utils' helpers raise its UserError);
# `grid` sits above `training` and `deploy` because it validates before anything runs (its dry
# run builds each backbone with training's input plumbing, `verify_with` is checked against
# deploy's verifiers); `execution` runs cells with search's validators and transferability's
# estimators; `report` reads stored results; `cli` and the Python `api` wire everything.
LAYERS = (
    ("plugin",),
    ("utils",),
    ("settings",),
    ("training", "deploy"),
    ("grid",),
    ("search", "transferability"),
    ("execution",),
    ("report",),
    ("api", "cli"),
)


def module_name(path: Path, root: Path = CORE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_imports(path: Path, known: set[str], root: Path = CORE) -> set[str]:
    """Every tlbench module ``path`` imports, at module level or inside functions."""
    found = set()
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def import_graph(root: Path = CORE) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    return {name: core_imports(path, set(files), root) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_core_has_no_import_cycle():
    assert find_cycle(import_graph()) is None, f"import cycle: {' -> '.join(find_cycle(import_graph()))}"


def test_sub_packages_form_layers():
    """No cycle between sub-packages (the order they must follow is LAYERS)."""
    def package(module):
        return module.split(".")[1] if module.count(".") else module

    packages: dict[str, set[str]] = {}
    for module, imports in import_graph().items():
        packages.setdefault(package(module), set()).update(package(m) for m in imports if package(m) != package(module))
    cycle = find_cycle(packages)
    assert cycle is None, f"sub-package cycle: {' -> '.join(cycle)}"


def sub_package(module: str, root: Path = CORE) -> str | None:
    """The sub-package ``module`` belongs to; None for the entry files at the top (__init__, ...)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (root / parts[1]).is_dir() else None


def layer_violations(graph: dict[str, set[str]], root: Path = CORE) -> list[str]:
    """``a.b imports c.d`` for every import of a sub-package in the same or a higher layer."""
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    found = []
    for module, imports in sorted(graph.items()):
        own = sub_package(module, root)
        for target in sorted(imports):
            other = sub_package(target, root)
            if own and other and other != own and rank[other] >= rank[own]:
                found.append(f"{module} ({own}) imports {target} ({other})")
    return found


def test_every_sub_package_has_a_declared_layer():
    declared = {name for layer in LAYERS for name in layer}
    packages = {p.name for p in CORE.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= declared, f"sub-packages without a layer in LAYERS: {sorted(packages - declared)}"


def test_sub_packages_import_only_lower_layers():
    """Module-level and function-level imports alike, checked against LAYERS."""
    violations = layer_violations(import_graph())
    assert not violations, "imports against the declared layers:\n" + "\n".join(violations)


def test_layer_check_catches_a_function_level_import_upwards(tmp_path):
    pkg = tmp_path / "tlbench"
    for sub in ("utils", "report", "training"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "report" / "tables.py").write_text("from tlbench.utils import x\n")  # downwards: fine
    (pkg / "training" / "loop.py").write_text("def f():\n    from tlbench.report.tables import g\n")
    assert layer_violations(import_graph(pkg), pkg) == [
        "tlbench.training.loop (training) imports tlbench.report.tables (report)"]


def test_cycle_detector_catches_a_planted_cycle(tmp_path):
    pkg = tmp_path / "tlbench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from tlbench.b import g\n")
    (pkg / "b.py").write_text("from tlbench import a\n")
    assert find_cycle(import_graph(pkg)) in (["tlbench.a", "tlbench.b", "tlbench.a"], ["tlbench.b", "tlbench.a", "tlbench.b"])


def test_no_core_module_over_the_line_limit():
    long = {str(p.relative_to(CORE.parent)): n for p in CORE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_top_level_holds_only_packages_and_the_entry_files():
    loose = sorted(p.name for p in CORE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "_moved.py"]
    assert len((CORE / "__init__.py").read_text().splitlines()) <= 10


@pytest.mark.parametrize("old, new", sorted(importlib.import_module("tlbench._moved").MOVED.items()))
def test_documented_flat_paths_give_the_moved_module_with_a_warning(old, new, monkeypatch):
    import tlbench

    monkeypatch.delitem(sys.modules, f"tlbench.{old}", raising=False)  # imported before: import it afresh
    monkeypatch.delattr(tlbench, old, raising=False)
    with pytest.warns(FutureWarning, match=f"import tlbench.{new} instead"):
        module = importlib.import_module(f"tlbench.{old}")
    assert module is importlib.import_module(f"tlbench.{new}")


def test_undocumented_flat_paths_are_gone():
    assert sorted(importlib.import_module("tlbench._moved").MOVED) == ["contracts", "errors", "stages", "worker"]
    for old in ("hookspecs", "registry", "runner", "timing"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"tlbench.{old}")
