"""Values that go into sbatch scripts and shell commands: allowed characters, and quoting.

Two layers, so that neither alone has to be right:

1. the job-file schema refuses, with one line naming the key, any value whose characters
   could leave its place in a script (a newline ends an ``#SBATCH`` line and starts a
   command; ``;``, ``$(...)`` and backticks run one) — names, partitions, times, env keys,
   override keys;
2. the renderer checks every value again and quotes every shell word with
   :func:`shlex.quote`, so a :class:`~kanplatform.launch.jobfile.JobSpec` built by hand (not
   through the schema) cannot inject either.

``#SBATCH`` lines are read by sbatch, not by bash: quoting does not apply there, so those
values must match their allow-list exactly. ``slurm.setup`` is the one field that is shell
by design (the user's own environment set-up, run as written).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping

# Job, partition and account names: what SLURM and Ray accept, nothing a shell interprets.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# A partition list (`gpu,gpu-long`) or an account.
PARTITION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(,[A-Za-z0-9][A-Za-z0-9._-]*)*")
# SLURM time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; or UNLIMITED / INFINITE.
TIME = re.compile(r"(\d+-\d{1,2}(:\d{1,2}){0,2}|\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE)")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OVERRIDE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
AUTH_MODES = ("token", "disabled")

_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "name": (NAME, "letters, digits, '.', '_', '-' (up to 128, starting with a letter or "
                   "digit)"),
    "partition": (PARTITION, "names of letters, digits, '.', '_', '-', separated by ','"),
    "time": (TIME, "a SLURM time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
    "env_key": (ENV_KEY, "an identifier: letters, digits and '_', not starting with a digit"),
    "override_key": (OVERRIDE_KEY, "dotted identifiers such as model.grid_size"),
}


class UnsafeValueError(ValueError):
    """A value that would not stay in its place in a rendered script."""


def check(value: object, kind: str, key: str) -> str:
    """Return ``value`` if it matches the allow-list of ``kind``; raise otherwise.

    Args:
        value: the value from the job file (or a hand-built spec).
        kind: one of ``name``, ``partition``, ``time``, ``env_key``, ``override_key``.
        key: the job-file key, for the message.

    Raises:
        UnsafeValueError: one line naming the key, the value and what is allowed.
    """
    pattern, allowed = _RULES[kind]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise UnsafeValueError(f"`{_printable(key)}` is {value!r}; allowed: {allowed}")
    return value


def _printable(key: str) -> str:
    """A key as one printable line (a bad key may itself hold the newline)."""
    return key.encode("unicode_escape").decode("ascii")


def check_auth_mode(value: object, key: str) -> str:
    """``token`` or ``disabled`` (Ray's RAY_AUTH_MODE values)."""
    if value not in AUTH_MODES:
        raise UnsafeValueError(f"`{key}` is {value!r}; use one of {', '.join(AUTH_MODES)}")
    return str(value)


def check_env(env: Mapping[str, object], key: str) -> dict[str, str]:
    """Env vars with identifier keys and string values without NUL (quoted when rendered)."""
    out = {}
    for name, value in env.items():
        check(name, "env_key", f"{key}.{name}" if isinstance(name, str) else key)
        text = str(value)
        if "\0" in text:
            raise UnsafeValueError(f"`{_printable(f'{key}.{name}')}` contains a NUL byte")
        out[name] = text
    return out


def exports(env: Mapping[str, str]) -> str:
    """``export KEY='value'`` lines, keys checked again, values quoted."""
    lines = []
    for name, value in check_env(env, "env_vars").items():
        lines.append(f"export {name}={shlex.quote(value)}")
    return "\n".join(lines)


def shell_words(words: Iterable[str]) -> str:
    """One shell command line from its words, each quoted."""
    return shlex.join([str(w) for w in words])
