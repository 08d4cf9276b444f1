"""A local HTTP server that speaks OpenAI's Chat Completions protocol (tool calls included).

It answers with a scripted policy and can fail the first N requests with a
status (429 with Retry-After, 500) to exercise the real client's retries.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.llm_script import Policy, last_facts


def _pairs(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], m.get("content") or "") for m in messages]


class FakeOpenAI:
    """Serve on 127.0.0.1 (free port) until `close()`; `requests` holds what came in."""

    def __init__(self, policy: Policy, fail_first: int = 0, fail_status: int = 429) -> None:
        """Answer with `policy`; the first `fail_first` requests get `fail_status`."""
        self.policy, self.fail_first, self.fail_status = policy, fail_first, fail_status
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self._ids = itertools.count(1)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body,
                                        "authorization": self.headers.get("Authorization")})
                status, payload = server.answer(body)
                server.statuses.append(status)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("retry-after-ms", "20")
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one chat completion request."""
        if len(self.requests) <= self.fail_first:
            return self.fail_status, {"error": {"message": "slow down", "type": "rate_limit"}}
        pairs = _pairs(body["messages"])
        result = self.policy(last_facts(pairs), pairs)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if isinstance(result, str):
            message["content"], finish = result, "stop"
        else:
            message["tool_calls"] = [
                {"id": f"call_{next(self._ids)}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for name, args in result]
            finish = "tool_calls"
        return 200, {
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940},
        }

    def close(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()
