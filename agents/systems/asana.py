"""Asana as the project tool: a project per deal, its tasks created once each.

Asana takes no idempotency key, so the connector leaves a marker a later call
can find: the project's notes end with `dealflow-key: <idempotency key>` (and
the deal, template and task count), each task's notes with the key and its
position. The creation POSTs are not repeatable; when one's answer is lost,
the effect ledger asks `lookup(key)`, which lists the workspace's projects
(`GET /workspaces/{gid}/projects`, exhaustive on every plan, unlike the
premium-only search or the non-exhaustive typeahead) for the marker, then the
project's tasks. Lists may lag behind writes: a lookup that finds nothing, or
fewer tasks than the marker says, asks again until `provider_lag_seconds` have
passed since it began. A project found with tasks missing is not the answer
yet: `lookup` says None and remembers it, and the following `create_project`
creates only the missing tasks in it. (The `external` field, Asana's own id
for integrations, exists on tasks only and needs OAuth: a personal access
token cannot use it.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any, TypeVar

from agents.systems.base import Record
from agents.systems.http import ProviderClient, ProviderRefused
from agents.systems.providers import provider_client, required
from state.config import ConfigError, Settings
from state.database import Pool
from state.models import Project, ProjectTask

SYSTEM = "pm"  # the role: errors read "pm: …", as the sandbox's and the other providers' do
PAGE = 100
POLL_FIRST, POLL_MAX = 0.25, 5.0  # seconds between the lookups' list calls
_MARK = re.compile(r"^dealflow-([a-z-]+): (.*)$", re.MULTILINE)
T = TypeVar("T")
Found = tuple[dict[str, Any], dict[int, dict[str, Any]]]  # a project, its tasks by position


class AsanaProjects:
    """The project-tool interface (`agents.systems.base.ProjectTool`) over Asana's API."""

    name, records_label, record_id = "pm", "projects", "project_id"

    def __init__(self, client: ProviderClient, workspace: str, *, team: str | None = None,
                 lag: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
        """A connector for `workspace` (projects shared with `team`, if given)."""
        self.client, self.workspace, self.team = client, workspace, team
        self.lag, self._sleep = lag, sleep
        self._created: dict[str, str] = {}  # key → gid of a project this process created
        self._found: dict[str, Found] = {}  # key → an unfinished project `lookup` found

    @classmethod
    def from_settings(cls, settings: Settings, pool: Pool | None = None) -> AsanaProjects:
        """The connector for `DEALFLOW_ASANA_TOKEN` and `DEALFLOW_ASANA_WORKSPACE`.

        `pool`: the database its rate limit (if declared) is shared on.
        """
        token, workspace = required(settings, "asana_token", "asana_workspace")
        client = provider_client(settings, SYSTEM, settings.asana_api_base,
                                 {"Authorization": f"Bearer {token}"}, provider="asana",
                                 pool=pool)
        return cls(client, workspace, team=settings.asana_team,
                   lag=settings.provider_lag_seconds)

    def create_project(
        self, deal_id: str, name: str, template: str, tasks: tuple[ProjectTask, ...], *, key: str
    ) -> Project:
        """Create the project and its tasks; finish a project an earlier call began."""
        found = self._found.pop(key, None)
        if found is None and key in self._created:  # this process began it: finish it
            found = self._progress(self._project(self._created[key]), key, time.monotonic())
        if found is None:
            data = {"name": name, "workspace": self.workspace,
                    "notes": _notes(f"Delivery project of deal {deal_id} ({template}), created "
                                    "by dealflow.", deal=deal_id, key=key, template=template,
                                    tasks=len(tasks))}
            if self.team:
                data["team"] = self.team
            project = self._data(self.client.send("POST", "/projects", repeatable=False,
                                                  json={"data": data}))
            self._created[key] = project["gid"]
            found = (project, {})
        project, done = found
        start = date.fromisoformat(project["created_at"][:10])
        for position, task in enumerate(tasks, 1):
            if position in done:
                continue
            self.client.send("POST", "/tasks", repeatable=False, json={"data": {
                "name": task.title, "projects": [project["gid"]],
                "due_on": (start + timedelta(days=task.due_in_days)).isoformat(),
                "notes": _notes(f"Owner: {task.owner_role}.", key=key, position=position,
                                owner=task.owner_role, due_in_days=task.due_in_days)}})
        self._created.pop(key, None)
        return Project(project_id=project["gid"], name=project["name"], template=template,
                       tasks=tuple(tasks))

    def lookup(self, key: str) -> Project | None:
        """The project created with `key`, once all its tasks are there (lists may lag)."""
        began = time.monotonic()
        gid = self._created.get(key)
        project = self._project(gid) if gid else self._poll(
            lambda: self._find(key), lambda found: found is not None, began)
        if project is None:
            return None
        found = self._progress(project, key, began)
        marks = _marks(project.get("notes"))
        if len(found[1]) < int(marks.get("tasks", 0)):
            self._found[key] = found  # create_project makes only the missing tasks
            return None
        self._created.pop(key, None)
        return Project(project_id=project["gid"], name=project["name"],
                       template=marks.get("template", ""),
                       tasks=tuple(_task(t) for _, t in sorted(found[1].items())))

    def records(self, deal_id: str) -> list[Record]:
        """The deal's projects (marked with its id), each with its tasks."""
        found = []
        for project in self._projects():
            marks = _marks(project.get("notes"))
            if marks.get("deal") != deal_id:
                continue
            tasks = self._tasks(project["gid"], marks.get("key", ""))
            found.append({
                "project_id": project["gid"], "deal_id": deal_id, "name": project["name"],
                "idempotency_key": marks.get("key"), "template": marks.get("template"),
                "created_at": project.get("created_at"),
                "permalink_url": project.get("permalink_url"),
                "tasks": [{"position": p, "task_id": t["gid"], "due_on": t.get("due_on"),
                           **_task(t).model_dump()} for p, t in sorted(tasks.items())]})
        return sorted(found, key=lambda p: p["created_at"] or "")

    def check(self) -> str:
        """One authenticated read of the workspace; `ConfigError` if the token cannot see it."""
        try:
            workspace = self._data(self.client.send(
                "GET", f"/workspaces/{self.workspace}", repeatable=True,
                params={"opt_fields": "name,is_organization"}))
        except ProviderRefused as exc:
            if exc.status not in (403, 404):
                raise
            raise ConfigError(f"{SYSTEM}: Asana workspace {self.workspace} "
                              "(DEALFLOW_ASANA_WORKSPACE) not found or not visible to the token"
                              ) from None
        kind = "organization" if workspace.get("is_organization") else "workspace"
        return f"token accepted; {kind} {workspace.get('name')} ({self.workspace})"

    def setup(self) -> list[str]:
        """Nothing to create: the connector's markers live in the notes of what it creates."""
        return []

    def _data(self, response: Any) -> Any:
        """The `data` of an Asana answer."""
        return response.json()["data"]

    def _pages(self, path: str, fields: str) -> Iterator[dict[str, Any]]:
        """Every item of a paginated Asana list."""
        params: dict[str, Any] = {"limit": PAGE, "opt_fields": fields}
        while True:
            answer = self.client.send("GET", path, repeatable=True, params=params).json()
            yield from answer["data"]
            following = answer.get("next_page")
            if not following:
                return
            params = {**params, "offset": following["offset"]}

    def _projects(self) -> Iterator[dict[str, Any]]:
        return self._pages(f"/workspaces/{self.workspace}/projects",
                           "name,notes,created_at,permalink_url")

    def _project(self, gid: str) -> dict[str, Any]:
        project: dict[str, Any] = self._data(self.client.send(
            "GET", f"/projects/{gid}", repeatable=True,
            params={"opt_fields": "name,notes,created_at,permalink_url"}))
        return project

    def _find(self, key: str) -> dict[str, Any] | None:
        """The workspace's project marked with `key`, if the list shows it."""
        return next((p for p in self._projects() if _marks(p.get("notes")).get("key") == key),
                    None)

    def _tasks(self, gid: str, key: str) -> dict[int, dict[str, Any]]:
        """The project's tasks created with `key`, by position (the first of each)."""
        tasks: dict[int, dict[str, Any]] = {}
        for task in self._pages(f"/projects/{gid}/tasks", "name,notes,due_on"):
            marks = _marks(task.get("notes"))
            if marks.get("key") == key and marks.get("position", "").isdigit():
                tasks.setdefault(int(marks["position"]), task)
        return tasks

    def _progress(self, project: dict[str, Any], key: str, began: float) -> Found:
        """The project with the tasks the list shows, asked until all or the lag is over."""
        expected = int(_marks(project.get("notes")).get("tasks", 0))
        return project, self._poll(lambda: self._tasks(project["gid"], key),
                                   lambda tasks: len(tasks) >= expected, began)

    def _poll(self, ask: Callable[[], T], enough: Callable[[T], bool], began: float) -> T:
        """`ask()` until `enough`, or until `lag` seconds after `began` (what a list may lag)."""
        pause = POLL_FIRST
        while True:
            answer = ask()
            left = began + self.lag - time.monotonic()
            if enough(answer) or left <= 0:
                return answer
            self._sleep(min(pause, left))
            pause = min(pause * 2, POLL_MAX)


def _notes(text: str, **marks: object) -> str:
    """Notes: the text for people, then one `dealflow-<mark>: <value>` line per mark."""
    lines = [f"dealflow-{name.replace('_', '-')}: {value}" for name, value in marks.items()]
    return text + "\n\n" + "\n".join(lines)


def _marks(notes: str | None) -> dict[str, str]:
    """The `dealflow-` marks in notes, by name (`due-in-days` as written)."""
    return {name: value.strip() for name, value in _MARK.findall(notes or "")}


def _task(task: dict[str, Any]) -> ProjectTask:
    """The dealflow task an Asana task was created from."""
    marks = _marks(task.get("notes"))
    return ProjectTask(title=task["name"], owner_role=marks.get("owner", ""),
                       due_in_days=int(marks.get("due-in-days", 0)))
