"""argparse errors that name the real mistake: a mistyped flag, with the flag meant.

argparse checks for missing required arguments before it looks at the ones it
did not recognise, so `dealflow run --deal-idd X ...` used to be reported as
"the following arguments are required: --deal-id". `OneLineParser` reports the
unknown flag first, with the closest known one (difflib), on one line.

Its help can be finished when shown (`on_help`), and its choices loaded when
first looked at (`Later`): what needs the workflow or the settings is loaded
only by a command, or a help, that shows it.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any, NoReturn

_REQUIRED = "the following arguments are required"


class _MissingRequired(Exception):
    """argparse found a required argument missing; an unknown flag may explain it."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (the CLI's contract) that name a mistyped flag first."""

    _deferring = False
    on_help: Callable[[], None] | None = None

    def format_help(self) -> str:
        """The help text, once `on_help` has filled in what it names."""
        if self.on_help is not None:
            self.on_help()
        return super().format_help()

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        """Parse as argparse does, but an unknown flag is an error before a missing one."""
        given = list(sys.argv[1:] if args is None else args)
        self._deferring = True
        try:
            parsed, extras = super().parse_known_args(given, namespace)
        except _MissingRequired as missing:
            self._deferring = False
            unknown = unknown_flags(given, self._option_string_actions)
            self.error(unrecognized(unknown, self._option_string_actions) if unknown
                       else str(missing))
        finally:
            self._deferring = False
        unknown = unknown_flags(extras, self._option_string_actions)
        if unknown:
            self.error(unrecognized(unknown, self._option_string_actions))
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        """Exit 2 with one line; a missing argument waits for the unknown-flag check."""
        if self._deferring and message.startswith(_REQUIRED):
            raise _MissingRequired(message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def unknown_flags(tokens: Iterable[str], known: dict[str, Any]) -> list[str]:
    """The flags among `tokens` (before `--`) that are none of `known`, nor a prefix of one."""
    found = []
    for token in tokens:
        if token == "--":
            break
        if not token.startswith("-") or token == "-" or " " in token or _number(token):
            continue
        name = token.split("=", 1)[0]
        if not any(option.startswith(name) for option in known):
            found.append(name)
    return found


def unrecognized(flags: list[str], known: Iterable[str]) -> str:
    """`unrecognized arguments: --deal-idd; did you mean --deal-id?`, for one or more flags."""
    options = [option for option in known if option.startswith("--")]

    def guess(flag: str) -> str | None:
        close = difflib.get_close_matches(flag, options, n=1, cutoff=0.6)
        return close[0] if close else None

    if len(flags) == 1:
        meant = guess(flags[0])
        return f"unrecognized arguments: {flags[0]}" + (f"; did you mean {meant}?" if meant
                                                         else "")
    return "unrecognized arguments: " + ", ".join(
        f"{flag} (did you mean {meant}?)" if (meant := guess(flag)) else flag
        for flag in flags)


def _number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class Later(Sequence[str]):
    """Choices loaded when first looked at (`dealflow event`'s: the workflow's events)."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load

    @cached_property
    def _items(self) -> tuple[str, ...]:
        return tuple(self._load())

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)
