"""The run-level likelihood: a training run's residuals from the law, marginalised in closed form.

For run r of family f, with checkpoints at fractions x_i = D_i / D_r of the run (tokens seen over the
run's final tokens), the residual of log loss from the law is

    log y_ri - log L(theta_f; inputs_ri) = g_f(x_ri) + u_r l_ri + d_r(x_ri) + eps_ri

    g_f(x)  = sum_k w_fk (-log x)^k / k!, k = 1..K   the family's schedule shape; g_f(1) = 0, so that the
                                                     law stays the law of final losses
    u_r     ~ Normal(0, s_seed^2)                    the run's offset at its end (its seed)
    l_ri    = rho_f + (1 - rho_f) t_ri               the offset's loading: a share rho_f of it is there
                                                     from the run's start, the rest grows along it
    t_ri                                             how far along the run the checkpoint is: x_ri, or for
                                                     a run in a branch tree its tokens over the tree's end
    d_r     ~ GP(0, s_dev^2 k)                       a smooth deviation along the run
    eps_ri  ~ Normal(0, s_obs^2)                     checkpoint noise

with k(x, x') = exp(-|x - x'| / ELL) - exp(-(2 - x - x') / ELL), the Ornstein-Uhlenbeck kernel
conditioned on d_r(1) = 0 (a bridge): the run's deviation at its end is its offset u_r alone, so u_r is
told apart from d_r. The offset may grow along the run: runs of one configuration start out together and
part as they train, so their spread is small early and largest at the end, which a constant offset
cannot express (PolyPythias' seeds, rho near 0: docs/run_likelihood.md, ``benchmarks/run_covariance.py``);
runs that differ in what the law does not read (one seed per learning-rate schedule) sit apart from the
start, and an offset that must grow takes a linear trend that competes with the law's own slope late in
the run. rho_f, learnt per family with curves, spans both; u_r stays the run's offset at its end, what
sigma_seed describes. The Gaussian parts are marginalised per run: the run's residual vector is
Normal(g_f(x), C_r), C_r = s_seed^2 l l^T + s_dev^2 K + s_obs^2 I, and NUTS moves only in the law's and
the noise model's parameters; every run carries an offset at no cost in dimensions.

The correlation length ELL is a constant (a fifth of a run), not learnt: with K fixed, each run's
eigenbasis K = U diag(lambda) U^T is computed once, s_dev^2 K + s_obs^2 I is diagonal in it, and the
offset is a rank-one update (Sherman-Morrison), so a gradient costs two (n x n) matrix-vector products
per run and no factorisation. Runs are laid out as a padded (run, checkpoint) matrix; a padded slot
has value 0, no correlation with the rest, and its constant is taken back out of the log density.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd

from bayeslaw.laws.runs import ELL, SHAPE_DEGREE, bridge_kernel, shape_basis

__all__ = ["ELL", "SHAPE_DEGREE", "RunMarginal", "bridge_kernel", "offset_loading", "offset_shape", "run_basis",
           "run_covariance", "run_layout", "shape_basis", "shape_projection"]

JITTER = 1e-8  # variance added to every checkpoint (an sd of 0.01% of the loss): keeps C_r well conditioned
MAX_CHECKPOINTS = 400  # per run: the eigenbasis is (run, n, n); thin longer runs (fit's thin=)


def run_covariance(fraction, mask, sd_seed, sd_dev, sd_obs, ell=ELL, loading=None):
    """C_r = s_seed^2 t t^T + s_dev^2 K_ell + s_obs^2 I for padded runs, (..., R, n, n).

    ``fraction`` and ``mask`` are (R, n); the scales are (..., R) (``ell`` (...) or scalar). ``loading``
    t (R, n) is the offset's loading on each checkpoint (the models': :func:`offset_loading`; default 1,
    a constant offset). Padded slots get a unit variance and no covariance.
    """
    x = jnp.asarray(fraction)
    m = jnp.asarray(mask, dtype=x.dtype)
    t = jnp.ones_like(x) if loading is None else jnp.asarray(loading, dtype=x.dtype)
    kernel = bridge_kernel(x[..., :, None], x[..., None, :], jnp.asarray(ell)[..., None, None, None])
    cov = (sd_seed[..., None, None] ** 2 * t[..., :, None] * t[..., None, :] + sd_dev[..., None, None] ** 2 * kernel
           + (sd_obs[..., None, None] ** 2 + JITTER) * jnp.eye(x.shape[-1]))
    pair = m[..., :, None] * m[..., None, :]
    return pair * cov + (1.0 - m[..., :, None]) * jnp.eye(x.shape[-1])


def run_basis(fraction: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenbasis of each padded run's bridge kernel K (zero on padded slots): (lambda (R, n), U (R, n, n))."""
    x = np.where(mask, fraction, 1.0)
    pair = mask[:, :, None] & mask[:, None, :]
    kernel = np.where(pair, np.asarray(bridge_kernel(x[:, :, None], x[:, None, :])), 0.0)
    values, vectors = np.linalg.eigh(kernel)
    return np.clip(values, 0.0, None), vectors


