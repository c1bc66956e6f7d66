"""CPU of a study's report page: what the live report costs the driver while a study trains.

Given a finished experiment directory (e.g. the compare demo's), prints one JSON line with the
CPU seconds (``time.process_time``) of:

- ``read_runs``: reading every run directory back (``read_run``: config, metrics, history);
- ``first_page``: the first ``write_report`` of this process (every figure drawn);
- ``live_tick``: a rewrite after one run's history gained a row (what a live report pays each
  time a training reports: the changed curves and the overlays drawn again);
- ``curves_figure``: one run's loss-curves figure drawn and saved as PNG (median of the runs).

To compare against another checkout, run it with that checkout first on ``PYTHONPATH``
(it wins over the editable install), alternating, on copies of the directory, e.g.::

    git archive 23cb629 kanplatform | tar -x -C /tmp/base
    cp -a /tmp/q-cmp/demo /tmp/rb1; cp -a /tmp/q-cmp/demo /tmp/rb2
    export OMP_NUM_THREADS=1
    PYTHONPATH=/tmp/base python benchmarks/bench_report.py base /tmp/rb1
    python benchmarks/bench_report.py new /tmp/rb2
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import kanplatform
from kanplatform.tracking import report
from kanplatform.tracking.rundata import find_runs, read_run


def _cpu(fn):
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def main() -> int:
    label, root = sys.argv[1], Path(sys.argv[2])
    from matplotlib.figure import Figure  # imported before timing, as a driver has it

    fig = Figure()
    fig.subplots().plot([1, 2], [1, 2])
    report._fig_png(fig)  # matplotlib's first-figure set-up (fonts), untimed
    dirs = find_runs(root)
    read_s, runs = _cpu(lambda: [read_run(d, root) for d in dirs])
    page = root / "bench-report.html"
    first_s, _ = _cpu(lambda: report.write_report(root, page, live_every=5.0))
    history = next(d for d in dirs if (d / "history.csv").is_file()) / "history.csv"
    lines = history.read_text().splitlines()
    history.write_text("\n".join(lines + [lines[-1]]) + "\n")  # a training reported a row
    tick_s, _ = _cpu(lambda: report.write_report(root, page, live_every=5.0))
    curves = [_cpu(lambda r=r: report._fig_png(report.curves_figure(r)))[0]
              for r in runs[:12]]
    print(json.dumps({
        "label": label, "kanplatform": str(Path(kanplatform.__file__).parent),
        "runs": len(runs), "read_runs_s": round(read_s, 3), "first_page_s": round(first_s, 3),
        "live_tick_s": round(tick_s, 3), "curves_figure_s": round(statistics.median(curves), 3),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
