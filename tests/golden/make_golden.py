"""Write tests/golden/fits.npz: posterior arrays of small fixed-seed fits that tests/test_golden.py pins.

Rerun only on purpose (a change meant to alter the sampled model): ``python tests/golden/make_golden.py``.
"""

from pathlib import Path

import numpy as np

import bayeslaw as bl

CASES = {  # name: (form, pooling)
    "chinchilla_hierarchical": ("chinchilla", "hierarchical"),
}


def rows():
    """Two families of the demo data, three sizes each, every second checkpoint."""
    df = bl.load_demo().data
    df = df[df["family"].isin(["fam0", "fam1"]) & (df["params"] < df["params"].max())]
    return df[df.groupby("run").cumcount() % 2 == 0].reset_index(drop=True)


def posterior_arrays(form: str, pooling: str) -> dict[str, np.ndarray]:
    fit = bl.fit(rows(), form=form, pooling=pooling, chains=2, draws=20, warmup=30, seed=3,
                 chain_method="sequential", progress=False)
    post = fit.idata.posterior
    return {name: np.asarray(post[name].values) for name in sorted(post.data_vars)}


if __name__ == "__main__":
    out = {f"{case}/{name}": value for case, (form, pooling) in CASES.items()
           for name, value in posterior_arrays(form, pooling).items()}
    np.savez_compressed(Path(__file__).with_name("fits.npz"), **out)
    print(f"wrote {len(out)} arrays")
