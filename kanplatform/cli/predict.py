"""``kanplatform predict RUN_DIR INPUT --output OUT.csv``: apply a trained model to new rows.

INPUT is a ``.csv``, ``.npz`` or ``.parquet`` file holding the run's input columns (by name,
in any order; other columns are ignored). OUT gets one row per input row: the predictions in
the original units under the target names (regression), or ``label`` and one ``p_<class>``
probability per class (classification). Without ``--output`` the CSV goes to stdout.

Example:
    kanplatform predict runs/tabular-20261201-101500-a1b2c3 new_rows.csv --output pred.csv

Exit status: 0 written, 2 bad input (columns, values) or no model in RUN_DIR.
"""

from __future__ import annotations

import argparse
import sys

# shown at the end of `kanplatform predict --help`
EXAMPLES = (
    "kanplatform predict runs/<run> new.csv --output pred.csv",
    "kanplatform predict runs/<run> new.parquet              # predictions on stdout",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kanplatform predict`` (no heavy imports here)."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `kanplatform "
                        "train` (or its model.pt)")
    parser.add_argument("input", metavar="INPUT", help="rows to predict: .csv, .npz or .parquet "
                        "with the run's input columns")
    parser.add_argument("--output", "-o", default=None, metavar="OUT.csv",
                        help="write the predictions here (default: stdout)")


def main(args: argparse.Namespace) -> int:
    """Predict and write; one line on stderr saying what was written."""
    import csv

    from kanplatform.train.predictor import PredictError, predict_file

    try:
        pred, header, rows = predict_file(args.run_dir, args.input, args.output)
    except (PredictError, FileNotFoundError) as err:
        print(f"cannot predict: {err}", file=sys.stderr)
        return 2
    if args.output is None:
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(rows)
    else:
        print(f"{len(rows)} predictions ({', '.join(header)}) written to {args.output}",
              file=sys.stderr)
    return 0
