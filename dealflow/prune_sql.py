"""The statements of `dealflow.prune`, as they are sent (each takes named parameters).

Read with `dealflow/prune.py`: `CANDIDATES` takes a batch of ended deals (their
registry rows locked), `ENSURE_LEASES` and `LOCK_LEASES` their lease rows,
`HEADS` says whose latest checkpoint ends a run, `HISTORY` reads what an archive
holds, `PRUNE` deletes (`PLAN` counts the same rows for a dry run) and `RECORD`
writes the row of each pruned thread that `PRUNED` reads back for `history`.
"""

# Ended deals, old enough, with more than one checkpoint: the oldest first, after a cursor,
# each row locked for this transaction (rows another prune holds are passed over).
CANDIDATES = """
SELECT d.deal_id, d.thread_id, d.updated_at FROM dealflow_deals AS d
WHERE d.status = ANY(%(ended)s) AND d.updated_at <= clock_timestamp() - %(age)s
  AND (d.updated_at, d.deal_id) > (%(after_at)s::timestamptz, %(after_id)s::text)
  AND (SELECT count(*) FROM (SELECT FROM checkpoints AS c WHERE c.thread_id = d.thread_id
       LIMIT 2) AS two) = 2
ORDER BY d.updated_at, d.deal_id LIMIT %(limit)s
FOR UPDATE OF d SKIP LOCKED
"""
COUNT_CANDIDATES = """
SELECT count(*) AS n FROM dealflow_deals AS d
WHERE d.status = ANY(%(ended)s) AND d.updated_at <= clock_timestamp() - %(age)s
  AND (SELECT count(*) FROM (SELECT FROM checkpoints AS c WHERE c.thread_id = d.thread_id
       LIMIT 2) AS two) = 2
"""
# A thread nobody ever leased gets an expired lease row, so that locking the row below
# holds off every fenced write of the thread (the fence reads the row FOR SHARE).
ENSURE_LEASES = """
INSERT INTO dealflow_leases (thread_id, token, owner, host, pid, expires_at)
SELECT t.thread_id, nextval('dealflow_lease_tokens'), 'dealflow prune', %(host)s, %(pid)s,
       clock_timestamp()
FROM unnest(%(threads)s::text[]) AS t(thread_id)
WHERE NOT EXISTS (SELECT FROM dealflow_leases AS l WHERE l.thread_id = t.thread_id)
ON CONFLICT (thread_id) DO NOTHING
"""
# The threads whose lease is free: expired, and no transaction on the row (a fenced write,
# a takeover). Locked until this transaction ends: lease takeovers fail, fences wait.
LOCK_LEASES = """
SELECT thread_id FROM dealflow_leases
WHERE thread_id = ANY(%(threads)s) AND expires_at <= clock_timestamp()
FOR UPDATE SKIP LOCKED
"""
# Each thread's latest checkpoint, and whether it ends a run: written by a step (`loop`), and
# triggering no node (no `branch:to:` channel, no start, no `Send`) as `state.saver.leads_on`;
# `start` and `tasks` are LangGraph's channel names (`langgraph.constants.START`, `TASKS`).
HEADS = """
SELECT t.thread_id, h.checkpoint_id,
       coalesce(h.metadata ->> 'source' = 'loop' AND NOT EXISTS (
           SELECT FROM jsonb_array_elements_text(CASE jsonb_typeof(h.checkpoint ->
               'updated_channels') WHEN 'array' THEN h.checkpoint -> 'updated_channels'
               ELSE '[]'::jsonb END) AS u(channel)
           WHERE u.channel IN (%(start)s, %(tasks)s)
              OR u.channel LIKE 'branch:to:%%'), false) AS ended
FROM unnest(%(threads)s::text[]) AS t(thread_id)
LEFT JOIN LATERAL (SELECT c.checkpoint_id, c.checkpoint, c.metadata FROM checkpoints AS c
                   WHERE c.thread_id = t.thread_id AND c.checkpoint_ns = ''
                   ORDER BY c.checkpoint_id DESC LIMIT 1) AS h ON true
"""
# Every checkpoint of the threads, oldest first, with the blobs it names and its writes
# (base64): the lines of their archives (`dealflow.archive`).
HISTORY = """
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id,
    c.checkpoint_id = (SELECT max(x.checkpoint_id) FROM checkpoints AS x
                       WHERE x.thread_id = c.thread_id AND x.checkpoint_ns = c.checkpoint_ns)
        AS kept,
    c.checkpoint, c.metadata,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('channel', b.channel, 'version', b.version,
                'type', b.type, 'blob', translate(encode(b.blob, 'base64'), chr(10), ''))
                ORDER BY b.channel), '[]'::jsonb)
     FROM jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
     JOIN checkpoint_blobs AS b ON b.thread_id = c.thread_id
      AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = v.key AND b.version = v.value
    ) AS blobs,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('task_id', w.task_id,
                'task_path', w.task_path, 'idx', w.idx, 'channel', w.channel, 'type', w.type,
                'blob', translate(encode(w.blob, 'base64'), chr(10), ''))
                ORDER BY w.task_id, w.idx), '[]'::jsonb)
     FROM checkpoint_writes AS w WHERE w.thread_id = c.thread_id
      AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id
    ) AS writes
FROM checkpoints AS c WHERE c.thread_id = ANY(%(threads)s)
ORDER BY c.thread_id, c.checkpoint_ns, c.checkpoint_id
"""
# The latest checkpoint of each namespace of the threads, and the blobs it names: kept.
_KEPT = """
heads AS (SELECT DISTINCT ON (thread_id, checkpoint_ns) thread_id, checkpoint_ns,
                 checkpoint_id, checkpoint
          FROM checkpoints WHERE thread_id = ANY(%(threads)s)
          ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC),
kept_refs AS (SELECT h.thread_id, h.checkpoint_ns, v.key AS channel, v.value AS version
              FROM heads AS h, jsonb_each_text(h.checkpoint -> 'channel_versions') AS v)"""
