"""Two "hosts" on this one machine: network namespaces, a link each, Postgres over an address.

`two_hosts(database_url)` builds, and always takes down again:

- per host a network namespace (`ip netns add`) and a veth pair: the root end
  `10.77.K.1`, the host's end `10.77.K.2` (K differs per host and per test run);
- a TCP forwarder (`tcp_forward.py`, standard library only) in the root
  namespace, listening on the root ends and relaying to the test's Postgres
  (the system server listens on 127.0.0.1 only and is not reconfigured);
- `Host.start(...)`: `dealflow <args>` inside the host's namespace, under a
  hostname of its own (a UTS namespace: `unshare --uts`), so its leases name
  `dealflow-host-a` as a process on another machine would; `DATABASE_URL` is
  the test database reached through the host's link;
- `Host.cut()` / `Host.restore()`: the host's link down and its processes
  frozen (SIGSTOP, not killed); then the link up and the processes resumed.

`unavailable()` says why this cannot run here (not root, no `ip`, namespaces
refused); the test skips with that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from state.leases import process_alive
from tests.conftest import cli_env, dealflow_executable
from tests.integration.service_procs import SECRET

FORWARDER = Path(__file__).with_name("tcp_forward.py")
PREFIX = "dfh"  # namespaces and links: dfh<test pid><host>[o|i]
SUBNET = "10.77"
# Set the hostname inside the new UTS namespace, then become the command (same pid).
_AS_HOST = ("import os, socket, sys; socket.sethostname(sys.argv[1]);"
            " os.execv(sys.argv[2], sys.argv[2:])")


class SetupRefused(RuntimeError):
    """The machine does not let this process build namespaces or links."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                          check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "the two-host test needs root (ip netns add, veth links)"
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"the two-host test needs `{tool}` (Debian package {package})"
    return None


