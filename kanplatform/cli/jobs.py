"""``kanplatform jobs status|logs|stop|list``: watch and control jobs on a Ray cluster.

Examples::

    kanplatform jobs list --address http://head:8265
    kanplatform jobs status JOB_ID
    kanplatform jobs logs JOB_ID --follow
    kanplatform jobs stop JOB_ID --wait
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kanplatform jobs``."""
    address = argparse.ArgumentParser(add_help=False)
    address.add_argument("--address", default=None,
                         help="Ray dashboard URL (default: $RAY_ADDRESS, http://127.0.0.1:8265)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("status", parents=[address], help="a job's status and message")
    p.add_argument("job_id")
    p = sub.add_parser("logs", parents=[address], help="a job's logs")
    p.add_argument("job_id")
    p.add_argument("-f", "--follow", action="store_true", help="stream until the job ends")
    p = sub.add_parser("stop", parents=[address], help="stop a running job")
    p.add_argument("job_id")
    p.add_argument("--wait", action="store_true", help="wait until the job has stopped")
    sub.add_parser("list", parents=[address], help="every job the cluster knows")


def main(args: argparse.Namespace) -> int:
    """Run one action against the cluster; print one clear error if it is unreachable."""
    from kanplatform.launch import submit

    address = submit.resolve_address(args.address)
    try:
        return _ACTIONS[args.action](address, args)
    except submit.ClusterUnreachableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # Ray's reply to an unknown job id, for one
        print(f"error: {err}", file=sys.stderr)
        return 1


def _status(address: str, args: argparse.Namespace) -> int:
    from kanplatform.launch import submit

    details = submit.info(address, args.job_id)
    print(f"{args.job_id} {details.status.value}")
    if details.message:
        print(details.message)
    return 0


def _logs(address: str, args: argparse.Namespace) -> int:
    from kanplatform.launch import submit

    if args.follow:
        state = submit.follow(address, args.job_id)
        print(f"job {args.job_id} {state}", file=sys.stderr)
        return 0 if state == "SUCCEEDED" else 1
    sys.stdout.write(submit.logs(address, args.job_id))
    return 0


def _stop(address: str, args: argparse.Namespace) -> int:
    from kanplatform.launch import submit

    was_running = submit.stop(address, args.job_id)
    if args.wait:
        state = submit.wait(address, args.job_id, timeout=120)
        print(f"{args.job_id} {state}")
    else:
        print(f"{args.job_id} stop requested" if was_running else f"{args.job_id} not running")
    return 0


def _list(address: str, args: argparse.Namespace) -> int:
    from kanplatform.launch import submit

    for job in submit.list_jobs(address):
        entry = job.entrypoint if len(job.entrypoint) < 80 else job.entrypoint[:77] + "..."
        print(f"{job.submission_id or job.job_id}\t{job.status.value}\t{entry}")
    return 0


_ACTIONS = {"status": _status, "logs": _logs, "stop": _stop, "list": _list}
