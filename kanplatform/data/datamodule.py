"""The LightningDataModule over a dataset: full batch (LBFGS) or shuffled mini-batches (Adam).

Full-batch mode yields the same pre-built tensors every step from a plain iterator (no
DataLoader, no workers, no collation), so Lightning's per-step overhead stays tiny.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from kanplatform.data.datasets import Splits, dataset_from_config


class _FullBatch:
    """Endless iterator over one split's full ``(x, y)`` batch (the epoch never ends)."""

    def __init__(self, dm: KANDataModule, split: str, repeat: bool) -> None:
        self.dm, self.split, self.repeat = dm, split, repeat

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield self.dm.splits.split(self.split)
            if not self.repeat:
                return

    def __len__(self) -> int:
        if self.repeat:
            raise TypeError("endless")
        return 1


class KANDataModule(pl.LightningDataModule):
    """Serve a :class:`Splits` to Lightning.

    Args:
        splits: the tensors, or ``None`` to build them from ``data_cfg`` in :meth:`setup`.
        data_cfg: a ``data`` config section (dataset, sizes, seed, batch_size).
        dtype: tensor dtype (float64 for ``trainer.precision: 64``).
        batch_size: ``None`` = full batch; overrides ``data_cfg.batch_size`` when given.
        seed: seeds the mini-batch shuffling generator.
    """

    def __init__(
        self,
        splits: Splits | None = None,
        data_cfg: Any = None,
        dtype: torch.dtype = torch.float32,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if splits is None and data_cfg is None:
            raise ValueError("KANDataModule needs splits or a data config")
        self.data_cfg = data_cfg
        self.dtype = dtype
        self.batch_size = batch_size if batch_size is not None else (
            data_cfg.batch_size if data_cfg is not None else None)
        self.seed = seed
        self._splits = splits.to(dtype=dtype) if splits is not None else None

    @property
    def splits(self) -> Splits:
        """The dataset's tensors (built on first access)."""
        if self._splits is None:
            self._splits = dataset_from_config(self.data_cfg, dtype=self.dtype)
        return self._splits

    def setup(self, stage: str | None = None) -> None:
        self.splits  # noqa: B018 - build once, before the loops start

    def move_to(self, device: torch.device) -> None:
        """Keep the tensors on ``device`` so no batch is copied per step."""
        self._splits = self.splits.to(device=device)

    def train_dataloader(self) -> Any:
        if self.batch_size is None:
            return _FullBatch(self, "train", repeat=True)
        x, y = self.splits.train
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(TensorDataset(x, y), batch_size=self.batch_size, shuffle=True,
                          generator=generator, num_workers=0)

    def val_dataloader(self) -> Any:
        return _FullBatch(self, "val", repeat=False)

    def test_dataloader(self) -> Any:
        return _FullBatch(self, "test", repeat=False)
