"""MNIST, Fashion-MNIST and CIFAR-10 from torchvision's on-disk layout under ``data.root``.

When torchvision imports, its dataset classes read (and, with ``data.download: true``,
fetch) the files. Without it (e.g. beside a CPU-only torch build it does not match) the same
files are read here:

* MNIST / FashionMNIST: ``ROOT/MNIST/raw/`` and ``ROOT/FashionMNIST/raw/`` hold the IDX files
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (each may be gzipped, ``.gz``);
* CIFAR-10: ``ROOT/cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``: Python
  pickles of a dict of a uint8 array and a label list, read by an unpickler that allows only
  the NumPy array globals they need: untrusted files are data) or the binary version
  ``ROOT/cifar-10-batches-bin/`` (``data_batch_1..5.bin``, ``test_batch.bin``: one label byte
  and 3072 pixel bytes per image).

Images become ``(n, channels * height * width)`` float arrays, optionally average-pooled over
``pool x pool`` blocks first; labels are the class indices.
"""

from __future__ import annotations

import codecs
import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kanplatform.data.datasets import DataError

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR_PY = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


@dataclass(frozen=True)
class VisionSpec:
    """One image dataset: its torchvision class, folder and image shape ``(C, H, W)``."""

    name: str
    torchvision_class: str
    folder: str
    shape: tuple[int, int, int]
    classes: tuple[Any, ...]

    def n_inputs(self, pool: int = 1) -> int:
        c, h, w = self.shape
        return c * (h // pool) * (w // pool)


VISION = {
    "mnist": VisionSpec("mnist", "MNIST", "MNIST", (1, 28, 28), tuple(range(10))),
    "fashion_mnist": VisionSpec("fashion_mnist", "FashionMNIST", "FashionMNIST", (1, 28, 28),
                                FASHION_CLASSES),
    "cifar10": VisionSpec("cifar10", "CIFAR10", "cifar-10-batches-py", (3, 32, 32),
                          CIFAR_CLASSES),
}


def torchvision_datasets() -> Any:
    """``torchvision.datasets``, or None when torchvision is missing or does not import."""
    try:
        import torchvision.datasets
    except Exception:  # noqa: BLE001 - a torchvision built for another torch raises anything
        return None
    return torchvision.datasets


def _where(spec: VisionSpec, root: Path) -> str:
    if spec.name == "cifar10":
        return (f"{root / 'cifar-10-batches-py'}/ (data_batch_1..5, test_batch) or "
                f"{root / 'cifar-10-batches-bin'}/ (data_batch_1..5.bin, test_batch.bin)")
    names = ", ".join(f"{n}[.gz]" for pair in IDX_FILES.values() for n in pair)
    return f"{root / spec.folder / 'raw'}/ ({names})"


def _idx_path(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _layout(spec: VisionSpec, root: Path) -> str | None:
    """Which on-disk layout ``root`` holds complete: ``idx``, ``py``, ``bin`` or None."""
    if spec.name == "cifar10":
        if all((root / "cifar-10-batches-py" / n).is_file() for v in CIFAR_PY.values()
               for n in v):
            return "py"
        if all((root / "cifar-10-batches-bin" / f"{n}.bin").is_file()
               for v in CIFAR_PY.values() for n in v):
            return "bin"
        return None
    folder = root / spec.folder / "raw"
    ok = all(_idx_path(folder, n) for pair in IDX_FILES.values() for n in pair)
    return "idx" if ok else None


def check_vision(name: str, root: str | None, download: bool) -> None:
    """Refuse, with one line saying how to get the files, a root that cannot be read.

    Raises:
        DataError: ``data.root`` unset, or its files missing (with or without
            ``data.download``, as torchvision's presence allows).
    """
    spec = VISION[name]
    if not root:
        raise DataError(f"data.root: {name} is read from torchvision's files under data.root; "
                        f"set data.root (e.g. data.root=data)")
    path = Path(root).expanduser()
    if _layout(spec, path) is not None:
        return
    if download:
        if torchvision_datasets() is not None:
            return  # torchvision fetches them
        raise DataError(f"data.download: true needs torchvision, which does not import here; "
                        f"install torchvision (matching your torch), or fetch the {name} files "
                        f"yourself into {_where(spec, path)}")
    raise DataError(f"data.root: no {name} files in {path}: expected {_where(spec, path)}; put "
                    "torchvision's files there, or set data.download: true (needs torchvision)")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a NumPy array of its stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"data.root: {path} is not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise DataError(f"data.root: {path}: unknown IDX type code 0x{raw[2]:02x}")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(dtypes[raw[2]])
    need = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(raw) < need:
        raise DataError(f"data.root: {path} is truncated ({len(raw)} bytes, {need} expected)")
    return np.frombuffer(raw, dtype=dtype, count=int(np.prod(dims)),
                         offset=4 + 4 * ndim).reshape(dims)


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    if encoding != "latin1":  # how Python 3 pickles bytes at protocol 2; nothing else
        raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed in a CIFAR batch")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): _latin1}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and NumPy arrays; refuses every other global
    (a crafted batch file cannot run code)."""

    allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``cifar-10-batches-py`` batch: ``(images (n, 3072) uint8, labels (n,))``.

    Raises:
        DataError: not a CIFAR batch, or it needs a global beyond NumPy's arrays.
    """
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DataError(f"data.root: {path} is not a CIFAR-10 batch this loader accepts "
                        f"({err})") from None
    if not isinstance(batch, dict):
        raise DataError(f"data.root: {path} is not a CIFAR-10 batch (no dict inside)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"data.root: {path} is not a CIFAR-10 batch (no 'data' and 'labels')")
    data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3072)
    return data, np.asarray(batch["labels"], dtype=np.int64)


def read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``cifar-10-batches-bin`` file: 1 label byte + 3072 pixel bytes per image."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise DataError(f"data.root: {path} is not a CIFAR-10 binary batch ({raw.size} bytes "
                        "is not a multiple of 3073)")
    rows = raw.reshape(-1, 3073)
    return rows[:, 1:], rows[:, 0].astype(np.int64)


def _from_disk(spec: VisionSpec, root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    layout = _layout(spec, root)
    if layout == "idx":
        folder = root / spec.folder / "raw"
        images, labels = (read_idx(_idx_path(folder, n)) for n in IDX_FILES[part])
        if images.ndim != 3 or len(images) != len(labels):
            raise DataError(f"data.root: {folder}: {part} images {images.shape} and labels "
                            f"{labels.shape} do not match")
        return images[:, None, :, :], labels.astype(np.int64)
    if layout in ("py", "bin"):
        folder = root / f"cifar-10-batches-{layout}"
        read = read_cifar_batch if layout == "py" else read_cifar_bin
        parts = [read(folder / (n if layout == "py" else f"{n}.bin")) for n in CIFAR_PY[part]]
        images = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
        return images, np.concatenate([p[1] for p in parts])
    check_vision(spec.name, str(root), download=False)  # raises with the expected files
    raise AssertionError("unreachable")


def _from_torchvision(datasets: Any, spec: VisionSpec, root: Path, part: str,
                      download: bool) -> tuple[np.ndarray, np.ndarray]:
    ds = getattr(datasets, spec.torchvision_class)(str(root), train=part == "train",
                                                   download=download)
    images = np.asarray(ds.data)
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return images, np.asarray(ds.targets, dtype=np.int64)


def pool_images(images: np.ndarray, pool: int) -> np.ndarray:
    """``(n, C, H, W)`` pixels averaged over ``pool x pool`` blocks, flattened: ``(n, C*h*w)``."""
    n, c, h, w = images.shape
    x = images.astype(np.float32)
    if pool > 1:
        h2, w2 = h // pool, w // pool
        x = x[:, :, :h2 * pool, :w2 * pool].reshape(n, c, h2, pool, w2, pool).mean(axis=(3, 5))
    return x.reshape(n, -1)


def load_vision(name: str, root: str | None, download: bool = False, pool: int = 1
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The official train and test parts of an image dataset as flat float32 features.

    Returns:
        ``(x_train, labels_train, x_test, labels_test)``.

    Raises:
        DataError: see :func:`check_vision`; malformed files.
    """
    check_vision(name, root, download)
    spec = VISION[name]
    path = Path(str(root)).expanduser()
    datasets = torchvision_datasets()
    parts = []
    for part in ("train", "test"):
        if datasets is not None:
            images, labels = _from_torchvision(datasets, spec, path, part, download)
        else:
            images, labels = _from_disk(spec, path, part)
        parts += [pool_images(images, pool), labels]
    return tuple(parts)  # type: ignore[return-value]


def pixel_names(name: str, pool: int = 1) -> tuple[str, ...]:
    """Input column names: ``p<row>_<col>`` (one channel) or ``c<ch>_p<row>_<col>``."""
    c, h, w = VISION[name].shape
    h, w = h // pool, w // pool
    if c == 1:
        return tuple(f"p{r}_{q}" for r in range(h) for q in range(w))
    return tuple(f"c{k}_p{r}_{q}" for k in range(c) for r in range(h) for q in range(w))
