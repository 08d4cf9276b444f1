"""`/metrics`: Prometheus text (prometheus_client), read from Postgres at scrape time.

Every figure comes from the shared database, so any API node reports the whole
fleet: deals by status, jobs by state, step durations (from the spans every
node records), webhook deliveries, deadlines (overdue ones apart), notifications.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dealflow.api import DealService

_QUERIES = {
    "deals": "SELECT status AS label, count(*) AS n FROM dealflow_deals GROUP BY 1",
    "jobs": "SELECT status::text AS label, count(*) AS n FROM procrastinate_jobs GROUP BY 1",
    "webhooks": "SELECT event AS label, count(*) AS n FROM dealflow_webhook_events GROUP BY 1",
    "steps": "SELECT node AS label, count(*) AS n, coalesce(sum(duration_ms), 0) / 1000.0"
             " AS seconds FROM dealflow_spans GROUP BY 1",
    "deadlines": "SELECT CASE WHEN status = 'scheduled' AND due_at < clock_timestamp()"
                 " THEN 'overdue' ELSE status END AS label, count(*) AS n"
                 " FROM dealflow_deadlines GROUP BY 1",
    "notifications": "SELECT status AS label, count(*) AS n FROM dealflow_outbox GROUP BY 1",
}


class DealflowCollector(Collector):
    """Reads the fleet's figures from the service's pool on every scrape."""

    def __init__(self, service: DealService) -> None:
        """Collect from `service`'s database."""
        self._service = service

    def collect(self) -> Iterator[Metric]:
        """The metric families, fresh."""
        rows = {}
        with self._service.pool.connection() as conn:
            for name, sql in _QUERIES.items():
                rows[name] = conn.execute(sql).fetchall()
        yield _gauge("dealflow_deals", "Deals by status.", "status", rows["deals"])
        yield _gauge("dealflow_jobs", "Queue jobs by state (todo, doing, failed, ...).",
                     "state", rows["jobs"])
        yield _gauge("dealflow_webhook_deliveries", "E-sign webhook events recorded, by event.",
                     "event", rows["webhooks"])
        yield _gauge("dealflow_step_runs", "Step attempts recorded, by node.", "node",
                     rows["steps"])
        yield _gauge("dealflow_deadlines", "Deadlines by state (scheduled, overdue: past due "
                     "and not fired, fired, cancelled).", "state", rows["deadlines"])
        yield _gauge("dealflow_notifications", "Outbox notifications by state (pending, sent, "
                     "skipped).", "state", rows["notifications"])
        seconds = GaugeMetricFamily("dealflow_step_seconds", "Seconds spent in each node.",
                                    labels=["node"])
        for row in rows["steps"]:
            seconds.add_metric([row["label"]], float(row["seconds"]))
        yield seconds


def _gauge(name: str, doc: str, label: str, rows: list[dict[str, object]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for row in rows:
        family.add_metric([str(row["label"])], float(row["n"]))  # type: ignore[arg-type]
    return family


def metrics_text(service: DealService) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    registry = CollectorRegistry()
    registry.register(DealflowCollector(service))
    return generate_latest(registry), CONTENT_TYPE_LATEST
