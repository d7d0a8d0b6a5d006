"""OpenAI-compatible HTTP server (vLLM: vllm/entrypoints/openai/api_server.py), standard library only.

The engine runs in one background thread; each HTTP request thread waits on its own queue of deltas.
`POST /v1/completions` with `"stream": true` answers Server-Sent Events, one chunk per token.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per benchmark: BLAS threads would fight the server
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import queue
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from minillm.engine import EngineArgs, LLMEngine, SamplingParams


class EngineLoop(threading.Thread):
    def __init__(self, engine: LLMEngine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.lock = threading.Condition()
        self.queues: dict[int, queue.Queue] = {}

    def submit(self, prompt, params: SamplingParams) -> queue.Queue:
        out: queue.Queue = queue.Queue()
        with self.lock:
            seq = self.engine.add_request(prompt, params)
            self.queues[seq.seq_id] = out
            self.lock.notify()
        return out

    def run(self) -> None:
        while True:
            with self.lock:
                while not self.engine.has_unfinished_requests():
                    self.lock.wait()
                outputs = self.engine.step()
            for out in outputs:
                q = self.queues[out.seq.seq_id] if not out.finished else self.queues.pop(out.seq.seq_id)
                q.put((out.delta, out.finished, len(out.seq.prompt_ids), len(out.seq.output_ids)))


def make_handler(loop: EngineLoop, model_name: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args) -> None:  # quiet: one line per request would dwarf the benchmark
            pass

        def _json(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200, {"status": "ok"})
            elif self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": model_name, "object": "model"}]})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/v1/completions":
                return self._json(404, {"error": "not found"})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            params = SamplingParams(max_tokens=int(body.get("max_tokens", 16)), temperature=float(body.get("temperature", 1.0)))
            out = loop.submit(body.get("prompt", ""), params)
            if not body.get("stream"):
                text, usage = "", (0, 0)
                while True:
                    delta, finished, n_in, n_out = out.get()
                    text += delta
                    if finished:
                        usage = (n_in, n_out)
                        break
                return self._json(200, {"object": "text_completion", "model": model_name,
                                        "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
                                        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            while True:
                delta, finished, n_in, n_out = out.get()
                chunk = {"object": "text_completion", "model": model_name,
                         "choices": [{"index": 0, "text": delta, "finish_reason": "length" if finished else None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if finished:
                    break
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="minillm OpenAI-compatible server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    EngineArgs.add_cli_args(parser)
    args = parser.parse_args(argv)
    engine = LLMEngine(EngineArgs.from_cli_args(args), stream=True)
    loop = EngineLoop(engine)
    loop.start()
    ThreadingHTTPServer.request_queue_size = 1024  # a benchmark opens all its connections at once
    server = ThreadingHTTPServer((args.host, args.port), make_handler(loop, args.model))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: (server.server_close(), sys.exit(0)))
    print(f"INFO {time.strftime('%H:%M:%S')} minillm serving {args.model} on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
