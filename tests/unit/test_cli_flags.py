"""A mistyped flag is named, with the flag meant, before any argument it left missing."""

from __future__ import annotations

import pytest

from dealflow.cli_parser import build_parser


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize(("argv", "said"), [
    (["run", "--deal-idd", "X", "--client", "A", "--value", "1"],
     "dealflow run: error: unrecognized arguments: --deal-idd; did you mean --deal-id? "
     "(see dealflow run --help)"),
    (["run", "--deal-id=X", "--cliant", "A", "--value", "1"],
     "dealflow run: error: unrecognized arguments: --cliant; did you mean --client?"),
    (["run", "--deal-idd", "X", "--cliant", "A", "--value", "1"],
     "unrecognized arguments: --deal-idd (did you mean --deal-id?), --cliant (did you mean "
     "--client?)"),
    (["resume", "D-1", "--decision", "approve", "--reviewr", "me"],
     "unrecognized arguments: --reviewr; did you mean --reviewer?"),
    (["--jsn", "status", "D-1"], "dealflow: error: unrecognized arguments: --jsn; did you mean "
                                 "--json?"),
    (["status", "D-1", "--bogus"], "dealflow status: error: unrecognized arguments: --bogus "
                                   "(see"),
])
def test_a_mistyped_flag_is_named_with_the_one_meant(argv: list[str], said: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert said in _error(argv, capsys)


def test_a_missing_flag_is_still_reported_as_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert "the following arguments are required: --deal-id" in _error(
        ["run", "--client", "A", "--value", "1"], capsys)
    assert "the following arguments are required: --role" in _error(
        ["token", "create", "--name", "ops"], capsys)


def test_values_and_abbreviations_are_not_taken_for_flags() -> None:
    args = build_parser().parse_args(["resume", "D-1", "--decision", "approve", "--comment",
                                      "-- fine by me", "--rev", "-1"])
    assert (args.comment, args.reviewer) == ("-- fine by me", "-1")
