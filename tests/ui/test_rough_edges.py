"""Rough edges a newcomer hit (issue 15): the inspector follows a new reply instead of keeping the
old reply's token; the folder dialog opens in the models folder; with no model, the window says
what to do in the packaged app (Settings, Open folder), and `make model` only in a source
checkout; a saved chat made with another model says so. Real window, real tiny models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from desktop import paths
from desktop.engine.catalog import BUILD_HINT, resolve_model
from desktop.engine.errors import ModelFolderError
from desktop.ui.messages import ErrorBanner
from desktop.ui.model_notice import SWITCH_LINK
from tests.ui.test_chat_menu import non_native_dialogs  # noqa: F401 (a fixture)
from tests.ui.test_real_models import open_and_wait, send_and_wait

NOT_PICKED = "Click a token of a reply to inspect it."


def test_inspector_follows_the_new_reply(qtbot, real_window, tiny_llama_dir):
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.max_new_tokens.setValue(5)
    send_and_wait(qtbot, window, controller, "hello")
    first = controller.transcript.turns[-1]
    first.widget.body.select_span(1, emit=True)
    inspector = window.inspector
    assert inspector.current == 1 and inspector.title.text() != NOT_PICKED
    assert controller.inside._selected == (first.node, 1)  # the Attention/Layers views follow
    send_and_wait(qtbot, window, controller, "and now?")
    second = controller.transcript.turns[-1]
    assert second.node is not first.node
    # The new reply's chart, and no token of the old reply pinned beside it.
    assert controller.inspector.inspected is second.node
    assert inspector.steps is second.node.steps  # the chart draws these
    assert inspector.current == -1 and inspector.title.text() == NOT_PICKED
    assert {v.text() for v in inspector.values.values()} == {"–"}
    assert controller.inside._selected is None
    # Picking one of the new reply's tokens shows it.
    second.widget.body.select_span(0, emit=True)
    assert inspector.current == 0 and str(second.node.steps[0].id) in inspector.title.text()


def test_folder_dialog_opens_in_the_models_folder(
    qtbot,
    real_window,
    tiny_llama_dir,
    non_native_dialogs,  # noqa: F811 (the fixture imported above)
):
    window, controller = real_window
    qtbot.mouseClick(window.settings.browse, Qt.MouseButton.LeftButton)
    dialog = window.settings.folder_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.fileMode() == QFileDialog.FileMode.Directory
    assert Path(dialog.directory().absolutePath()).resolve() == paths.models_dir().resolve()
    assert Path.cwd().resolve() != paths.models_dir().resolve()  # not where the app started
    # Choosing a folder there opens it.
    with qtbot.waitSignal(controller.models.model_ready, timeout=120_000):
        dialog.selectFile(str(tiny_llama_dir))
        dialog.accept()
    assert controller.models.model.path == tiny_llama_dir


def test_no_model_message_in_the_packaged_app(qtbot, real_window, monkeypatch):
    """A packaged app (PyInstaller sets sys.frozen) with no default model: the window says what
    to do there, not the developer's `make model`."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert not paths.source_checkout()
    window, controller = real_window
    with qtbot.waitSignal(controller.models.model_failed, timeout=30_000) as failed:
        controller.models.open_model(None)
    message = failed.args[0]
    assert "Settings → Open folder…" in message and str(paths.models_dir()) in message
    assert "make model" not in message
    banners = window.chat.column_widget.findChildren(ErrorBanner)
    assert banners and "Settings → Open folder…" in banners[-1].text()


def test_no_model_message_in_a_source_checkout_names_make_model():
    assert paths.source_checkout()  # these tests run from the source tree
    with pytest.raises(ModelFolderError) as raised:
        resolve_model(None)  # the test's own, empty, user data folder
    assert BUILD_HINT in str(raised.value)


def test_opening_a_chat_made_with_another_model_says_so_and_offers_it(
    qtbot, real_window, tiny_llama_dir, tiny_gpt2_dir
):
    window, controller = real_window
    installed = paths.models_dir() / tiny_llama_dir.name  # an installed model, by its name
    installed.symlink_to(tiny_llama_dir, target_is_directory=True)
    open_and_wait(qtbot, controller, installed.name)
    llama = controller.models.model.name
    window.settings.max_new_tokens.setValue(4)
    send_and_wait(qtbot, window, controller, "hello")
    conv_id = controller.session.conversation_id
    open_and_wait(qtbot, controller, tiny_gpt2_dir)
    gpt2 = controller.models.model.name
    assert gpt2 != llama
    controller.chats.new_chat()
    assert controller.model_notice.notice is None  # an empty chat was made by no model
    controller.chats.open_conversation(conv_id)
    notice = controller.model_notice.notice
    assert notice is not None and notice.isVisible()
    assert f"This chat was made with {llama}; {gpt2} is loaded" in notice.text()
    assert f"Load {llama}</a>" in notice.text()
    with qtbot.waitSignal(controller.models.model_ready, timeout=120_000):
        notice.linkActivated.emit(SWITCH_LINK)
    assert controller.models.model.name == llama
    assert controller.model_notice.notice is None
    assert window.chat.column.indexOf(notice) < 0  # the notice went: it is no longer true
    # Opened again with its own model loaded: nothing to say.
    controller.chats.new_chat()
    controller.chats.open_conversation(conv_id)
    assert controller.model_notice.notice is None