# Rows gone per thread, with the root namespace's kept checkpoint.
_COUNTS = """
SELECT h.thread_id, h.checkpoint_id AS kept_checkpoint_id,
       coalesce(c.n, 0) AS checkpoints, coalesce(b.n, 0) AS blobs, coalesce(w.n, 0) AS writes
FROM heads AS h
LEFT JOIN (SELECT thread_id, count(*) AS n FROM gone GROUP BY 1) AS c USING (thread_id)
LEFT JOIN (SELECT thread_id, count(*) AS n FROM gone_blobs GROUP BY 1) AS b USING (thread_id)
LEFT JOIN (SELECT thread_id, count(*) AS n FROM gone_writes GROUP BY 1) AS w USING (thread_id)
WHERE h.checkpoint_ns = ''
"""
# The delete: every other checkpoint, its writes, and the blobs only they name.
PRUNE = "WITH" + _KEPT + """,
gone AS (DELETE FROM checkpoints AS c WHERE c.thread_id = ANY(%(threads)s)
         AND NOT EXISTS (SELECT FROM heads AS h WHERE h.thread_id = c.thread_id
                         AND h.checkpoint_ns = c.checkpoint_ns
                         AND h.checkpoint_id = c.checkpoint_id)
         RETURNING c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.checkpoint),
gone_writes AS (DELETE FROM checkpoint_writes AS w USING gone AS g
                WHERE w.thread_id = g.thread_id AND w.checkpoint_ns = g.checkpoint_ns
                  AND w.checkpoint_id = g.checkpoint_id RETURNING w.thread_id),
gone_refs AS (SELECT g.thread_id, g.checkpoint_ns, v.key AS channel, v.value AS version
              FROM gone AS g, jsonb_each_text(g.checkpoint -> 'channel_versions') AS v
              EXCEPT SELECT thread_id, checkpoint_ns, channel, version FROM kept_refs),
gone_blobs AS (DELETE FROM checkpoint_blobs AS b USING gone_refs AS r
               WHERE b.thread_id = r.thread_id AND b.checkpoint_ns = r.checkpoint_ns
                 AND b.channel = r.channel AND b.version = r.version RETURNING b.thread_id)
""" + _COUNTS
# What `PRUNE` would delete, deleting nothing (`--dry-run`).
PLAN = "WITH" + _KEPT + """,
gone AS (SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.checkpoint
         FROM checkpoints AS c WHERE c.thread_id = ANY(%(threads)s)
         AND NOT EXISTS (SELECT FROM heads AS h WHERE h.thread_id = c.thread_id
                         AND h.checkpoint_ns = c.checkpoint_ns
                         AND h.checkpoint_id = c.checkpoint_id)),
gone_writes AS (SELECT w.thread_id FROM checkpoint_writes AS w JOIN gone AS g
                ON w.thread_id = g.thread_id AND w.checkpoint_ns = g.checkpoint_ns
                AND w.checkpoint_id = g.checkpoint_id),
gone_refs AS (SELECT g.thread_id, g.checkpoint_ns, v.key AS channel, v.value AS version
              FROM gone AS g, jsonb_each_text(g.checkpoint -> 'channel_versions') AS v
              EXCEPT SELECT thread_id, checkpoint_ns, channel, version FROM kept_refs),
gone_blobs AS (SELECT b.thread_id FROM checkpoint_blobs AS b JOIN gone_refs AS r
               ON b.thread_id = r.thread_id AND b.checkpoint_ns = r.checkpoint_ns
               AND b.channel = r.channel AND b.version = r.version)
""" + _COUNTS
RECORD = """
INSERT INTO dealflow_pruned_threads (thread_id, deal_id, kept_checkpoint_id, checkpoints,
                                     blobs, writes, archive)
SELECT * FROM unnest(%(threads)s::text[], %(deals)s::text[], %(kept)s::text[],
                     %(checkpoints)s::int[], %(blobs)s::int[], %(writes)s::int[],
                     %(archives)s::text[])
"""
PRUNED = """
SELECT pruned_at, kept_checkpoint_id, checkpoints, blobs, writes, archive
FROM dealflow_pruned_threads WHERE thread_id = %s ORDER BY pruned_at, id
"""
