"""OpenAI-compatible HTTP server. Mirrors vllm/entrypoints/openai/api_server.py on the standard library.

An asyncio HTTP/1.1 server answers GET /health, GET /v1/models and POST /v1/completions (streamed as
server-sent events, or whole). The engine loop runs in a background thread, as in
vllm/engine/async_llm_engine.py, and hands each request's outputs to the event loop after every step.

    python -m minillm.entrypoints.openai.api_server --model demo-tiny --host 127.0.0.1 --port 8000

The server stops cleanly on SIGTERM or SIGINT; if the engine fails, it exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import queue
import signal
import threading
import time
import uuid
from contextlib import aclosing
from typing import AsyncIterator

from minillm.config import EngineArgs
from minillm.engine import LLMEngine
from minillm.outputs import RequestOutput
from minillm.sampling_params import SamplingParams

logger = logging.getLogger("minillm.entrypoints.openai.api_server")

MAX_BODY_BYTES = 16 * 1024 * 1024


class EngineDeadError(RuntimeError):
    pass


class AsyncLLMEngine:
    """Runs LLMEngine.step() in a background thread. Requests reach the engine through a queue that
    the thread drains before every step; each request's outputs come back through its own
    asyncio.Queue. The LLMEngine is only ever touched by the engine thread."""

    def __init__(self, engine: LLMEngine, loop: asyncio.AbstractEventLoop):
        self.engine = engine
        self.loop = loop
        self.error: BaseException | None = None
        self.dead = asyncio.Event()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()  # ("add", id, token_ids, params) | ("abort", id)
        self._streams: dict[str, asyncio.Queue] = {}
        self._wakeup = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run_engine_loop, name="engine-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        self._thread.join(timeout=10)

    def _run_engine_loop(self) -> None:
        try:
            while not self._stopping:
                self._wakeup.clear()
                self._apply_requests()
                if not self.engine.has_unfinished_requests():
                    self._wakeup.wait()
                    continue
                outputs = self.engine.step()
                if outputs:
                    self.loop.call_soon_threadsafe(self._dispatch, outputs)
        except BaseException as exc:
            logger.exception("The engine loop failed")
            self.loop.call_soon_threadsafe(self._fail, exc)

    def _apply_requests(self) -> None:
        while True:
            try:
                kind, request_id, *args = self._requests.get_nowait()
            except queue.Empty:
                return
            if kind == "add":
                prompt_token_ids, params = args
                self.engine.add_request(request_id, None, params, prompt_token_ids)
            else:
                self.engine.abort_request(request_id)

    def _dispatch(self, outputs: list[RequestOutput]) -> None:
        for output in outputs:
            stream = self._streams.get(output.request_id)
            if stream is not None:
                stream.put_nowait(output)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        for stream in self._streams.values():
            stream.put_nowait(exc)
        self.dead.set()

    def generate(self, prompt_token_ids: list[int], params: SamplingParams,
                 request_id: str) -> AsyncIterator[RequestOutput]:
        """Queue a request (ValueError if the engine cannot run it). Returns the request's state after
        every step it takes part in, until it finishes; leaving the iteration early aborts it."""
        if self.error is not None:
            raise EngineDeadError("The engine loop has failed") from self.error
        self.engine.validate_prompt(prompt_token_ids)
        stream: asyncio.Queue = asyncio.Queue()
        self._streams[request_id] = stream
        self._requests.put(("add", request_id, prompt_token_ids, params))
        self._wakeup.set()
        return self._results(request_id, stream)

    async def _results(self, request_id: str, stream: asyncio.Queue) -> AsyncIterator[RequestOutput]:
        finished = False
        try:
            while not finished:
                item = await stream.get()
                if isinstance(item, BaseException):
                    raise EngineDeadError("The engine loop has failed") from item
                finished = item.finished
                yield item
        finally:
            del self._streams[request_id]
            if not finished:
                self._requests.put(("abort", request_id))
                self._wakeup.set()


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


class Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes):
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def json(self) -> dict:
        try:
            payload = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HTTPError(400, f"The request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise HTTPError(400, "The request body must be a JSON object")
        return payload


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
    request_line = await reader.readline()
    if not request_line.strip():
        return None
    try:
        method, target, _version = request_line.decode("latin-1").split()
    except ValueError:
        raise HTTPError(400, "Malformed request line") from None
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise HTTPError(400, "Malformed header line")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY_BYTES:
        raise HTTPError(413, f"The request body exceeds {MAX_BODY_BYTES} bytes")
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await reader.readexactly(length) if length else b""
    return Request(method.upper(), target.split("?", 1)[0], headers, body)


def response_head(status: int, content_type: str, content_length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}", f"Content-Type: {content_type}", "Connection: close"]
    if content_length is None:
        lines.append("Cache-Control: no-cache")
    else:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_response(status: int, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    return response_head(status, "application/json", len(body)) + body


def error_payload(status: int, message: str) -> dict:
    return {"object": "error", "message": message, "type": _REASONS.get(status, "Error").replace(" ", ""),
            "code": status}


class OpenAIServing:
    """The OpenAI completions API over an AsyncLLMEngine. Mirrors vllm/entrypoints/openai/serving_completion.py."""

    def __init__(self, engine: AsyncLLMEngine, model_name: str):
        self.engine = engine
        self.model_name = model_name
        self.tokenizer = engine.engine.get_tokenizer()

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = await read_request(reader, writer)
                if request is not None:
                    await self.route(request, writer)
            except HTTPError as exc:
                writer.write(json_response(exc.status, error_payload(exc.status, exc.message)))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()

    async def route(self, request: Request, writer: asyncio.StreamWriter) -> None:
        routes = {
            "/health": ("GET", self.health),
            "/v1/models": ("GET", self.show_models),
            "/v1/completions": ("POST", self.create_completion),
        }
        if request.path not in routes:
            raise HTTPError(404, f"No route for {request.path}")
        method, handler = routes[request.path]
        if request.method != method:
            raise HTTPError(405, f"{request.path} expects {method}")
        await handler(request, writer)

    async def health(self, request: Request, writer: asyncio.StreamWriter) -> None:
        status = 503 if self.engine.error is not None else 200
        writer.write(response_head(status, "text/plain", 0))

    async def show_models(self, request: Request, writer: asyncio.StreamWriter) -> None:
        card = {"id": self.model_name, "object": "model", "created": int(time.time()), "owned_by": "minillm",
                "max_model_len": self.engine.engine.model_config.max_model_len}
        writer.write(json_response(200, {"object": "list", "data": [card]}))

    def _parse_completion_request(self, payload: dict) -> tuple[list[int], SamplingParams]:
        if payload.get("model", self.model_name) != self.model_name:
            raise HTTPError(404, f"The model `{payload['model']}` does not exist.")
        prompt = payload.get("prompt")
        if isinstance(prompt, str):
            prompt_token_ids = self.tokenizer.encode(prompt)
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            prompt_token_ids = prompt
        else:
            raise HTTPError(400, "prompt must be a string or a non-empty list of token ids")
        try:
            params = SamplingParams(
                temperature=float(payload.get("temperature", 1.0)),
                top_p=float(payload.get("top_p", 1.0)),
                top_k=int(payload.get("top_k", -1)),
                max_tokens=int(payload.get("max_tokens", 16)),
                ignore_eos=bool(payload.get("ignore_eos", False)),
            )
        except (TypeError, ValueError) as exc:
            raise HTTPError(400, str(exc)) from None
        return prompt_token_ids, params

    async def create_completion(self, request: Request, writer: asyncio.StreamWriter) -> None:
        payload = request.json()
        prompt_token_ids, params = self._parse_completion_request(payload)
        request_id = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        try:
            results = self.engine.generate(prompt_token_ids, params, request_id)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        except EngineDeadError as exc:
            raise HTTPError(503, str(exc)) from None
        if payload.get("stream", False):
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage", False))
            await self._stream(results, writer, request_id, created, include_usage)
            return
        final = None
        try:
            async with aclosing(results):
                async for final in results:
                    pass
        except EngineDeadError as exc:
            raise HTTPError(503, str(exc)) from None
        completion = final.outputs[0]
        writer.write(json_response(200, {
            "id": request_id, "object": "text_completion", "created": created, "model": self.model_name,
            "choices": [{"index": 0, "text": completion.text, "logprobs": None,
                         "finish_reason": completion.finish_reason}],
            "usage": self._usage(final),
        }))

    async def _stream(self, results: AsyncIterator[RequestOutput], writer: asyncio.StreamWriter, request_id: str,
                      created: int, include_usage: bool) -> None:
        writer.write(response_head(200, "text/event-stream"))
        sent = 0  # characters of the output text already streamed
        output = None
        try:
            async with aclosing(results):  # a client that goes away aborts its request
                async for output in results:
                    completion = output.outputs[0]
                    chunk = {"id": request_id, "object": "text_completion", "created": created,
                             "model": self.model_name,
                             "choices": [{"index": 0, "text": completion.text[sent:], "logprobs": None,
                                          "finish_reason": completion.finish_reason}]}
                    sent = len(completion.text)
                    writer.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    await writer.drain()
        except EngineDeadError:
            return  # the stream ends without [DONE]: the client sees the request fail
        if include_usage and output is not None:
            chunk = {"id": request_id, "object": "text_completion", "created": created, "model": self.model_name,
                     "choices": [], "usage": self._usage(output)}
            writer.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        writer.write(b"data: [DONE]\n\n")

    @staticmethod
    def _usage(output: RequestOutput) -> dict:
        prompt_tokens, completion_tokens = len(output.prompt_token_ids), len(output.outputs[0].token_ids)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}


async def serve(args: argparse.Namespace) -> int:
    engine = LLMEngine.from_engine_args(EngineArgs.from_cli_args(args))
    loop = asyncio.get_running_loop()
    async_engine = AsyncLLMEngine(engine, loop)
    async_engine.start()
    serving = OpenAIServing(async_engine, args.model)
    server = await asyncio.start_server(serving.handle_connection, args.host, args.port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"INFO:     minillm OpenAI-compatible server for {args.model} running on http://{args.host}:{args.port} "
          f"(Press CTRL+C to quit)", flush=True)
    stopped = asyncio.ensure_future(stop.wait())
    dead = asyncio.ensure_future(async_engine.dead.wait())
    await asyncio.wait([stopped, dead], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    dead.cancel()
    logger.info("Shutting down")
    server.close()
    async_engine.stop()
    return 1 if async_engine.error is not None else 0


def make_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="minillm OpenAI-compatible API server")
    parser.add_argument("--host", type=str, default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    return EngineArgs.add_cli_args(parser)


def main(argv: list[str] | None = None) -> int:
    args = make_arg_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(asctime)s %(filename)s:%(lineno)d] %(message)s",
                        datefmt="%m-%d %H:%M:%S")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    raise SystemExit(main())
