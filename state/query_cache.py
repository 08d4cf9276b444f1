"""Cursors that convert a statement's placeholders once per text, however long it is.

psycopg turns `%s` placeholders into `$n` on every `execute`, and remembers the
result only for statements of at most 4 KiB and 50 parameters (so that ORMs'
ever-different multi-row INSERTs do not fill its cache). A fenced checkpoint
(`state.statements.one_statement`) is a longer statement, whose few shapes
repeat on every super-step: psycopg split it with a regular expression each
time, about an eighth of a durable step's client CPU (py-spy, `make bench` W1).
These cursors keep the conversion of the last `CACHED_TEXTS` statement texts,
whatever their length; everything else about the cursor is psycopg's own.

psycopg offers no public hook for this: the query class (`_query_cls`) is the
one `psycopg.RawCursor` uses to change the conversion, and the conversion is
psycopg's own function (psycopg is pinned in constraints.txt; a unit test
checks that a long statement still runs and is converted once).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from psycopg import AsyncCursor, Cursor
from psycopg._queries import PostgresQuery, _query2pg_nocache

CACHED_TEXTS = 512  # statement texts; a fenced checkpoint's is about 3 to 8 KiB

_convert = lru_cache(maxsize=CACHED_TEXTS)(_query2pg_nocache)


class CachedQuery(PostgresQuery):
    """psycopg's server-side query, its conversion remembered for any text."""

    def convert(self, query: Any, vars: Any) -> None:
        """Convert as psycopg does, from the cache (a str or bytes text with parameters)."""
        if vars is None or not isinstance(query, (str, bytes)):
            super().convert(query, vars)
            return
        text = query.encode(self._tx.encoding) if isinstance(query, str) else query
        self.query, self._want_formats, self._order, self._parts = _convert(
            text, self._tx.encoding)
        self.dump(vars)


class CachedQueryCursor(Cursor[Any]):
    """psycopg's cursor with `CachedQuery`: the pools' cursor (`state.database`)."""

    _query_cls = CachedQuery


class AsyncCachedQueryCursor(AsyncCursor[Any]):
    """The async twin, for the async pool."""

    _query_cls = CachedQuery


def conversions() -> int:
    """How many conversions the cache has done (misses): for tests and benchmarks."""
    return _convert.cache_info().misses
