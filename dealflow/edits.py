"""`dealflow resume --decision approve --set value=40000.00`: approve on edited terms.

Each `--set NAME=VALUE` changes one term of the pending approval's action
(`graph.review_edit.EDITABLE` says which may change); the answer sent is
LangChain's HITL `edit` decision, as the API and the inbox send it.
"""

from __future__ import annotations

import argparse
from typing import Any

from dealflow.api import DealService
from dealflow.errors import InvalidInput
from graph.review_edit import edit_answer
from state.numerals import whole_number


def edited_answer(service: DealService, args: argparse.Namespace) -> dict[str, Any]:
    """The HITL edit answer for `args.set`, against the thread's pending review."""
    if args.decision != "approve":
        raise InvalidInput("--set edits terms only with --decision approve")
    pending = service.status(args.thread).pending
    if not pending:
        raise InvalidInput(f"thread {args.thread!r:.80} has no pending review to edit")
    action = pending["action_requests"][0]
    shown = dict(action["args"])
    changes: dict[str, Any] = {}
    for item in args.set:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"--set expects NAME=VALUE, got {item!r:.60}")
        try:
            changes[name] = whole_number(raw) if isinstance(shown.get(name), int) else raw
        except ValueError as exc:
            raise InvalidInput(f"--set {name}: {exc}") from None
    return edit_answer(shown, changes, action=action["name"], comment=args.comment,
                       reviewer=args.reviewer)
