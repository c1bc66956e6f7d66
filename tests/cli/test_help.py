"""Every subcommand's ``--help`` ends with 2-4 real examples: each names files that ship with
the checkout and parses with this CLI, as a user would paste it."""

import re
import shlex
from pathlib import Path

import pytest

from kanplatform.cli import COMMANDS, build_parser, check_argv

ROOT = Path(__file__).resolve().parents[2]


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return capsys.readouterr().out


def _examples(text: str) -> list[str]:
    assert "\nexamples:\n" in text, text
    block = text.split("\nexamples:\n", 1)[1]
    return [line.strip() for line in block.splitlines() if line.strip()]


HELP_PAGES = ([[name] for name in COMMANDS] + [["jobs", a] for a in ("status", "logs", "stop",
                                                                    "list")]
              + [["config", "show"], ["config", "keys"]])


@pytest.mark.parametrize("argv", HELP_PAGES, ids=" ".join)
def test_help_ends_with_examples_that_parse(argv, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    examples = _examples(_help(argv, capsys))
    assert 2 <= len(examples) <= 4, examples
    for example in examples:
        command = re.sub(r"<([A-Z_a-z]+)>", r"\1", example).split(" > ")[0]  # no redirection
        words = shlex.split(command, comments=True)
        assert words[0] == "kanplatform" and words[1:len(argv) + 1] == argv, example
        check_argv(words[1:])
        for word in words[1:]:
            if word.startswith(("configs/", "jobs/")) and "*" not in word:
                assert (ROOT / word).is_file(), f"{example}: no file {word}"
