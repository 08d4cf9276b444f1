"""`make bench`: run every workload on a throwaway database and print the table.

The same figures go to bench/out/latest.json.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from bench.common import throwaway_database
from bench.growth import w4_growth
from bench.paired import spread
from bench.peer import peer_ratio
from bench.providers import effect_overhead
from bench.retention import retention_lines
from bench.scale import scale_lines, scale_out
from bench.workloads import (
    statements_per_deal,
    w1_counts_on_hubspot,
    w1_durable_step,
    w2_throughput,
    w3_resume,
)
from dealflow.api import DealService
from state.config import Settings

OUT = Path(__file__).resolve().parent / "out" / "latest.json"


def measure() -> dict[str, Any]:
    """Every figure, with its floors, measured in this run.

    Each ratio's sides are timed in paired rounds (`bench.paired`); `*_rounds`
    keys hold the lowest, median and highest of the rounds' own ratios.
    """
    results: dict[str, Any] = {}
    with throwaway_database() as url:
        settings = Settings(database_url=url)
        w1 = w1_durable_step(settings, url)
        results["F_commit_s"], results["F_engine_s"] = w1.pop("F_commit_s"), w1.pop("F_engine_s")
        results["W1"] = w1 | w1_counts_on_hubspot(settings, url)
        results["statements_per_deal"] = statements_per_deal(settings)
        with DealService(settings) as service:
            results["W2"], scaling, results["W2_memory"] = w2_throughput(service)
            results["W3"] = w3_resume(service, url)
        with throwaway_database() as dbos_url, DealService(settings) as service:
            results.update(peer_ratio(service, dbos_url))
    with throwaway_database() as url, DealService(Settings(database_url=url)) as service:
        results["W4"] = w4_growth(service)
    with throwaway_database() as url:
        results["effect_overhead"] = effect_overhead(url)
    results["scale"] = scale_out()  # the service: the API and 1, 2, 4 worker processes
    results["W2_scaling_8_over_1"] = (results["W2"]["8"]["steps_per_s"]
                                      / results["W2"]["1"]["steps_per_s"])
    results["W2_scaling_rounds"] = spread(scaling)
    memory = results["W2_memory"]
    results["W2_memory_scaling_8_over_1"] = memory["8"]["steps_per_s"] / memory["1"]["steps_per_s"]
    return results


# The targets of the durable path: (key, label, bound, whether lower is better)
TARGETS = (
    ("peer_ratio", "ours ms/deal ÷ DBOS ms/deal", 2.0, True),
    ("W1.ratio", "W1 (T − F_engine) / F_commit", 2.0, True),
    ("W1.commits_per_step", "W1 commits per super-step", 3.0, True),
    ("W1.commits_per_step_on_hubspot", "W1 commits/step, CRM over HTTP", 1.5, True),
    ("W1.write_commits_per_step", "W1 commits that wrote, per super-step", 1.5, True),
    ("statements_per_deal", "statements per completed deal", 90.0, True),
    ("W2_scaling_8_over_1", "W2 steps/s at 8 ÷ at 1", 1.6, False),
    ("scale.ratio_2_over_1", "service deals/s, 2 workers ÷ 1", 1.5, False),
)


def _figure(results: dict[str, Any], key: str) -> float:
    value: Any = results
    for part in key.split("."):
        value = value[part]
    return float(value)


# The same figure for the reference, LangGraph's InMemorySaver (bench.reference)
REFERENCES = {"peer_ratio": "memory_peer_ratio", "W1.ratio": "W1.memory_ratio",
              "W2_scaling_8_over_1": "W2_memory_scaling_8_over_1"}


def target_lines(results: dict[str, Any]) -> list[str]:
    """Each target with its figure in this run, met or not, and the reference's figure."""
    lines = ["targets (reference: the same deals on LangGraph's InMemorySaver, nothing durable):"]
    for key, label, bound, lower in TARGETS:
        figure = _figure(results, key)
        met = figure <= bound if lower else figure >= bound
        reference = (f"; reference {_figure(results, REFERENCES[key]):.2f}"
                     if key in REFERENCES else "")
        lines.append(f"  {'met ' if met else 'MISS'} {label:<32} {figure:8.2f} "
                     f"({'≤' if lower else '≥'} {bound:g}; key {key}{reference})")
    return lines


def _rounds(spread: dict[str, float]) -> str:
    return (f"(rounds: {spread['min']:.2f} / {spread['median']:.2f} / {spread['max']:.2f}"
            " lowest / median / highest)")


