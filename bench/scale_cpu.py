"""The bench's CPU counters from /proc: processes, the Postgres server, the machine.

Used by `bench.scale` (the processes curve): CPU seconds are utime + stime of
`/proc/<pid>/stat`; the machine's busy and stolen time come from `/proc/stat`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def process_cpu(pid: int | str, children: bool = False) -> float:
    """CPU seconds (utime + stime, every thread) of a process; with its reaped children's."""
    fields = proc_stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the machine spent busy (every core), and stolen by the hypervisor."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _, _, irq, softirq, steal = values[:8]  # guest time is inside user
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def machine_busy() -> float:
    """CPU seconds the machine spent busy (every core), from /proc/stat."""
    return machine_cpu()[0]


def server_processes(postmaster: int) -> dict[int, float]:
    """CPU seconds of every process of the Postgres server: the postmaster and its children."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(entry.name)
            if fields is not None and (int(entry.name) == postmaster
                                       or int(fields[1]) == postmaster):
                found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return found


@dataclass
class CpuSnapshot:
    """The CPU counters at one moment."""

    wall: float
    workers: dict[int, float]
    api: float
    client: float
    machine: float
    steal: float
    postgres: dict[int, float]
    postmaster_children: float
    ours: dict[int, float]
    counters: dict[str, int]  # our database's commits; the server's WAL syncs and bytes


def postgres_delta(a: CpuSnapshot, b: CpuSnapshot) -> float:
    """The server's CPU between two snapshots, processes that came and went included.

    A child that exited between them is in the postmaster's cutime + cstime with
    its whole life, so what it had used by `a` comes off.
    """
    total = b.postmaster_children - a.postmaster_children
    for pid, cpu in b.postgres.items():
        total += cpu - a.postgres.get(pid, 0.0)
    total -= sum(cpu for pid, cpu in a.postgres.items() if pid not in b.postgres)
    return total


def ours_delta(a: CpuSnapshot, b: CpuSnapshot) -> float:
    """Our database's backends between two snapshots (those alive at the second)."""
    return sum(cpu - a.ours.get(pid, 0.0) for pid, cpu in b.ours.items())

