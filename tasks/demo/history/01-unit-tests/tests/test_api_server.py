import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class APIServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.base = f"http://127.0.0.1:{cls.port}"
        cls.server = subprocess.Popen(
            [sys.executable, "-m", "minillm.entrypoints.openai.api_server", "--model", "demo-tiny",
             "--host", "127.0.0.1", "--port", str(cls.port)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(cls.base + "/health", timeout=1):
                    return
            except OSError:
                if cls.server.poll() is not None:
                    break
                time.sleep(0.05)
        cls.server.kill()
        raise RuntimeError(f"server did not start:\n{cls.server.stdout.read().decode()}")

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        cls.server.wait(timeout=10)
        cls.server.stdout.close()

    def post(self, payload: dict) -> urllib.request.Request:
        return urllib.request.Request(self.base + "/v1/completions", data=json.dumps(payload).encode(),
                                      headers={"Content-Type": "application/json"})

    def test_models(self):
        with urllib.request.urlopen(self.base + "/v1/models") as resp:
            self.assertEqual(json.load(resp)["data"][0]["id"], "demo-tiny")

    def test_completion(self):
        payload = {"model": "demo-tiny", "prompt": "ba be bi", "max_tokens": 8, "temperature": 0.0,
                   "ignore_eos": True}
        with urllib.request.urlopen(self.post(payload)) as resp:
            body = json.load(resp)
        self.assertEqual(body["usage"], {"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11})
        self.assertEqual(body["choices"][0]["finish_reason"], "length")
        self.assertEqual(len(body["choices"][0]["text"].split()), 8)

    def test_streaming_completion(self):
        payload = {"model": "demo-tiny", "prompt": "ba be bi", "max_tokens": 8, "temperature": 0.0,
                   "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
        with urllib.request.urlopen(self.post(payload)) as resp:
            events = [line[len(b"data: "):] for line in resp.read().splitlines() if line]
        self.assertEqual(events[-1], b"[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 8)
        text = "".join(c["choices"][0]["text"] for c in chunks[:-1])
        with urllib.request.urlopen(self.post({**payload, "stream": False})) as resp:
            self.assertEqual(text, json.load(resp)["choices"][0]["text"])

    def test_bad_requests(self):
        for payload, status in [({"model": "other", "prompt": "ba"}, 404), ({"prompt": 5}, 400),
                                ({"prompt": "ba", "temperature": -1}, 400)]:
            with self.assertRaises(urllib.error.HTTPError) as ctx:
                urllib.request.urlopen(self.post(payload))
            self.assertEqual(ctx.exception.code, status)


if __name__ == "__main__":
    unittest.main()