def table(r: dict[str, Any]) -> str:
    """The figures as a text table."""
    fc, fe, w1 = r["F_commit_s"] * 1000, r["F_engine_s"] * 1000, r["W1"]
    lines = [
        f"F_commit  1 KB INSERT+COMMIT            {fc:8.3f} ms",
        f"F_engine  super-step, no checkpointer    {fe:8.3f} ms",
        f"W1 durable super-step (sync)             {w1['step_s'] * 1000:8.3f} ms   "
        f"(T - F_engine) / F_commit = {w1['ratio']:.2f} {_rounds(w1['ratio_rounds'])}",
        f"   reference, InMemorySaver: {w1['memory_step_s'] * 1000:.3f} ms "
        f"(T_memory - F_engine) / F_commit = {w1['memory_ratio']:.2f}",
        f"   statements/step {w1['statements_per_step']:.1f}, commits/step "
        f"{w1['commits_per_step']:.2f} ({w1['write_commits_per_step']:.2f} wrote), "
        f"client CPU/step {w1['client_cpu_per_step_s'] * 1000:.2f} ms",
        f"   with the CRM a provider over HTTP (local HubSpot): statements/step "
        f"{w1['statements_per_step_on_hubspot']:.2f}, commits/step "
        f"{w1['commits_per_step_on_hubspot']:.2f} (the sandbox's own commit is not ours)",
    ]
    for c, w2 in r["W2"].items():
        lines.append(f"W2 {c} concurrent deals: {w2['deals_per_s']:6.1f} deals/s "
                     f"{w2['steps_per_s']:7.1f} steps/s  "
                     f"p95 deal {w2['p95_deal_s'] * 1000:6.0f} ms")
    w3 = r["W3"]
    lines.append(f"W3 event→completed: warm {w3['warm_s'] * 1000:.1f} ms; new process "
                 f"{w3['new_process_s'] * 1000:.0f} ms "
                 f"(process start {w3['process_start_s'] * 1000:.0f} ms, "
                 f"connect {w3['connect_s'] * 1000:.1f} ms)")
    lines.append("   read commands as a new process: " + ", ".join(
        f"{command} {w3[f'{command}_new_process_s'] * 1000:.0f} ms"
        for command in ("status", "records", "threads")))
    w4 = r["W4"]
    per = w4["bytes_per_deal"]
    lines.append(f"W4 bytes per completed deal: checkpoints "
                 f"{per['checkpoint_bytes'] / 1024:.1f} KiB, "
                 f"dealflow tables {per['dealflow_bytes'] / 1024:.1f} KiB")
    for name in ("threads_s", "threads_page_s", "status_s", "history_s"):
        lines.append(f"   {name[:-2]:<12} {w4['at_small'][name] * 1000:8.2f} ms at "
                     f"{w4['deals_small']} deals → {w4['at_large'][name] * 1000:8.2f} ms at "
                     f"{w4['deals_large']}")
    lines += retention_lines(w4["retention"])
    lines.append(f"W2 steps/s at 8 ÷ at 1 = {r['W2_scaling_8_over_1']:.2f} "
                 f"{_rounds(r['W2_scaling_rounds'])}")
    memory = r["W2_memory"]
    lines.append(f"   reference, InMemorySaver: {memory['1']['steps_per_s']:.1f} → "
                 f"{memory['8']['steps_per_s']:.1f} steps/s, 8 ÷ 1 = "
                 f"{r['W2_memory_scaling_8_over_1']:.2f}")
    lines.append(f"Peer: ours {r['ours_ms_per_deal']:.1f} ms/deal vs DBOS "
                 f"{r['peer_dbos_ms_per_deal']:.1f} ms/deal → ratio {r['peer_ratio']:.2f} "
                 f"{_rounds(r['peer_ratio_rounds'])}")
    lines.append(f"   reference, InMemorySaver: {r['memory_ms_per_deal']:.1f} ms/deal → "
                 f"{r['memory_peer_ratio']:.2f}")
    lines.append(f"statements per completed deal {r['statements_per_deal']:.0f}")
    fx = r["effect_overhead"]
    lines.append(f"Effect overhead, Stripe at {fx['latency_s'] * 1000:.0f} ms a request: "
                 f"event→completed {fx['deal_s'] * 1000:.0f} ms vs its "
                 f"{fx['requests_per_deal']:.0f} calls alone {fx['calls_s'] * 1000:.0f} ms "
                 f"→ ratio {fx['ratio']:.2f}")
    return "\n".join(lines + scale_lines(r["scale"]) + target_lines(r))


def main() -> int:
    """Measure, print, save."""
    logging.getLogger("dbos").setLevel(logging.WARNING)
    results = measure()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, default=str))
    print(table(results))
    print(f"(saved to {OUT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
