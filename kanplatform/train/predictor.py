"""A trained model with what it was trained on: ``kanplatform.load(run_dir)`` and ``predict``.

:class:`TrainedModel` wraps the network of a run with its data record (``data_info`` in
``model.pt``, also ``RUN_DIR/data.json``): the task, the input and target column names, the
classes and the normalisation fitted on the training split. Calling it on a tensor (or an
array) casts to the model's dtype, normalises, runs the network and returns original units
(logits for classification); :meth:`TrainedModel.predict` takes arrays or DataFrames (columns
matched by name) and returns NumPy predictions (class labels for classification).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kanplatform.data.normalize import Normalizer


class PredictError(ValueError):
    """Inputs a trained model cannot take: wrong columns, shape, or values."""


def read_data_info(path: str | Path) -> dict[str, Any]:
    """The data record of a run (``data_info`` of ``model.pt``/``last.ckpt``, else
    ``data.json``); ``{}`` for runs written before it existed."""
    path = Path(path)
    run_dir = path if path.is_dir() else (path.parent.parent if path.suffix == ".ckpt"
                                          else path.parent)
    files = [path] if path.is_file() else [path / "model.pt", path / "checkpoints" / "last.ckpt"]
    for candidate in files:
        if candidate.is_file():
            try:  # plain values only: a file needing more is not ours, and not trusted
                saved = torch.load(candidate, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - the model loader reports unreadable files
                break
            if isinstance(saved, dict) and isinstance(saved.get("data_info"), dict):
                return dict(saved["data_info"])
            break
    record = run_dir / "data.json"
    if record.is_file():
        return dict(json.loads(record.read_text()))
    return {}


class TrainedModel(nn.Module):
    """The trained network of a run and its data record.

    Attributes other than its own are the network's (``.width``, ``.grid_size``, ``.layers``
    ...), so code written for the bare model keeps working.

    Args:
        model: the network (``kanplatform.nn`` model).
        info: the data record (:meth:`kanplatform.data.Splits.info`); ``{}`` = identity.
    """

    def __init__(self, model: nn.Module, info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.info = dict(info or {})
        self.normalizer = Normalizer.from_dict(self.info.get("normalizer"))
        self.task = self.info.get("task", "regression")
        self.input_names = tuple(self.info.get("input_names") or ())
        self.target_names = tuple(self.info.get("target_names") or ())
        classes = self.info.get("classes")
        self.classes = tuple(classes) if classes is not None else None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(super().__getattr__("model"), name)

    @property
    def dtype(self) -> torch.dtype:
        """The network's floating dtype."""
        for p in self.model.parameters():
            return p.dtype
        return torch.float32

    def forward(self, x: Any) -> torch.Tensor:
        """``x: (batch, in)`` in original units -> ``(batch, out)``: original units, or logits.

        Any float dtype, NumPy arrays and lists are accepted (cast to the model's dtype).
        """
        device = next(self.model.parameters()).device if any(True for _ in
                                                              self.model.parameters()) else None
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        x = x.to(device=device, dtype=self.dtype)
        out = self.model(self.normalizer.transform_x(x))
        return out if self.task == "classification" else self.normalizer.inverse_y(out)

    def _matrix(self, x: Any) -> np.ndarray:
        n_in = int(self.model.width[0]) if hasattr(self.model, "width") else None
        if hasattr(x, "columns") and hasattr(x, "to_numpy"):  # a DataFrame
            columns = [str(c) for c in x.columns]
            if self.input_names:
                missing = [n for n in self.input_names if n not in columns]
                if missing:
                    raise PredictError(f"input columns missing: {missing}; the model takes "
                                       f"{list(self.input_names)} (in any order)")
                x = x[list(self.input_names)]
            try:
                values = x.to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                bad = [c for c in x.columns if x[c].dtype.kind not in "biuf"]
                raise PredictError(f"input columns are not numeric: {bad}") from None
        else:
            values = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x,
                                dtype=np.float64)
            if values.ndim == 1 and n_in is not None and values.shape[0] == n_in:
                values = values[None, :]
        if values.ndim != 2 or (n_in is not None and values.shape[1] != n_in):
            names = f" ({', '.join(self.input_names)})" if self.input_names else ""
            raise PredictError(f"inputs of shape {values.shape}: the model takes "
                               f"(rows, {n_in}) columns{names}")
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise PredictError(f"{int(bad.sum())} input row(s) hold NaN or inf, the first is "
                               f"row {int(np.argmax(bad))}")
        return values

    @torch.no_grad()
    def _outputs(self, x: Any, chunk: int = 8192) -> torch.Tensor:
        values = self._matrix(x)
        was_training = self.model.training
        self.model.eval()
        try:
            parts = [self(torch.tensor(values[i:i + chunk]))
                     for i in range(0, len(values), chunk)] if len(values) else \
                [self(torch.tensor(values))]
        finally:
            self.model.train(was_training)
        return torch.cat(parts)

    def predict(self, x: Any) -> np.ndarray:
        """Predictions for ``x`` (array ``(rows, in)``, one row ``(in,)``, a tensor or a
        DataFrame whose columns include the input names, in any order).

        Returns:
            Regression: ``(rows, n_targets)`` float64 in the original units.
            Classification: ``(rows,)`` class labels (as in the training data).

        Raises:
            PredictError: missing or non-numeric columns, a wrong width, NaN/inf inputs.
        """
        out = self._outputs(x)
        if self.task != "classification":
            return out.double().cpu().numpy()
        index = out.argmax(dim=1).cpu().numpy()
        classes = np.asarray(self.classes if self.classes is not None else
                             range(out.shape[1]), dtype=object)
        labels = classes[index]
        try:
            return labels.astype(type(classes[0]) if len(classes) else object)
        except (TypeError, ValueError):
            return labels

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities ``(rows, n_classes)`` (classification only)."""
        if self.task != "classification":
            raise PredictError("predict_proba is for classification runs; use predict")
        return torch.softmax(self._outputs(x).double(), dim=1).cpu().numpy()


def load(run_dir: str | Path) -> TrainedModel:
    """The trained model of ``run_dir`` (or of its ``model.pt``/``last.ckpt``) with its data
    record, on the CPU, in eval mode."""
    from kanplatform.train.checkpoint import load_model

    model = load_model(run_dir)
    return TrainedModel(model, read_data_info(run_dir)).eval()


def read_inputs(path: str | Path, names: Sequence[str]) -> np.ndarray:
    """The input columns ``names`` of a ``.csv``/``.npz``/``.parquet`` file, checked.

    Raises:
        PredictError: unreadable file, missing or non-numeric columns, NaN/inf values.
    """
    from kanplatform.data import DataError
    from kanplatform.data.checks import file_table

    names = list(names)
    try:
        table = file_table(path, names, names[:1])
    except DataError as err:
        raise PredictError(str(err).replace("data.path: ", "input: ").replace(
            "data.inputs: ", "input: ").replace("; fix the file or set data.drop_nonfinite: "
                                                "true to train without them", "")) from None
    return table.x


def predict_file(run_dir: str | Path, input_path: str | Path,
                 output: str | Path | None = None) -> tuple[np.ndarray, list[str], list[list]]:
    """Predict for every row of a file; write the CSV ``output`` (original units).

    Columns: the target names (regression) or ``label`` plus ``p_<class>`` for each class
    (classification). Values are written with full precision, so reading them back gives
    ``load(run_dir).predict`` exactly.

    Returns:
        ``(predictions, header, rows)``.

    Raises:
        PredictError: see :func:`read_inputs`; a run without column names (too old).
        FileNotFoundError: no model in ``run_dir``.
    """
    model = load(run_dir)
    if not model.input_names:
        raise PredictError(f"{run_dir} records no input column names (a run from before "
                           "`predict` existed); use kanplatform.load(run_dir).predict(array)")
    x = read_inputs(input_path, model.input_names)
    pred = model.predict(x)
    if model.task == "classification":
        proba = model.predict_proba(x)
        header = ["label", *(f"p_{c}" for c in model.classes)]
        rows = [[label, *(repr(float(p)) for p in ps)] for label, ps in zip(pred, proba)]
    else:
        header = list(model.target_names) or [f"y{i + 1}" for i in range(pred.shape[1])]
        rows = [[repr(float(v)) for v in r] for r in pred]
    if output is not None:
        output = Path(output)
        tmp = output.with_name(f".{output.name}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        tmp.replace(output)
    return pred, header, rows
