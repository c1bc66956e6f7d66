"""Real datasets through the registry: scikit-learn's bundled tables, and torchvision's on-disk
formats (IDX, CIFAR pickles and binaries) written here in miniature."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from kanplatform.config import load_config
from kanplatform.data import REAL_DATASETS, DataError, dataset_dims, dataset_for_run
from kanplatform.data.vision import (
    FASHION_CLASSES,
    check_vision,
    read_cifar_batch,
    torchvision_datasets,
)

SKLEARN = {"digits": (64, 10, 1797), "wine": (13, 3, 178), "breast_cancer": (30, 2, 569),
           "iris": (4, 3, 150), "diabetes": (10, 1, 442)}


def _cfg(dataset, *extra):
    return load_config([], [f"data.dataset={dataset}", *extra], validate=False)


@pytest.mark.parametrize("name", sorted(SKLEARN))
def test_bundled_sklearn_datasets_load_split_and_count(name):
    n_in, n_out, rows = SKLEARN[name]
    spec = REAL_DATASETS[name]
    cfg = _cfg(name)
    assert dataset_dims(cfg.data, spec.task) == (n_in, n_out)
    splits = dataset_for_run(cfg)
    assert splits.task == spec.task and sum(splits.sizes.values()) == rows
    assert splits.n_inputs == n_in and splits.n_outputs == n_out
    assert len(splits.input_names) == n_in
    if spec.task == "classification":
        assert len(splits.classes) == n_out and splits.train[1].dtype.is_floating_point is False
        assert set(splits.test[1].tolist()) == set(range(n_out))  # stratified: all classes


def _idx(path, array, gz):
    codes = {np.uint8: 0x08}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype.type], array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def _mnist_like(root, folder, n_train=40, n_test=20, gz=True):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = {"train": np.arange(n_train) % 10, "t10k": np.arange(n_test) % 10}
    images = {}
    for part, lab in labels.items():
        img = rng.integers(0, 40, (len(lab), 28, 28)).astype(np.uint8)
        img[:, :4, :4] = (lab * 25)[:, None, None]  # the label, readable in one corner
        images[part] = img
        _idx(raw / f"{part}-images-idx3-ubyte", img, gz)
        _idx(raw / f"{part}-labels-idx1-ubyte", lab.astype(np.uint8), gz and part == "train")
    return images, labels


@pytest.mark.skipif(torchvision_datasets() is not None, reason="torchvision reads them itself")
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_files_gz_or_not_through_the_registry(tmp_path, name, folder):
    images, labels = _mnist_like(tmp_path, folder)
    cfg = _cfg(name, f"data.root={tmp_path}", "data.pool=2", "data.normalize=none")
    splits = dataset_for_run(cfg)
    assert splits.n_inputs == 196 == dataset_dims(cfg.data, "classification")[0]
    assert splits.sizes == {"data/n_train": 36, "data/n_val": 4, "data/n_test": 20}
    x, y = splits.test  # the official test part, all of it
    corner = x[:, 0].numpy()  # the mean of the top-left 2x2 block: 25 x the label's index
    names = [splits.classes[i] for i in y.tolist()]
    index = [n if name == "mnist" else FASHION_CLASSES.index(n) for n in names]
    assert np.array_equal(corner, 25.0 * np.array(index))
    assert sorted(index) == sorted(labels["t10k"].tolist())


def _cifar_py(root, n_per_batch=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        data = rng.integers(0, 255, (n_per_batch, 3072)).astype(np.uint8)
        with (folder / name).open("wb") as f:  # the real files: protocol-2 pickles of a dict
            pickle.dump({"batch_label": name, "labels": labels, "data": data}, f, protocol=2)
    return folder


@pytest.mark.skipif(torchvision_datasets() is not None, reason="torchvision reads them itself")
def test_cifar_python_and_binary_batches(tmp_path):
    folder = _cifar_py(tmp_path / "py")
    data, labels = read_cifar_batch(folder / "test_batch")
    assert data.shape == (6, 3072) and labels.shape == (6,)
    splits = dataset_for_run(_cfg("cifar10", f"data.root={tmp_path / 'py'}", "data.pool=4"))
    assert splits.n_inputs == 3 * 8 * 8 and splits.sizes["data/n_test"] == 6
    assert splits.sizes["data/n_train"] + splits.sizes["data/n_val"] == 30
    # the binary version: label byte + 3072 pixel bytes per image
    binary = tmp_path / "bin" / "cifar-10-batches-bin"
    binary.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d, lab = read_cifar_batch(folder / name)
        np.c_[lab.astype(np.uint8), d].tofile(binary / f"{name}.bin")
    again = dataset_for_run(_cfg("cifar10", f"data.root={tmp_path / 'bin'}", "data.pool=4"))
    assert np.array_equal(again.test[0].numpy(), splits.test[0].numpy())


def test_a_crafted_cifar_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": Payload(), "labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=r"global '(posix|os)\.system' is not allowed"):
        read_cifar_batch(path)
    assert not marker.exists()


def test_a_root_without_files_says_how_to_get_them(tmp_path):
    with pytest.raises(DataError, match=r"data\.root: no mnist files in .*MNIST/raw.*"
                                        r"train-images-idx3-ubyte.*data\.download: true"):
        check_vision("mnist", str(tmp_path), download=False)
    with pytest.raises(DataError, match="set data.root"):
        check_vision("cifar10", None, download=False)
    if torchvision_datasets() is None:
        with pytest.raises(DataError, match=r"needs torchvision.*fetch the cifar10 files "
                                            r"yourself into .*cifar-10-batches-py"):
            check_vision("cifar10", str(tmp_path), download=True)
