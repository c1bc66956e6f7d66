"""Save a trained model with its config; load it back (``kanplatform.load(run_dir)``).

Run files are data, not code: every file is read with ``torch.load(..., weights_only=True)``
(tensors, numbers, strings, lists and dicts only), so a ``model.pt`` or ``last.ckpt`` that
someone crafted to run code when unpickled is refused with :class:`UnsafeCheckpointError`
naming the file, and nothing in it runs. Our own files need nothing more.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from kanplatform.config import ConfigError


class UnsafeCheckpointError(ValueError):
    """A run file that holds more than weights and plain data (pickled objects or code)."""


def read_run_file(path: str | Path) -> Any:
    """Read a ``model.pt`` / Lightning checkpoint as data (``weights_only=True``), on the CPU.

    Raises:
        UnsafeCheckpointError: the file needs objects beyond tensors and plain containers
            (a crafted or foreign pickle); nothing of it was executed.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # only the offending global of torch's message: its advice to allow-list it is
        # the opposite of what to do with a file nobody vouches for
        found = re.search(r"Unsupported (global|operand)[^.;]*?(GLOBAL [\w.]+|\d+)", str(err))
        detail = f" (needs {found.group(2)})" if found else ""
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it holds pickled objects, not only weights{detail}; "
            "kanplatform never writes such files, so it was crafted or comes from elsewhere. "
            "Nothing in it was run.") from None


def save_model(model: torch.nn.Module, path: str | Path,
               data_info: dict[str, Any] | None = None) -> None:
    """Write ``{"model_config": model.config(), "state_dict": ..., "data_info": ...}`` (CPU
    tensors, plain values: loadable with ``weights_only=True``) to ``path``.

    ``data_info`` (:meth:`kanplatform.data.Splits.info`: task, column names, classes, the
    fitted normalisation) is what :func:`kanplatform.load` needs to predict in the original
    units."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    saved: dict[str, Any] = {"model_config": dict(model.config()), "state_dict": state}
    if data_info is not None:
        saved["data_info"] = data_info
    torch.save(saved, path)


def _from_lightning(path: Path) -> dict[str, Any]:
    ckpt = read_run_file(path)
    if not isinstance(ckpt, dict) or "model_config" not in ckpt:
        raise FileNotFoundError(f"{path} holds no model_config; it was not written by fit()")
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    return {"model_config": ckpt["model_config"], "state_dict": state}


class ResumeError(ConfigError):
    """A checkpoint that cannot continue this run (unreadable, another model, past the budget)."""


def check_resume(path: str | Path, cfg: Any, max_steps: int) -> int:
    """Check that the Lightning checkpoint ``path`` can continue a run of ``cfg``.

    Args:
        path: a checkpoint written by :func:`kanplatform.train.fit` (``checkpoints/last.ckpt``).
        cfg: the run config that will continue it.
        max_steps: the step budget of that run.

    Returns:
        The checkpoint's global step.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ResumeError: not a ``fit`` checkpoint, a file holding more than weights (see
            :class:`UnsafeCheckpointError`), a different model kind or width than the
            config's, or a step past ``max_steps``.
    """
    from kanplatform.train.models import model_spec

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        ckpt = read_run_file(path)
    except UnsafeCheckpointError as err:
        raise ResumeError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same message
        raise ResumeError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") \
            from None
    saved = ckpt.get("model_config") if isinstance(ckpt, dict) else None
    if not saved or "global_step" not in ckpt:
        raise ResumeError(f"checkpoint {path} was not written by `kanplatform train` "
                          "(it has no model_config or global_step)")
    want = model_spec(cfg.model)
    have = (saved.get("kind"), [int(w) for w in saved.get("width", [])])
    if have != (want["kind"], want["width"]):
        raise ResumeError(f"checkpoint {path} holds a {have[0]} of width {have[1]}, but the "
                          f"config trains a {want['kind']} of width {want['width']}")
    step = int(ckpt["global_step"])
    if step > max_steps:
        raise ResumeError(f"checkpoint {path} is at step {step}, past the config's budget of "
                          f"{max_steps} steps (grid.steps_per_stage x stages, or "
                          "trainer.max_steps without a grid schedule)")
    return step


def load_model(run_dir: str | Path) -> torch.nn.Module:
    """Return the trained model of a run directory, on the CPU, in eval mode.

    Reads ``run_dir/model.pt``, or ``run_dir/checkpoints/last.ckpt`` if there is no
    ``model.pt``; ``run_dir`` may also be the path of either file.

    Raises:
        FileNotFoundError: no model file found.
        UnsafeCheckpointError: the file holds more than weights (nothing of it runs).
    """
    from kanplatform.nn import build_model

    path = Path(run_dir)
    candidates = [path] if path.is_file() else [path / "model.pt",
                                                path / "checkpoints" / "last.ckpt"]
    for candidate in candidates:
        if candidate.is_file():
            if candidate.suffix == ".ckpt":
                saved = _from_lightning(candidate)
            else:
                saved = read_run_file(candidate)
                if not isinstance(saved, dict) or "model_config" not in saved:
                    raise FileNotFoundError(f"{candidate} holds no model_config; it was not "
                                            "written by kanplatform")
            model = build_model(saved["model_config"])
            dtype = next(iter(saved["state_dict"].values())).dtype if saved["state_dict"] else None
            if dtype is not None and dtype.is_floating_point:
                model = model.to(dtype)
            model.load_state_dict(saved["state_dict"])
            return model.eval()
    raise FileNotFoundError(f"no model in {path}: expected model.pt or checkpoints/last.ckpt "
                            "(is this a run directory written by `kanplatform train`?)")
