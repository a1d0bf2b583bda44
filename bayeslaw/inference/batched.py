"""Many NUTS fits as one computation: tables whose models share a structure, sampled by one vectorised program.

SBC replications, backtest cells and pilot refits fit one model to many tables. Fitted one at a time,
each pays NumPyro's tracing and XLA's compilation, and runs gradients of a few hundred rows whose
cost is dispatch, not arithmetic. :func:`fit_many` groups the tables whose models have one structure
(what the model reads when it is traced: families, runs and their families, which families have
curves, replicated runs or a centred theta, branch trees, the law's input shapes), pads each group to
one shape (rows, and checkpoints per run, behind the run-level likelihood's masks: a padded slot adds
nothing to the density) and samples it with NumPyro's own NUTS kernel (its functional interface,
``numpyro.infer.hmc.hmc``) under ``jax.vmap`` over fits and chains, one compilation per group shape,
the fits spread over the host's devices by ``jax.pmap`` where it has several.

Each fit and chain keeps its own step size, mass matrix and trees; the batch advances in lockstep, an
iteration as long as its longest tree. The draws are those :func:`bayeslaw.fit` gives with
``chain_method="vectorized"`` and the same seed, up to floating-point order.
"""

from __future__ import annotations

import math
import sys
import warnings
from contextlib import contextmanager
from operator import attrgetter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.flatten_util import ravel_pytree
from numpyro.infer.hmc import hmc
from tqdm.auto import tqdm

from bayeslaw.data.files import is_whole
from bayeslaw.data.split import DEFAULT_MIN_TOKENS
from bayeslaw.inference.config import (DEFAULT_TARGET_ACCEPT, RETRY_TARGET_ACCEPT, Duplicates, FitConfig, Pooling,
                                       Rising, SeedScaling)
from bayeslaw.inference.nuts import (EXTRA_FIELDS, MAX_TREE_DEPTH, ConvergenceWarning, Fit, PreparedFit, _replicate,
                                     check_start, compiled_initialize, finish_fit, laplace_start, latent_inverses,
                                     paired, prepare_fit, retry_accept, sample_fit)
from bayeslaw.models import ModelData, centered_families, get_model
from bayeslaw.models.runs import run_basis

__all__ = ["BATCH_SIZE", "fit_many", "release_compiled", "structure"]

BATCH_SIZE = 32  # fits per program: one compilation serves them all; memory grows with it
#: ModelData's arrays that the model reads and that may differ between the fits of one program (the rest is
#: its structure; what only a forecast reads, such as run_tree_end, stays with each fit's own data)
VARYING = ("log_params", "log_tokens", "fraction", "loading", "family", "run", "run_index", "run_mask", "run_eigvals",
           "run_eigvecs", "run_log_params", "family_log_params", "family_log_tokens", "along_run")


def structure(prepared: PreparedFit) -> tuple:
    """What a fit's model reads when it is traced, beyond its arrays: fits with equal structures can be
    sampled by one program. The numbers of rows and of checkpoints per run are not part of it (padded)."""
    data, config = prepared.data, prepared.config
    before = data.run_before
    return (config.form, config.pooling, config.seed_scaling, data.n_families, data.n_runs,
            data.run_family.tobytes(), data.curve_families.tobytes(), data.replicated_families.tobytes(),
            centered_families(data).tobytes(), None if before is None else before.tobytes(),
            tuple((name, np.shape(v)[1:]) for name, v in sorted(data.inputs.items())))


