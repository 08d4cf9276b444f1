from collections.abc import Iterator
from typing import Any

import pytest

from dealflow.api import DealService
from tests.integration.service_procs import api_factory_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def api_factory(service: DealService, database_url: str) -> Iterator[Any]:
    """Start `dealflow serve` (see `tests.integration.service_procs`); stopped after."""
    yield from api_factory_for(service, database_url)
