"""A pool's cursors convert a long statement's placeholders once, and still run it right."""

from __future__ import annotations

from state.database import open_pool
from state.query_cache import conversions


def test_a_long_statement_is_converted_once_and_runs_with_each_call_s_values(
        database_url: str) -> None:
    # past psycopg's own cache (4 KiB, 50 parameters): 80 parameters in a 5 KiB text
    columns = ", ".join(f"%s::int AS c{i:02d}" + " " * 40 for i in range(80))
    query = f"SELECT {columns}"
    assert len(query) > 4096
    pool = open_pool(database_url, max_size=1)
    try:
        with pool.connection() as conn:
            before = conversions()
            first = conn.execute(query, list(range(80))).fetchone()
            assert conversions() == before + 1  # the pool's cursor converted it, and kept it
            again = conn.execute(query, [v * 2 for v in range(80)]).fetchone()
            assert conversions() == before + 1  # the second call reused the first's conversion
    finally:
        pool.close()
    assert first is not None and again is not None
    assert list(first.values()) == list(range(80))
    assert list(again.values()) == [v * 2 for v in range(80)]
