"""What a data file must hold before a run starts: readable, numeric, finite, enough rows.

:func:`file_table` reads a user's ``.csv``/``.npz``/``.parquet`` into the input and target
columns a config names and checks them; :func:`check_data_config` does it for a ``data``
config section, so ``kanplatform validate`` and ``train``/``tune``/``scale`` refuse a bad file
(one :class:`~kanplatform.data.DataError` naming the key, the file and the first bad row)
before anything is created. Rows holding NaN or inf are refused, with their count and the
first one, unless ``data.drop_nonfinite: true``, which drops them (with a
:class:`DataWarning`). For classification the one target column holds labels (integers or
strings; an empty label counts as a missing value) and needs two classes at least.

Rows are counted as in the file: line 1 is a CSV's header, so data row ``i`` (from 0) is
line ``i + 2``; for ``.npz`` and ``.parquet`` files, row ``i`` is element ``i`` of every column.
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

FILE_TYPES = (".csv", ".npz", ".parquet")


class DataWarning(UserWarning):
    """Something about the data that training goes on with (e.g. dropped non-finite rows)."""


@dataclass(frozen=True)
class FileTable:
    """The columns a config uses, checked.

    Attributes:
        x: ``(rows, n_inputs)`` float64, finite.
        y: ``(rows, n_targets)`` float64, finite (regression), or ``(rows,)`` labels
            (classification: int64 when every label is an integer, else str).
        dropped: rows left out for NaN/inf values (``drop_nonfinite``).
        first_dropped: their first row's description (``"line 7"``), or None.
    """

    x: np.ndarray
    y: np.ndarray
    dropped: int = 0
    first_dropped: str | None = None


def _row_name(path: Path, index: int) -> str:
    return f"line {index + 2}" if path.suffix == ".csv" else f"row {index}"


def _read_csv(path: Path) -> dict[str, Any]:
    """Every column of a CSV as a list of stripped strings (converted by :func:`file_table`)."""
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"data.path: cannot read {path} ({type(err).__name__}: {err})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"data.path: {path} is empty; expected a header row of column names "
                        "and one row of numbers per sample")
    header = [h.strip() for h in rows[0]]
    body = []
    for i, row in enumerate(rows[1:]):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(f"data.path: {path} {_row_name(path, i)} has {len(row)} values, "
                            f"but the header names {len(header)} columns")
        body.append((i, row))
    lines = np.array([i for i, _ in body], dtype=np.int64)
    columns: dict[str, Any] = {"__lines__": lines}
    for j, name in enumerate(header):
        columns[name] = np.array([row[j].strip() for _, row in body], dtype=str)
    return columns


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        npz = np.load(path, allow_pickle=False)  # no pickled object arrays: data only
    except (OSError, ValueError) as err:
        raise DataError(f"data.path: cannot read {path} as .npz ({err})") from None
    with npz:
        out = {}
        for name in npz.files:
            try:
                out[name] = np.asarray(npz[name]).reshape(-1)
            except ValueError as err:
                raise DataError(f"data.path: {path} array {name!r} cannot be read ({err})") \
                    from None
    if not out:
        raise DataError(f"data.path: {path} holds no arrays")
    return out


def _read_parquet(path: Path, names: list[str] | None) -> dict[str, Any]:
    try:
        import pyarrow.parquet as pq

        schema = pq.read_schema(path).names
        wanted = [n for n in (names or schema) if n in schema]
        frame = pq.read_table(path, columns=wanted).to_pandas()
    except ImportError:
        raise DataError(f"data.path: {path}: reading .parquet needs pandas and pyarrow "
                        "(pip install pandas pyarrow)") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same message
        raise DataError(f"data.path: cannot read {path} as .parquet "
                        f"({type(err).__name__}: {err})") from None
    out: dict[str, Any] = {n: None for n in schema}  # names only for columns not read
    for name in wanted:
        out[name] = frame[name].to_numpy()
    return out


def read_table(path: str | Path, names: list[str] | None = None) -> dict[str, Any]:
    """The columns of a ``.csv`` (header row of names), ``.npz`` (1-D arrays) or ``.parquet``.

    Values are raw: strings for a CSV, the stored arrays otherwise (:func:`file_table`
    converts and checks the columns a config uses).

    Args:
        path: the file.
        names: the columns needed (a parquet file reads only these; the others are listed
            with ``None``); None reads every column.

    Raises:
        DataError: missing, unreadable, empty, or ragged (the line named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.path: file not found: {path}")
    if path.suffix == ".csv":
        return _read_csv(path)
    if path.suffix == ".npz":
        return _read_npz(path)
    if path.suffix == ".parquet":
        return _read_parquet(path, names)
    raise DataError(f"data.path: {path}: unsupported file type {path.suffix!r}; use "
                    f"{', '.join(FILE_TYPES)}")


def column_list(path: str | Path) -> list[str]:
    """The column names of a data file (a CSV's header row, a parquet file's schema)."""
    path = Path(path)
    if path.suffix == ".parquet" and path.is_file():
        return list(read_table(path, names=[]))
    if path.suffix == ".csv" and path.is_file():
        try:
            with path.open(newline="") as f:
                header = [h.strip() for h in next(csv.reader(f), [])]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"data.path: cannot read {path} ({type(err).__name__}: {err})") \
                from None
        if not any(header):
            raise DataError(f"data.path: {path} is empty; expected a header row of column "
                            "names and one row of numbers per sample")
        return header
    return [n for n in read_table(path) if not n.startswith("__")]


