"""Scale out: workers on two hosts; one host is cut off mid-deal and comes back stale.

Two "hosts" on this machine (`tests.integration.hosts`: a network namespace,
a link and a hostname each) run `dealflow worker`, reaching the test's Postgres
over their links; the API runs in the root namespace. Host A takes three deals
and works on them slowly (every sandbox call takes 6 s there), host B takes
three of its own. Then host A is cut off: its link goes down and its processes
are frozen (SIGSTOP), in the middle of its deals, leases held. Within the
documented bound (the lease expiry, the stalled-worker limit and the sweep) its
deals move on on host B. Then host A comes back (link up, SIGCONT): its stale
workers wake in the middle of their steps and are fenced out (their writes
refused, `LeaseLost`), nothing is done twice, and every deal ends completed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from dealflow.api import DealService, thread_id_for
from state.leases import Holder, holder
from tests.integration.fencing import checkpoint_forks, performed_twice, wait_until
from tests.integration.hosts import Host, Network, SetupRefused, two_hosts, unavailable
from tests.integration.service_procs import Api, log_tail, webhook

pytestmark = pytest.mark.scale  # make test-scale (minutes of worker processes)

LEASE_SECONDS = 3
STALLED_SECONDS = 5
SWEEP_SECONDS = 5  # dealflow.service.jobs.SWEEP_EVERY
FETCH_SECONDS = 1  # dealflow.service.run.worker_options: fetch_job_polling_interval
# the documented bound on a loaded machine: lease/stall limit, one sweep, a fetch, and slack
TAKEOVER_BOUND = max(LEASE_SECONDS, STALLED_SECONDS) + SWEEP_SECONDS + FETCH_SECONDS + 15
IDLE_IN_TRANSACTION_SECONDS = 30  # state.database: a frozen open transaction ends after this
COMMON = {"DEALFLOW_LEASE_SECONDS": str(LEASE_SECONDS),
          "DEALFLOW_WORKER_STALLED_SECONDS": str(STALLED_SECONDS),
          "DEALFLOW_MAX_ATTEMPTS": "6"}
A_ENV = {**COMMON, "DEALFLOW_SANDBOX_LATENCY_MS": "6000"}  # A's deals are long under way
B_ENV = {**COMMON, "DEALFLOW_SANDBOX_LATENCY_MS": "500"}
A_DEALS = ["TH-A1", "TH-A2", "TH-A3"]
B_DEALS = ["TH-B1", "TH-B2", "TH-B3"]
RECORDS = ("crm", "projects", "contracts", "envelopes", "invoices")


def _deal(deal_id: str) -> dict[str, Any]:
    return {"deal_id": deal_id, "client": f"Client {deal_id}", "value": "9000",
            "lead": {"company_size": 300, "engagement": 80, "budget": "20000"}}


def _lease(service: DealService, deal_id: str) -> Holder | None:
    return holder(service.pool, thread_id_for(deal_id))


def _held_by(service: DealService, deal_id: str, host: Host) -> bool:
    found = _lease(service, deal_id)
    return found is not None and found.unexpired and found.host == host.hostname


def _worked_on(service: DealService, deal_id: str, host: Host) -> bool:
    """Whether the host holds or held the deal's lease (its run may be over)."""
    found = _lease(service, deal_id)
    return found is not None and found.host == host.hostname


def _registry_status(service: DealService, deal_id: str) -> str:
    with service.pool.connection() as conn:
        row = conn.execute("SELECT status FROM dealflow_deals WHERE deal_id = %s",
                           (deal_id,)).fetchone()
    return str(row["status"]) if row is not None else "unknown"


def _in_flight(service: DealService, deal_id: str) -> bool:
    """Whether a step after the first has claimed its effect and waits for its system."""
    with service.pool.connection() as conn:
        return conn.execute("SELECT 1 FROM dealflow_effects WHERE deal_id = %s AND status ="
                            " 'claimed' AND step <> 'qualify_lead'", (deal_id,)).fetchone() \
            is not None


def _jobs(service: DealService, deal_ids: list[str]) -> list[tuple[int, str, str, int]]:
    """The deals' start jobs: id, deal, procrastinate's status, attempts."""
    threads = {thread_id_for(d): d for d in deal_ids}
    with service.pool.connection() as conn:
        rows = conn.execute("SELECT id, args->>'thread_id' AS thread, status, attempts FROM"
                            " procrastinate_jobs WHERE args->>'action' = 'start' AND"
                            " args->>'thread_id' = ANY(%s) ORDER BY id",
                            (list(threads),)).fetchall()
    return [(r["id"], threads[r["thread"]], r["status"], r["attempts"]) for r in rows]


