"""The chat's menu in the chat list (issue 15, export and identity): Export as Markdown / JSON
write what `tokenglass export` writes for that chat, Copy conversation puts that Markdown on the
clipboard, and the chat's tooltip shows its id. Real window, a real tiny model, real SQLite."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtWidgets import QApplication, QFileDialog

from desktop import cli
from desktop.ui.chat_menu import chat_menu, file_name
from tests.ui.test_real_models import open_and_wait, send_and_wait


@pytest.fixture
def non_native_dialogs(qapp):
    """Qt's own file dialogs (their directory and file can be read and set by a test)."""
    attribute = Qt.ApplicationAttribute.AA_DontUseNativeDialogs
    before = QCoreApplication.testAttribute(attribute)
    QCoreApplication.setAttribute(attribute, True)
    yield
    QCoreApplication.setAttribute(attribute, before)


def cli_export(monkeypatch, history, conv_id: int, fmt: str, out) -> bytes:
    """What `tokenglass export ID --format fmt --out FILE` writes, over the window's database."""
    monkeypatch.setenv("TOKENGLASS_HOME", str(history.path.parent))
    assert cli.main(["export", str(conv_id), "--format", fmt, "--out", str(out)]) == 0
    return out.read_bytes()


def menu_action(window, conv_id: int, text: str):
    menu = chat_menu(window.conversations, conv_id, window.conversations.title_of(conv_id))
    return next(a for a in menu.actions() if a.text() == text), menu


def test_chat_menu_exports_and_copies_what_the_cli_exports(
    qtbot, real_window, tiny_llama_dir, history, tmp_path, monkeypatch, non_native_dialogs
):
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.max_new_tokens.setValue(6)
    send_and_wait(qtbot, window, controller, "hello there")
    send_and_wait(qtbot, window, controller, "and again")
    conv_id = controller.session.conversation_id
    assert conv_id is not None
    item = window.conversations.items.item(0)
    assert item.data(Qt.ItemDataRole.UserRole) == conv_id
    # The tooltip carries the id `tokenglass export` takes, the start and the model.
    assert f"Chat {conv_id} · started " in item.toolTip()
    assert controller.models.model.name in item.toolTip()
    assert item.toolTip().startswith("hello there\n")

    written = {}
    for fmt, text in (("md", "Export as Markdown…"), ("json", "Export as JSON…")):
        action, _menu = menu_action(window, conv_id, text)
        action.trigger()
        dialog = controller.chat_menu.dialog
        assert dialog is not None and dialog.acceptMode() == QFileDialog.AcceptMode.AcceptSave
        assert dialog.selectedFiles()[0].endswith(f"hello there.{fmt}")  # named after the chat
        target = tmp_path / f"from-window.{fmt}"
        dialog.selectFile(str(target))
        dialog.accept()
        qtbot.waitUntil(lambda t=target: t.is_file(), timeout=5000)
        written[fmt] = target.read_bytes()
        assert written[fmt] == cli_export(
            monkeypatch, history, conv_id, fmt, tmp_path / f"cli.{fmt}"
        )
    data = json.loads(written["json"])
    assert data["id"] == conv_id and [m["role"] for m in data["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert "and again" in written["md"].decode()

    QApplication.clipboard().clear()
    action, _menu = menu_action(window, conv_id, "Copy conversation")
    action.trigger()
    assert QApplication.clipboard().text() == written["md"].decode()


def test_export_of_a_chat_that_is_gone_says_so(qtbot, scripted_window, tmp_path):
    controller = scripted_window.controller
    errors: list[str] = []
    controller.feedback.error_shown.connect(errors.append)
    assert not controller.chat_menu.export_to(999, "md", tmp_path / "gone.md")
    assert not (tmp_path / "gone.md").exists()
    assert errors and "999" in errors[0]


def test_export_file_names():
    assert file_name('a/b: "c"?', "md") == "a b c.md"
    assert file_name("  ...  ", "json") == "chat.json"
    assert len(file_name("x" * 200, "md")) == 63
