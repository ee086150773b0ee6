"""The package layout's rules, read from the source with `ast` (README, "Module map"):
the pipeline never imports views or exports, views reach the pipeline only through its markers,
stages import no pipeline module, no import cycles, a stage picks its backend in `setup()`,
small modules, and `datagen.stages` found without import-time tricks."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400
MAX_TOP_MODULES = 15
HEAVY = ("open3d", "torch", "transformers", "diffusers", "cv2", "ray", "vllm")


def module_files() -> dict[str, Path]:
    """Dotted name -> file for every module of the package (stages/ as datagen.stages)."""
    found = {}
    for path in sorted((REPO / "datagen").rglob("*.py")) + sorted((REPO / "stages").glob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[:2] in (("datagen", "stages"),) or rel == Path("datagen/cli.py"):
            continue  # links to stages/ and cli.py, counted where they live
        parts = list(rel.with_suffix("").parts)
        parts = ["datagen", *parts] if parts[0] == "stages" else parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        found[".".join(parts)] = path
    found["datagen.cli"] = REPO / "cli.py"
    return found


MODULES = module_files()


def imports_of(path: Path) -> list[tuple[str, int, str | None]]:
    """(imported datagen module, line, enclosing function or None) for every import in `path`."""
    out = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            if isinstance(child, ast.ImportFrom) and child.level == 0 and (child.module or "").startswith("datagen"):
                for alias in child.names:
                    full = f"{child.module}.{alias.name}"
                    out.append((full if full in MODULES else child.module, child.lineno, func))
            elif isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, func) for a in child.names if a.name.startswith("datagen"))
            visit(child, inner)

    visit(ast.parse(path.read_text()), None)
    return out


def owner(name: str) -> str | None:
    """The module an imported name belongs to (datagen.config.RunConfig -> datagen.config)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {m: {o for name, _, _ in imports_of(p) if (o := owner(name)) and o != m} for m, p in MODULES.items()}


def in_wing(module: str, wing: str) -> bool:
    return module == wing or module.startswith(wing + ".")


def violations(wing: str, allowed: callable) -> list[str]:
    return [
        f"{m} imports {dep}"
        for m, deps in GRAPH.items()
        if in_wing(m, wing)
        for dep in sorted(deps)
        if not allowed(dep)
    ]


def test_the_pipeline_never_imports_views_or_exports():
    assert violations("datagen.pipeline", lambda d: not in_wing(d, "datagen.views") and not in_wing(d, "datagen.export")) == []


def test_views_reach_the_pipeline_only_through_its_markers():
    assert violations("datagen.views", lambda d: not in_wing(d, "datagen.pipeline") or d == "datagen.pipeline.markers") == []


def test_stages_import_no_pipeline_module():
    assert violations("datagen.stages", lambda d: not in_wing(d, "datagen.pipeline")) == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module: each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                cycles.append(sorted([v, *comp]))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles_even_through_function_level_imports():
    assert strongly_connected(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_modules_are_small_and_few_sit_at_the_top():
    long = {str(p.relative_to(REPO)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
    top = [m for m in MODULES if m.count(".") == 1 and not (REPO / m.replace(".", "/")).is_dir()]
    assert len(top) <= MAX_TOP_MODULES, top


def backend_tests_outside_setup(path: Path) -> list[int]:
    """Lines comparing a `.backend` attribute outside `setup()`: the choice is made once there."""
    lines = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            if isinstance(child, ast.Compare) and func not in ("setup", None):
                sides = [child.left, *child.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "backend" for s in sides):
                    lines.append(child.lineno)
            visit(child, inner)

    visit(ast.parse(path.read_text()), None)
    return lines


def test_a_stage_picks_its_backend_once_in_setup():
    found = {p.name: lines for p in sorted((REPO / "stages").glob("*.py")) if (lines := backend_tests_outside_setup(p))}
    assert found == {}


def test_the_backend_rule_sees_a_choice_made_per_call(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("class S:\n    def process_batch(self, b):\n        if self.cfg.backend == 'x':\n            return 1\n")
    assert backend_tests_outside_setup(bad) == [3]


def test_datagen_stages_is_a_link_static_readers_follow_not_a_path_edit():
    for name, target in {"stages": "../stages", "cli.py": "../cli.py", "configs": "../configs", "data_cards": "../data_cards"}.items():
        link = REPO / "datagen" / name
        assert link.is_symlink() and str(link.readlink()) == target, name
    tree = ast.parse((REPO / "datagen" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "__path__"]


def test_fingerprints_read_stage_versions_without_loading_model_stacks():
    """`datagen status` computes fingerprints for every shard: that must not import Open3D or torch."""
    code = (
        "import sys, json\n"
        "from datagen.config import load_config, resolve_config_path\n"
        "from datagen.pipeline.fingerprint import stage_fingerprints\n"
        "stage_fingerprints(load_config(resolve_config_path('demo')), 0)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_names_only_modules_that_exist(module):
    missing = [name for name, _, _ in imports_of(MODULES[module]) if owner(name) is None]
    assert missing == []