@dataclass
class Host:
    """One simulated machine: a network namespace, its link, its hostname, its processes."""

    name: str
    netns: str
    hostname: str
    outer: str  # the link's end in the root namespace
    inner: str  # the link's end inside the host
    gateway: str  # the root end's address: where the host reaches Postgres
    address: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: dict[int, Path] = field(default_factory=dict)
    database_url: str = ""  # set by `two_hosts`: the test database through this link

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """`dealflow <args>` on this host (its own session: `cut` freezes all of it)."""
        handle, name = tempfile.mkstemp(prefix=f"dealflow-{self.hostname}-", suffix=".log")
        os.close(handle)
        command = ["ip", "netns", "exec", self.netns, "unshare", "--uts", "--",
                   sys.executable, "-c", _AS_HOST, self.hostname, dealflow_executable(), *args]
        with open(name, "a") as log:
            proc = subprocess.Popen(
                command, env=cli_env(self.database_url, DEALFLOW_WEBHOOK_SECRET=SECRET, **env),
                stdout=subprocess.DEVNULL, stderr=log, text=True, start_new_session=True)
        self.procs.append(proc)
        self.logs[proc.pid] = Path(name)
        return proc

    def log(self) -> str:
        """Everything this host's processes wrote to standard error so far."""
        return "".join(f"--- {self.hostname} pid {pid}\n{path.read_text(errors='replace')}"
                       for pid, path in self.logs.items() if path.exists())

    def cut(self) -> None:
        """Freeze every process of the host (SIGSTOP), then take its link down."""
        self._signal(signal.SIGSTOP)
        _ip("-n", self.netns, "link", "set", self.inner, "down")

    def restore(self) -> None:
        """Bring the link up again, then let the processes go on (SIGCONT)."""
        _ip("-n", self.netns, "link", "set", self.inner, "up")
        self._signal(signal.SIGCONT)

    def alive(self) -> list[subprocess.Popen[str]]:
        """The host's processes still running."""
        return [proc for proc in self.procs if proc.poll() is None]

    def _signal(self, signum: int) -> None:
        for proc in self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signum)

    def stop(self) -> None:
        """End every process of the host: resumed, SIGTERM, SIGKILL after 20 s."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    def remove_logs(self) -> None:
        """Delete the log files (after a passing test)."""
        for path in self.logs.values():
            path.unlink(missing_ok=True)


@dataclass
class Network:
    """The hosts and the forwarder that lets them reach Postgres."""

    hosts: dict[str, Host]
    forwarder: subprocess.Popen[str] | None = None
    port: int = 0


def _remove_leftovers() -> None:
    """Namespaces and links an earlier run (its pid gone) left behind."""
    listing = _ip("netns", "list", check=False).stdout
    for ns in re.findall(rf"^({PREFIX}(\d+)[a-z])\b", listing, re.M):
        if not process_alive(int(ns[1])):  # its test was killed: end what it left running
            for pid in _ip("netns", "pids", ns[0], check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", ns[0], check=False)
    links = _ip("-o", "link", "show", check=False).stdout
    for link in re.findall(rf"^\d+: ({PREFIX}(\d+)[a-z]o)@", links, re.M):
        if not process_alive(int(link[1])):
            _ip("link", "del", link[0], check=False)


def _subnets(count: int) -> list[int]:
    """Third octets of `SUBNET` that no route of the root namespace uses yet."""
    routes = _ip("route", "show", check=False).stdout
    start = (os.getpid() % 100) * 2 + 20
    free = [k for k in range(start, 250) if f"{SUBNET}.{k}." not in routes]
    free += [k for k in range(1, start) if f"{SUBNET}.{k}." not in routes]
    if len(free) < count:
        raise RuntimeError(f"no free {SUBNET}.K.0/24 subnets left")
    return free[:count]


def _build(host: Host) -> None:
    refused = _ip("netns", "add", host.netns, check=False)
    if refused.returncode != 0:
        raise SetupRefused(f"ip netns add is refused here: {refused.stderr.strip()}")
    link = _ip("link", "add", host.outer, "type", "veth", "peer", "name", host.inner,
               "netns", host.netns, check=False)
    if link.returncode != 0:
        raise SetupRefused(f"a veth link cannot be made here: {link.stderr.strip()}")
    _ip("addr", "add", f"{host.gateway}/24", "dev", host.outer)
    _ip("link", "set", host.outer, "up")
    _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", host.inner)
    _ip("-n", host.netns, "link", "set", host.inner, "up")
    _ip("-n", host.netns, "link", "set", "lo", "up")


def _teardown(host: Host) -> None:
    _ip("-n", host.netns, "link", "set", host.inner, "up", check=False)  # if left cut off
    host.stop()
    _ip("netns", "del", host.netns, check=False)  # takes the host's end, and so the pair
    if _ip("link", "show", host.outer, check=False).returncode == 0:
        _ip("link", "del", host.outer, check=False)


def _forward(database_url: str, gateways: list[str]) -> tuple[subprocess.Popen[str], int]:
    """Start the forwarder on the gateways, relaying to the database's server."""
    params = conninfo_to_dict(database_url)
    host, port = str(params.get("host") or "127.0.0.1"), str(params.get("port") or 5432)
    target = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else f"{host}:{port}"
    proc = subprocess.Popen(
        [sys.executable, str(FORWARDER), *[a for g in gateways for a in ("--listen", g)],
         "--port", "0", "--to", target], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the forwarder prints it once it listens (or exits)
    if not line:
        raise RuntimeError(f"the TCP forwarder did not start (exit {proc.wait(timeout=10)})")
    return proc, int(json.loads(line)["port"])


@contextlib.contextmanager
def two_hosts(database_url: str, names: tuple[str, ...] = ("a", "b")) -> Iterator[Network]:
    """Hosts named `names`, each with its link and a URL of the test database through it.

    Raises `SetupRefused` when namespaces or links are not allowed here. Every
    process started on a host, the forwarder, the namespaces and the links are
    removed on the way out, whatever happened.
    """
    _remove_leftovers()
    pid = os.getpid()
    octets = _subnets(len(names))
    network = Network({name: Host(
        name=name, netns=f"{PREFIX}{pid}{name}", hostname=f"dealflow-host-{name}",
        outer=f"{PREFIX}{pid}{name}o", inner=f"{PREFIX}{pid}{name}i",
        gateway=f"{SUBNET}.{k}.1", address=f"{SUBNET}.{k}.2")
        for name, k in zip(names, octets, strict=True)})
    try:
        for host in network.hosts.values():
            _build(host)
        network.forwarder, network.port = _forward(
            database_url, [h.gateway for h in network.hosts.values()])
        for host in network.hosts.values():
            host.database_url = make_conninfo(database_url, host=host.gateway,
                                              port=str(network.port))
        yield network
    finally:
        for host in network.hosts.values():
            _teardown(host)
        if network.forwarder is not None:
            network.forwarder.terminate()
            try:
                network.forwarder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                network.forwarder.kill()
                network.forwarder.wait()
