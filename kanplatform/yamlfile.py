"""The old import path of :func:`read_yaml`; it lives in :mod:`kanplatform._util.yamlfile`."""

from kanplatform._util.yamlfile import read_yaml

__all__ = ["read_yaml"]
