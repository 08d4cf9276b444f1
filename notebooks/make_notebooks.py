"""Write the step-through notebooks (sources only); `make notebooks` executes them.

Kept as code so the notebooks' cells are reviewed like any other source. A
notebook is rewritten only when its cells differ from the ones here (cell ids
are fixed, `c00`, `c01`, ...), so an unchanged notebook keeps its committed
outputs and `make notebooks` leaves the tree clean.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''import time
from langgraph.types import Command
from dealflow import DealService
from state.config import Settings

# DATABASE_URL if set, else your embedded Postgres (~/.local/share/dealflow), as the CLI's
settings = Settings.from_env(retry_initial_interval=0.1, retry_jitter=False)
run = time.strftime("%H%M%S")  # deal ids unique per execution, so the notebook re-runs'''

NOTEBOOKS = {
    "01_quickstart": [
        ("md", "# Quickstart\nBuild the deal graph, compile it with the Postgres checkpointer, "
               "run a deal over $50,000 to its review interrupt, and resume it."),
        ("code", SETUP),
        ("code", '''from graph import DealContext, build_graph
from state.checkpointer import make_checkpointer, setup_database
from state.database import open_pool, resolve_database_url
from state.models import DealInput

pool = open_pool(resolve_database_url(settings))
setup_database(pool)                       # checkpoint tables + dealflow's migrations
saver = make_checkpointer(pool)
graph = build_graph(settings).compile(checkpointer=saver)
context = DealContext.on(pool, settings, saver=saver)  # systems + data layer, for every node
from graph.diagram import mermaid
print(mermaid())'''),
        ("md", "Stream the node updates of a new deal (one thread per deal)."),
        ("code", '''deal = DealInput(deal_id=f"QS-{run}", client="Globex", value="68000",
                 lead={"company_size": 400, "budget": "90000", "engagement": 80})
config = {"configurable": {"thread_id": f"deal-{deal.deal_id}"}}
for update in graph.stream({"deal": deal}, config, context=context, stream_mode="updates"):
    for node, value in update.items():
        print(node, "→", list(value) if isinstance(value, dict) else value)'''),
        ("md", "The thread stopped before any side effect after qualification. "
               "`get_state` shows where, and the review request in LangChain's HITL shape."),
        ("code", '''state = graph.get_state(config)
print("next:", state.next)
request = state.interrupts[0].value
print(request["action_requests"][0]["description"])
print("allowed:", request["review_configs"][0]["allowed_decisions"])'''),
        ("md", "Approve with `Command(resume=...)`; the thread runs on until the signer answers, "
               "then resume it with the signature event."),
        ("code", '''graph.invoke(Command(resume={"decision": "approve", "reviewer": "notebook"}), config,
             context=context)
print("next:", graph.get_state(config).next)
result = graph.invoke(Command(resume="signature.completed"), config, context=context)
print(result["outcome"], "·", result["invoice"].number, result["invoice"].total,
      result["invoice"].currency, "due", result["invoice"].due_on)'''),
        ("code", "pool.close()"),
    ],
    "02_failure_and_resume": [
        ("md", "# Failure and resume\nThe e-sign system is down for three calls: the contract "
               "agent's retries run out, the thread stops for review, a person chooses `retry`, "
               "and the deal completes. The systems' records show finished steps never ran twice."),
        ("code", SETUP),
        ("code", '''down = settings.model_copy(update={"sandbox_outage": {"esign": 3}})
service = DealService(down)
deal_id = f"FR-{run}"
from dealflow.api import parse_deal
report = service.start(parse_deal({"deal_id": deal_id, "client": "Initech", "value": "9800",
                                   "lead": {"company_size": 300, "budget": "20000"}}))
print(report.status, report.completed_steps)
print(report.context["failures"][0]["error"], "after", report.context["failures"][0]["attempts"],
      "attempts")'''),
        ("code", '''def counts(deal_id):
    return {system: len(rows) for system, rows in service.records(deal_id).items()}
print("before the retry:", counts(deal_id))
report = service.resume(deal_id, {"decision": "retry", "reviewer": "ops", "comment": "e-sign is back"})
print(report.status, report.completed_steps)
print("after the retry: ", counts(deal_id))'''),
        ("code", '''done = service.event(deal_id, "signature.completed")
print(done.status, "·", counts(deal_id))
for row in service.data.effects.effects(deal_id):
    print(f"{row['effect']:<26} {row['status']:<10} attempts {row['attempts']}")'''),
        ("code", "service.close()"),
    ],
    "03_time_travel": [
        ("md", "# Time travel\nWalk a deal's checkpoints with `get_state_history`, fork it from "
               "the checkpoint after qualification with edited terms, and compare the outcomes."),
        ("code", SETUP),
        ("code", '''from decimal import Decimal
from dealflow.api import parse_deal
service = DealService(settings)
graph, context = service.graph, service.context
deal = parse_deal({"deal_id": f"TT-{run}", "client": "Umbrella", "value": "40000",
                   "lead": {"company_size": 300, "budget": "60000"}})
original = service.start(deal)
config = {"configurable": {"thread_id": original.thread_id}}
for snapshot in reversed(list(graph.get_state_history(config))):
    print(snapshot.metadata["step"], snapshot.next, snapshot.values.get("completed_steps"))'''),
        ("md", "Fork at the checkpoint right after `qualify_lead` with the value raised to 75,000: "
               "`update_state` writes a new checkpoint on a branch; the original line is untouched."),
        ("code", '''after_qualify = next(s for s in graph.get_state_history(config)
                     if s.values.get("completed_steps") == ["qualify_lead"] and s.next == ("supervisor",))
edited = deal.model_copy(update={"value": Decimal("75000")})
fork_config = graph.update_state(after_qualify.config, {"deal": edited})
graph.invoke(None, fork_config, context=context)
fork = graph.get_state(config)  # the thread's newest checkpoint: the head of the fork
print("original:", original.status, original.completed_steps)
print("fork:    ", "waiting_review" if fork.next == ("human_review",) else fork.next,
      fork.values["completed_steps"])
print(fork.interrupts[0].value["action_requests"][0]["description"])'''),
        ("md", "Approve the fork's review and let the signer sign: the fork runs to completion. "
               "Its effects are keyed by what they ask for, so the fork stores its own contract "
               "(75,000) and sends its own envelope, the first branch's envelope is voided, and "
               "the project (the same request on both branches) is reused, not made twice."),
        ("code", '''service.resume(deal.deal_id, {"decision": "approve", "reviewer": "notebook"})
done = service.event(deal.deal_id, "signature.completed")
print("fork:", done.status, done.completed_steps)
print(done.context["contract"]["contract_id"], "·", done.context["invoice"]["total"],
      done.context["invoice"]["currency"])'''),
        ("md", "What the systems hold for the deal: records of both branches, each marked with the "
               "branch it belongs to (the thread's current one, or the superseded first one)."),
        ("code", '''ids = service.systems.record_ids()
for system, rows in service.records(deal.deal_id).items():
    for row in rows:
        print(f"{system:<10} {row[ids[system]]!s:<11} {row['branch']:<11} {row.get('status', '')}")
for entry in service.audit(deal.deal_id):
    if entry.action.startswith("effect."):
        print(entry.action, entry.detail["effect"])'''),
        ("code", '''branches = {}
for snapshot in graph.get_state_history(config):
    parent = snapshot.parent_config["configurable"]["checkpoint_id"] if snapshot.parent_config else None
    branches.setdefault(parent, []).append(snapshot.config["configurable"]["checkpoint_id"])
print("checkpoints with two children (fork points):",
      [p for p, children in branches.items() if len(children) > 1])
service.close()'''),
    ],
    "04_context_audit_trace": [
        ("md", "# Shared context, audit trail and timeline\nWhat the agents told each other, who did "
               "what in which order, and where the time went."),
        ("code", SETUP),
        ("code", '''from dealflow.api import parse_deal
from dealflow.render import render_audit
from dealflow.timeline import render_trace
flaky = settings.model_copy(update={"sandbox_outage": {"pm": 1}, "sandbox_latency_ms": 20})
service = DealService(flaky)
deal_id = f"CA-{run}"
service.start(parse_deal({"deal_id": deal_id, "client": "Hooli", "value": "15000",
                          "lead": {"company_size": 300, "budget": "30000"}}))
report = service.event(deal_id, "signature.completed")
print(report.status)
for key, value in service.facts(deal_id).items():
    print(f"{key:<28} {value}")'''),
        ("code", "print(render_audit(service.audit(deal_id)))"),
        ("code", '''row, spans = service.trace(deal_id)
print(render_trace(deal_id, row.thread_id, spans, service.workflow))
service.close()'''),
    ],
}


KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook_of(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook of `cells` (kind, source), without outputs, its cell ids fixed."""
    notebook = new_notebook(cells=[
        new_markdown_cell(src, id=f"c{i:02d}") if kind == "md" else
        new_code_cell(src, id=f"c{i:02d}") for i, (kind, src) in enumerate(cells)])
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    return notebook


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str, str]]:
    return [(cell.cell_type, cell.get("id", ""), cell.source) for cell in notebook.cells]


def build(directory: Path = HERE) -> list[Path]:
    """Write each notebook whose cells changed (without outputs); return the paths written."""
    written = []
    for name, cells in NOTEBOOKS.items():
        notebook, path = notebook_of(cells), directory / f"{name}.ipynb"
        if path.exists() and _cells(nbformat.read(path, as_version=4)) == _cells(notebook):
            continue  # the same cells: its outputs stay
        nbformat.write(notebook, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for changed in build():
        print(f"{changed.name:<32} rewritten (cells changed)")
