"""The CLI's shared wiring (kanplatform/cli/__init__.py): every subcommand that takes ``key=value``
overrides accepts them after its options too, and unknown options still fail."""

import pytest

from kanplatform import cli
from kanplatform.cli import check_argv, main


@pytest.mark.parametrize(
    "argv",
    [
        ["tune", "configs/experiment/quick.yaml", "configs/search/asha_kan.yaml",
         "--num-cpus", "1", "model.no_such_key=1"],
        ["scale", "configs/scaling/tiny.yaml", "--resume", "model.no_such_key=1"],
    ],
    ids=["tune", "scale"],  # train: tests/train/test_command.py (after --resume)
)
def test_overrides_after_options_reach_the_command(argv, capsys) -> None:
    """The override is parsed and checked by the command (its unknown key is named), not
    rejected by the parser; nothing starts (the config check comes first)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" not in err
    assert "no_such_key" in err


def test_unknown_options_still_fail(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tune", "configs/experiment/quick.yaml", "configs/search/asha_kan.yaml", "--bogus"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_a_subcommand_that_fails_to_import_is_an_error(monkeypatch) -> None:
    """Not silently left out of the parser: the import error surfaces."""
    monkeypatch.setitem(cli.COMMANDS, "broken", ("kanplatform.cli.no_such_module", "x"))
    with pytest.raises(ModuleNotFoundError, match="kanplatform.cli.no_such_module"):
        cli.build_parser()


def test_check_argv_names_what_does_not_parse() -> None:
    check_argv(["train", "configs/experiment/quick.yaml", "model.grid_size=3"])
    check_argv(["train", "--resume", "runs/r1", "trainer.max_steps=50"])  # as main parses it
    with pytest.raises(ValueError, match="names no command"):
        check_argv(["fly", "x.yaml"])
    with pytest.raises(ValueError, match=r"does not parse: .*unrecognized arguments: --bogus"):
        check_argv(["train", "x.yaml", "--bogus"])


def test_one_output_flag_and_old_spellings_that_still_work_with_one_line(capsys):
    """--output-dir everywhere outputs go; tune's --storage-path still sets the same thing for
    one release, with a deprecation line; --resume is a flag in every command."""
    from kanplatform.cli import build_parser

    parser = build_parser()
    for argv in (["train", "c.yaml"], ["tune", "c.yaml", "s.yaml"], ["scale", "s.yaml"],
                 ["compare", "s.yaml"], ["demo"]):
        assert any("--output-dir" in a.option_strings for a in _sub(parser, argv[0])._actions)
        resume = next(a for a in _sub(parser, argv[0])._actions if "--resume" in a.option_strings)
        assert resume.nargs == 0, argv  # a flag
    args = parser.parse_args(["tune", "c.yaml", "s.yaml", "--storage-path", "/tmp/x"])
    assert args.storage_path == "/tmp/x"
    assert capsys.readouterr().err.strip() == ("warning: --storage-path is deprecated, use "
                                               "--output-dir (same meaning); --storage-path "
                                               "goes in the next release")
    assert parser.parse_args(["tune", "c.yaml", "s.yaml", "--output-dir", "/tmp/y"]
                             ).storage_path == "/tmp/y"
    assert capsys.readouterr().err == ""


def _sub(parser, name):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]
