"""The statements of `dealflow.prune_forget`, as they are sent (each takes named parameters).

Read with `dealflow/prune_forget.py`: `CANDIDATES` takes a batch of deals that ended
long ago (their registry rows locked; the lease statements and `HEADS` of
`dealflow.prune_sql` follow), `ROWS` reads every row each deal has in every table
of `TABLES` (its archive), `DELETE` deletes the same rows and counts them, `TOMBSTONE`
writes the row that stays, which `FORGOTTEN` reads back for `status` and `history`.

`TABLES` is every dealflow and LangGraph table that holds rows of a deal, and the
column its rows are found by: `ROWS` and `DELETE` name each of them, in this order.
The sandbox systems' tables (`sandbox_*`) stand for external systems of record
(HubSpot, Asana, DocuSign, Stripe): a forget never touches them.
"""

# (table, the column that names the deal: `deal_id` where the table has one, else `thread_id`)
TABLES: tuple[tuple[str, str], ...] = (
    ("dealflow_deals", "deal_id"),
    ("dealflow_audit", "deal_id"),
    ("dealflow_effects", "deal_id"),
    ("dealflow_context", "deal_id"),
    ("dealflow_context_changes", "deal_id"),
    ("dealflow_spans", "deal_id"),
    ("dealflow_waits", "deal_id"),
    ("dealflow_deadlines", "deal_id"),
    ("dealflow_outbox", "deal_id"),
    ("dealflow_webhook_events", "deal_id"),
    ("dealflow_pruned_threads", "deal_id"),
    ("dealflow_deal_reports", "deal_id"),
    ("dealflow_leases", "thread_id"),
    ("checkpoints", "thread_id"),
    ("checkpoint_blobs", "thread_id"),
    ("checkpoint_writes", "thread_id"),
)
# The columns `ROWS` reads as bytes (`to_jsonb` spells them `\x` and hex).
BYTEA_COLUMNS: dict[str, tuple[str, ...]] = {"checkpoint_blobs": ("blob",),
                                             "checkpoint_writes": ("blob",)}

