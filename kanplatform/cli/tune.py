"""``kanplatform tune CONFIG SEARCH [key=value ...] [--address ADDR] [--resume]``.

Loads the run config (with overrides) and the search file, checks both before Ray starts,
runs the search (a local Ray, or the cluster at ``--address``), prints the trials table and
writes ``trials.csv``, ``trials.json`` and ``best_config.yaml`` in the experiment directory.
While it runs, ``EXPERIMENT/report.html`` is live (its path is printed first) and a local
Ray's dashboard answers on 127.0.0.1 (``--no-dashboard``: none); it ends with where to look.
"""

from __future__ import annotations

import argparse
import sys

from kanplatform.cli import ADDRESS_HELP, add_deprecated_alias, error_lines

# shown at the end of `kanplatform tune --help`
EXAMPLES = (
    "kanplatform tune configs/experiment/quick.yaml configs/search/asha_kan.yaml --num-cpus 2",
    "kanplatform tune configs/experiment/quick.yaml configs/search/optuna_kan.yaml "
    "--num-samples 8",
    "kanplatform tune configs/experiment/quick.yaml configs/search/asha_kan.yaml "
    "--address http://127.0.0.1:8265",
    "kanplatform tune configs/experiment/quick.yaml configs/search/asha_kan.yaml --resume",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``tune`` arguments (no heavy imports)."""
    parser.add_argument("config", help="run config YAML (what each trial trains)")
    parser.add_argument("search", help="search YAML, e.g. configs/search/asha_kan.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides applied before the search (model.width=[2,2,1])")
    parser.set_defaults(_rest="overrides")  # key=value words after an option are overrides too
    parser.add_argument("--address", default=None,
                        help=ADDRESS_HELP.format(default="start a local Ray on 127.0.0.1"))
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted search (the newest, or --name)")
    parser.add_argument("--output-dir", dest="storage_path", default=None,
                        help="where the experiment directory is created (default: the "
                             "search file's storage_path, else <output_dir>/tune); on several "
                             "nodes a path every node mounts or a URI "
                             "(s3://bucket/prefix, gs://..., file:///...)")
    add_deprecated_alias(parser, "--storage-path", "--output-dir", "storage_path")
    parser.add_argument("--autoscaling", action="store_true",
                        help="the --address cluster adds nodes on demand: wait up to "
                             "resources.placement_timeout_s for a trial larger than its nodes")
    parser.add_argument("--name", default=None,
                        help="experiment directory name (default: <search name>-<UTC time>)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of a local Ray (default: all of this machine's)")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="override the search file's num_samples")
    parser.add_argument("--verbose", type=int, default=1, help="Tune console verbosity 0-3")
    parser.add_argument("--dashboard", action=argparse.BooleanOptionalAction, default=True,
                        help="start Ray's dashboard with the local Ray, on 127.0.0.1 "
                             "(default: yes; a cluster's own dashboard is printed if it has one)")


def main(args: argparse.Namespace) -> int:
    """Run the search; 0 when at least one trial completed, 1 otherwise, 2 on a bad request."""
    from dataclasses import replace

    from kanplatform.config import ConfigError
    from kanplatform.search.spec import SearchSpecError, load_search
    from kanplatform.train.resolve import load_run_config

    try:
        cfg = load_run_config(args.config, args.overrides)
        spec = load_search(args.search)
        if args.num_samples:
            spec = replace(spec, num_samples=args.num_samples)
    except (ConfigError, SearchSpecError) as err:
        print(f"error: {error_lines(err)}", file=sys.stderr)
        return 2
    from kanplatform.search.run import run_search

    try:
        result = run_search(cfg, spec, address=args.address, resume=args.resume,
                            storage_path=args.storage_path, name=args.name,
                            num_cpus=args.num_cpus, verbose=args.verbose,
                            autoscaling=args.autoscaling, dashboard=args.dashboard)
    except (ConfigError, SearchSpecError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from kanplatform.search.watch import where_to_look

    print(where_to_look(result))
    return 0 if result.best is not None else 1