def _numeric(path: Path, name: str, values: Any, rows: np.ndarray, hint: str = "") -> np.ndarray:
    """A column as float64; the first non-numeric cell named (CSV: its line)."""
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    if path.suffix != ".csv":
        raise DataError(f"data.path: {path} {'array' if path.suffix == '.npz' else 'column'} "
                        f"{name!r} is not numeric (dtype {values.dtype}){hint}")
    try:
        return values.astype(np.float64)
    except ValueError:
        for i, cell in enumerate(values):
            try:
                float(cell)
            except ValueError:
                raise DataError(f"data.path: {path} column {name!r} is not numeric: "
                                f"{str(cell)!r} at {_row_name(path, int(rows[i]))}{hint}") \
                    from None
        raise


def _labels(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Class labels as int64 (when all are integers) or str, and where one is missing."""
    values = np.asarray(values)
    if values.dtype.kind in "biu":
        return values.astype(np.int64), np.zeros(len(values), dtype=bool)
    if values.dtype.kind == "f":
        missing = ~np.isfinite(values)
        whole = np.all(values[~missing] == np.round(values[~missing]))
        if whole:
            return np.where(missing, 0, values).astype(np.int64), missing
        return values.astype(str), missing
    text = np.array([("" if v is None else str(v)).strip() for v in values], dtype=str)
    missing = (text == "") | np.isin(np.char.lower(text), ["nan", "none", "null"])
    try:
        numbers = text[~missing].astype(np.float64)
    except ValueError:
        return text, missing
    if np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)):
        out = np.zeros(len(text), dtype=np.int64)
        out[~missing] = numbers.astype(np.int64)
        return out, missing
    return text, missing


def _columns(path: Path, inputs: list[str], targets: list[str]) -> dict[str, Any]:
    columns = read_table(path, names=[*inputs, *targets])
    for role, names in (("data.inputs", inputs), ("data.targets", targets)):
        if not names:
            raise DataError(f"{role} is empty: name the columns of {path} to use")
        missing = [n for n in names if n not in columns]
        if missing:
            shown = [n for n in columns if not n.startswith("__")]
            raise DataError(f"{role}: no column {missing} in {path}; columns: "
                            f"{', '.join(shown)}")
    lengths = {len(columns[n]) for n in [*inputs, *targets]}
    if len(lengths) > 1:
        raise DataError(f"data.path: {path}: the columns have different lengths {sorted(lengths)}")
    return columns


def file_table(path: str | Path, inputs: list[str], targets: list[str],
               drop_nonfinite: bool = False, need: int | None = None,
               task: str = "regression") -> FileTable:
    """The checked input and target columns of a data file.

    Args:
        path: the ``.csv``/``.npz``/``.parquet`` file.
        inputs, targets: column names (``data.inputs``, ``data.targets``).
        drop_nonfinite: drop rows with NaN/inf (or missing labels) instead of refusing them.
        need: rows required (``n_train + n_val + n_test``); None skips the count check.
        task: ``classification`` reads the one target column as class labels.

    Raises:
        DataError: see :func:`read_table`; a missing column; a non-numeric input (or
            regression target); NaN/inf values (count and first row, unless dropped); fewer
            rows than ``need``; for classification more than one target column or a single
            class.
    """
    path = Path(path)
    classify = task == "classification"
    if classify and len(targets) != 1:
        raise DataError(f"data.targets: classification takes one label column, got {targets}")
    columns = _columns(path, inputs, targets)
    n_rows = len(columns[inputs[0]]) if inputs else 0
    rows = columns.get("__lines__", np.arange(n_rows))
    hint = "" if classify else " (class labels? set task: classification)"
    x = np.stack([_numeric(path, n, columns[n], rows) for n in inputs], axis=1) \
        if n_rows else np.zeros((0, len(inputs)))
    if classify:
        y, missing_label = _labels(columns[targets[0]])
        bad = ~np.isfinite(x).all(axis=1) | missing_label
    else:
        y = np.stack([_numeric(path, n, columns[n], rows, hint if i == 0 else "")
                      for i, n in enumerate(targets)], axis=1) \
            if n_rows else np.zeros((0, len(targets)))
        bad = ~(np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1))
    dropped, first = int(bad.sum()), None
    if dropped:
        index = int(np.argmax(bad))
        first = _row_name(path, int(rows[index]))
        if not drop_nonfinite:
            cols = [n for j, n in enumerate(inputs) if not np.isfinite(x[index, j])]
            if classify:
                cols += [targets[0]] if missing_label[index] else []
            else:
                cols += [n for j, n in enumerate(targets) if not np.isfinite(y[index, j])]
            what = "NaN or inf values" if not classify else "NaN/inf values or missing labels"
            raise DataError(
                f"data.path: {path} has {dropped} row(s) with {what}, the first at "
                f"{first} (column {', '.join(cols)}); fix the file or set "
                "data.drop_nonfinite: true to train without them")
        x, y = x[~bad], y[~bad]
    if need is not None and len(x) < need:
        kept = f" after dropping {dropped} with NaN/inf" if dropped else ""
        only = " (only a header)" if len(x) == 0 and not dropped else ""
        raise DataError(f"data.path: {path} has {len(x)} data rows{only}{kept}, fewer than "
                        f"data.n_train + n_val + n_test = {need}; lower them or add rows")
    if classify and len(x) and len(np.unique(y)) < 2:
        only = y[0].item() if hasattr(y[0], "item") else y[0]
        raise DataError(f"data.targets: column {targets[0]!r} of {path} holds a single class "
                        f"({only!r}); classification needs at least two")
    return FileTable(x, y, dropped, first)


@functools.lru_cache(maxsize=16)
def _checked(path: str, mtime_ns: int, size: int, inputs: tuple[str, ...],
             targets: tuple[str, ...], drop: bool, sizes: tuple[Any, ...],
             split: tuple[float, ...], task: str) -> tuple[int, str | None, int | None]:
    from kanplatform.data.splitting import split_counts

    explicit = [s for s in sizes if s is not None]
    need = sum(explicit) if len(explicit) == 3 else None
    table = file_table(path, list(inputs), list(targets), drop, need, task)
    split_counts(len(table.x), split, *sizes, where=f"data.path: {path}")
    n_classes = len(np.unique(table.y)) if task == "classification" else None
    return table.dropped, table.first_dropped, n_classes


def check_data_config(data_cfg: Any, task: str = "regression") -> str | None:
    """Check the file a ``data`` section names (a no-op for registered datasets).

    Cheap to repeat: the result is cached per file content (path, size, modification
    time), since a search validates every sampled trial's config.

    Returns:
        A note when rows will be dropped (``drop_nonfinite``), else None.

    Raises:
        DataError: what :func:`file_table` raises, or too few rows for ``data.split``.
    """
    if data_cfg.dataset != "file":
        return None
    dropped, first, _ = _file_summary(data_cfg, task)
    if dropped:
        return (f"{dropped} row(s) of {data_cfg.path} with NaN/inf values are dropped "
                f"(first: {first})")
    return None


def file_classes(data_cfg: Any) -> int:
    """The number of classes in a classification file's label column (checked, cached)."""
    return int(_file_summary(data_cfg, "classification")[2])


def _file_summary(data_cfg: Any, task: str) -> tuple[int, str | None, int | None]:
    from kanplatform.config.validate import size_value

    path = Path(data_cfg.path)
    try:
        stat = path.stat()
    except OSError:
        raise DataError(f"data.path: file not found: {path}") from None
    sizes = tuple(size_value(data_cfg[k]) for k in ("n_train", "n_val", "n_test"))
    return _checked(str(path), stat.st_mtime_ns, stat.st_size, tuple(data_cfg.inputs),
                    tuple(data_cfg.targets), bool(data_cfg.get("drop_nonfinite", False)),
                    sizes, tuple(float(f) for f in data_cfg.split), task)


def warn_dropped(path: str | Path, table: FileTable) -> None:
    """One :class:`DataWarning` for the rows ``drop_nonfinite`` left out."""
    if table.dropped:
        # shown as "PATH:0: DataWarning: ...": the file it is about, no source line of ours
        warnings.warn_explicit(f"data.drop_nonfinite: {table.dropped} row(s) with NaN/inf "
                               f"values dropped (the first at {table.first_dropped})",
                               DataWarning, filename=str(path), lineno=0)
