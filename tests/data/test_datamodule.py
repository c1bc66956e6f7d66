"""The DataModule: full batch for LBFGS, seeded mini-batches for Adam."""

import torch

from kanplatform.config import load_config
from kanplatform.data import KANDataModule, make_dataset


def test_full_batch_repeats_the_same_tensors():
    splits = make_dataset("xy", 64, 16, 16)
    dm = KANDataModule(splits)
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    a, b = next(it), next(it)
    assert a[0] is b[0] and a[0].shape == (64, 2)
    assert len(list(dm.val_dataloader())) == 1


def test_mini_batches_are_seeded():
    splits = make_dataset("xy", 64, 16, 16)
    first = [x for x, _ in KANDataModule(splits, batch_size=16, seed=1).train_dataloader()]
    again = [x for x, _ in KANDataModule(splits, batch_size=16, seed=1).train_dataloader()]
    assert len(first) == 4 and first[0].shape == (16, 2)
    assert all(torch.equal(u, v) for u, v in zip(first, again))


def test_from_config_with_dtype():
    cfg = load_config([], ["data.n_train=10", "data.n_val=5", "data.n_test=5"])
    dm = KANDataModule(data_cfg=cfg.data, dtype=torch.float64)
    assert dm.splits.train[0].dtype == torch.float64 and dm.splits.train[0].shape == (10, 2)


def test_mini_batches_are_index_selects_reshuffled_every_epoch():
    splits = make_dataset("xy", 50, 8, 8)
    dm = KANDataModule(splits, batch_size=16, seed=3)
    loader = dm.train_dataloader()
    assert len(loader) == 4 == dm.steps_per_epoch  # 16 + 16 + 16 + 2
    epochs = [list(loader) for _ in range(2)]
    assert [len(b[0]) for b in epochs[0]] == [16, 16, 16, 2]
    rows = [torch.cat([x for x, _ in e]) for e in epochs]
    key = splits.train[0][:, 0]
    for r in rows:  # each epoch is a permutation of the training rows, pairs kept
        assert torch.equal(torch.sort(r[:, 0]).values, torch.sort(key).values)
    assert not torch.equal(rows[0], rows[1])  # reshuffled
    again = KANDataModule(splits, batch_size=16, seed=3).train_dataloader()
    assert torch.equal(torch.cat([x for x, _ in again]), rows[0])  # seeded per epoch
    x, y = epochs[0][0]
    truth = {tuple(r.tolist()): float(v) for r, v in zip(splits.train[0], splits.train[1][:, 0])}
    assert all(truth[tuple(r.tolist())] == float(v) for r, v in zip(x, y[:, 0]))