def _padded(data: ModelData, y: np.ndarray, n_rows: int, width: int) -> dict:
    """``data``'s varying arrays and ``y`` padded to ``n_rows`` rows (copies of its last row, which no run
    slot reads) and ``width`` checkpoints per run (masked slots; the eigenbasis rebuilt on them)."""
    extra = n_rows - len(y)

    def rows(values):
        values = np.asarray(values)
        return np.concatenate([values, np.repeat(values[-1:], extra, axis=0)]) if extra else values

    arrays = {name: np.asarray(getattr(data, name)) for name in VARYING}
    for name in ("log_params", "log_tokens", "fraction", "loading", "family", "run"):
        arrays[name] = rows(arrays[name])
    arrays["along_run"] = np.pad(arrays["along_run"], ((0, extra), (0, 0)))  # padded rows weigh nothing in c_f
    grow = width - data.run_mask.shape[1]
    if grow:
        arrays["run_index"] = np.pad(data.run_index, ((0, 0), (0, grow)))
        arrays["run_mask"] = np.pad(data.run_mask, ((0, 0), (0, grow)))
        fraction = np.where(arrays["run_mask"], arrays["fraction"][arrays["run_index"]], 1.0)
        arrays["run_eigvals"], arrays["run_eigvecs"] = run_basis(fraction, arrays["run_mask"])
    arrays["inputs"] = {name: rows(v) for name, v in data.inputs.items()}
    arrays["y"] = rows(y)
    return arrays


@dataclass(frozen=True)
class _Options:
    chains: int
    warmup: int
    draws: int
    target_accept: float
    dense_mass: bool


def _data_on(template: ModelData, arrays: dict) -> ModelData:
    """``template`` (the structure) with one fit's varying arrays (``y`` aside)."""
    return replace(template, **{k: v for k, v in arrays.items() if k != "y"})


def _model_on(template: ModelData, pooling: str, seed_scaling: str):
    """The pooling variant's model as a function of the varying arrays (a pytree JAX can batch)."""
    model = get_model(pooling)

    def on_arrays(arrays, y=None):
        return model(_data_on(template, arrays), y, seed_scaling=seed_scaling)

    return on_arrays


_PROGRAMS: dict[tuple, tuple] = {}  # compiled programs, by (structure, padded shape, options, devices)


