"""The workflow a deployment runs: `DEALFLOW_WORKFLOW=module:attribute`, else the built-in one.

A team declares its own process in its own package (`DEFAULT_WORKFLOW.with_step(...)`)
and names it in the setting; the CLI, the service and its workers, MCP and
LangGraph Server then all run it, without an edit to dealflow. A value that
names nothing usable is a `ConfigError` of one line saying what was not found.
"""

from __future__ import annotations

import importlib

from graph.workflow import DEFAULT_WORKFLOW, Workflow
from state.config import ConfigError, Settings


def configured_workflow(settings: Settings, default: Workflow = DEFAULT_WORKFLOW) -> Workflow:
    """The `Workflow` `settings.workflow` names (`DEALFLOW_WORKFLOW`), else `default`."""
    if not settings.workflow:
        return default
    module_name, _, attribute = settings.workflow.partition(":")
    where = f"DEALFLOW_WORKFLOW={settings.workflow}"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the team's module: not found, or its declaration refused
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(f"{where}: cannot import module {module_name!r} "
                          f"({type(exc).__name__}: {reason})") from exc
    found = getattr(module, attribute, None)
    if found is None:
        raise ConfigError(f"{where}: module {module_name!r} has no attribute {attribute!r}")
    if not isinstance(found, Workflow):
        raise ConfigError(f"{where}: {attribute!r} is a {type(found).__name__}, not a "
                          "graph.workflow.Workflow")
    return found
