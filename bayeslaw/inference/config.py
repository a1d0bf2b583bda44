"""One frozen configuration of a Bayesian fit: every option of :func:`bayeslaw.fit` that changes its
draws, checked in one place and stored with the fit (JSON in the DataTree's attrs), so that
``bl.fit(rows, **fit.config)`` refits exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Literal, get_args, get_origin, get_type_hints

import numpy as np
import xarray as xr

from bayeslaw.data.files import is_whole
from bayeslaw.data.split import DEFAULT_MIN_TOKENS
from bayeslaw.laws import DEFAULT_FORM, get_law

__all__ = ["DEFAULT_TARGET_ACCEPT", "RETRY_TARGET_ACCEPT", "ChainMethod", "Duplicates", "FitConfig", "PointMethod",
           "Pooling", "PredictionKind", "Rising", "SeedScaling", "check_choice"]

Pooling = Literal["hierarchical", "none", "complete"]
SeedScaling = Literal["constant", "size"]
ChainMethod = Literal["parallel", "sequential", "vectorized"]
Duplicates = Literal["error", "last"]
Rising = Literal["error", "keep", "drop"]  # a run whose loss ends far above where it started: refused, kept or left out
PredictionKind = Literal["new_run", "law"]  # a new training run's loss, or the law's mean
# grid of starts with Huber loss, least squares from one start, or a law's published optimiser path
PointMethod = Literal["epoch", "hitchhiker", "adamw"]

ATTR = "bayeslaw_config"  # the DataTree attribute holding the JSON
#: NUTS' target acceptance probability (NumPyro's default is 0.8): the demo's fit has no divergent draws
#: from 0.9 up (15 leapfrog steps per draw at 0.9, 31 at 0.95-0.97), but a family fitted alone from two or
#: three sizes diverges below 0.97 (datablations-c4: 14 / 6 / 0 divergent draws at 0.9 / 0.95 / 0.97;
#: T5-Pile 12 / 4 / 0), where its law's exponents trade along a ridge (docs/run_likelihood.md, "The mass
#: matrix's floor")
DEFAULT_TARGET_ACCEPT = 0.97
#: A fit with divergent draws is sampled again from its start, warmup included, at this target acceptance
#: (``FitConfig.retry_target_accept``; None: never): the diagnostics' remedy done for the user, at the cost
#: of a second fit only where the first diverged. The fits that diverge at 0.97 are one-family fits from
#: two or three sizes, where the law's exponents trade along a ridge whose curvature the warmup's step size
#: misses; at 0.99 they draw without divergences (datablations-c4 8.7B: 6 -> 0, datablations-contour-c4
#: 619M: 6 -> 0, in no more time), while a default of 0.99 would double the steps of every fit
RETRY_TARGET_ACCEPT = 0.99


def check_choice(value, choices, name: str) -> None:
    """Raise a one-line ValueError listing the valid values when ``value`` is not one of ``choices``
    (a Literal type or a sequence)."""
    valid = get_args(choices) if get_origin(choices) is Literal else tuple(choices)
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(repr, valid))}")


@dataclass(frozen=True)
class FitConfig:
    """The options of :func:`bayeslaw.fit` that determine its draws (see its docstring for each)."""

    form: str = DEFAULT_FORM
    pooling: Pooling = "hierarchical"
    seed: int = 0
    chains: int = 4
    draws: int = 1000
    warmup: int = 1000
    min_tokens: float | None = DEFAULT_MIN_TOKENS
    min_fraction: float | None = None
    thin: int | None = 20
    seed_scaling: SeedScaling = "constant"
    target_accept: float = DEFAULT_TARGET_ACCEPT
    chain_method: ChainMethod | None = None
    dense_mass: bool = True
    duplicates: Duplicates = "error"
    extend: int | None = None
    retry_target_accept: float | None = RETRY_TARGET_ACCEPT
    rising: Rising = "error"

    def __post_init__(self):
        object.__setattr__(self, "form", get_law(self.form).name)  # unknown: raises with the known forms
        hints = get_type_hints(FitConfig)
        for f in fields(self):
            value = getattr(self, f.name)
            literal = next((a for a in (hints[f.name], *get_args(hints[f.name])) if get_origin(a) is Literal), None)
            if literal is not None and not (value is None and type(None) in get_args(hints[f.name])):
                check_choice(value, literal, f.name)
        # JAX's key and NumPy's generators take a whole number >= 0; their own messages name no option
        if not is_whole(self.seed) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r}: need a whole number >= 0")
        object.__setattr__(self, "seed", int(self.seed))
        for name in ("chains", "draws", "warmup"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name}={getattr(self, name)!r}: need a positive whole number")
        for name in ("min_tokens", "min_fraction"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                ok = bool(np.isfinite(float(value)) and float(value) >= 0) and not isinstance(value, (bool, str))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{name}={value!r}: need a number >= 0 (0 keeps all rows), or None")
        if self.extend is not None and not (isinstance(self.extend, int) and self.extend >= 0):
            raise ValueError(f"extend={self.extend!r}: need a whole number >= 0 (or None: the library's default)")
        if not 0 < self.target_accept < 1:
            raise ValueError(f"target_accept={self.target_accept!r}: need a probability in (0, 1)")
        if self.retry_target_accept is not None and not 0 < self.retry_target_accept < 1:
            raise ValueError(f"retry_target_accept={self.retry_target_accept!r}: need a probability in (0, 1), or None")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_attrs(cls, idata: xr.DataTree) -> FitConfig:
        """The configuration a fit recorded; for fits saved before it was recorded, rebuilt from the
        attributes they carry (their chains and draws from the posterior; warmup and the sampler's
        settings unknown, so the defaults). A configuration it cannot read (invalid JSON, an option this version
        does not know, no law or pooling) raises a one-line ValueError naming the attribute."""
        attrs = idata.attrs
        if ATTR in attrs:
            return cls._from_json(attrs[ATTR])
        # a legacy fit names its law and pooling: without them there is no model to rebuild its draws in
        missing = [name for name in ("bayeslaw_form", "bayeslaw_pooling") if name not in attrs]
        if missing:
            raise ValueError(f"no {ATTR} attribute and no {' or '.join(missing)} attribute (the fit's law and "
                             f"pooling): not a complete bayeslaw fit (written by another bayeslaw version?)")
        legacy = {"form": str(attrs["bayeslaw_form"]), "pooling": str(attrs["bayeslaw_pooling"]),
                  "seed_scaling": str(attrs.get("bayeslaw_seed_scaling", "constant"))}
        for name, kind in (("seed", int), ("min_tokens", float), ("min_fraction", float), ("thin", int)):
            if f"bayeslaw_{name}" in attrs:
                value = float(attrs[f"bayeslaw_{name}"])
                legacy[name] = None if name != "seed" and value < 0 else kind(value)
        if "posterior" in idata.children:
            legacy.update(chains=int(idata.posterior.sizes["chain"]), draws=int(idata.posterior.sizes["draw"]))
        return cls(**legacy)

    @classmethod
    def _from_json(cls, text) -> FitConfig:
        """The :data:`ATTR` JSON as a configuration; text that is not a JSON object of known options raises a
        one-line ValueError naming the attribute (the caller adds the file)."""
        try:
            options = json.loads(text)
        except (TypeError, ValueError) as error:  # truncated or edited JSON; json's message names no attribute
            raise ValueError(f"attribute {ATTR} is not valid JSON ({error})") from None
        if not isinstance(options, dict):
            raise ValueError(f"attribute {ATTR} is JSON {type(options).__name__}, not an object of fit options")
        # a key this version does not know: an option of a newer (or older) bayeslaw, whose draws it cannot
        # reproduce; named, not a TypeError from the dataclass
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"attribute {ATTR} has option(s) {unknown} this bayeslaw version does not know "
                             f"(written by another bayeslaw version?)")
        # every version wrote the law and the pooling; without them the defaults would silently stand in for
        # the model the draws came from (an option added later is right at its default: older fits had it so)
        missing = [name for name in ("form", "pooling") if name not in options]
        if missing:
            raise ValueError(f"attribute {ATTR} lacks option(s) {missing} (the fit's law and pooling): not a "
                             f"complete bayeslaw fit")
        return cls(**options)