def _program(key: tuple, template: ModelData, pooling: str, seed_scaling: str, options: _Options, n_devices: int):
    """``(build, state, run)``: ``build(arrays, init)`` traces the model once into ``state`` (NumPyro's NUTS
    kernel over the model's potential as a function of the arrays, the constraining map, each latent
    site's bijection); ``run(chain keys, u0, arrays, center, root, ppc keys)``, each with a leading (device,
    fit) axis (u0 the chains' starts in the coordinates z = center + root u of :func:`laplace_start`, computed
    per fit on the host by ``state["value_and_grad"]``), gives the constrained draws, sampler stats, ``obs``
    replicates and log likelihood per run. Kept per ``key``, so that the programs of one shape compile once
    per process."""
    if (key, options, n_devices) in _PROGRAMS:
        return _PROGRAMS[key, options, n_devices]
    if len(_PROGRAMS) >= 16:
        _PROGRAMS.clear()
    model = _model_on(template, pooling, seed_scaling)
    state = {}

    def build(arrays, init):
        info = compiled_initialize(model, init, (arrays, arrays["y"]), {})
        state["constrain"] = info.postprocess_fn
        state["latent"] = latent_inverses(info.model_trace)

        # one structure per program: the same sites, in the same order, in every fit
        state["unravel"] = unravel = ravel_pytree(info.param_info.z)[1]
        state["to_z"] = lambda center, root, u: unravel(center + root @ u)
        # U(z) and dU/dz of one fit's arrays, compiled once per program, for laplace_coordinates on the host
        # (paired: its differences two gradients a call, as bl.fit takes them)
        state["value_and_grad"], state["pair"] = paired(lambda x, arrays: jax.value_and_grad(
            lambda x: info.potential_fn(arrays, arrays["y"])(unravel(x)))(x))

        def laplace(arrays, y, center, root):  # the potential in u (laplace_coordinates), as bl.fit samples it
            potential = info.potential_fn(arrays, y)
            return lambda u: potential(state["to_z"](center, root, u))

        state["kernel"] = hmc(potential_fn_gen=laplace, algo="NUTS")

    def one_chain(rng_key, u, arrays, center, root):
        init_kernel, sample_kernel = state["kernel"]
        args = (arrays, arrays["y"], center, root)
        # as numpyro.infer.NUTS' defaults, with the dense mass matrix over every coordinate
        hmc_state = init_kernel(u, options.warmup, dense_mass=options.dense_mass,
                                target_accept_prob=options.target_accept, trajectory_length=None,
                                max_tree_depth=MAX_TREE_DEPTH, model_args=args, model_kwargs={}, rng_key=rng_key)

        def step(s, _):  # one scan over warmup and draws (one trace of the kernel); the warmup's are dropped
            s = sample_kernel(s, model_args=args, model_kwargs={})
            return s, (s.z, {name: attrgetter(name)(s) for name in EXTRA_FIELDS})  # what bl.fit collects

        u_draws, stats = jax.tree.map(lambda v: v[options.warmup:], jax.lax.scan(
            step, hmc_state, None, length=options.warmup + options.draws)[1])
        return jax.vmap(lambda u: state["constrain"](*args[:2])(state["to_z"](center, root, u)))(u_draws), stats

    def one_fit(chain_keys, u, arrays, center, root, ppc_key):
        samples, stats = jax.vmap(one_chain, in_axes=(0, 0, None, None, None))(chain_keys, u, arrays, center, root)
        flat_draws = jax.tree.map(lambda v: v.reshape(-1, *v.shape[2:]), samples)
        ppc, log_lik = _replicate(get_model(pooling), flat_draws, ppc_key, _data_on(template, arrays), arrays["y"],
                                  seed_scaling=seed_scaling)
        return samples, stats, ppc, log_lik

    batched = jax.vmap(one_fit)
    run = jax.pmap(batched) if n_devices > 1 else jax.jit(jax.vmap(batched))
    _PROGRAMS[key, options, n_devices] = build, state, run
    return build, state, run


