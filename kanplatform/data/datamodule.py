"""The LightningDataModule over a dataset: full batch (LBFGS) or shuffled mini-batches (Adam).

No DataLoader, no workers, no per-sample ``__getitem__`` and collate: the tensors live on the
training device (moved once when the trainer asks for the first loader) and a batch is one
``index_select`` with an index tensor. Full-batch mode yields the same tensors every step;
mini-batch mode draws one permutation per epoch from a generator seeded with
``[seed, epoch]``, so every epoch is reshuffled; the position in it follows from the global
step, so a run resumed at any step draws the batches an uninterrupted one would. With
``steps_per_batch`` K > 1, each Lightning batch is a :class:`Chunk` of K consecutive index
batches (the same ones, in the same order), which the training step runs as K optimiser
steps: Lightning's per-batch loop then runs once per K steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from kanplatform._util.lightning import pl
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


class Chunk:
    """K consecutive mini-batches as one Lightning batch: the split's tensors and K index
    tensors (rows of ``x``/``y``), run by the training step as K optimiser steps.

    Attributes:
        x, y: the training split's tensors (on the training device).
        indices: one index tensor per optimiser step, in order.
    """

    __slots__ = ("indices", "x", "y")

    def __init__(self, x: torch.Tensor, y: torch.Tensor, indices: list[torch.Tensor]) -> None:
        self.x, self.y, self.indices = x, y, indices

    @property
    def samples(self) -> int:
        """Training rows in the chunk (all its steps together)."""
        return sum(int(index.shape[0]) for index in self.indices)


def batch_samples(batch: Any) -> int:
    """Training rows in a Lightning batch: an ``(x, y)`` pair or a :class:`Chunk`."""
    return batch.samples if type(batch) is Chunk else int(batch[0].shape[0])


class _MiniBatches:
    """One epoch of shuffled mini-batches per ``iter()``: index tensors over the split's
    tensors (the last batch may be smaller). In a data-parallel run each process takes every
    ``world``-th row of the epoch's permutation, all processes the same number of rows.

    With ``steps`` K > 1 it yields :class:`Chunk` s of K index batches: one epoch of them
    per ``iter()`` where K divides an epoch's batches, else one endless iterator whose
    chunks run on across epochs (Lightning's epoch then never ends, as in full-batch mode;
    the run's ``epoch`` is counted from the step). Either way the batches, and their order,
    are those of K = 1.
    """

    def __init__(self, dm: KANDataModule, batch_size: int, steps: int = 1) -> None:
        self.dm, self.batch_size, self.steps = dm, int(batch_size), int(steps)
        self.epoch = 0  # epochs drawn so far (the trainer's epoch wins when there is one)
        self.endless = self.steps > 1 and self.batches() % self.steps != 0

    def _shard(self) -> tuple[int, int]:
        trainer = getattr(self.dm, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(getattr(trainer, "global_rank", 0)), int(getattr(trainer, "world_size", 1))

    def __len__(self) -> int:
        if self.endless:
            raise TypeError("endless")
        return self.batches() // self.steps

    # Lightning's "resumable loader" protocol: nothing to keep, the position follows from
    # the global step (see __iter__)
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None

    def batches(self) -> int:
        """Index batches (optimiser steps) in one epoch."""
        n = int(self.dm.splits.train[0].shape[0]) // self._shard()[1]
        return max(1, -(-n // self.batch_size))

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation of epoch ``epoch`` (on the CPU)."""
        n = int(self.dm.splits.train[0].shape[0])
        seed = int(np.random.SeedSequence([self.dm.seed, 7, epoch]).generate_state(1)[0])
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed))

    def epoch_batches(self, epoch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The index batches of epoch ``epoch`` (this process's share), in order."""
        order = self.order(epoch)
        rank, world = self._shard()
        if world > 1:
            order = order[:len(order) // world * world][rank::world]
        return order.to(device).split(self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor] | Chunk]:
        trainer = getattr(self.dm, "trainer", None)
        if trainer is not None:
            # the data position is the global step's: a run resumed at any step (mid-epoch,
            # or where Lightning restarts a finished epoch) draws what an uninterrupted run
            # draws there, whatever Lightning's own epoch counter says
            epoch, skip = divmod(int(trainer.global_step), self.batches())
        else:
            epoch, skip = self.epoch, 0
        self.epoch = epoch + 1
        x, y = self.dm.splits.train
        if self.endless:
            yield from self._endless(x, y, epoch, skip)
            return
        batches = self.epoch_batches(epoch, x.device)[skip:]
        if self.steps > 1:
            for start in range(0, len(batches), self.steps):
                yield Chunk(x, y, list(batches[start:start + self.steps]))
            return
        for index in batches:
            yield x.index_select(0, index), y.index_select(0, index)

    def _endless(self, x: torch.Tensor, y: torch.Tensor, epoch: int, skip: int
                 ) -> Iterator[Chunk]:
        batches = list(self.epoch_batches(epoch, x.device)[skip:])
        while True:
            while len(batches) < self.steps:
                epoch += 1
                batches += self.epoch_batches(epoch, x.device)
            yield Chunk(x, y, batches[:self.steps])
            del batches[:self.steps]


class KANDataModule(pl.LightningDataModule):
    """Serve a :class:`Splits` to Lightning.

    Args:
        splits: the tensors, or ``None`` to build them from ``data_cfg`` in :meth:`setup`.
        data_cfg: a ``data`` config section (dataset, sizes, seed, batch_size).
        dtype: tensor dtype (float64 for ``trainer.precision: 64``).
        batch_size: ``None`` = full batch; overrides ``data_cfg.batch_size`` when given.
        seed: seeds the mini-batch shuffling.

    Attributes:
        steps_per_batch: optimiser steps per Lightning batch in mini-batch mode (K; see
            :class:`Chunk`); set by ``fit`` before training, 1 by default.
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
        self.steps_per_batch = 1
        self._splits = splits.to(dtype=dtype) if splits is not None else None

    @property
    def splits(self) -> Splits:
        """The dataset's tensors (built on first access)."""
        if self._splits is None:
            self._splits = dataset_from_config(self.data_cfg, dtype=self.dtype)
        return self._splits

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps in one pass over the training split (1 for the full batch)."""
        if self.batch_size is None:
            return 1
        return len(_MiniBatches(self, self.batch_size))

    def setup(self, stage: str | None = None) -> None:
        self.splits  # noqa: B018 - build once, before the loops start

    def move_to(self, device: torch.device) -> None:
        """Keep the tensors on ``device`` so no batch is copied per step."""
        if self.splits.train[0].device != torch.device(device):
            self._splits = self.splits.to(device=device)

    def _on_device(self) -> None:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            self.move_to(trainer.strategy.root_device)

    def transfer_batch_to_device(self, batch: Any, device: torch.device,
                                 dataloader_idx: int) -> Any:
        # the batches are already there (see move_to): skip Lightning's walk over the batch
        if type(batch) is Chunk:
            return batch
        if isinstance(batch, tuple) and all(isinstance(t, torch.Tensor) and t.device == device
                                            for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def train_dataloader(self) -> Any:
        self._on_device()
        if self.batch_size is None:
            return _FullBatch(self, "train", repeat=True)
        return _MiniBatches(self, self.batch_size, self.steps_per_batch)

    def val_dataloader(self) -> Any:
        self._on_device()
        return _FullBatch(self, "val", repeat=False)

    def test_dataloader(self) -> Any:
        self._on_device()
        return _FullBatch(self, "test", repeat=False)