def _open_transactions(service: DealService, host: Host) -> int:
    """Backends of the host's processes inside a transaction (their row locks stay held)."""
    names = [f"dealflow-{proc.pid}" for proc in host.procs]
    with service.pool.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name"
                           " = ANY(%s) AND state LIKE 'idle in transaction%%'",
                           (names,)).fetchone()
    return int(row["n"]) if row is not None else 0


def _ledger(service: DealService, deal_id: str) -> list[dict[str, Any]]:
    with service.pool.connection() as conn:
        return [dict(r) for r in conn.execute(
            "SELECT step, effect, status, attempts FROM dealflow_effects WHERE deal_id = %s"
            " ORDER BY step, effect", (deal_id,)).fetchall()]


def _record_counts(service: DealService, deal_id: str) -> dict[str, int]:
    return {label: len(records) for label, records in service.records(deal_id).items()}


def _finish(api: Api, deals: list[str]) -> None:
    """Send each deal's signature.completed, as the e-sign provider would."""
    for deal_id in deals:
        envelope = api.get(f"/v1/deals/{deal_id}").json()["pending"]["envelope_id"]
        sent = webhook(api, {"event_id": f"evt-{deal_id}", "envelope_id": envelope,
                             "event": "signature.completed"})
        assert sent.status_code == 202, sent.text