def fit_many(
    tables: Sequence[pd.DataFrame],
    form: str = "chinchilla",
    pooling: Pooling = "hierarchical",
    *,
    seeds: Sequence[int] | None = None,
    seed: int = 0,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    min_tokens: float | None = DEFAULT_MIN_TOKENS,
    min_fraction: float | None = None,
    thin: int | None = 20,
    seed_scaling: SeedScaling = "constant",
    target_accept: float = DEFAULT_TARGET_ACCEPT,
    dense_mass: bool = True,
    duplicates: Duplicates = "error",
    retry_target_accept: float | None = RETRY_TARGET_ACCEPT,
    rising: Rising = "error",
    batch_size: int = BATCH_SIZE,
    devices: int | None = None,
    progress: bool | None = None,
) -> list[Fit]:
    """Fit one law to each of ``tables`` by NUTS, the tables of one model structure as one program.

    Every option is :func:`bayeslaw.fit`'s, for every table; ``seeds`` gives each table its seed
    (default ``seed + i``). Returns one :class:`~bayeslaw.Fit` per table, in order, each as
    ``bayeslaw.fit(table, seed=seeds[i], chain_method="vectorized", extend=0, ...)`` would give it (one
    block of draws: no extension; the fits whose batched draws diverge are sampled again at
    ``retry_target_accept`` as one more program, which gives each what ``fit``'s second run gives).
    ``batch_size``
    caps the fits per program (a larger group is split evenly); ``devices`` (default: JAX's local
    devices, at most the batch) share each program's fits. ``progress``: a bar over the fits, advanced
    per program (default: when stderr is a terminal). The fits whose draws miss :meth:`Fit.diagnostics`'
    checks are named by index in one :class:`~bayeslaw.inference.nuts.ConvergenceWarning`, as ``fit`` warns;
    an error or warning of one table's rows or start names its index (``fit_many: table i: ...``).
    """
    if isinstance(tables, (pd.DataFrame, str, bytes, Mapping)) or not isinstance(tables, Iterable):
        raise TypeError(f"fit_many: tables={type(tables).__name__}: need a list of DataFrames"
                        + ("; for one table pass [df]" if isinstance(tables, pd.DataFrame) else ""))
    tables = list(tables)
    if not is_whole(batch_size) or batch_size < 1:
        raise ValueError(f"fit_many: batch_size={batch_size!r}: need a whole number >= 1")
    if devices is not None and (not is_whole(devices) or not 1 <= devices <= jax.local_device_count()):
        raise ValueError(f"fit_many: devices={devices!r}: need a whole number from 1 to {jax.local_device_count()} "
                         f"(JAX's local devices), or None")
    # every option checked first, even for no tables (the seeds below one by one, naming each)
    base = FitConfig(form=form, pooling=pooling, seed=seed, chains=chains, draws=draws, warmup=warmup,
                     min_tokens=min_tokens, min_fraction=min_fraction, thin=thin, seed_scaling=seed_scaling,
                     target_accept=target_accept, chain_method="vectorized", dense_mass=dense_mass,
                     # one block of draws: a program's fits run in lockstep, so one cannot go on alone
                     duplicates=duplicates, extend=0, retry_target_accept=retry_target_accept, rising=rising)
    if seeds is None:
        seeds = [seed + i for i in range(len(tables))]
    elif seed != 0:
        raise ValueError(f"fit_many: seed={seed!r} and seeds: seeds gives each table its seed (seed only sets "
                         f"seeds' default, seed + i); pass one of them")
    elif isinstance(seeds, (str, bytes, Mapping)) or not isinstance(seeds, Iterable):
        raise TypeError(f"fit_many: seeds={seeds!r}: need a list of whole numbers >= 0, one per table")
    seeds = list(seeds)
    if len(seeds) != len(tables):
        raise ValueError(f"fit_many: {len(seeds)} seeds for {len(tables)} tables")
    for i, s in enumerate(seeds):  # not int(s): 1.5 would become seed 1 with no word (fit refuses it)
        if not is_whole(s) or s < 0:
            raise ValueError(f"fit_many: seeds[{i}]={s!r}: need a whole number >= 0")
    if not tables:
        return []
    configs = [replace(base, seed=int(s)) for s in seeds]
    prepared = []
    for i, (table, config) in enumerate(zip(tables, configs, strict=True)):
        # prepare_fit's warnings ("fit: ... left out ...") and errors, each naming its table
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                prepared.append(prepare_fit(table, config))
                error = None
            except ValueError as e:
                error = e
        for w in caught:
            warnings.warn(f"fit_many: table {i}: {w.message}", w.category, stacklevel=2)
        if error is not None:
            raise ValueError(f"fit_many: table {i}: {error}") from None
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(structure(p), []).append(i)
    options = _Options(chains, warmup, draws, target_accept, dense_mass)
    fits: list[Fit | None] = [None] * len(tables)
    with tqdm(total=len(tables), desc="fit_many", unit="fit",
              disable=not (sys.stderr.isatty() if progress is None else progress)) as bar:
        for key, members in groups.items():
            if len(members) == 1:
                # a structure of its own: NumPyro's MCMC with vectorised chains gives the same draws and
                # compiles faster than a program of fits (README, "Many fits as one program";
                # benchmarks/batched_fits.py --single times the two)
                with warnings.catch_warnings(), _naming(members[0]):
                    warnings.simplefilter("ignore", ConvergenceWarning)  # fit's own: said below, naming the table
                    fits[members[0]] = sample_fit(prepared[members[0]])
                bar.update(1)
                continue
            n_batches = math.ceil(len(members) / batch_size)
            size = math.ceil(len(members) / n_batches)  # split evenly: one padded shape, one compilation
            for start in range(0, len(members), size):
                batch = members[start:start + size]
                try:
                    got, starts = _sample_batch([prepared[i] for i in batch], key, size, options, devices)
                except _Unstarted as unstarted:
                    with _naming(batch[unstarted.position]):
                        raise unstarted.error from None
                for i, fit in zip(batch, _retried([prepared[i] for i in batch], got, starts, key, size, options,
                                                  devices)):
                    fits[i] = fit
                bar.update(len(batch))
    _warn_unconverged(fits)
    return fits


