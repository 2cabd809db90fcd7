"""The window's "Local server" switch: it serves the service's model, reports each request,
shows its address, stops on demand, and a port in use unchecks it with the reason."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from desktop.chat_service import ChatService
from desktop.engine.chat import load_model
from desktop.history import History
from desktop.server.runner import bind
from desktop.ui.local_server import LocalServerSwitch


@pytest.fixture
def service(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    running = ChatService(model)
    yield running
    running.close()
    model.close()


def ask(url: str, model: str) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
    request = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_the_switch_serves_the_loaded_model_and_stops(qtbot, service, tmp_path):
    with History(tmp_path / "history.sqlite3") as history:
        switch = LocalServerSwitch(service, history, port=0)
        qtbot.addWidget(switch)
        messages: list[str] = []
        switch.status_message.connect(messages.append)
        switch.check.setChecked(True)
        url = switch.address.text()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        reply = ask(url, service.model.name)
        assert reply["usage"]["completion_tokens"] == 3
        qtbot.waitUntil(lambda: any("replied 3 tokens" in m for m in messages), timeout=10000)
        assert len(history.list_conversations("Hi")) == 1  # saved like the window's chats
        switch.check.setChecked(False)
        assert switch.server is None and switch.address.text() == "off"
        with pytest.raises(urllib.error.URLError):
            ask(url, service.model.name)


def test_a_port_in_use_unchecks_the_switch_with_the_reason(qtbot, service):
    taken = bind("127.0.0.1", 0)
    try:
        switch = LocalServerSwitch(service, port=taken.getsockname()[1])
        qtbot.addWidget(switch)
        with qtbot.waitSignal(switch.status_message) as said:
            switch.check.setChecked(True)
        assert "Cannot listen" in said.args[0]
        assert not switch.check.isChecked() and switch.server is None
    finally:
        taken.close()


def test_the_window_serves_its_model_in_settings_and_stops_on_close(
    qtbot, qapp, tiny_llama_dir, tmp_path
):
    """The switch sits in the window's Settings over the window's own ChatService and history;
    closing the window stops the server."""
    from desktop.ui import settings_store
    from desktop.ui.app import build, engine_loader

    load, list_models = engine_loader()
    with History(tmp_path / "history.sqlite3") as history:
        window, ui = build(load, list_models, history, settings_store.load())
        qtbot.addWidget(window)
        with qtbot.waitSignal(ui.models.model_ready, timeout=120_000):
            ui.models.open_model(str(tiny_llama_dir))
        assert window.settings.isAncestorOf(ui.server)
        # its check box lines up with the panel's controls (not flush with the dock's edge)
        window.show()
        qtbot.waitExposed(window)
        window.settings_dock.raise_()
        left = window.settings.model.mapTo(window.settings, window.settings.model.rect().topLeft())
        box = ui.server.check.mapTo(window.settings, ui.server.check.rect().topLeft())
        assert box.x() == left.x() > 0
        assert ui.server.service is ui.runs.service and ui.server.history is history
        ui.server.port = 0  # any free port
        ui.server.check.setChecked(True)
        url = ui.server.address.text()
        assert ask(url, ui.models.model.name)["usage"]["completion_tokens"] == 3
        window.close()
        ui.lifetime.shutdown()
        assert ui.server.server is None
        with pytest.raises(urllib.error.URLError):
            ask(url, "any")
