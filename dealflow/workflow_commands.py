"""`dealflow workflow show|check`: the declared workflow, and the deals in flight under it.

`show` prints the declaration the configuration names (`DEALFLOW_WORKFLOW`,
else the built-in one) and its version; it needs no database. `check` judges
every unfinished deal under it (`dealflow.workflow_check`) and exits 1 when
one cannot go on as it is: run it with the new code before a deploy.
"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from typing import Any

from dealflow.api import DealService
from dealflow.workflow_check import DealCheck, check_deals
from graph.configured import configured_workflow
from graph.versions import describe
from graph.workflow import DEFAULT_WORKFLOW, Workflow
from state.config import ConfigError, Settings


def parser_workflow(given: DealService | None) -> Workflow:
    """The workflow the CLI's parser offers (`dealflow event`'s events): `given`'s, or configured.

    A bad configuration falls back to the built-in workflow here; the command
    then reports it in one line (exit 2).
    """
    if given is not None:
        return given.workflow
    try:
        return configured_workflow(Settings.from_env())
    except ConfigError:
        return DEFAULT_WORKFLOW


def workflow_command(settings: Settings, args: argparse.Namespace,
                     given: DealService | None = None) -> int:
    """Run `workflow show` or `workflow check` (on `given`, if set); the exit code."""
    if args.workflow_action == "show":
        workflow = given.workflow if given is not None else configured_workflow(settings)
        print(json.dumps(describe_json(workflow)) if args.json
              else render_declaration(workflow))
        return 0
    with nullcontext(given) if given is not None else DealService(settings) as service:
        checks = check_deals(service)
        workflow = service.workflow
    problems = [check for check in checks if check.problem]
    if args.json:
        print(json.dumps({"workflow_version": workflow.version, "ok": not problems,
                          "deals": [check.as_json() for check in checks]}))
    else:
        print(render_checks(workflow, checks))
    return 1 if problems else 0


def render_declaration(workflow: Workflow) -> str:
    """The declaration, a line per step and wait, with its version first."""
    data = describe(workflow)
    lines = [f"workflow {workflow.version} · {len(workflow.steps)} steps"]
    for step in data["steps"]:
        after = f" after {', '.join(step['requires'])}" if step["requires"] else ""
        tags = [tag for tag, on in (("event: " + " | ".join(step["events"]), step["events"]),
                                    ("new deals only", step["new_deals_only"]),
                                    (f"system {step['system']}", step["system"])) if on]
        lines.append(f"  {step['name']:<22} {step['agent']:<10} → {step['output']}{after}"
                     + (f"  [{'; '.join(tags)}]" if tags else ""))
    for wait in data["waits"]:
        deadlines = ", ".join(d["name"] for d in wait["deadlines"]) or "no deadlines"
        lines.append(f"  wait {wait['name']} at {wait['node']}: {deadlines}")
    lines += [f"  renamed {old} → {new}" for old, new in data["renamed"].items()]
    lines += [f"  removed {name}" for name in data["removed"]]
    return "\n".join(lines)


def render_checks(workflow: Workflow, checks: list[DealCheck]) -> str:
    """One block per deal: its verdict, what runs next and the steps added since it started."""
    problems = sum(check.problem for check in checks)
    lines = []
    for check in checks:
        mark = "✗" if check.problem else "✓"
        lines.append(f"{mark} {check.deal_id} · thread {check.thread_id} · {check.status} · "
                     f"started on {check.started_on or 'an unversioned workflow'}")
        lines.append(f"    {check.judgement.verdict}: {check.judgement.message}")
        lines += [f"    + {a.step}: {'runs' if a.applies else 'skipped'} ({a.why})"
                  for a in check.added]
        lines += [f"    - {name}: " + ("removed" if name in workflow.removed else
                                        "no longer declared") for name in check.dropped]
    summary = (f"workflow {workflow.version}: {len(checks)} unfinished deal(s), "
               f"{problems} with a problem" if checks else
               f"workflow {workflow.version}: no unfinished deals")
    return "\n".join([*lines, summary])


def describe_json(workflow: Workflow) -> dict[str, Any]:
    """`workflow show --json`: the version and the declaration as plain data."""
    return {"version": workflow.version, **describe(workflow)}