def _warn_unconverged(fits: list[Fit], shown: int = 3) -> None:
    """One :class:`~bayeslaw.inference.nuts.ConvergenceWarning`, as :func:`bayeslaw.fit`'s, naming (by index) the
    fits whose draws miss :meth:`Fit.diagnostics`' checks, with the first ``shown`` of them's messages."""
    failing = {}
    for i, fit in enumerate(fits):
        if not isinstance(fit, Fit):  # a stand-in (tests that stub the sampling out)
            continue
        diagnostics = fit.diagnostics(warn=False)
        if diagnostics.warning:
            failing[i] = diagnostics.messages
    if not failing:
        return
    post = fits[next(iter(failing))].idata.posterior
    details = "; ".join(f"fit {i}: " + "; ".join(messages) for i, messages in list(failing.items())[:shown])
    more = f"; and {len(failing) - shown} more" if len(failing) > shown else ""
    warnings.warn(f"fit_many: not converged: fit(s) {list(failing)} of {len(fits)} ({post.sizes['chain']} chains x "
                  f"{post.sizes['draw']} draws): {details}{more} (fits[i].diagnostics() gives the table)",
                  ConvergenceWarning, stacklevel=3)


class _Unstarted(Exception):
    """The start of the fit at ``position`` in a program's batch failed with ``error``."""

    def __init__(self, position: int, error: Exception):
        super().__init__(position, error)
        self.position, self.error = position, error


@contextmanager
def _naming(index: int):
    """A ValueError or RuntimeError (a start's non-finite potential, say) raised again naming table ``index``."""
    try:
        yield
    except (ValueError, RuntimeError) as error:
        if type(error) not in (ValueError, RuntimeError):  # JAX's own errors: as they are
            raise
        raise type(error)(f"fit_many: table {index}: {error}") from None


def _retried(batch: list[PreparedFit], fits: list[Fit], starts: list[tuple], key: tuple, size: int,
             options: _Options, devices: int | None) -> list[Fit]:
    """A program's fits, those whose draws diverged sampled again at their ``retry_target_accept``: as one
    more program of the same shape (the fits of one call share their options), from the same ``starts``
    (:func:`_sample_batch`'s), what :func:`bayeslaw.fit`'s second run gives each of them."""
    retry = batch[0].config.retry_target_accept  # the fits of one call share their options
    if retry is None:
        return fits
    again = [j for j, (p, f) in enumerate(zip(batch, fits, strict=True))
             if retry_accept(p.config, {"diverging": f.idata.sample_stats["diverging"].values}) is not None]
    if not again:
        return fits
    redone, _ = _sample_batch([batch[j] for j in again], key, size, replace(options, target_accept=retry), devices,
                              [starts[j] for j in again])
    out = list(fits)
    for j, fit in zip(again, redone, strict=True):
        out[j] = fit
    return out


def release_compiled(n_fits: int) -> None:
    """After a study cell of ``n_fits`` fits: a lone fit compiled a sampler for itself alone, and XLA does not
    give code memory back on its own (a 50-data-set study of single fits died at data set 29: "LLVM ERROR:
    Unable to allocate section memory"), so JAX's caches are cleared; a program of several fits is kept
    for the next cell of its shape."""
    if n_fits == 1:
        jax.clear_caches()


