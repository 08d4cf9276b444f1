-- Retention (`dealflow prune`, DEALFLOW_RETENTION): the checkpoint history of an ended deal
-- is deleted but for its latest checkpoint. One row per pruned thread and prune (a thread
-- forked after a prune and ended again can be pruned again): what went, the checkpoint
-- kept, and where the history was archived first (NULL: it was not archived).
-- `dealflow history` of a pruned deal reads it.
CREATE TABLE dealflow_pruned_threads (
    id                  bigserial PRIMARY KEY,
    thread_id           text NOT NULL,
    deal_id             text NOT NULL,
    pruned_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    kept_checkpoint_id  text NOT NULL,
    checkpoints         integer NOT NULL,
    blobs               integer NOT NULL,
    writes              integer NOT NULL,
    archive             text
);
CREATE INDEX dealflow_pruned_threads_thread_idx ON dealflow_pruned_threads (thread_id, pruned_at);