class RunMarginal(dist.Distribution):
    """Each run's padded residual vector y_r ~ Normal(loc_r, C_r), C_r = a_r t t^T + b_r K_r + c_r I on its
    real checkpoints (t, the offset's loading, 0 on padded slots); batch (run,), event (checkpoint,).

    ``eigvals``, ``eigvecs``: :func:`run_basis` of the runs; ``seed_var`` a (offset variance),
    ``dev_var`` b, ``obs_var`` c, each (run,); ``loading`` t (run, checkpoint) (the models':
    :func:`offset_loading`; default 1, a constant offset). With D = b diag(lambda) + c, z = U^T (y - loc),
    w = U^T t:
    r^T C^-1 r = sum z^2 / D - a (sum z w / D)^2 / (1 + a sum w^2 / D) and
    log det C = sum log D + log(1 + a sum w^2 / D) (Sherman-Morrison, matrix determinant lemma);
    a padded slot adds log N(0 | 0, c), which ``log_prob`` takes back out.

    Runs of one branch tree share one offset u (``before`` (run, run): 1 where run i precedes run j in
    the same tree). Their joint density is the product of each run's density given the runs before it
    (the chain rule): given those, u ~ Normal(a M / (1 + a W), a / (1 + a W)) with W and M the sums of
    their w^T D^-1 w and w^T D^-1 z, so run j's formula holds with loc shifted by that mean and a by
    that variance. Without ``before`` every run has its own offset.
    """

    arg_constraints = {}
    support = dist.constraints.real_vector
    pytree_data_fields = ("loc", "eigvals", "eigvecs", "run_mask", "loading", "seed_var", "dev_var", "obs_var",
                          "before")

    def __init__(self, loc, eigvals, eigvecs, mask, seed_var, dev_var, obs_var, before=None, *, loading=None,
                 validate_args=None):
        self.loc, self.eigvals, self.eigvecs = loc, eigvals, eigvecs
        self.run_mask = jnp.asarray(mask, dtype=jnp.result_type(float))
        t = self.run_mask if loading is None else jnp.asarray(loading, dtype=self.run_mask.dtype)
        self.loading = t * self.run_mask
        self.seed_var, self.dev_var, self.obs_var = seed_var, dev_var, obs_var + JITTER
        self.before = None if before is None else jnp.asarray(before, dtype=jnp.result_type(float))
        super().__init__(batch_shape=jnp.shape(loc)[:-1], event_shape=jnp.shape(loc)[-1:], validate_args=validate_args)

    def log_prob(self, value):
        a, b, c = self.seed_var[..., None], self.dev_var[..., None], self.obs_var[..., None]
        d = b * self.eigvals + c
        z = jnp.einsum("...ji,...j->...i", self.eigvecs, (value - self.loc) * self.run_mask)
        w = jnp.einsum("...ji,...j->...i", self.eigvecs, self.loading)
        zz, zw, ww = jnp.sum(z * z / d, -1), jnp.sum(z * w / d, -1), jnp.sum(w * w / d, -1)
        a = a[..., 0]
        if self.before is not None:  # the shared offset given the earlier runs of the tree
            shrink = 1.0 + a * (ww @ self.before)
            mean, a = a * (zw @ self.before) / shrink, a / shrink
            zz, zw = zz - 2.0 * mean * zw + mean**2 * ww, zw - mean * ww
        quad = zz - a * zw**2 / (1.0 + a * ww)
        log_det = jnp.sum(jnp.log(d), -1) + jnp.log1p(a * ww)
        n, padding = self.run_mask.shape[-1], jnp.sum(1.0 - self.run_mask, -1)
        return -0.5 * (quad + log_det + n * np.log(2 * np.pi)) + 0.5 * padding * (np.log(2 * np.pi) + jnp.log(c[..., 0]))

    def sample(self, key, sample_shape=()):
        # y = loc + U (sqrt(D) e1) + sqrt(a) t e2: the two independent parts of C_r (e2 one per tree)
        shape = sample_shape + self.batch_shape + self.event_shape
        k1, k2 = jax.random.split(key)
        d = self.dev_var[..., None] * self.eigvals + self.obs_var[..., None]
        diag_part = jnp.einsum("...ij,...j->...i", self.eigvecs, jnp.sqrt(d) * jax.random.normal(k1, shape))
        e2 = jax.random.normal(k2, shape[:-1])
        if self.before is not None:  # each run takes its tree's first run's draw
            first = jnp.argmax(self.before + jnp.eye(self.before.shape[0]), axis=0)
            e2 = e2[..., first]
        offset = jnp.sqrt(self.seed_var)[..., None] * e2[..., None] * self.loading
        return (self.loc + diag_part + offset) * self.run_mask


