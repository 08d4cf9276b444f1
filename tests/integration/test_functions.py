"""The one-statement acts as versioned functions (`state/functions.sql`), old and new side by side.

During a rolling deploy the workers of the last release call the functions
their migrations made (`dealflow_write_fact`, ...) while the new ones call
`*_v1`: both must exist and write the same rows. Setting up again changes
nothing (`CREATE OR REPLACE`).
"""

from __future__ import annotations

from psycopg.types.json import Jsonb

from state.checkpointer import setup_database
from state.database import open_pool
from state.fact_store import FactStore
from state.leases import Leases
from state.pending import PendingWrites

VERSIONED = ("dealflow_audit_v1", "dealflow_write_fact_v1", "dealflow_open_wait_v1",
             "dealflow_claim_wait_v1")
OLD = ("dealflow_write_fact", "dealflow_open_wait", "dealflow_claim_wait")


def test_old_and_new_versions_of_the_acts_work_side_by_side(database_url: str) -> None:
    pool = open_pool(database_url)
    try:
        assert setup_database(pool) == []  # applied already (the template): nothing new
        with pool.connection() as conn:
            names = {row["proname"] for row in conn.execute(
                "SELECT proname FROM pg_proc WHERE proname LIKE 'dealflow_%'").fetchall()}
            assert set(VERSIONED) | set(OLD) <= names
            # a worker of the last release writes a fact through the old function
            conn.execute(
                "SELECT * FROM dealflow_write_fact(0, false, NULL, NULL, 'context:OLD-1',"
                " 'OLD-1.seen', 'OLD-1', %s, 'lead', NULL, false, 'qualify_lead', 'lead',"
                " NULL, 'dealflow_context')", (Jsonb({"by": "old"}),))
        # and a new one reads it, then writes the next version through `_v1`
        facts = FactStore(pool, PendingWrites(pool, Leases(pool)))
        assert facts.read("OLD-1.seen").value == {"by": "old"}  # type: ignore[union-attr]
        written = facts.write("OLD-1.seen", {"by": "new"}, agent="lead")
        assert written.version == 2
        with pool.connection() as conn:
            audit = conn.execute("SELECT action, detail->>'version' AS v FROM dealflow_audit"
                                 " WHERE deal_id = 'OLD-1' ORDER BY id").fetchall()
        assert [(row["action"], row["v"]) for row in audit] == [
            ("context.write", "1"), ("context.write", "2")]
    finally:
        pool.close()
