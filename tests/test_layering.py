"""Imports flow one way: data -> laws -> simulation -> models -> inference -> evaluation -> plan -> cli/plots."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bayeslaw"
STAGES = ["data", "laws", "simulation", "models", "inference", "metrics", "evaluation", "plan", "plots", "cli"]


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "bayeslaw" or len(parts) < 2:
        return None
    return STAGES.index(parts[1]) if parts[1] in STAGES else None


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        if stage_of(name) is not None:
            yield name, path


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=lambda v: str(v))
def test_no_module_imports_a_later_stage(name, path):
    own = stage_of(name)
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            targets = [node.module]
        for target in targets:
            other = stage_of(target)
            if other is not None:
                assert other <= own, f"{name} (stage {STAGES[own]}) imports {target} (later stage {STAGES[other]})"


def test_every_top_level_module_has_a_stage():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if not p.name.startswith("_")}
    tops -= {"__pycache__"}
    assert tops <= set(STAGES), f"modules without a stage: {tops - set(STAGES)}"
