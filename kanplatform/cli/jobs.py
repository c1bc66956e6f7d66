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

from kanplatform.cli import ADDRESS_HELP, examples_epilog

# shown at the end of `kanplatform jobs --help`
EXAMPLES = (
    "kanplatform jobs list --address http://127.0.0.1:8265",
    "kanplatform jobs status <JOB_ID>",
    "kanplatform jobs logs <JOB_ID> --follow",
    "kanplatform jobs stop <JOB_ID> --wait",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kanplatform jobs``."""
    address = argparse.ArgumentParser(add_help=False)
    address.add_argument("--address", default=None, help=ADDRESS_HELP.format(
        default="$RAY_ADDRESS, http://127.0.0.1:8265"))
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    job_id_help = "the id `kanplatform submit` printed (or one from `kanplatform jobs list`)"

    def action(name: str, help_text: str, examples: tuple[str, ...]) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[address], help=help_text, description=help_text,
                              epilog=examples_epilog(examples),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = action("status", "a job's status and message",
               ("kanplatform jobs status <JOB_ID>",
                "kanplatform jobs status <JOB_ID> --address http://127.0.0.1:8265"))
    p.add_argument("job_id", metavar="JOB_ID", help=job_id_help)
    p = action("logs", "a job's logs",
               ("kanplatform jobs logs <JOB_ID>", "kanplatform jobs logs <JOB_ID> --follow"))
    p.add_argument("job_id", metavar="JOB_ID", help=job_id_help)
    p.add_argument("-f", "--follow", action="store_true", help="stream until the job ends")
    p = action("stop", "stop a running job",
               ("kanplatform jobs stop <JOB_ID>", "kanplatform jobs stop <JOB_ID> --wait"))
    p.add_argument("job_id", metavar="JOB_ID", help=job_id_help)
    p.add_argument("--wait", action="store_true", help="wait until the job has stopped")
    action("list", "every job the cluster knows",
           ("kanplatform jobs list", "kanplatform jobs list --address 127.0.0.1:6379"))


def main(args: argparse.Namespace) -> int:
    """Run one action against the cluster; print one clear error if it is unreachable."""
    from kanplatform.launch import submit

    try:
        notes: list[str] = []
        address = submit.resolve_address(args.address, notes=notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
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
