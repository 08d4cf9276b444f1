"""Every request body is capped (issue 28, defect 5), on a real `dealflow serve`.

The cap is the default, 1 MiB. Raw sockets send what a client (or an attacker)
would: a 64 MiB `Content-Length` with only the first bytes behind it, or a
chunked body that never ends, and read the answer while the body is unfinished,
which shows the server answered without reading it all.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.integration.service_procs import Api, webhook

CAP = 1024 * 1024
HOOK = "/v1/webhooks/esign"
FORM = "application/x-www-form-urlencoded"


def _unfinished_post(api: Api, path: str, headers: dict[str, str], body: bytes,
                     chunked: bool = False) -> tuple[int, dict[str, Any], float]:
    """Send a POST whose body never ends; its status, JSON answer and seconds to answer."""
    url = urlsplit(api.base)
    head = f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    if chunked:  # 64 KiB chunks, and never the last (empty) one
        piece = 64 * 1024
        body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + piece]), body[i:i + piece])
                        for i in range(0, len(body), piece))
    started = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)  # a server still waiting for the body times out here
            if not data:
                break
            answer += data
    elapsed = time.monotonic() - started
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1]), elapsed


def test_bodies_over_the_cap_are_refused_unread(api_factory: Any) -> None:
    api: Api = api_factory(workers=0)
    declared = {"Content-Type": "application/json", "Content-Length": str(64 * 1024 * 1024),
                "X-Dealflow-Signature": "sha256=" + "0" * 64}
    status, answer, took = _unfinished_post(api, HOOK, declared, b"{" + b" " * 1023)
    assert status == 413, answer
    assert answer == {"error": f"the request body is over the limit of {CAP} bytes"}
    chunked = {"Content-Type": "application/json", "Transfer-Encoding": "chunked",
               "X-Dealflow-Signature": "sha256=" + "0" * 64}
    status, answer, streamed = _unfinished_post(api, HOOK, chunked, b" " * (CAP + 1),
                                                chunked=True)
    assert status == 413 and "over the limit" in answer["error"], answer
    began = time.monotonic()
    whole = httpx.post(api.base + HOOK, content=b" " * (64 * 1024 * 1024), timeout=60,
                       headers={"Content-Type": "application/json"})
    assert whole.status_code == 413  # a client that sends it all is told, too
    print(f"\n64 MiB declared to the webhook: 413 after {took:.2f} s with 1 KiB sent; "
          f"an endless chunked body: 413 after {streamed:.2f} s at 1 MiB + 1 byte; "
          f"64 MiB sent by httpx: 413 after {time.monotonic() - began:.2f} s")


def test_the_inbox_forms_are_capped_too(api_factory: Any) -> None:
    api: Api = api_factory(workers=0)
    large = httpx.post(api.base + "/inbox/signin", timeout=60,
                       data={"token": "t" * CAP, "csrf": "x"})
    assert large.status_code == 413 and "over the limit" in large.json()["error"]
    status, answer, _ = _unfinished_post(api, "/inbox/signin", {
        "Content-Type": FORM, "Transfer-Encoding": "chunked"}, b"token=" + b"t" * CAP,
        chunked=True)
    assert status == 413 and "over the limit" in answer["error"], answer
    small = httpx.post(api.base + "/inbox/signin", data={"token": "t", "csrf": "x"},
                       timeout=60)
    assert small.status_code == 403  # read and answered as before: no sign-in cookie


def test_requests_under_the_cap_work_as_before(api_factory: Any) -> None:
    api: Api = api_factory(workers=0)
    unknown = webhook(api, {"event_id": "evt-1", "envelope_id": "ENV-NOPE",
                            "event": "signature.completed", "pad": "x" * (CAP - 1024)})
    assert unknown.status_code == 404 and "no envelope" in unknown.json()["error"]
    started = api.post("/v1/deals", {"deal_id": "LIM-1", "client": "Acme", "value": "9000"})
    assert started.status_code == 202, started.text
    assert api.get("/v1/deals/LIM-1").status_code == 200
