"""How result objects show themselves: tables and draws by their shape, not their contents.

A dataclass's generated repr prints every field in full, so a :class:`~bayeslaw.Prediction` of 4,000
draws, or an allocation with its per-draw table, filled a notebook cell or a log with hundreds of lines
before its one useful table. Results that derive from :class:`Result` show each table, array and fit by
its size, and in a notebook (``_repr_html_``) their main table (``_main``) under that line.
"""

from __future__ import annotations

import dataclasses
import html

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["Result", "brief"]

MAX_VALUE_CHARS = 80  # longer reprs of plain values are cut: a result's line stays one line


def brief(value) -> str:
    """One short description of a field's value: a table, array or fit by its size, a dict by its keys."""
    if isinstance(value, pd.DataFrame):
        return f"<DataFrame {len(value)} rows x {value.shape[1]} columns>"
    if isinstance(value, pd.Series):
        return f"<Series {len(value)} rows>"
    if isinstance(value, (xr.DataArray, xr.Dataset)):
        sizes = ", ".join(f"{k}: {v}" for k, v in value.sizes.items())
        return f"<{type(value).__name__} {value.name + ' ' if getattr(value, 'name', None) else ''}({sizes})>"
    if isinstance(value, np.ndarray) and value.size > 8:
        return f"<array {value.shape}>"
    if isinstance(value, dict) and any(isinstance(v, (pd.DataFrame, xr.DataArray, np.ndarray)) or
                                       hasattr(v, "idata") for v in value.values()):
        return "{" + ", ".join(f"{k!r}: ..." for k in value) + "}"
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


class Result:
    """Mixin for result dataclasses (declared with ``repr=False``, or the generated repr wins)."""

    _main: str | None = None  # the field shown as a table in a notebook

    def __repr__(self) -> str:
        shown = (f for f in dataclasses.fields(self) if f.repr)
        return f"{type(self).__name__}(" + ", ".join(f"{f.name}={brief(getattr(self, f.name))}" for f in shown) + ")"

    def _repr_html_(self) -> str:
        head = f"<p><code>{html.escape(repr(self))}</code></p>"
        table = getattr(self, self._main, None) if self._main else None
        return head + (table.to_html(max_rows=20) if isinstance(table, pd.DataFrame) else "")
