"""make_dataset and user files: shapes, ranges, determinism, errors."""

import numpy as np
import pytest
import torch

from kanplatform.data import DataError, get_target, load_file, make_dataset


def test_shapes_and_dtype():
    d = make_dataset("feynman_I_9_18", n_train=50, n_val=20, n_test=30, dtype=torch.float64)
    assert d.train[0].shape == (50, 6) and d.train[1].shape == (50, 1)
    assert d.val[0].shape == (20, 6) and d.test[0].shape == (30, 6)
    assert d.train[0].dtype == torch.float64
    assert (d.n_inputs, d.n_outputs) == (6, 1)


def test_inputs_lie_in_the_target_ranges():
    t = get_target("feynman_I_30_5")
    x = make_dataset(t.name, n_train=500, n_val=1, n_test=1).train[0].numpy()
    low, high = np.array(t.ranges).T
    assert (x >= low).all() and (x <= high).all()


def test_deterministic_per_seed_and_independent_of_global_state():
    torch.manual_seed(123)
    np.random.seed(123)
    a = make_dataset("exp_sin_sq", 100, 100, 100, seed=5)
    state = torch.get_rng_state()
    b = make_dataset("exp_sin_sq", 100, 100, 100, seed=5)
    assert torch.equal(state, torch.get_rng_state())  # no global reseeding
    for split in ("train", "val", "test"):
        assert all(torch.equal(u, v) for u, v in zip(a.split(split), b.split(split)))
    c = make_dataset("exp_sin_sq", 100, 100, 100, seed=6)
    assert not torch.equal(a.train[0], c.train[0])


def test_test_set_does_not_depend_on_train_size():
    a = make_dataset("xy", 10, 10, 50, seed=0)
    b = make_dataset("xy", 1000, 10, 50, seed=0)
    assert torch.equal(a.test[0], b.test[0])


def test_noise_on_train_only_and_test_clean():
    clean = make_dataset("xy", 200, 200, 200, seed=0, dtype=torch.float64)
    noisy = make_dataset("xy", 200, 200, 200, noise=0.1, seed=0, dtype=torch.float64)
    assert torch.equal(clean.test[1], noisy.test[1])
    std = float((noisy.train[1] - clean.train[1]).std())
    assert 0.08 < std < 0.12


def test_csv_file(tmp_path):
    path = tmp_path / "d.csv"
    rows = "\n".join(f"{i},{2 * i},{3 * i}" for i in range(20))
    path.write_text("a,b,y\n" + rows + "\n")
    d = load_file(path, ["a", "b"], ["y"], n_train=10, n_val=5, n_test=5, seed=0)
    assert d.train[0].shape == (10, 2)
    x, y = d.train
    assert torch.allclose(y[:, 0], 3 * x[:, 0])
    assert torch.allclose(x[:, 1], 2 * x[:, 0])
    assert d.input_names == ("a", "b")


def test_npz_file(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, u=np.arange(10.0), v=np.arange(10.0) ** 2)
    d = load_file(path, ["u"], ["v"], n_train=6, n_val=2, n_test=2)
    x, y = d.train
    assert torch.allclose(y, x**2)


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_file(tmp_path / "none.csv", ["a"], ["b"], 1, 1, 1)
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match=r"data\.targets: no column \['y'\].*columns: a, b"):
        load_file(path, ["a"], ["y"], 1, 1, 0)
    with pytest.raises(DataError, match="has 2 data rows, fewer than"):
        load_file(path, ["a"], ["b"], 2, 1, 1)
    bad = tmp_path / "d.txt"
    bad.write_text("a\n1\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_file(bad, ["a"], ["a"], 1, 0, 0)


def test_domain_points_cover_the_ranges():
    d = make_dataset("feynman_I_30_5", 10, 1, 1, dtype=torch.float64)
    pts = d.domain_points(n=100)
    assert pts.shape == (4 + 100, 2) and pts.dtype == torch.float64
    low, high = torch.tensor(get_target("feynman_I_30_5").ranges, dtype=torch.float64).T
    assert torch.equal(pts.min(0).values, low) and torch.equal(pts.max(0).values, high)
    assert torch.equal(pts, d.domain_points(n=100))  # seeded
    wide = make_dataset("exp_mean_sin_sq_100", 2, 1, 1).domain_points(n=0)
    assert wide.shape == (200, 100)  # face centres instead of 2**100 corners