@pytest.fixture
def network(database_url: str) -> Iterator[Network]:
    """Hosts a and b (skipped where namespaces are not allowed); taken down after."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    try:
        with two_hosts(database_url) as built:
            yield built
            for host in built.hosts.values():
                host.remove_logs()  # on a failure the test printed them first
    except SetupRefused as exc:
        pytest.skip(str(exc))


def test_two_hosts_one_cut_off_mid_deal_is_fenced_and_nothing_doubles(
        network: Network, api_factory: Any, service: DealService) -> None:
    a, b = network.hosts["a"], network.hosts["b"]
    try:
        _scenario(api_factory, service, a, b)
    except BaseException:
        print(a.log()[-6000:], b.log()[-6000:], sep="\n")
        raise


def _scenario(api_factory: Any, service: DealService, a: Host, b: Host) -> None:
    began = time.monotonic()

    def at() -> float:
        return time.monotonic() - began

    api = api_factory(workers=0)  # the API node, in the root namespace; no workers there
    a.start("worker", "--concurrency", "3", **A_ENV)
    for deal_id in A_DEALS:
        assert api.post("/v1/deals", _deal(deal_id)).status_code == 202
    wait_until(lambda: all(_held_by(service, d, a) for d in A_DEALS), 150,
               f"host A to take its deals:\n{a.log()[-3000:]}")
    print(f"t={at():5.1f}s host A holds {', '.join(A_DEALS)}")

    b.start("worker", "--concurrency", "6", **B_ENV)
    for deal_id in B_DEALS:
        assert api.post("/v1/deals", _deal(deal_id)).status_code == 202
    wait_until(lambda: any(_worked_on(service, d, b) for d in B_DEALS), 150,
               f"host B to take a deal:\n{b.log()[-3000:]}")
    on_b = [d for d in B_DEALS if _worked_on(service, d, b)]
    print(f"t={at():5.1f}s host B works (on {', '.join(on_b)})")

    # the cut: A's deals are mid-run, past their first step: each waits for a system in
    # a parallel branch (a call takes 6 s there), its effect claimed, A holding the lease
    wait_until(lambda: all(_in_flight(service, d) for d in A_DEALS), 150,
               f"host A's deals to reach their parallel steps:\n{a.log()[-3000:]}")
    mid_run = [d for d in A_DEALS
               if _held_by(service, d, a) and _registry_status(service, d) == "running"]
    assert mid_run == A_DEALS, {d: (_lease(service, d), _registry_status(service, d))
                                for d in A_DEALS}
    tokens = {d: _lease(service, d).token for d in A_DEALS}  # type: ignore[union-attr]
    a.cut()
    cut = time.monotonic()
    frozen_in_transaction = _open_transactions(service, a)
    print(f"t={at():5.1f}s CUT host A (link down, SIGSTOP) holding leases {tokens};"
          f" its backends inside a transaction: {frozen_in_transaction}")
    bound = TAKEOVER_BOUND + (IDLE_IN_TRANSACTION_SECONDS if frozen_in_transaction else 0)

    taken: dict[str, float] = {}
    waiting: dict[str, float] = {}

    def moved_on() -> bool:
        for deal_id in A_DEALS:
            lease = _lease(service, deal_id)
            if deal_id not in taken and lease is not None and lease.host == b.hostname:
                taken[deal_id] = time.monotonic() - cut
            if deal_id not in waiting and _registry_status(service, deal_id) \
                    == "waiting_signature":
                waiting[deal_id] = time.monotonic() - cut
        return len(waiting) == len(A_DEALS) and len(taken) == len(A_DEALS)

    wait_until(moved_on, bound + 90, f"host B to move host A's deals on (taken {taken},"
               f" waiting {waiting}):\n{b.log()[-3000:]}")
    for deal_id in A_DEALS:
        print(f"  {deal_id}: lease taken by host B at cut+{taken[deal_id]:.1f}s,"
              f" waiting_signature at cut+{waiting[deal_id]:.1f}s")
    assert all(a.alive()), "host A's processes were only frozen"
    wait_until(lambda: all(_registry_status(service, d) == "waiting_signature"
                           for d in B_DEALS), 120, "host B's own deals")

    # host A comes back: its workers wake mid-step, stale; every write they try is refused
    a.restore()
    restored = time.monotonic()
    print(f"t={at():5.1f}s RESTORE host A (link up, SIGCONT), {restored - cut:.1f}s after the cut")

    def fenced() -> list[str]:
        log = a.log()
        return [d for d in A_DEALS if f"thread {thread_id_for(d)}: lease {tokens[d]} was taken"
                f" over by {b.hostname}" in log]

    wait_until(lambda: fenced() == A_DEALS, 120, f"host A's fenced writes:\n{a.log()[-4000:]}")
    print(f"t={at():5.1f}s host A's stale writes refused for {', '.join(fenced())}"
          f" ({time.monotonic() - restored:.1f}s after the restore)")
    refusals = [line for line in a.log().splitlines() if "was taken over by" in line]
    print("  e.g. " + refusals[0].strip()[:300])

    _finish(api, A_DEALS + B_DEALS)
    wait_until(lambda: all(api.status(d) == "completed" for d in A_DEALS + B_DEALS), 150,
               f"every deal to complete:\n{a.log()[-2000:]}\n{b.log()[-2000:]}")
    print(f"t={at():5.1f}s every deal completed")

    deals = A_DEALS + B_DEALS
    duplicates = sum(max(0, n - 1) for d in deals for n in _record_counts(service, d).values())
    duplicates += sum(n - 1 for d in deals for n in performed_twice(service.pool, d).values())
    print(f"the two-host test: {len(deals)} deals completed, {duplicates} duplicate effects,"
          f" the stale host fenced on {len(fenced())} of its {len(A_DEALS)} threads")
    for deal_id in deals:
        assert _record_counts(service, deal_id) == {r: 1 for r in RECORDS}, deal_id
        assert performed_twice(service.pool, deal_id) == {}, deal_id
        ledger = _ledger(service, deal_id)
        assert [row["status"] for row in ledger] == ["performed"] * len(ledger), ledger
        assert len({(row["step"], row["effect"]) for row in ledger}) == len(ledger), ledger
        assert checkpoint_forks(service.pool, thread_id_for(deal_id)) == 0, deal_id
        assert service.status(deal_id).status == "completed"
    for deal_id in A_DEALS:  # a step A froze in was attempted again, once, by B
        attempts = {row["step"]: row["attempts"] for row in _ledger(service, deal_id)}
        print(f"  {deal_id} ledger attempts per step: {attempts}")
    print(f"  host A's start jobs (id, deal, status, attempts): {_jobs(service, A_DEALS)}")
    assert all(a.alive()), f"host A's workers died:\n{a.log()[-3000:]}"
    assert all(b.alive()), f"host B's workers died:\n{b.log()[-3000:]}"
    assert api.proc.poll() is None, log_tail(api.proc)
    for deal_id in A_DEALS:
        assert taken[deal_id] <= bound, (deal_id, taken[deal_id], bound)
