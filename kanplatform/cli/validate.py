"""``kanplatform validate FILE...``: check configs (and other registered file kinds).

Prints ``OK   FILE (kind)`` or ``FAIL FILE: message`` per file; exit status 1 if any failed.
Nothing is trained and nothing is written.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``validate`` arguments."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML files to check")


def main(args: argparse.Namespace) -> int:
    """Validate every file; return 0 when all are valid, else 1."""
    from kanplatform.config import validate_file

    failed = 0
    for path in args.files:
        try:
            kind, note = validate_file(path)
        except (ValueError, KeyError, TypeError) as err:
            failed += 1
            print(f"FAIL {path}: {err}")
        else:
            print(f"OK   {path} ({note or kind})")
    return 1 if failed else 0