def _sample_batch(batch: list[PreparedFit], key: tuple, size: int, options: _Options, devices: int | None,
                  starts: list[tuple] | None = None) -> tuple[list[Fit], list[tuple]]:
    """Sample ``batch`` (one structure) as one program of ``size`` fits, padded with copies of its last; and
    each fit's start (its chains' Laplace draws, the mode and the root of the coordinates), which
    ``starts`` gives instead of finding it again (a retry's: the same start, as :func:`bayeslaw.fit`'s)."""
    n_devices = min(jax.local_device_count() if devices is None else devices, size)
    size = math.ceil(size / n_devices) * n_devices
    n_rows = max(len(p.y) for p in batch)
    width = max(p.data.run_mask.shape[1] for p in batch)
    arrays = [_padded(p.data, p.y, n_rows, width) for p in batch]
    first = batch[0]
    build, state, run = _program((key, n_rows, width, size), first.data, first.config.pooling,
                                 first.config.seed_scaling, options, n_devices)
    if not state:
        build(jax.tree.map(jnp.asarray, arrays[0]), first.init)
    chain_starts, centers, roots, chain_keys, ppc_keys = [], [], [], [], []
    for i, (p, a) in enumerate(zip(batch, arrays)):
        if starts is None:
            try:  # a start that cannot be sampled: fit_many names its table (_Unstarted)
                missing = sorted(set(state["latent"]) - set(p.init))
                if missing:
                    raise ValueError(f"no start value for site(s) {missing}")
                z = {name: inv(jnp.asarray(p.init[name])) for name, inv in state["latent"].items()}
                flat, on_device = ravel_pytree(z)[0], jax.tree.map(jnp.asarray, a)
                check_start(*state["value_and_grad"](flat, on_device), z)
                center, root, u0 = laplace_start(lambda x, a=on_device: state["value_and_grad"](x, a), flat,
                                                 chains=options.chains, seed=p.config.seed,
                                                 pair=lambda points, a=on_device: state["pair"](points, a))
            except (ValueError, RuntimeError) as error:
                raise _Unstarted(i, error) from error
        else:
            u0, center, root = starts[i]
        chain_starts.append(u0)
        centers.append(center)
        roots.append(root)
        key_fit, key_ppc = jax.random.split(jax.random.PRNGKey(p.config.seed))
        # as MCMC.run and NUTS.init: a key per chain (MCMC splits the fit's key only for several chains), of
        # which the first half drives the chain
        per_chain = jax.random.split(key_fit, options.chains) if options.chains > 1 else key_fit[None]
        chain_keys.append(jax.vmap(jax.random.split)(per_chain)[:, 0])
        ppc_keys.append(key_ppc)
    pad = size - len(batch)
    stacked = [jax.tree.map(lambda *v: np.stack(list(v) + [v[-1]] * pad).reshape(n_devices, size // n_devices,
                                                                                *np.shape(v[0])), *parts)
               for parts in (chain_keys, chain_starts, arrays, centers, roots, ppc_keys)]
    samples, stats, ppc, log_lik = jax.device_get(run(*stacked))
    flat = lambda v: v.reshape(-1, *v.shape[2:])  # noqa: E731  (device, fit, ...) -> (fit, ...)
    samples, stats = jax.tree.map(flat, samples), jax.tree.map(flat, stats)
    ppc, log_lik = flat(ppc), flat(log_lik)
    sampled = sorted(state["latent"])
    fits = []
    for i, p in enumerate(batch):
        width_i = p.data.run_mask.shape[1]
        fits.append(finish_fit(p, {k: v[i] for k, v in samples.items()}, {k: stats[k][i] for k in EXTRA_FIELDS},
                               p.data.per_row(ppc[i][..., :width_i]), log_lik[i], sampled, options.target_accept))
        fits[-1].idata.attrs["bayeslaw_extensions"] = 0  # as fit(extend=0) records it: one block of draws
    return fits, list(zip(chain_starts, centers, roots))
