"""`dealflow demo`: the showcase deals, end to end, with progress per agent.

1. a small deal that runs to its invoice once the signature arrives;
2. a deal over the approval threshold, left waiting for a person's review;
3. a deal whose e-sign system is down: retries, review, `retry`, completed,
   with exactly one record per system of record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dealflow.api import DealService, parse_deal
from dealflow.render import progress_printer, render_report, render_table
from dealflow.reports import DealReport
from state.config import Settings
from state.database import redact_url

LEAD = {"company_size": 320, "industry": "software", "engagement": 75,
        "contact_name": "Dana Signer", "contact_email": "dana@example.com"}


def _deal(stamp: str, suffix: str, client: str, value: str, **extra: Any) -> dict[str, Any]:
    lead = {**LEAD, "budget": str(int(float(value) * 1.2))}
    return {"deal_id": f"DEMO-{stamp}-{suffix}", "client": client, "value": value,
            "lead": lead, **extra}


class _Printer:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def step(self, service: DealService) -> Callable[[str, dict[str, Any]], None] | None:
        return None if self.quiet else progress_printer(service.workflow, self)


def run_demo(settings: Settings, *, as_json: bool = False) -> int:
    """Run the three showcase deals; return the exit code (0 when all behave)."""
    out = _Printer(as_json)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    fast = settings.model_copy(update={"retry_initial_interval": 0.2, "retry_jitter": False})
    outage = fast.model_copy(update={"sandbox_outage": {"esign": fast.max_attempts}})
    reports: list[DealReport] = []
    with DealService(fast) as service, DealService(outage) as down:
        where = redact_url(service.settings.database_url or "")
        out(f"dealflow demo · database {where}\n")
        reports.append(_small_deal(service, out, stamp))
        reports.append(_large_deal(service, out, stamp))
        reports.append(_outage_deal(down, out, stamp))
        records = {r.deal_id: service.records(r.deal_id) for r in reports}
    out("\nsummary:")
    out(render_table(("DEAL", "THREAD", "STATUS", "RECORDS (crm/pm/contract/envelope/invoice)"),
                     [(r.deal_id, r.thread_id, r.status,
                       "/".join(str(len(v)) for v in records[r.deal_id].values()))
                      for r in reports]))
    out(f"\nthe large deal waits for you: dealflow resume {reports[1].deal_id} "
        "--decision approve")
    if as_json:
        print(json.dumps({"deals": [r.model_dump(mode="json") for r in reports],
                          "records": records}, default=str))
    expected = ["completed", "waiting_review", "completed"]
    return 0 if [r.status for r in reports] == expected else 1


def _small_deal(service: DealService, out: _Printer, stamp: str) -> DealReport:
    deal = parse_deal(_deal(stamp, "SMALL", "Northwind Traders", "12500.00",
                            deal_type="subscription"))
    out(f"1) small deal · {deal.client} · {deal.value:,.2f} {deal.currency}")
    report = service.start(deal, on_step=out.step(service))
    out("  … the signer signs: dealflow event "
        f"{report.deal_id} signature.completed")
    return service.event(report.thread_id, "signature.completed", on_step=out.step(service))


def _large_deal(service: DealService, out: _Printer, stamp: str) -> DealReport:
    deal = parse_deal(_deal(stamp, "LARGE", "Globex Corporation", "68000.00"))
    out(f"\n2) large deal · {deal.client} · {deal.value:,.2f} {deal.currency} "
        f"(approval needed over {service.settings.review_threshold_usd:,.0f} USD)")
    report = service.start(deal, on_step=out.step(service))
    out("  " + render_report(report, service.workflow).replace("\n", "\n  "))
    return report


def _outage_deal(service: DealService, out: _Printer, stamp: str) -> DealReport:
    deal = parse_deal(_deal(stamp, "OUTAGE", "Initech", "9800.00", deal_type="consulting"))
    calls = service.settings.sandbox_outage["esign"]
    out(f"\n3) e-sign outage · {deal.client} · {deal.value:,.2f} {deal.currency} "
        f"(e-sign down for {calls} calls)")
    report = service.start(deal, on_step=out.step(service))
    out(f"  ⏸ {report.status}: " + (report.pending or {}).get(
        "action_requests", [{"description": "?"}])[0]["description"])
    out(f"  … the reviewer retries: dealflow resume {report.deal_id} --decision retry")
    answer = {"decision": "retry", "reviewer": "demo reviewer", "comment": "e-sign is back"}
    report = service.resume(report.thread_id, answer, on_step=out.step(service))
    out(f"  … the signer signs: dealflow event {report.deal_id} signature.completed")
    return service.event(report.thread_id, "signature.completed", on_step=out.step(service))
