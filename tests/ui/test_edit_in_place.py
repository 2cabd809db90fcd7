"""Editing a message in place (issue 15, rough edges): the conversation stays on screen, the
editor opens inside the message's bubble, Esc and Cancel put back exactly what was there (the
message, its versions, the history), Send makes a new version; the chat's title follows an edit
of the first message unless the chat was renamed. Real window, a real tiny model, real SQLite."""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop.ui.edit_box import BAR_TEXT
from tests.ui.test_real_models import open_and_wait, send_and_wait


def send_edit(qtbot, controller, text: str, timeout: int = 120_000):
    """Replace the open editor's text with `text`, press Enter, wait for the new reply."""
    editor = controller.editing.editor
    assert editor is not None
    with qtbot.waitSignal(controller.runs.reply_done, timeout=timeout) as blocker:
        editor.box.setPlainText(text)
        qtbot.keyClick(editor.box, Qt.Key.Key_Return)
    return blocker.args[0]


def screen(controller) -> list[tuple[str, str, tuple[int, int]]]:
    """(role, text, version) of each message on screen, and each bubble is shown."""
    rows = controller.transcript.turns
    assert all(r.widget.isVisible() for r in rows)
    return [(r.role, r.node.text, r.node.version) for r in rows]


def stored(history, conv_id) -> list[tuple[int, str, str, bool]]:
    return [(m.id, m.role, m.text, m.active) for m in history.tree(conv_id)]


def chat(qtbot, real_window, tiny_llama_dir, *texts):
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.max_new_tokens.setValue(4)
    for text in texts:
        send_and_wait(qtbot, window, controller, text)
    return window, controller


def test_esc_and_cancel_restore_the_message_and_its_versions(
    qtbot, real_window, tiny_llama_dir, history
):
    window, controller = chat(qtbot, real_window, tiny_llama_dir, "first question", "second one")
    conv_id = controller.session.conversation_id
    send_edit_target = controller.transcript.turns[0]
    # Make a second version of the first message, then look at version 1 again.
    send_edit_target.widget.edit_button.click()
    send_edit(qtbot, controller, "first question, edited")
    first = controller.transcript.turns[0]
    first.widget.versions.previous.click()
    before_screen, before_stored = screen(controller), stored(history, conv_id)
    assert before_screen[0] == ("user", "first question", (1, 2))
    window.chat.input.setPlainText("a draft of my next message")

    for close in ("Esc", "Cancel"):
        bubble = controller.transcript.turns[2].widget  # "second one"
        body_text = bubble.body.toPlainText()
        qtbot.mouseClick(bubble.edit_button, Qt.MouseButton.LeftButton)
        editor = controller.editing.editor
        assert editor is not None and editor.parent() is bubble  # inside the bubble
        assert editor.bar.text() == BAR_TEXT and editor.box.hasFocus()
        assert editor.box.toPlainText() == "second one"
        assert not bubble.body.isVisibleTo(bubble)
        assert screen(controller) == before_screen  # the conversation stays on screen
        editor.box.setPlainText("something else entirely")
        if close == "Esc":
            qtbot.keyClick(editor.box, Qt.Key.Key_Escape)
        else:
            qtbot.mouseClick(editor.cancel_button, Qt.MouseButton.LeftButton)
        assert controller.editing.editor is None
        assert bubble.body.isVisibleTo(bubble) and bubble.body.toPlainText() == body_text
        assert bubble.edit_button.isEnabled()
        assert screen(controller) == before_screen
        assert stored(history, conv_id) == before_stored
        assert window.chat.input.toPlainText() == "a draft of my next message"
        assert not controller.runs.busy  # Esc in the editor cancelled; it stopped nothing


def test_send_from_the_editor_makes_a_new_version_and_keeps_the_draft(
    qtbot, real_window, tiny_llama_dir, history
):
    window, controller = chat(qtbot, real_window, tiny_llama_dir, "hello", "how are you")
    window.chat.input.setPlainText("my draft")
    qtbot.mouseClick(window.chat.edit_button, Qt.MouseButton.LeftButton)  # Edit last
    assert controller.editing.editor.box.toPlainText() == "how are you"
    done = send_edit(qtbot, controller, "how old are you")
    assert done.error is None
    rows = screen(controller)
    assert rows[2] == ("user", "how old are you", (2, 2))
    assert [r[0] for r in rows] == ["user", "assistant"] * 2
    assert window.chat.input.toPlainText() == "my draft"  # the box below kept its draft
    users = [m.text for m in history.tree(controller.session.conversation_id) if m.role == "user"]
    assert users == ["hello", "how are you", "how old are you"]  # the old version is kept


def test_title_follows_an_edit_of_the_first_message_unless_renamed(
    qtbot, real_window, tiny_llama_dir, history
):
    window, controller = chat(qtbot, real_window, tiny_llama_dir, "What is a cat?")
    conv_id = controller.session.conversation_id

    def title() -> str:
        return history.conversation(conv_id).title

    assert title() == "What is a cat?"
    controller.transcript.turns[0].widget.edit_button.click()
    send_edit(qtbot, controller, "What is a dog?")
    assert title() == "What is a dog?"
    assert window.conversations.title_of(conv_id) == "What is a dog?"
    # Switching back to version 1 shows its title again; the chat is still auto-named.
    controller.transcript.turns[0].widget.versions.previous.click()
    assert title() == "What is a cat?"
    # A second message's edit leaves the title alone.
    send_and_wait(qtbot, window, controller, "and a bird?")
    controller.transcript.turns[2].widget.edit_button.click()
    send_edit(qtbot, controller, "and a fish?")
    assert title() == "What is a cat?"
    # Renamed by the person: edits of the first message no longer touch it.
    window.conversations.rename_requested.emit(conv_id, "Animals")
    controller.transcript.turns[0].widget.edit_button.click()
    send_edit(qtbot, controller, "What is a cow?")
    assert title() == "Animals"
    assert window.conversations.title_of(conv_id) == "Animals"
