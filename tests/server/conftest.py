"""Real `tokenglass serve` processes on 127.0.0.1 (a free port each), and the same model in-process.

`server`: the tiny Llama of the fixtures, with an API key, saving chats in its own user data
folder. `long_server`: a copy of that model whose config allows 16,384 positions (the ONNX graph
computes rotary positions from position_ids, so nothing else changes), so a reply can run for
seconds and a disconnect has something to cancel; no key, no saving, `--queue 0` (a second
request while one runs gets 503), CORS for one origin. `engine`: the tiny Llama loaded here, the
reference the server's answers are compared with.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from desktop.engine.chat import load_model
from tests.conftest import REPO_ROOT

API_KEY = "test-key-123"
CORS_ORIGIN = "http://localhost:3000"
START_TIMEOUT_S = 120.0  # model load and imports on a busy 2-core machine


@dataclass
class Server:
    """A running server: `url` is its base URL (…/v1), `home` its user data folder."""

    process: subprocess.Popen
    url: str
    home: Path
    model: str
    log: Path

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "", parts.port or 0

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], dict | str]:
        """One raw HTTP request to `path` under /v1; returns status, headers, parsed JSON body
        (the text when it is not JSON)."""
        conn = http.client.HTTPConnection(*self.address, timeout=60)
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        try:
            conn.request(method, "/v1" + path, body=data, headers=headers or {})
            response = conn.getresponse()
            text = response.read().decode()
            found = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        try:
            return response.status, found, json.loads(text)
        except ValueError:
            return response.status, found, text


def start_server(model_dir: Path, home: Path, *args: str) -> Server:
    """`python -m desktop serve` on port 0; waits for the line that names its URL."""
    home.mkdir(parents=True, exist_ok=True)
    out, log = home / "stdout.txt", home / "stderr.txt"
    env = {**os.environ, "TOKENGLASS_HOME": str(home)}
    env.pop("TOKENGLASS_API_KEY", None)
    command = [sys.executable, "-m", "desktop", "serve", "--model", str(model_dir)]
    command += ["--port", "0", "--threads", "1", *args]
    with out.open("w") as stdout, log.open("w") as stderr:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=stdout, stderr=stderr)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in out.read_text().splitlines():
            if line.startswith("Serving "):
                url = line.split(" at ", 1)[1].split()[0]
                return Server(process, url, home, model_dir.name, log)
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}: {log.read_text()}")
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"the server did not start in {START_TIMEOUT_S} s: {log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(tiny_llama_dir, tmp_path_factory):
    running = start_server(
        tiny_llama_dir, tmp_path_factory.mktemp("server-home"), "--api-key", API_KEY
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def long_llama_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("long") / "tiny-llama-long"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 16384
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="session")
def long_server(long_llama_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("long-server-home")
    running = start_server(long_llama_dir, home, "--no-save", "--queue", "0", "--cors", CORS_ORIGIN)
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def engine(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    yield model
    model.close()


@pytest.fixture
def client(server):
    from openai import OpenAI

    with OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=60) as openai_client:
        yield openai_client
