"""Fixtures that build the real window (offscreen) around a model loader.

`scripted_window` uses the scripted model (exact control over tokens and timing); the tests in
test_real_models.py build the same window around the real engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from desktop.history import History
from desktop.ui import settings_store
from desktop.ui.app import WindowControllers, build, engine_loader, make_application
from desktop.ui.main_window import MainWindow
from tests.ui.scripted_model import ScriptedModel, scripted_loader


@dataclass
class Built:
    window: MainWindow
    controller: WindowControllers
    model: ScriptedModel | None
    history: History


@pytest.fixture
def qapp_theme(qapp):
    make_application("light")
    return qapp


@pytest.fixture
def history(tmp_path):
    hist = History(tmp_path / "history.sqlite3")
    yield hist
    hist.close()


@pytest.fixture
def scripted_model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def scripted_window(qtbot, qapp_theme, scripted_model, history) -> Built:
    """The window around the scripted model, loaded and ready."""
    window, controller = build(
        scripted_loader(scripted_model), None, history, settings_store.load()
    )
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(controller.models.model_ready, timeout=5000):
        controller.models.open_model(None)
    yield Built(window, controller, scripted_model, history)
    controller.lifetime.shutdown()


@pytest.fixture
def real_window(qtbot, qapp_theme, history):
    """The window over the real engine (open a model with test_real_models.open_and_wait)."""
    load, list_models = engine_loader()
    window, controller = build(load, list_models, history, settings_store.load())
    qtbot.addWidget(window)
    window.show()
    yield window, controller
    controller.lifetime.shutdown()
