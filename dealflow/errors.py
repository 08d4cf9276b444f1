"""The errors the public API raises; each carries the CLI exit code it maps to."""

from __future__ import annotations

# The HTTP status of each exit code (the service's answers; anything else is a 500).
HTTP_STATUS = {2: 422, 3: 404, 4: 409, 5: 503, 6: 409}


class DealflowError(Exception):
    """Base class: a one-line message for a person, and an exit code."""

    exit_code = 1

    @property
    def http_status(self) -> int:
        """The HTTP status the service answers this error with."""
        return HTTP_STATUS.get(self.exit_code, 500)


class InvalidInput(DealflowError):
    """Input (deal, decision, event, flag) failed validation; nothing was written."""

    exit_code = 2


class NotFound(DealflowError):
    """No deal or thread by that id."""

    exit_code = 3


class NotWaiting(DealflowError):
    """The thread is not waiting for what was asked (a review, a signature event)."""

    exit_code = 4


class Decided(NotWaiting):
    """The wait was ended by something else first (a decision, an event, its expiry)."""


class DealConflict(DealflowError):
    """The deal id exists with different terms."""

    exit_code = 4


class Busy(DealflowError):
    """Another process is running or resuming the thread."""

    exit_code = 6


class OwnershipLost(DealflowError):
    """The thread's lease was lost mid-run: this process stopped, its new owner goes on."""

    exit_code = 6


class Unavailable(DealflowError):
    """Postgres (or the embedded server) cannot be reached."""

    exit_code = 5


class CannotListen(DealflowError):
    """`serve` or `mcp --transport http` cannot listen on its host and port (in use)."""

    exit_code = 7
