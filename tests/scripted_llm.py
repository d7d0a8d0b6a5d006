"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose replies a test scripts: POST /v1/chat/completions
(and /chat/completions) hands the request to `reply(messages) -> (status, text)`. Every request is kept."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class ScriptedLLM:
    def __init__(self, reply: Callable[[list[dict]], tuple[int, str]]):
        self.reply, self.requests = reply, []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with outer._lock:
                    outer.requests.append(body)
                status, text = outer.reply(body.get("messages", []))
                if status == 200:
                    payload = {"id": f"cmpl-{len(outer.requests)}", "object": "chat.completion", "created": int(time.time()),
                               "model": body.get("model", "scripted"),
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": text}}],
                               "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
                else:
                    payload = {"error": {"message": text, "type": "rate_limit_error" if status == 429 else "error"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "ScriptedLLM":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
