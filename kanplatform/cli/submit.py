"""``kanplatform submit JOB.yaml``: send a job file to a Ray cluster (or render it for SLURM).

Examples::

    kanplatform submit jobs/local_train.yaml                  # Ray Jobs API, default address
    kanplatform submit jobs/tune_asha.yaml --address http://head:8265 --wait
    kanplatform submit jobs/tune_asha.yaml --slurm > tune.sbatch    # print the sbatch script
    kanplatform submit jobs/tune_asha.yaml --slurm --sbatch         # and sbatch it
    kanplatform submit jobs/tune_asha.yaml --dry-run          # what would be sent, no contact
"""

from __future__ import annotations

import argparse
import json
import sys

from kanplatform.cli import ADDRESS_HELP

# shown at the end of `kanplatform submit --help`
EXAMPLES = (
    "kanplatform submit jobs/local_train.yaml --dry-run              # what would be sent",
    "kanplatform submit jobs/tune_asha.yaml --address http://127.0.0.1:8265 --wait",
    "kanplatform submit jobs/tune_asha.yaml --address 127.0.0.1:6379     # a head's HOST:PORT",
    "kanplatform submit jobs/tune_asha.yaml --slurm > tune.sbatch",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kanplatform submit``."""
    parser.add_argument("job", metavar="JOB.yaml", help="job file (see jobs/*.yaml)")
    parser.add_argument("--address", default=None, help=ADDRESS_HELP.format(
        default="the job file's, $RAY_ADDRESS, http://127.0.0.1:8265"))
    parser.add_argument("--slurm", action="store_true",
                        help="print the job as an sbatch script instead of submitting to Ray")
    parser.add_argument("--sbatch", action="store_true",
                        help="with --slurm: hand the script to sbatch")
    parser.add_argument("--wait", action="store_true",
                        help="follow the job's logs until it ends; exit 0 only if SUCCEEDED")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be submitted; contact nothing")
    parser.add_argument("--no-check", action="store_true",
                        help="skip loading the run config locally (e.g. it lives in the image)")


def main(args: argparse.Namespace) -> int:
    """Check the job file, then submit it (Ray), render it (SLURM) or print it (dry run).

    The check loads the run config with the job's overrides (and the search for ``tune``)
    exactly as the cluster will, so a typo fails here in seconds, before any upload.
    """
    from kanplatform.cli import check_argv
    from kanplatform.launch import slurm, submit
    from kanplatform.launch.check import check_runnable
    from kanplatform.launch.jobfile import JobFileError, load_job

    try:
        job = load_job(args.job)
        if not args.no_check:
            # the config, overrides and search load here, not on the cluster
            check_runnable(job, check_argv)
        if args.slurm or args.sbatch:
            script = slurm.render(job)
            if not args.sbatch:
                sys.stdout.write(script)
                return 0
            print(slurm.sbatch(script))
            return 0
        if args.dry_run:
            print(json.dumps(submit.plan(job, args.address), indent=2))
            return 0
        notes: list[str] = []
        address = submit.resolve_address(args.address, job, notes=notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        sub = submit.submit(job, address)
    except (JobFileError, submit.ClusterUnreachableError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"submitted job {sub.job_id}")
    print(f"dashboard: {sub.dashboard_url}")
    print(f"follow:    kanplatform jobs logs {sub.job_id} --follow --address {sub.address}")
    sys.stdout.flush()
    if not args.wait:
        return 0
    state = submit.follow(sub.address, sub.job_id)
    print(f"job {sub.job_id} {state}")
    return 0 if state == "SUCCEEDED" else 1
