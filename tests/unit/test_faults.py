import time

import pytest

from agents.systems import SystemUnavailable
from agents.systems.faults import FaultInjector


def test_outage_fails_the_next_n_calls_of_that_system_only() -> None:
    faults = FaultInjector({"esign": 2})
    for _ in range(2):
        with pytest.raises(SystemUnavailable, match="esign: simulated outage") as caught:
            faults.before_call("esign")
        assert caught.value.system == "esign"
        faults.before_call("pm")
    faults.before_call("esign")
    assert faults.failed_calls == {"esign": 2} and faults.remaining("esign") == 0


def test_latency_is_added_to_every_call() -> None:
    faults = FaultInjector(latency_ms=30)
    started = time.perf_counter()
    faults.before_call("crm")
    faults.before_call("crm")
    assert time.perf_counter() - started >= 0.06
