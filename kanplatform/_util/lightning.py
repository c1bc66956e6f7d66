"""``pytorch_lightning``, imported with Python's cyclic garbage collector paused.

Importing Lightning creates ~400k long-lived objects (it pulls in ``torch._dynamo``, sympy,
torchmetrics...), and the collector, which runs a full pass each time a quarter more
objects have survived, walks them again and again: ~2 s of CPU of a ~7.5 s import on this
project's 2-core machine, paid by every process that trains (each ``kanplatform train``, each
Ray trial worker). Nothing an import creates is cyclic garbage worth collecting on the way,
so the collector is off for the import only and on again afterwards, as it was, and what
exists at its end is frozen (``gc.freeze``: kept out of later collections, as module-level
objects never become garbage). Measured: the collector's time in a process importing the
training modules falls from ~1.2 s to ~0.4 s (``benchmarks/bench_startup.py``).

Modules of this package import Lightning from here (``from kanplatform._util.lightning
import pl``), so that whichever of them comes first in a process pays the cheaper import.
Where something else imported Lightning already, this is a no-op.
"""

from __future__ import annotations

import atexit
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused", "pl"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside the block, then as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


if "pytorch_lightning" in sys.modules:
    import pytorch_lightning as pl
else:
    with gc_paused():
        import pytorch_lightning as pl

        # what exists now (modules, classes, functions) lives as long as the process: out of
        # every later collection's walk. Without it the first collection after the pause
        # walks all ~400k objects the import made, and every full collection does again.
        gc.freeze()
        # ... until the interpreter exits, whose final collections must see them (extension
        # modules such as triton's check at exit that their objects were freed)
        atexit.register(gc.unfreeze)
