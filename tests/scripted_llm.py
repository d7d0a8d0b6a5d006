"""Real model endpoints on 127.0.0.1 whose replies a test scripts; every request they answer is kept.

- `ScriptedLLM`: OpenAI chat (POST .../chat/completions); `reply(messages) -> (status, text or message)`, a
  message dict carrying tool calls.
- `ScriptedAnthropic`: Anthropic Messages (POST /v1/messages), streamed as server-sent events when asked.
- `ScriptedResponses`: OpenAI Responses (POST /v1/responses), streamed as server-sent events.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

JSON, SSE = "application/json", "text/event-stream"


def _sse(events: list[tuple[str, dict]]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(payload)}\n\n" for name, payload in events).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(404, b'{"error": {"message": "not found"}}', JSON)

    def do_HEAD(self):
        self._send(200, b"", "text/plain")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self._send(*self.server.scripted.answer(self.path.split("?")[0], body))

    def log_message(self, *args):
        pass


class _Scripted:
    """The server's life and the kept requests; a subclass says how one request is answered."""

    url_suffix = ""

    def __init__(self, reply: Callable):
        self.reply, self.requests = reply, []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.scripted = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.url_suffix}"

    def keep(self, body: dict) -> int:
        """Keep a request; returns how many there are now (ids in the replies count with it)."""
        with self._lock:
            self.requests.append(body)
            return len(self.requests)

    def answer(self, path: str, body: dict) -> tuple:
        raise NotImplementedError

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class ScriptedLLM(_Scripted):
    url_suffix = "/v1"

    def answer(self, path: str, body: dict) -> tuple:
        n = self.keep(body)
        status, text = self.reply(body.get("messages", []))
        if status == 200:
            # a dict is the whole message (tool calls); a string its content
            message = text if isinstance(text, dict) else {"role": "assistant", "content": text}
            payload = {"id": f"cmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                       "model": body.get("model", "scripted"),
                       "choices": [{"index": 0, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                                    "message": message}],
                       "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
        else:
            payload = {"error": {"message": text, "type": "rate_limit_error" if status == 429 else "error"}}
        return status, json.dumps(payload).encode(), JSON, {"Retry-After": "0"} if status == 429 else None


class ScriptedAnthropic(_Scripted):
    """`reply(request) -> list of content blocks` ({"type": "text", ...} or {"type": "tool_use", "name": ...,
    "input": {...}}), streamed as Claude Code asks."""

    def answer(self, path: str, body: dict) -> tuple:
        if not path.endswith("/v1/messages"):  # count_tokens, telemetry, ...
            return 200, b'{"input_tokens": 100}', JSON
        n = self.keep(body)
        blocks = [dict(b, id=f"toolu_{n}_{i}") if b["type"] == "tool_use" else b
                  for i, b in enumerate(self.reply(body))]
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        message = {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": body.get("model", "scripted"),
                   "content": blocks, "stop_reason": stop, "stop_sequence": None,
                   "usage": {"input_tokens": 100, "output_tokens": 20}}
        if not body.get("stream"):
            return 200, json.dumps(message).encode(), JSON
        events = [("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                                          "usage": {"input_tokens": 100, "output_tokens": 1}}})]
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events += [("content_block_start", {"type": "content_block_start", "index": i, "content_block": start}),
                       ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}),
                       ("content_block_stop", {"type": "content_block_stop", "index": i})]
        events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": 20}}),
                   ("message_stop", {"type": "message_stop"})]
        return 200, _sse(events), SSE


class ScriptedResponses(_Scripted):
    """`reply(request) -> list of output items` ({"type": "function_call", "name": ..., "arguments": "{...}"}
    or {"type": "message", "text": ...}), streamed as Codex CLI asks."""

    url_suffix = "/v1"

    def answer(self, path: str, body: dict) -> tuple:
        if not path.endswith("/responses"):
            return 404, b'{"error": {"message": "not found"}}', JSON
        n = self.keep(body)
        items = []
        for i, item in enumerate(self.reply(body)):
            if item["type"] == "function_call":
                items.append({"type": "function_call", "id": f"fc_{n}_{i}", "call_id": f"call_{n}_{i}",
                              "name": item["name"], "arguments": item["arguments"], "status": "completed"})
            else:
                items.append({"type": "message", "id": f"msg_{n}_{i}", "role": "assistant", "status": "completed",
                              "content": [{"type": "output_text", "text": item["text"], "annotations": []}]})
        usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 20,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 120}
        response = {"id": f"resp_{n}", "object": "response", "status": "completed", "model": body.get("model"),
                    "output": items, "usage": usage}
        events = [("response.created", {"type": "response.created", "response": {**response, "status": "in_progress",
                                                                                "output": [], "usage": None}})]
        for i, item in enumerate(items):
            events += [("response.output_item.added", {"type": "response.output_item.added", "output_index": i, "item": item}),
                       ("response.output_item.done", {"type": "response.output_item.done", "output_index": i, "item": item})]
        events.append(("response.completed", {"type": "response.completed", "response": response}))
        return 200, _sse(events), SSE
