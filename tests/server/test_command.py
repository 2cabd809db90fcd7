"""`tokenglass serve` from the command line: what counts as this machine only, and a port in
use fails at once with one line (before the model loads)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from desktop.server.runner import bind, is_loopback
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.org", False),
    ],
)
def test_only_loopback_addresses_serve_this_machine_alone(host, loopback):
    assert is_loopback(host) is loopback


def test_a_port_in_use_is_one_line_and_exit_1(tiny_llama_dir):
    taken = bind("127.0.0.1", 0)
    try:
        port = str(taken.getsockname()[1])
        command = [sys.executable, "-m", "desktop", "serve", "--model", str(tiny_llama_dir)]
        done = subprocess.run(
            [*command, "--port", port], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
        )
    finally:
        taken.close()
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"tokenglass: Cannot listen on 127.0.0.1:{port}:")
    assert len(done.stderr.strip().splitlines()) == 1
