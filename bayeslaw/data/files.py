"""Writing output files so that a reader never sees half of one."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["jsonable", "read_csv_file", "read_parquet_file", "write_atomic"]


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status), since
    ``os.umask`` can only read it by setting it, which another thread could observe; else set and restore."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_csv_file(path: str | os.PathLike, what: str = "file", error: type[Exception] = ValueError,
                  **kwargs) -> pd.DataFrame:
    """pandas.read_csv, its errors as ``error`` naming the file (pandas' own name none: 'No columns to
    parse from file')."""
    try:
        df = pd.read_csv(path, **kwargs)
        names = []
        if "header" not in kwargs and "names" not in kwargs:
            # pandas renames a repeated header (tokens, tokens.1) and every reader then reads only the first
            header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False,
                                 **{k: v for k, v in kwargs.items() if k in ("sep", "compression", "encoding")})
            names = header.iloc[0].tolist() if len(header) else []
    except pd.errors.EmptyDataError:
        raise error(f"{what} {str(path)!r} is empty (no header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as reason:
        raise error(f"{what} {str(path)!r}: not a readable CSV ({str(reason).splitlines()[0]})") from None
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise error(f"{what} {str(path)!r}: column(s) {repeated} appear more than once in the header line; "
                    f"keep one of each")
    return df


def read_parquet_file(path: str | os.PathLike, what: str = "file", error: type[Exception] = ValueError) -> pd.DataFrame:
    """pandas.read_parquet, its errors as ``error`` naming the file (pyarrow's ArrowInvalid is a ValueError
    that names none)."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as reason:
        raise error(f"{what} {str(path)!r}: not a readable parquet file ({str(reason).splitlines()[0]})") from None


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    On any error the temporary file is removed and ``path`` is left as it was. The data are synced before
    the rename and the folder's entry after it, so that a reader sees the old file or the whole new one,
    and a power loss cannot leave a renamed but empty file. The file gets the mode a plain
    ``open(path, "w")`` would give it: the mode of the file it replaces, else 0o666 less the umask
    (mkstemp creates 0o600, which would hide the output from the user's group).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode) if path.is_file() else 0o666 & ~_umask()
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync(path.parent, os.O_RDONLY)
    return path


def _fsync(path, flags: int) -> None:
    """Flush a file's data, or a folder's entries, to disk; a platform that cannot open a folder (Windows)
    or sync it skips it."""
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_number(value) -> bool:
    """A real number given as one (Python's or numpy's int or float): not a bool, which would pass as 1, nor text."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def is_whole(value) -> bool:
    """An integer given as one (Python's or numpy's): not a bool, which would pass as a count of 1."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def jsonable(value):
    """``value`` as plain JSON values: numpy scalars and arrays as Python numbers and lists, non-finite
    numbers (NaN, inf) as None (strict JSON, which every parser reads), other objects as their str."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, pd.Series)):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)