def offset_loading(progress: np.ndarray, fraction: np.ndarray, tree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The run offset's loading t on each row and the end of the row's branch tree, (row,) each.

    t = progress / the tree's end, the end being the last progress (tokens, or steps for a schedule law)
    of its longest run: a run of its own has t = x, its fraction; the runs of one branch tree share one
    offset, which grows along the tree's common progress, so a branch and its parent load it alike where
    they meet. ``progress`` and ``fraction`` per row, ``tree`` the row's tree (its root's name).
    """
    progress, fraction = np.asarray(progress, dtype=float), np.asarray(fraction, dtype=float)
    run_end = progress / fraction
    tree_end = pd.Series(run_end).groupby(np.asarray(tree)).transform("max").to_numpy()
    return fraction * (run_end / tree_end), tree_end


def offset_shape(progress, start):
    """The offset's loading l = rho + (1 - rho) t at progress t (:func:`offset_loading`), rho = ``start``
    the share of the offset there from the run's start (arrays broadcasting; 1 at t = 1 for every rho)."""
    return start + (1.0 - start) * progress


def run_layout(run: np.ndarray, order: np.ndarray, n_runs: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of each run's checkpoints in ``order`` (tokens), padded: (index (R, n), mask (R, n)).

    ``run`` is each row's run index; ``order`` the rows sorted by (run, tokens).
    """
    counts = np.bincount(run, minlength=n_runs)
    width = max(int(counts.max(initial=1)), 1)
    ordered_runs = run[order]
    position = np.arange(len(order)) - np.searchsorted(ordered_runs, ordered_runs)  # rank within its run
    index = np.zeros((n_runs, width), dtype=np.int32)
    mask = np.zeros((n_runs, width), dtype=bool)
    index[ordered_runs, position] = order
    mask[ordered_runs, position] = True
    return index, mask


def shape_projection(fraction: np.ndarray, run: np.ndarray, family: np.ndarray, curves: np.ndarray,
                     loading: np.ndarray, size_offset: np.ndarray | None = None) -> np.ndarray:
    """Row weights P (row, 2K) of the least-squares fit of a per-row curve on the shape basis and its size
    term, with one free multiple of the offset's loading per run: for a curve family f, c_f = sum over
    its rows of P_i l_i are the coefficients of l(x, N) = c_r t + sum_k (c_fk + c'_fk z) (-log x)^k / k!
    (0 for the other families' rows; t the offset's loading, :func:`offset_loading`; z = ``size_offset``,
    log N minus the family's mean, 0 where not given: then c'_f = 0).

    Applied to the law's own log loss along the runs, c_f is the part of the law's curve that the
    schedule shape could equally explain (the part along t, each run's offset takes): the models sample
    w_f + c_f (what the runs' curves pin) rather than w_f alone (:func:`bayeslaw.models._shape`).
    """
    basis = np.asarray(shape_basis(np.asarray(fraction, dtype=float)))
    z = np.zeros(len(basis)) if size_offset is None else np.asarray(size_offset, dtype=float)
    basis = np.concatenate([basis, basis * z[:, None]], axis=1)
    loading = np.asarray(loading, dtype=float)
    weights = np.zeros_like(basis)
    for f in np.flatnonzero(curves):
        rows = np.flatnonzero(family == f)
        runs, inverse = np.unique(run[rows], return_inverse=True)
        t = loading[rows]
        # each run's multiple of t taken out: the basis minus its projection on t, run by run
        tb, tt = np.zeros((len(runs), basis.shape[1])), np.zeros(len(runs))
        np.add.at(tb, inverse, t[:, None] * basis[rows])
        np.add.at(tt, inverse, t * t)
        centred = basis[rows] - t[:, None] * (tb / tt[:, None])[inverse]
        # rcond: a direction the runs' fractions barely span (runs of two checkpoints, a family at one
        # size: its size columns are 0) gets no weight, rather than a large one that would tie w_f + c_f
        # to the law's noise-level wiggles
        weights[rows] = np.linalg.pinv(centred, rcond=1e-6).T
    return weights
