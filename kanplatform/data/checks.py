"""What a data file must hold before a run starts: readable, numeric, finite, enough rows.

:func:`file_table` reads a user's ``.csv``/``.npz`` into the input and target columns a config
names and checks them; :func:`check_data_config` does it for a ``data`` config section, so
``kanplatform validate`` and ``train``/``tune``/``scale`` refuse a bad file (one
:class:`~kanplatform.data.DataError` naming the key, the file and the first bad row) before
anything is created. Rows holding NaN or inf are refused, with their count and the first one,
unless ``data.drop_nonfinite: true``, which drops them (with a :class:`DataWarning`).

Rows are counted as in the file: line 1 is a CSV's header, so data row ``i`` (from 0) is
line ``i + 2``; for ``.npz`` files, row ``i`` is element ``i`` of every array.
"""

from __future__ import annotations

import csv
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kanplatform.data.datasets import DataError


class DataWarning(UserWarning):
    """Something about the data that training goes on with (e.g. dropped non-finite rows)."""


@dataclass(frozen=True)
class FileTable:
    """The columns a config uses, checked.

    Attributes:
        x, y: ``(rows, n_inputs)`` and ``(rows, n_targets)`` float64, finite.
        dropped: rows left out for NaN/inf values (``drop_nonfinite``).
        first_dropped: their first row's description (``"line 7"``), or None.
    """

    x: np.ndarray
    y: np.ndarray
    dropped: int = 0
    first_dropped: str | None = None


def _row_name(path: Path, index: int) -> str:
    return f"line {index + 2}" if path.suffix == ".csv" else f"row {index}"


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"data.path: cannot read {path} ({type(err).__name__}: {err})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"data.path: {path} is empty; expected a header row of column names "
                        "and one row of numbers per sample")
    header = [h.strip() for h in rows[0]]
    body = [(i, r) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    values = np.empty((len(body), len(header)))
    for n, (i, row) in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"data.path: {path} {_row_name(path, i)} has {len(row)} values, "
                            f"but the header names {len(header)} columns")
        for j, cell in enumerate(row):
            try:
                values[n, j] = float(cell)
            except ValueError:
                raise DataError(f"data.path: {path} column {header[j]!r} is not numeric: "
                                f"{cell.strip()!r} at {_row_name(path, i)}") from None
    return {name: values[:, j] for j, name in enumerate(header)}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        npz = np.load(path, allow_pickle=False)  # no pickled object arrays: data only
    except (OSError, ValueError) as err:
        raise DataError(f"data.path: cannot read {path} as .npz ({err})") from None
    with npz:
        out = {}
        for name in npz.files:
            try:
                out[name] = np.asarray(npz[name], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise DataError(f"data.path: {path} array {name!r} is not numeric "
                                f"(dtype {npz[name].dtype})") from None
    if not out:
        raise DataError(f"data.path: {path} holds no arrays")
    return out


def read_table(path: str | Path) -> dict[str, np.ndarray]:
    """Every column of a ``.csv`` (header row of names) or ``.npz`` (1-D arrays), float64.

    Raises:
        DataError: missing, unreadable, empty, non-numeric (column and line named) or ragged.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.path: file not found: {path}")
    if path.suffix == ".csv":
        return _read_csv(path)
    if path.suffix == ".npz":
        return _read_npz(path)
    raise DataError(f"data.path: {path}: unsupported file type {path.suffix!r}; use .csv or .npz")


def file_table(path: str | Path, inputs: list[str], targets: list[str],
               drop_nonfinite: bool = False, need: int | None = None) -> FileTable:
    """The checked input and target columns of a data file.

    Args:
        path: the ``.csv``/``.npz`` file.
        inputs, targets: column names (``data.inputs``, ``data.targets``).
        drop_nonfinite: drop rows with NaN/inf in these columns instead of refusing them.
        need: rows required (``n_train + n_val + n_test``); None skips the count check.

    Raises:
        DataError: see :func:`read_table`; a missing column; NaN/inf values (count and first
            row, unless dropped); fewer rows than ``need``.
    """
    path = Path(path)
    columns = read_table(path)
    for role, names in (("data.inputs", inputs), ("data.targets", targets)):
        if not names:
            raise DataError(f"{role} is empty: name the columns of {path} to use")
        missing = [n for n in names if n not in columns]
        if missing:
            raise DataError(f"{role}: no column {missing} in {path}; columns: "
                            f"{', '.join(columns)}")
    lengths = {len(columns[n]) for n in [*inputs, *targets]}
    if len(lengths) > 1:
        raise DataError(f"data.path: {path}: the columns have different lengths {sorted(lengths)}")
    x = np.stack([columns[n] for n in inputs], axis=1)
    y = np.stack([columns[n] for n in targets], axis=1)
    bad = ~(np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1))
    dropped, first = int(bad.sum()), None
    if dropped:
        index = int(np.argmax(bad))
        first = _row_name(path, index)
        if not drop_nonfinite:
            cols = [n for n in [*inputs, *targets] if not np.isfinite(columns[n][index])]
            raise DataError(
                f"data.path: {path} has {dropped} row(s) with NaN or inf values, the first at "
                f"{first} (column {', '.join(cols)}); fix the file or set "
                "data.drop_nonfinite: true to train without them")
        x, y = x[~bad], y[~bad]
    if need is not None and len(x) < need:
        kept = f" after dropping {dropped} with NaN/inf" if dropped else ""
        only = " (only a header)" if len(x) == 0 and not dropped else ""
        raise DataError(f"data.path: {path} has {len(x)} data rows{only}{kept}, fewer than "
                        f"data.n_train + n_val + n_test = {need}; lower them or add rows")
    return FileTable(x, y, dropped, first)


@functools.lru_cache(maxsize=16)
def _checked(path: str, mtime_ns: int, size: int, inputs: tuple[str, ...],
             targets: tuple[str, ...], drop: bool, need: int) -> tuple[int, str | None]:
    table = file_table(path, list(inputs), list(targets), drop, need)
    return table.dropped, table.first_dropped


def check_data_config(data_cfg: Any) -> str | None:
    """Check the file a ``data`` section names (a no-op for registered datasets).

    Cheap to repeat: the result is cached per file content (path, size, modification
    time), since a search validates every sampled trial's config.

    Returns:
        A note when rows will be dropped (``drop_nonfinite``), else None.

    Raises:
        DataError: what :func:`file_table` raises.
    """
    if data_cfg.dataset != "file":
        return None
    path = Path(data_cfg.path)
    try:
        stat = path.stat()
    except OSError:
        raise DataError(f"data.path: file not found: {path}") from None
    need = int(data_cfg.n_train) + int(data_cfg.n_val) + int(data_cfg.n_test)
    dropped, first = _checked(str(path), stat.st_mtime_ns, stat.st_size,
                              tuple(data_cfg.inputs), tuple(data_cfg.targets),
                              bool(data_cfg.get("drop_nonfinite", False)), need)
    if dropped:
        return f"{dropped} row(s) of {path} with NaN/inf values are dropped (first: {first})"
    return None


def warn_dropped(path: str | Path, table: FileTable) -> None:
    """One :class:`DataWarning` for the rows ``drop_nonfinite`` left out."""
    if table.dropped:
        # shown as "PATH:0: DataWarning: ...": the file it is about, no source line of ours
        warnings.warn_explicit(f"data.drop_nonfinite: {table.dropped} row(s) with NaN/inf "
                               f"values dropped (the first at {table.first_dropped})",
                               DataWarning, filename=str(path), lineno=0)
