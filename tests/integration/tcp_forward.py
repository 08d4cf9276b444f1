"""A small TCP forwarder: listen on some addresses, relay every connection to one target.

The two-host test (`tests/integration/hosts.py`) runs it in the root network
namespace, listening on the root ends of the hosts' links, so workers inside
the namespaces reach the system Postgres (which listens on 127.0.0.1 only)
over an address, as they would over a network; nothing needs `socat`.

    python tests/integration/tcp_forward.py --listen 10.77.1.1 --listen 10.77.2.1 \
        --port 0 --to 127.0.0.1:5432     # or --to /path/to/.s.PGSQL.5432

Prints one line, `{"port": N}`, once every listener is up (`--port 0`: the
first listener's free port, the others on the same one); runs until SIGTERM.
Standard library only: it runs as a plain script, without the project's imports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import signal
import socket

CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF or an error, then pass the EOF on (half-close)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):  # reset, unreachable, closed under us
        pass


async def _relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                 target: str) -> None:
    """One client connection: open the target's, copy both ways until both ends are done."""
    try:
        if target.startswith("/"):  # a Unix socket (an embedded server's)
            server_reader, server_writer = await asyncio.open_unix_connection(target)
        else:
            host, _, port = target.rpartition(":")
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
    except OSError:
        client_writer.close()
        return
    for writer in (client_writer, server_writer):
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await asyncio.gather(_pump(client_reader, server_writer),
                             _pump(server_reader, client_writer))
    finally:
        for writer in (client_writer, server_writer):
            writer.close()
            with contextlib.suppress(OSError, RuntimeError):
                await writer.wait_closed()


async def _main(addresses: list[str], port: int, target: str) -> None:
    handle = functools.partial(_relay, target=target)
    servers = []
    for address in addresses:
        server = await asyncio.start_server(handle, address, port, reuse_address=True)
        servers.append(server)
        port = port or server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and forward until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", action="append", required=True, help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    parser.add_argument("--to", required=True,
                        help="HOST:PORT to relay to, or the path of a Unix socket")
    args = parser.parse_args(argv)
    asyncio.run(_main(args.listen, args.port, args.to))


if __name__ == "__main__":
    main()
