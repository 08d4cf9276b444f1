"""The Asana project-tool connector against a local Asana, deals on real Postgres.

Every request the connector makes is checked against Asana's OpenAPI document
(`tests/providers/openapi/asana.json`); what does not fit is in `violations`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from agents.project.templates import PROJECT_TEMPLATES
from agents.systems.asana import AsanaProjects
from agents.systems.http import ProviderRefused, ResponseLost
from dealflow.api import DealService
from state.config import ConfigError, Settings
from tests.helpers import make_deal
from tests.providers.asana import AsanaServer
from tests.providers.connect import attempts, with_asana

TASKS = PROJECT_TEMPLATES["implementation"]
LIST = r"/workspaces/\d+/projects"


@pytest.fixture
def asana() -> Iterator[AsanaServer]:
    """A local Asana workspace."""
    with AsanaServer() as server:
        yield server


def _one_project(server: AsanaServer, deal_id: str) -> dict[str, Any]:
    """The deal's only project at the provider, after checking its tasks are there once."""
    projects = [p for p in server.projects.values() if f"dealflow-deal: {deal_id}\n" in p["notes"]]
    assert len(projects) == 1, projects
    titles = [t["name"] for t in server.tasks_of(projects[0]["gid"])]
    assert sorted(titles) == sorted(t.title for t in TASKS), titles
    return projects[0]


def test_check_reads_the_workspace_and_names_what_is_wrong(asana: AsanaServer) -> None:
    pm = AsanaProjects.from_settings(with_asana(Settings(), asana))
    assert pm.check() == f"token accepted; workspace Delivery ({asana.workspace})"
    assert pm.setup() == []
    elsewhere = AsanaProjects.from_settings(with_asana(Settings(), asana, asana_workspace="999"))
    with pytest.raises(ConfigError, match=r"^pm: Asana workspace 999 \(DEALFLOW_ASANA_WORKSPACE\) "
                                          "not found"):
        elsewhere.check()
    stranger = AsanaProjects.from_settings(with_asana(Settings(), asana,
                                                      asana_token=SecretStr("1/wrong")))
    with pytest.raises(ProviderRefused, match=r"^pm: GET /workspaces/\d+: 401") as refused:
        stranger.check()
    assert refused.value.status == 401
    assert asana.violations == []


def test_the_local_asana_refuses_what_asanas_openapi_document_does_not_allow(
        asana: AsanaServer) -> None:
    auth = {"Authorization": f"Bearer {asana.token}"}
    task = httpx.post(asana.base_url + "/tasks", headers=auth, json={"data": {
        "name": "t", "note": "misspelled", "due_on": "31/12/2026"}})
    assert task.status_code == 400 and "'note'" in task.json()["errors"][0]["message"]
    listed = httpx.get(f"{asana.base_url}/workspaces/{asana.workspace}/projects", headers=auth,
                       params={"limit": "500", "opt_fields": "name,url"})
    assert listed.status_code == 400
    *refused, unknown_field = asana.violations
    assert refused == [
        "POST /tasks: data: Additional properties are not allowed ('note' was unexpected)",
        "POST /tasks: data/due_on: '31/12/2026' is not a 'date'",
        f"GET /workspaces/{asana.workspace}/projects: query parameter 'limit': 500 is greater "
        "than the maximum of 100"]
    assert re.fullmatch(r"GET /workspaces/\d+/projects: query parameter 'opt_fields': 1: 'url' "
                        r"is not one of the \d+ values the document allows", unknown_field)
    assert asana.tasks == {}


def test_a_lost_project_answer_is_found_and_makes_one_project(settings: Settings,
                                                              asana: AsanaServer) -> None:
    asana.fail("POST", "/projects", "drop")
    with DealService(with_asana(settings, asana)) as service:
        assert service.start(make_deal("AS-LOST")).status == "waiting_signature"
        assert attempts(service.data.effects.effects("AS-LOST"), "pm.create_project") == [2]
        (record,) = service.records("AS-LOST")["projects"]
        assert len(record["tasks"]) == len(TASKS) and record["branch"] == "current"
    assert record["project_id"] == _one_project(asana, "AS-LOST")["gid"]
    assert len(asana.requests("POST", "/projects")) == 1
    assert asana.violations == []


