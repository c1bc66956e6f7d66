"""Target functions, real datasets, user files, splits, normalisation and the data module.

Example:
    >>> from kanplatform.data import make_dataset, get_target
    >>> get_target("exp_sin_sq").formula
    'exp(sin(pi*x) + y**2)'
    >>> d = make_dataset("exp_sin_sq", n_train=10, n_val=10, n_test=10, seed=0)
"""

from kanplatform.data import feynman as _feynman  # noqa: F401  (registers targets)
from kanplatform.data import special as _special  # noqa: F401  (registers targets)
from kanplatform.data.checks import DataWarning, check_data_config, file_table
from kanplatform.data.datasets import (
    DataError,
    Splits,
    column_names,
    dataset_dims,
    dataset_for_run,
    dataset_from_config,
    dataset_task,
    load_file,
    make_dataset,
    read_columns,
)
from kanplatform.data.normalize import Normalizer
from kanplatform.data.ood import OODSplit, box_radius, ood_split, shell_inputs
from kanplatform.data.real import REAL_DATASETS, get_real
from kanplatform.data.targets import TARGETS, Target, get_target, register

__all__ = [
    "REAL_DATASETS",
    "TARGETS",
    "DataError",
    "DataWarning",
    "KANDataModule",
    "Normalizer",
    "OODSplit",
    "Splits",
    "Target",
    "box_radius",
    "check_data_config",
    "column_names",
    "dataset_dims",
    "dataset_for_run",
    "dataset_from_config",
    "dataset_task",
    "file_table",
    "get_real",
    "get_target",
    "load_file",
    "make_dataset",
    "ood_split",
    "read_columns",
    "register",
    "shell_inputs",
]


def __getattr__(name: str):
    # the DataModule imports Lightning: load it only when asked for
    if name == "KANDataModule":
        from kanplatform.data.datamodule import KANDataModule

        return KANDataModule
    raise AttributeError(name)
