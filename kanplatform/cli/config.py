"""``kanplatform config show CONFIG [key=value ...]`` and ``kanplatform config keys [SECTION]``.

``show`` prints the resolved run config as ``kanplatform train`` would train it (files merged,
overrides applied, a matched MLP's widths filled in) and writes nothing. ``keys`` lists every
key with its type, default and meaning, read from the schema's docstrings
(:mod:`kanplatform.config.keys`).
"""

from __future__ import annotations

import argparse
import sys

from kanplatform.cli import error_lines, examples_epilog

EXAMPLES = (
    "kanplatform config show configs/experiment/quick.yaml",
    "kanplatform config show configs/experiment/grid_extension.yaml model=mlp",
    "kanplatform config keys",
    "kanplatform config keys model",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kanplatform config``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser(
        "show", help="print the resolved run config (what train would train)",
        description="print the resolved run config (what train would train); writes nothing",
        epilog=examples_epilog(EXAMPLES[:2]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("config", nargs="+", metavar="CONFIG_OR_OVERRIDE",
                      help="config file(s), then key=value overrides, as train takes them")
    keys = sub.add_parser(
        "keys", help="every config key with its type, default and meaning",
        description="every config key with its type, default and meaning",
        epilog=examples_epilog(EXAMPLES[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    keys.add_argument("section", nargs="?", default=None,
                      help="only the keys under this section (model, data, optim, ...)")


def main(args: argparse.Namespace) -> int:
    """Show a config or list the keys; 0, or 2 for an invalid config or an unknown section."""
    return _show(args.config) if args.action == "show" else _keys(args.section)


def _show(words: list[str]) -> int:
    import yaml

    from kanplatform.config import ConfigError, to_dict
    from kanplatform.train.resolve import load_run_config

    files = [w for w in words if "=" not in w]
    overrides = [w for w in words if "=" in w]
    if not files:
        print("config show needs a CONFIG file (then key=value overrides)", file=sys.stderr)
        return 2
    try:
        cfg = load_run_config(files, overrides)
    except ConfigError as err:
        print(f"invalid config: {error_lines(err)}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return 0


def _keys(section: str | None) -> int:
    from kanplatform.config.keys import schema_keys

    rows = schema_keys()
    if section:
        rows = [r for r in rows if r.key.startswith(f"{section}.") or r.key == section]
        if not rows:
            sections = sorted({r.key.split(".")[0] for r in schema_keys() if "." in r.key})
            print(f"no config section {section!r}; sections: {', '.join(sections)}",
                  file=sys.stderr)
            return 2
    table = [(r.key, r.type, _text(r.default), r.doc) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for key, typ, default, doc in table:
        print(f"{key:<{widths[0]}}  {typ:<{widths[1]}}  {default:<{widths[2]}}  {doc}")
    return 0


def _text(value: object) -> str:
    """A default as YAML writes it (``null``, ``true``, ``[2, 1, 1]``)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
