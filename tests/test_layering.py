"""Imports flow one way: results (how result objects show themselves) -> data -> laws -> simulation -> models -> inference -> executor -> evaluation -> plan -> plots -> report
-> cli. Plots draw and may import anything up to plan; report (the file writers) may import plots; cli both."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bayeslaw"
STAGES = ["results", "data", "laws", "simulation", "models", "inference", "metrics", "executor", "evaluation", "plan", "plots", "report",
          "cli"]
# The one import of a later stage allowed: bayeslaw.plots keeps bayeslaw.plots.fit_report/backtest_report working
# by importing bayeslaw.report inside its module __getattr__ (PEP 562), on first use, never at load time.
LAZY_REEXPORTS = {("bayeslaw.plots", "bayeslaw.report")}


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


def called(call: ast.Call) -> str | None:
    """The called name: ``f`` of ``f(...)`` and of ``x.f(...)``."""
    return getattr(call.func, "attr", getattr(call.func, "id", None))


def imports(tree: ast.AST):
    """(imported module, enclosing function name or None) for every import in ``tree``; ``from bayeslaw import x``
    counts as importing ``bayeslaw.x``, and ``importlib.import_module("bayeslaw.x")`` as an import too."""
    def visit(node, function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Import):
            yield from ((a.name, function) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports hide the stage: import bayeslaw.<stage> by its full name"
            if node.module == "bayeslaw":
                yield from ((f"bayeslaw.{a.name}", function) for a in node.names)
            elif node.module:
                yield node.module, function
        elif (isinstance(node, ast.Call) and called(node) == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value, function
        for child in ast.iter_child_nodes(node):
            yield from visit(child, function)

    yield from visit(tree, None)


def stage_package(name: str) -> str:
    return ".".join(name.split(".")[:2])


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=lambda v: str(v))
def test_no_module_imports_a_later_stage(name, path):
    own = stage_of(name)
    for target, function in imports(ast.parse(path.read_text())):
        other = stage_of(target)
        if other is None or other <= own:
            continue
        lazy = (name.removesuffix(".__init__"), stage_package(target)) in LAZY_REEXPORTS and function == "__getattr__"
        assert lazy, f"{name} (stage {STAGES[own]}) imports {target} (later stage {STAGES[other]})"


def test_the_import_check_sees_every_form_of_import():
    source = """
import bayeslaw.cli
from bayeslaw.report import fit_report
from bayeslaw import plots
def __getattr__(name):
    import importlib
    return importlib.import_module("bayeslaw.report")
"""
    found = list(imports(ast.parse(source)))
    assert ("bayeslaw.cli", None) in found and ("bayeslaw.report", None) in found and ("bayeslaw.plots", None) in found
    assert ("bayeslaw.report", "__getattr__") in found


def test_plots_never_import_the_report_at_load_time():
    """The lazy re-export is the only path from plots to report, and only inside the package's __getattr__."""
    for path in sorted((PACKAGE / "plots").rglob("*.py")):
        for target, function in imports(ast.parse(path.read_text())):
            if stage_package(target) == "bayeslaw.report":
                assert path.name == "__init__.py" and function == "__getattr__", f"{path} imports {target}"


def test_every_top_level_module_has_a_stage():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if not p.name.startswith("_")}
    tops -= {"__pycache__"}
    assert tops <= set(STAGES), f"modules without a stage: {tops - set(STAGES)}"


# what a plot may not do: fit, run a study, sample a model, or write a file (the report stage writes)
NOT_DRAWING = {"fit", "fit_point", "backtest", "point_backtest", "bayes_backtest", "compare_forms", "compare_poolings",
               "calibration_study", "point_fits_by_family", "Predictive", "MCMC", "write_atomic", "savefig", "to_csv",
               "to_parquet", "write_text", "write_bytes", "open", "mkdir"}


def calls_and_names(tree: ast.AST):
    """Every called name (``f(...)``, ``x.f(...)``) and every name imported by ``from ... import``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield "call", called(node)
        elif isinstance(node, ast.ImportFrom):
            yield from (("import", a.name) for a in node.names)


@pytest.mark.parametrize("path", sorted((PACKAGE / "plots").rglob("*.py")), ids=lambda p: p.name)
def test_plots_only_draw(path):
    tree = ast.parse(path.read_text())
    found = sorted({f"{kind} {name}" for kind, name in calls_and_names(tree) if name in NOT_DRAWING})
    assert not found, f"{path.name}: plots draw what they are given; move {found} to evaluation or report"
    for target, _ in imports(tree):
        assert not target.startswith(("bayeslaw.inference", "bayeslaw.data.files")), f"{path.name} imports {target}"


def test_the_drawing_check_sees_a_point_fit_and_a_file():
    tree = ast.parse("from bayeslaw.inference.point import fit_point\nfit_point(rows)\nfig.savefig('x.png')\n")
    found = {name for _, name in calls_and_names(tree)} & NOT_DRAWING
    assert found == {"fit_point", "savefig"}
