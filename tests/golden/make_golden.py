"""Write tests/golden/models.npz: the log density and its gradient of each pinned model at fixed points,
which tests/test_golden.py checks.

The model, not a sampler's path, is what is pinned: NUTS draws after a few hundred leapfrog steps
depend on the last bit of every float operation, which differs between CPUs (vector widths), so whole
posterior arrays are reproducible on one machine only (``tests/test_nuts.py`` checks that). The
density at a point is the same to ~1e-14 everywhere.

Rerun only on purpose (a change meant to alter a model): ``python tests/golden/make_golden.py``.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import init_to_uniform
from numpyro.infer.util import initialize_model, potential_energy

import bayeslaw as bl
from bayeslaw.data import cut_early, thin_checkpoints
from bayeslaw.data.schedules import Schedule
from bayeslaw.laws import get_law
from bayeslaw.models import get_model, prepare

POINTS = 3  # unconstrained points per case, drawn by init_to_uniform(radius=1) from PRNGKey(0..2)


def demo_rows() -> pd.DataFrame:
    """Two families of the demo data, three sizes each, every second checkpoint, after the 10B cut."""
    df = bl.load_demo().data
    df = df[df["family"].isin(["fam0", "fam1"]) & (df["params"] < df["params"].max())]
    return cut_early(df[df.groupby("run").cumcount() % 2 == 0]).reset_index(drop=True)


def schedule_rows() -> pd.DataFrame:
    """Annealing-law curves of two sizes: a constant run, a cooldown branch of it (sharing its offset) and a
    cosine run, eight checkpoints each in steps; deterministic values (no random draws)."""
    law = get_law("annealing")
    theta = {"l0": np.log(2.8), "a": np.log(0.5), "alpha": 0.45, "c": np.log(0.5), "l0_n": -0.08, "a_n": 0.05,
             "alpha_n": -0.02, "c_n": 0.1, "l0_lr": 0.0, "a_lr": 0.25, "alpha_lr": 0.0, "c_lr": -0.5}
    plans = {"constant": (Schedule("constant", 1e-3, 4000, 200), None),
             "cool": (Schedule.wsd(1e-3, 4000, 0.25, warmup_steps=200, final_lr=1e-5), "constant"),
             "cosine": (Schedule("cosine", 1e-3, 4000, 200, 1e-4), None)}
    frames = []
    for i, params in enumerate((1e8, 3e8)):
        for j, (name, (schedule, parent)) in enumerate(plans.items()):
            steps = np.linspace(3000 if parent else 400, 4000, 8).round().astype(int)
            rows = pd.DataFrame({"family": "f", "run": f"{params:.0e}-{name}", "params": params, "step": steps,
                                 "tokens": np.nan, "schedule": schedule.to_json(),
                                 "parent_run": f"{params:.0e}-{parent}" if parent else None})
            log_loss = np.asarray(law.log_loss({k: np.asarray(v) for k, v in theta.items()}, **law.columns(rows)))
            wiggle = 0.002 * np.sin(np.arange(len(rows)) * (1 + i + j)) + 0.003 * (j - 1)
            frames.append(rows.assign(loss=np.exp(log_loss + wiggle)))
    return pd.concat(frames, ignore_index=True)


CASES = {  # name: (form, pooling, rows)
    "chinchilla_hierarchical": ("chinchilla", "hierarchical", demo_rows),
    "annealing_trees": ("annealing", "none", schedule_rows),
}


def model_and_data(form: str, pooling: str, table):
    """The pooling variant's model, its ModelData and log losses for a case's rows."""
    df = table()
    if get_law(form).progress == "step":
        df = thin_checkpoints(df, per_run=20, by="step")
    return get_model(pooling), prepare(df, form), jnp.log(jnp.asarray(df["loss"].to_numpy(dtype=float)))


def potential_and_grad(model, data, y, z: dict):
    """Potential energy (minus the log density in unconstrained space) and its gradient at ``z``."""
    kwargs = {"y": y, "seed_scaling": "constant"}
    energy, grad = jax.value_and_grad(lambda params: potential_energy(model, (data,), kwargs, params))(z)
    return float(energy), {k: np.asarray(v) for k, v in grad.items()}


def density_arrays(form: str, pooling: str, table) -> dict[str, np.ndarray]:
    """The unconstrained points (init_to_uniform(radius=1) from PRNGKey(0..POINTS-1)), the potential
    energy and its gradient there."""
    model, data, y = model_and_data(form, pooling, table)
    out = {}
    for point in range(POINTS):
        z = initialize_model(jax.random.PRNGKey(point), model, model_args=(data,),
                             model_kwargs={"y": y, "seed_scaling": "constant"},
                             init_strategy=init_to_uniform(radius=1.0))[0].z
        energy, grad = potential_and_grad(model, data, y, z)
        out[f"{point}/potential"] = np.asarray(energy)
        for name in sorted(z):
            out[f"{point}/z/{name}"] = np.asarray(z[name])
            out[f"{point}/grad/{name}"] = grad[name]
    return out


if __name__ == "__main__":
    out = {f"{case}/{key}": value for case, spec in CASES.items() for key, value in density_arrays(*spec).items()}
    np.savez_compressed(Path(__file__).with_name("models.npz"), **out)
    print(f"wrote {len(out)} arrays")
