"""What a review page says, in words a salesperson or a finance manager reads.

The first line says what is asked and why, with money in the deal's currency
(and in USD where the threshold is in USD); deadlines read as people say them
("tomorrow, Fri 4 Dec 08:06 UTC"); the timeline is drawn for the page (SVG
bars, not the CLI's text); every audit row says who and why.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from state.models import USD_PER_UNIT

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}


def money(amount: Decimal | str, currency: str) -> str:
    """`€120,000.00`: the amount with its currency's symbol (else its code after it)."""
    value = Decimal(str(amount))
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency}"


def in_usd(amount: Decimal | str, currency: str) -> str:
    """The amount in USD at dealflow's indicative rate, for a threshold set in USD."""
    return money(Decimal(str(amount)) * USD_PER_UNIT.get(currency, Decimal(1)), "USD")


def when(due: datetime, now: datetime) -> str:
    """`today at 14:05 UTC`, `tomorrow, Fri 4 Dec 08:06 UTC`, `in 7 days, Thu 10 Dec ...`."""
    stamp = f"{due:%a} {due.day} {due:%b %H:%M} UTC"
    days = (due.date() - now.date()).days
    if due < now:
        return f"overdue since {stamp}"
    if days == 0:
        return f"today at {due:%H:%M} UTC"
    if days == 1:
        return f"tomorrow, {stamp}"
    return f"in {days} days, {stamp}"


def headline(kind: str | None, deal: dict[str, Any], description: str,
             threshold_usd: Decimal) -> str:
    """The review's first line: what is asked, and why, in plain words."""
    if kind == "approval":
        value = money(deal["value"], deal["currency"])
        usd = "" if deal["currency"] == "USD" else \
            f" (about {in_usd(deal['value'], deal['currency'])})"
        return (f"Approve {deal['client']}'s {deal['deal_type']} deal of {value}{usd}? "
                f"Deals over {money(threshold_usd, 'USD')} need a person's approval.")
    if kind == "failure":
        return description.replace("Approve to retry the failed step only",
                                   "Retry to run the failed step again")
    return description


def deadline_lines(deadlines: list[dict[str, Any]], now: datetime) -> list[str]:
    """Each deadline still to come: what happens, and when, as people read it."""
    lines = []
    for d in deadlines:
        due = datetime.fromisoformat(d["due_at"])
        lines.append(f"{d['then'][:1].upper()}{d['then'][1:]} {when(due, now)}")
    return lines


def timeline_bars(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One bar per step attempt: its offset and width in percent of the work, and words."""
    if not spans:
        return []
    t0 = spans[0]["started_at"]
    shift, rows = 0.0, []
    for span in spans:
        offset = (span["started_at"] - t0).total_seconds() - shift
        rows.append((offset, span))
        shift += span.get("waited_seconds") or 0.0
    total = max(o + s["duration_ms"] / 1000 for o, s in rows) or 1e-9
    return [{"x": round(100 * offset / total, 2),
             "w": max(0.8, round(100 * s["duration_ms"] / 1000 / total, 2)),
             "label": s["node"].replace("__", "").replace("_", " "),
             "agent": s["agent"], "status": s["status"],
             "took": f"{s['duration_ms']:.0f} ms" if s["duration_ms"] < 10_000
             else f"{s['duration_ms'] / 1000:.1f} s",
             "attempt": s["attempt"], "error": s.get("error"),
             "waited": s.get("waited_seconds")} for offset, s in rows]


def why(entry: Any) -> str:
    """An audit entry's reason, or what it did in words when it has none."""
    if entry.reason:
        return str(entry.reason)
    detail = entry.detail or {}
    said = {
        "effect.performed": f"did {detail.get('effect', 'the effect')} at its system",
        "effect.reused": f"{detail.get('effect', 'the effect')} was done before: reused",
        "effect.reconciled": f"found {detail.get('effect', 'the effect')} done at its system",
        "context.write": f"published {entry.key or 'a fact'} (version {detail.get('version')})",
        "wait.opened": f"started waiting ({detail.get('wait', '')})",
        "wait.answered": "answered the wait",
    }
    return said.get(entry.action, entry.action.replace(".", " "))
