"""A local Asana: workspaces, projects and tasks, with Asana's shapes and a lagging list.

Bodies go both ways wrapped as `{"data": ...}`; errors are `{"errors": [{"message"}]}`.
A Bearer personal access token is needed (401 otherwise). Lists are paginated
(`limit`, `offset`, `next_page`) and honour `opt_fields` (gid, name and
resource_type otherwise, as Asana's compact records). `project_lag` and
`task_lag` make the workspace's project list and a project's task list leave out
what was created less than that many seconds ago, as Asana's lists may lag
behind writes; reading one project by its gid does not lag. Every request must
also fit Asana's OpenAPI document (the part in `tests/providers/openapi/asana.json`):
a misfit is answered 400 and kept in `violations`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.providers.server import Answer, ProviderServer, Request
from tests.providers.swagger import OpenAPIDocument

PROJECT_FIELDS = {"name", "notes", "workspace", "team", "color", "public", "privacy_setting",
                  "due_on", "start_on", "archived"}
TASK_FIELDS = {"name", "notes", "projects", "workspace", "due_on", "due_at", "assignee",
               "completed", "parent"}


def _error(status: int, message: str) -> Answer:
    return Answer(status, {"errors": [{"message": message, "help": "see developers.asana.com"}]})


class AsanaServer(ProviderServer):
    """Asana's projects and tasks endpoints for one workspace, on a local port."""

    openapi = OpenAPIDocument(Path(__file__).with_name("openapi") / "asana.json")

    def __init__(self, token: str = "1/local-asana-pat", workspace: str = "1200000000000001",
                 *, project_lag: float = 0.0, task_lag: float = 0.0) -> None:
        """A workspace `workspace` that `token` can see; the lists lag as given."""
        super().__init__("asana")
        self.token, self.workspace = token, workspace
        self.project_lag, self.task_lag = project_lag, task_lag
        self.projects: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self._created: dict[str, float] = {}  # gid → monotonic time of its creation
        self._next_gid = 1_200_000_000_100_001
        self.route("GET", r"/users/me", self._me)
        self.route("GET", r"/workspaces/(?P<ws>\d+)", self._workspace)
        self.route("GET", r"/workspaces/(?P<ws>\d+)/projects", self._list_projects)
        self.route("POST", r"/projects", self._create_project)
        self.route("GET", r"/projects/(?P<gid>\d+)", self._read_project)
        self.route("GET", r"/projects/(?P<gid>\d+)/tasks", self._list_tasks)
        self.route("POST", r"/tasks", self._create_task)

    def authorized(self, request: Request) -> bool:
        """A personal access token as `Authorization: Bearer`."""
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def misfit(self, problem: str) -> Answer:
        """Asana's 400 for a request its OpenAPI document does not allow."""
        return _error(400, problem)

    def tasks_of(self, project_gid: str) -> list[dict[str, Any]]:
        """Every task of the project, lag or not (for the tests' counts)."""
        with self.lock:
            return [t for t in self.tasks.values()
                    if any(p["gid"] == project_gid for p in t["projects"])]

    def _gid(self) -> str:
        gid, self._next_gid = str(self._next_gid), self._next_gid + 1
        return gid

    def _visible(self, gid: str, lag: float) -> bool:
        return time.monotonic() - self._created[gid] >= lag

    def _me(self, request: Request, match: re.Match[str]) -> Answer:
        return Answer(200, {"data": {"gid": "1100000000000001", "name": "dealflow bot",
                                     "resource_type": "user", "workspaces": [
                                         {"gid": self.workspace, "name": "Delivery"}]}})

    def _workspace(self, request: Request, match: re.Match[str]) -> Answer:
        if match["ws"] != self.workspace:
            return _error(404, "workspace: Unknown object: " + match["ws"])
        return Answer(200, {"data": _shown({"gid": self.workspace, "name": "Delivery",
                                            "resource_type": "workspace",
                                            "is_organization": False}, request)})

    def _body(self, request: Request, allowed: set[str]) -> dict[str, Any] | Answer:
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            return _error(400, "Request data must be a JSON object with a \"data\" field")
        unknown = sorted(set(body["data"]) - allowed)
        if unknown:
            return _error(400, f"{unknown[0]}: Unknown field")
        data: dict[str, Any] = body["data"]
        return data

    def _create_project(self, request: Request, match: re.Match[str]) -> Answer:
        data = self._body(request, PROJECT_FIELDS)
        if isinstance(data, Answer):
            return data
        if data.get("workspace") != self.workspace:
            return _error(400, "workspace: Missing input" if not data.get("workspace")
                          else f"workspace: Not a recognized ID: {data['workspace']}")
        if not data.get("name"):
            return _error(400, "name: Missing input")
        gid = self._gid()
        self.projects[gid] = {
            "gid": gid, "resource_type": "project", "name": data["name"],
            "notes": data.get("notes", ""), "archived": False,
            "workspace": {"gid": self.workspace, "resource_type": "workspace"},
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "permalink_url": f"https://app.asana.com/0/{gid}/{gid}",
        }
        self._created[gid] = time.monotonic()
        return Answer(201, {"data": self.projects[gid]})

    def _read_project(self, request: Request, match: re.Match[str]) -> Answer:
        project = self.projects.get(match["gid"])
        if project is None:
            return _error(404, f"project: Unknown object: {match['gid']}")
        return Answer(200, {"data": _shown(project, request)})

    def _list_projects(self, request: Request, match: re.Match[str]) -> Answer:
        if match["ws"] != self.workspace:
            return _error(404, "workspace: Unknown object: " + match["ws"])
        listed = [p for gid, p in self.projects.items() if self._visible(gid, self.project_lag)]
        return _page(listed, request, f"/workspaces/{self.workspace}/projects")

    def _create_task(self, request: Request, match: re.Match[str]) -> Answer:
        data = self._body(request, TASK_FIELDS)
        if isinstance(data, Answer):
            return data
        projects = data.get("projects") or []
        if not projects and not data.get("workspace"):
            return _error(400, "workspace: Missing input")
        for gid in projects:
            if gid not in self.projects:
                return _error(400, f"projects: Not a recognized ID: {gid}")
        due_on = data.get("due_on")
        if due_on is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(due_on)):
            return _error(400, f"due_on: Invalid date: {due_on}")
        gid = self._gid()
        self.tasks[gid] = {
            "gid": gid, "resource_type": "task", "name": data.get("name", ""),
            "notes": data.get("notes", ""), "due_on": due_on, "completed": False,
            "projects": [{"gid": p, "resource_type": "project"} for p in projects],
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        self._created[gid] = time.monotonic()
        return Answer(201, {"data": self.tasks[gid]})

    def _list_tasks(self, request: Request, match: re.Match[str]) -> Answer:
        if match["gid"] not in self.projects:
            return _error(404, f"project: Unknown object: {match['gid']}")
        listed = [t for t in self.tasks_of(match["gid"])
                  if self._visible(t["gid"], self.task_lag)]
        return _page(listed, request, f"/projects/{match['gid']}/tasks")


def _shown(item: dict[str, Any], request: Request) -> dict[str, Any]:
    """The item with the fields `opt_fields` asks for (a compact record without it)."""
    wanted = [f for f in request.query.get("opt_fields", "").split(",") if f]
    fields = {"gid", "resource_type", *(wanted or ["name"])}
    return {k: v for k, v in item.items() if k in fields}


def _page(items: list[dict[str, Any]], request: Request, path: str) -> Answer:
    """One page of a list: `limit` (1–100) items from `offset`, and `next_page`."""
    try:
        limit = int(request.query.get("limit", "100"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        return _error(400, "limit/offset: Invalid value")
    if not 1 <= limit <= 100:
        return _error(400, "limit: Must be between 1 and 100")
    page = items[offset:offset + limit]
    following = offset + limit
    next_page = {"offset": str(following), "path": f"{path}?limit={limit}&offset={following}",
                 "uri": f"https://app.asana.com/api/1.0{path}?offset={following}"} \
        if following < len(items) else None
    return Answer(200, {"data": [_shown(i, request) for i in page], "next_page": next_page})