def test_a_lost_task_answer_creates_each_task_once(settings: Settings,
                                                   asana: AsanaServer) -> None:
    asana.fail("POST", "/tasks", "drop")  # the first task is made, its answer lost
    with DealService(with_asana(settings, asana)) as service:
        assert service.start(make_deal("AS-TASK")).status == "waiting_signature"
    _one_project(asana, "AS-TASK")
    assert len(asana.requests("POST", "/tasks")) == len(TASKS)
    assert asana.violations == []


def test_list_lag_and_a_lost_answer_make_no_duplicate(settings: Settings) -> None:
    with AsanaServer(project_lag=1.0, task_lag=1.0) as lagging:
        lagging.fail("POST", "/projects", "drop")
        with DealService(with_asana(settings, lagging, provider_lag_seconds=3)) as service:
            assert service.start(make_deal("AS-LAG")).status == "waiting_signature"
        _one_project(lagging, "AS-LAG")
        assert len(lagging.requests("GET", LIST)) > 1  # asked again while the list lagged
        assert len(lagging.requests("POST", "/projects")) == 1
        assert lagging.violations == []


def test_429_and_503_bursts_complete_without_spending_attempts(settings: Settings,
                                                               asana: AsanaServer) -> None:
    asana.fail("POST", "/projects", "429", retry_after="1")
    asana.fail("POST", "/projects", "503", times=2)
    asana.fail("POST", "/tasks", "429", retry_after="1")
    with DealService(with_asana(settings, asana)) as service:
        report = service.start(make_deal("AS-BUSY"))
        assert report.status == "waiting_signature" and report.context["failures"] == []
        assert attempts(service.data.effects.effects("AS-BUSY"), "pm.create_project") == [1]
    _one_project(asana, "AS-BUSY")
    assert [status for request, status in asana.log if request.path == "/projects"] == \
        [429, 503, 503, 201]


def test_asana_down_sends_the_step_to_review_then_retry_completes(settings: Settings,
                                                                  asana: AsanaServer) -> None:
    asana.down()
    with DealService(with_asana(settings, asana, provider_retries=1)) as service:
        report = service.start(make_deal("AS-DOWN"))
        assert report.status == "waiting_review"
        failure = report.context["failures"][0]
        assert failure["step"] == "create_project" and failure["system"] == "pm"
        assert failure["attempts"] == settings.max_attempts
        assert failure["error"].startswith("pm: ") and "\n" not in failure["error"]
        assert failure["error"].endswith(": 503 asana is down")
        assert asana.projects == {}
        asana.up()
        assert service.resume("AS-DOWN", {"decision": "retry"}).status == "waiting_signature"
    _one_project(asana, "AS-DOWN")


def test_a_new_process_finishes_the_tasks_a_crash_left_without_repeating_any(
        monkeypatch: pytest.MonkeyPatch) -> None:
    key = "AS-CRASH:create_project:0123456789abcdef"
    with AsanaServer(project_lag=0.5, task_lag=0.5) as server:
        settings = with_asana(Settings(), server, provider_lag_seconds=1.5)
        first = AsanaProjects.from_settings(settings)
        send, posts = first.client.send, []

        def crash_after_third_task(method: str, path: str, **kw: Any) -> Any:
            answer = send(method, path, **kw)
            posts.append(path)
            if posts.count("/tasks") == 3:
                raise ResponseLost("pm", "POST /tasks: the process died here")
            return answer

        monkeypatch.setattr(first.client, "send", crash_after_third_task)
        with pytest.raises(ResponseLost):
            first.create_project("AS-CRASH", "Acme", "implementation", TASKS, key=key)

        second = AsanaProjects.from_settings(settings)  # another process: remembers nothing
        assert second.lookup(key) is None  # found, but two tasks short
        project = second.create_project("AS-CRASH", "Acme", "implementation", TASKS, key=key)
        made = _one_project(server, "AS-CRASH")
        assert project.project_id == made["gid"] and project.tasks == TASKS
        assert len(server.requests("POST", "/tasks")) == len(TASKS)
        assert AsanaProjects.from_settings(settings).lookup(key) == project
        assert server.violations == []
