"""Lightning imported through ``kanplatform._util.lightning``: collector paused, then frozen."""

from __future__ import annotations

import subprocess
import sys


def test_the_first_import_pauses_then_restores_the_collector_and_exits_clean():
    code = ("import gc, sys, kanplatform.train.module as m; "
            "import kanplatform._util.lightning as L; "
            "print(gc.isenabled(), gc.get_freeze_count() > 100_000, "
            "L.pl is sys.modules['pytorch_lightning'], m.pl is L.pl)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.split() == ["True", "True", "True", "True"], out
    # frozen objects are unfrozen at exit: extension modules find theirs freed (no warnings)
    assert "leaked" not in out.stderr, out.stderr