# Ended deals, old enough: the oldest first, after a cursor, each registry row locked for
# this transaction (rows another prune holds are passed over).
CANDIDATES = """
SELECT d.deal_id, d.thread_id, d.status, d.updated_at FROM dealflow_deals AS d
WHERE d.status = ANY(%(ended)s) AND d.updated_at <= clock_timestamp() - %(age)s
  AND (d.updated_at, d.deal_id) > (%(after_at)s::timestamptz, %(after_id)s::text)
ORDER BY d.updated_at, d.deal_id LIMIT %(limit)s
FOR UPDATE OF d SKIP LOCKED
"""
COUNT_CANDIDATES = """
SELECT count(*) AS n FROM dealflow_deals AS d
WHERE d.status = ANY(%(ended)s) AND d.updated_at <= clock_timestamp() - %(age)s
"""
_DEALS = """
f AS (SELECT * FROM unnest(%(deals)s::text[], %(threads)s::text[]) AS f(deal_id, thread_id))"""
# Every row of the deals, as JSON, with the table it is from: the lines of their archives.
ROWS = "WITH" + _DEALS + """
SELECT 'dealflow_deals' AS tbl, f.deal_id, to_jsonb(t) AS row
  FROM f JOIN dealflow_deals AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_audit', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_audit AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_effects', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_effects AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_context', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_context AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_context_changes', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_context_changes AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_spans', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_spans AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_waits', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_waits AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_deadlines', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_deadlines AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_outbox', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_outbox AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_webhook_events', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_webhook_events AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_pruned_threads', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_pruned_threads AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_deal_reports', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_deal_reports AS t ON t.deal_id = f.deal_id
UNION ALL SELECT 'dealflow_leases', f.deal_id, to_jsonb(t)
  FROM f JOIN dealflow_leases AS t ON t.thread_id = f.thread_id
UNION ALL SELECT 'checkpoints', f.deal_id, to_jsonb(t)
  FROM f JOIN checkpoints AS t ON t.thread_id = f.thread_id
UNION ALL SELECT 'checkpoint_blobs', f.deal_id, to_jsonb(t)
  FROM f JOIN checkpoint_blobs AS t ON t.thread_id = f.thread_id
UNION ALL SELECT 'checkpoint_writes', f.deal_id, to_jsonb(t)
  FROM f JOIN checkpoint_writes AS t ON t.thread_id = f.thread_id
"""
# The same rows deleted (deadlines and the waits they reference go in one statement, whose
# foreign key is checked at its end), and how many of each table per deal.
DELETE = "WITH" + _DEALS + """,
d01 AS (DELETE FROM dealflow_deals AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d02 AS (DELETE FROM dealflow_audit AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d03 AS (DELETE FROM dealflow_effects AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d04 AS (DELETE FROM dealflow_context AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d05 AS (DELETE FROM dealflow_context_changes AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d06 AS (DELETE FROM dealflow_spans AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d07 AS (DELETE FROM dealflow_waits AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d08 AS (DELETE FROM dealflow_deadlines AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d09 AS (DELETE FROM dealflow_outbox AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d10 AS (DELETE FROM dealflow_webhook_events AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d11 AS (DELETE FROM dealflow_pruned_threads AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id),
d12 AS (DELETE FROM dealflow_leases AS t USING f WHERE t.thread_id = f.thread_id
        RETURNING f.deal_id),
d13 AS (DELETE FROM checkpoints AS t USING f WHERE t.thread_id = f.thread_id
        RETURNING f.deal_id),
d14 AS (DELETE FROM checkpoint_blobs AS t USING f WHERE t.thread_id = f.thread_id
        RETURNING f.deal_id),
d15 AS (DELETE FROM checkpoint_writes AS t USING f WHERE t.thread_id = f.thread_id
        RETURNING f.deal_id),
d16 AS (DELETE FROM dealflow_deal_reports AS t USING f WHERE t.deal_id = f.deal_id
        RETURNING f.deal_id)
SELECT 'dealflow_deals' AS tbl, deal_id, count(*) AS n FROM d01 GROUP BY deal_id
UNION ALL SELECT 'dealflow_audit', deal_id, count(*) FROM d02 GROUP BY deal_id
UNION ALL SELECT 'dealflow_effects', deal_id, count(*) FROM d03 GROUP BY deal_id
UNION ALL SELECT 'dealflow_context', deal_id, count(*) FROM d04 GROUP BY deal_id
UNION ALL SELECT 'dealflow_context_changes', deal_id, count(*) FROM d05 GROUP BY deal_id
UNION ALL SELECT 'dealflow_spans', deal_id, count(*) FROM d06 GROUP BY deal_id
UNION ALL SELECT 'dealflow_waits', deal_id, count(*) FROM d07 GROUP BY deal_id
UNION ALL SELECT 'dealflow_deadlines', deal_id, count(*) FROM d08 GROUP BY deal_id
UNION ALL SELECT 'dealflow_outbox', deal_id, count(*) FROM d09 GROUP BY deal_id
UNION ALL SELECT 'dealflow_webhook_events', deal_id, count(*) FROM d10 GROUP BY deal_id
UNION ALL SELECT 'dealflow_pruned_threads', deal_id, count(*) FROM d11 GROUP BY deal_id
UNION ALL SELECT 'dealflow_deal_reports', deal_id, count(*) FROM d16 GROUP BY deal_id
UNION ALL SELECT 'dealflow_leases', deal_id, count(*) FROM d12 GROUP BY deal_id
UNION ALL SELECT 'checkpoints', deal_id, count(*) FROM d13 GROUP BY deal_id
UNION ALL SELECT 'checkpoint_blobs', deal_id, count(*) FROM d14 GROUP BY deal_id
UNION ALL SELECT 'checkpoint_writes', deal_id, count(*) FROM d15 GROUP BY deal_id
"""
TOMBSTONE = """
INSERT INTO dealflow_forgotten_deals (deal_id, thread_id, status, ended_at, rows_deleted,
                                      archive)
SELECT * FROM unnest(%(deals)s::text[], %(threads)s::text[], %(statuses)s::text[],
                     %(ended)s::timestamptz[], %(rows)s::int[], %(archives)s::text[])
"""
# The latest forget of a deal (by deal id or thread id).
FORGOTTEN = """
SELECT deal_id, thread_id, status, ended_at, forgotten_at, rows_deleted, archive
FROM dealflow_forgotten_deals WHERE deal_id = %(ref)s OR thread_id = %(ref)s
ORDER BY id DESC LIMIT 1
"""
