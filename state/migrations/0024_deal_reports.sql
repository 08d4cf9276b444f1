-- The report of each thread as its last run left it, for `dealflow status` to print without
-- LangGraph (`dealflow.recorded_status`). A report is served only while its stamp is the
-- thread's current one (`dealflow_thread_stamp_v1`: its latest checkpoint and that
-- checkpoint's pending writes); any later write to the thread makes it stale, and the
-- command asks the graph instead. A table of its own, so that workers of the previous
-- release (which read `dealflow_deals` as `SELECT *`) run on beside the new ones.
CREATE TABLE dealflow_deal_reports (
    thread_id  text PRIMARY KEY,
    deal_id    text NOT NULL,
    stamp      text NOT NULL,
    report     json NOT NULL      -- {"report": DealReport, "waiting": ..., "commands": [...]}
                                  -- (json, not jsonb: its keys keep their order)
);
CREATE INDEX dealflow_deal_reports_deal_idx ON dealflow_deal_reports (deal_id);
