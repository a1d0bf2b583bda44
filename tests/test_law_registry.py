"""Laws declare what they can answer: no module outside ``bayeslaw/laws/`` branches on a law's name, and
a law registered in one line runs through point fits, NUTS, prediction and form comparison."""

import ast
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import bayeslaw as bl
from bayeslaw.laws import D_REF, LAWS, Law, Sampling, register

PACKAGE = Path(bl.__file__).parent


def _law_name_comparisons(source: str, names) -> list[int]:
    """Line numbers of comparisons (==, !=, in, not in) and match-cases against a constant in ``names``."""

    def constants(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return set().union(*(constants(e) for e in node.elts)) if node.elts else set()
        return set()

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(constants(n) & set(names) for n in (node.left, *node.comparators)):
            lines.append(node.lineno)
        if isinstance(node, ast.match_case):
            patterns = [p for p in ast.walk(node.pattern) if isinstance(p, ast.MatchValue)]
            if any(constants(p.value) & set(names) for p in patterns):
                lines.append(node.pattern.lineno)
    return lines


def test_the_scan_finds_a_branch_on_a_law_name():
    source = ('if fit.form == "su2024":\n    pass\nx = law.name in ("kaplan", "kaplan_e")\n'
              'match form:\n    case "compute":\n        pass\nhelp = "chinchilla or su2024"\n')
    assert _law_name_comparisons(source, LAWS) == [1, 3, 5]


def test_no_module_outside_laws_branches_on_a_law_name():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "laws") in path.parents:
            continue
        lines = _law_name_comparisons(path.read_text(), LAWS)
        if lines:
            found[str(path.relative_to(PACKAGE))] = lines
    assert not found, f"compare with a law's name (ask the law for its capability instead): {found}"


def _data_law_log_loss(theta, *, tokens):
    """log L(D) = logaddexp(e, b - beta log D)."""
    return jnp.logaddexp(theta["e"], theta["b"] - theta["beta"] * jnp.log(tokens))


def _to_law(theta):
    e, b_ref, log_beta = (theta[..., i] for i in range(3))
    beta = jnp.exp(log_beta)
    return {"e": e, "b": b_ref + beta * np.log(D_REF), "beta": beta}


def _from_law(t):
    return np.array([t["e"], t["b"] - t["beta"] * np.log(D_REF), np.log(t["beta"])], dtype=float)


DATA_ONLY = Law(
    name="test_data_only",
    formula="L = E + B / D^beta",
    theta_names=("e", "b", "beta"),
    inputs=("tokens",),
    log_loss=_data_law_log_loss,
    natural=lambda t: {"E": np.exp(t["e"]), "B": np.exp(t["b"]), "beta": t["beta"]},
    from_natural=lambda p: {"e": np.log(p["E"]), "b": np.log(p["B"]), "beta": p["beta"]},
    init_grid={"e": np.array([-1.0, 0.0, 1.0]), "b": np.array([0.0, 10.0, 20.0]), "beta": np.array([0.2, 0.5, 1.0])},
    sampling=Sampling({"e": (np.log(1.8), 0.5, 0.2), "b_ref": (-1.6, 1.0, 0.5), "log_beta": (np.log(0.35), 0.4, 0.3)},
                      _to_law, _from_law),
)


@pytest.fixture
def data_only_law():
    register(DATA_ONLY)  # the one line a new law needs
    yield DATA_ONLY
    LAWS.pop(DATA_ONLY.name)


def test_a_law_registered_in_one_line_runs_end_to_end(data_only_law):
    df = bl.load_demo().data
    rows = df[(df["family"] == "fam0") & (df["params"] <= np.sort(df["params"].unique())[1])].reset_index(drop=True)
    name = data_only_law.name
    point = bl.fit_point(rows, form=name)
    assert point.form == name and point.converged
    fit = bl.fit(rows, form=name, pooling="none", chains=1, draws=30, warmup=30, progress=False)
    assert fit.form == name and list(fit.idata.posterior["theta"].coords["theta_dim"].values) == ["e", "b_ref", "log_beta"]
    final = rows[rows["tokens"] == rows["tokens"].max()]
    prediction = fit.predict(final[["family", "run", "params", "tokens"]])
    assert np.all(np.isfinite(prediction.summary["q50"])) and np.all(prediction.summary["q50"] > 1.0)
    comparison = bl.evaluation.compare_forms(rows, forms=(name, "compute"), min_tokens=None, thin=None,
                                             fit_options={"chains": 1, "draws": 30, "warmup": 30})
    assert set(comparison.table["model"]) == {name, "compute"}
    with pytest.raises(ValueError, match="no split"):
        bl.plan.optimal_allocation(fit, 1e21)
    with pytest.raises(ValueError, match="trajectories"):
        bl.plan.minimum_loss(fit, 1e9)


def test_registering_a_second_law_of_the_same_name_is_refused(data_only_law):
    from dataclasses import replace

    with pytest.raises(ValueError, match="registered already"):
        register(replace(DATA_ONLY, formula="another"))
