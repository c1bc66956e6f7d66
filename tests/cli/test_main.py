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
