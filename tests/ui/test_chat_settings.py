"""Per-chat settings in the real window: the Settings panel shows and changes the chat on screen's
own system prompt and sampling settings (saved in history), New chat starts from the defaults,
an old chat keeps its own after the defaults change, and the note under an empty system prompt
box quotes the template's own system prompt (a tiny real model with SmolLM2's template)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop.engine.events import GenerationSettings, Message
from tests.engine.test_template_default import SMOLLM2_TEMPLATE
from tests.ui.test_real_models import open_and_wait
from tests.ui.test_real_models import send_and_wait as send_real
from tests.ui.test_window import send_and_wait


def system_of(call) -> str | None:
    """The system message a scripted run was sent (None: none)."""
    return call[0].content if call and call[0].role == "system" else None


def saved_settings(built, conv_id):
    built.controller.chat_settings.flush()
    summary = built.history.conversation(conv_id)
    return summary.system_prompt, summary.settings


def test_changing_one_chats_prompt_leaves_the_others_and_new_chats_start_from_defaults(
    qtbot, scripted_window
):
    built = scripted_window
    panel, chats = built.window.settings, built.controller.chats
    assert panel.scope.text() == "This chat" and panel.reset.text() == "Reset to defaults"
    panel.system_prompt.setPlainText("Be brief.")
    panel.temperature.setValue(1.0)
    send_and_wait(qtbot, built, "in chat A")
    a = built.controller.session.conversation_id
    assert system_of(built.model.calls[-1]) == "Be brief."

    built.window.new_chat_action.trigger()  # New chat: the defaults, not chat A's
    assert panel.system_prompt_text() == "" and panel.temperature.value() == 0.5
    send_and_wait(qtbot, built, "in chat B")
    b = built.controller.session.conversation_id
    assert system_of(built.model.calls[-1]) is None

    chats.open_conversation(a)  # opening a saved chat shows its own settings
    assert panel.system_prompt_text() == "Be brief." and panel.temperature.value() == 1.0
    panel.system_prompt.setPlainText("Be long.")  # a change applies to chat A only
    chats.open_conversation(b)
    assert panel.system_prompt_text() == "" and panel.temperature.value() == 0.5
    send_and_wait(qtbot, built, "B again")
    assert system_of(built.model.calls[-1]) is None
    assert built.model.calls[-1][-1] == Message("user", "B again")

    chats.open_conversation(a)
    assert panel.system_prompt_text() == "Be long."
    send_and_wait(qtbot, built, "A again")
    assert system_of(built.model.calls[-1]) == "Be long."
    assert built.controller.transcript.turns[-1].node.done.settings.temperature == 1.0
    assert saved_settings(built, a)[0] == "Be long."
    assert saved_settings(built, b) == ("", GenerationSettings(temperature=0.5))


def test_an_old_chat_keeps_its_prompt_when_the_default_changes(qtbot, scripted_window):
    built = scripted_window
    panel, chats = built.window.settings, built.controller.chats
    panel.system_prompt.setPlainText("Talk like a pirate.")
    qtbot.mouseClick(panel.make_default, Qt.MouseButton.LeftButton)
    assert built.controller.models.app_settings.system_prompt == "Talk like a pirate."
    send_and_wait(qtbot, built, "hello")
    old = built.controller.session.conversation_id

    built.window.new_chat_action.trigger()
    assert panel.system_prompt_text() == "Talk like a pirate."  # the default
    panel.system_prompt.setPlainText("Talk like a robot.")
    qtbot.mouseClick(panel.make_default, Qt.MouseButton.LeftButton)
    assert panel.source.text() == "Same as the defaults for new chats."

    chats.open_conversation(old)  # its follow-up and Regenerate keep the pirate
    assert panel.system_prompt_text() == "Talk like a pirate."
    assert panel.source.text() == "Differs from the defaults for new chats."
    send_and_wait(qtbot, built, "more")
    assert system_of(built.model.calls[-1]) == "Talk like a pirate."
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=10000):
        built.controller.runs.regenerate()
    assert system_of(built.model.calls[-1]) == "Talk like a pirate."
    qtbot.mouseClick(panel.reset, Qt.MouseButton.LeftButton)  # now it takes the defaults
    assert panel.system_prompt_text() == "Talk like a robot."
    assert saved_settings(built, old)[0] == "Talk like a robot."


def test_a_chat_saved_before_chat_settings_gets_the_default_once(qtbot, scripted_window):
    """A chat from before migration m004 has no recorded system prompt: it gets the one its next
    turn was sent with until now (the default), saved at once, and keeps it from then on."""
    built = scripted_window
    history, models = built.history, built.controller.models
    conv = history.create_conversation("old chat", "scripted")  # nothing recorded
    history.add_user_message(conv, "hi")
    models.app_settings.system_prompt = "Be formal."
    built.controller.chats.open_conversation(conv)
    assert built.window.settings.system_prompt_text() == "Be formal."
    assert saved_settings(built, conv) == ("Be formal.", GenerationSettings(temperature=0.5))
    models.app_settings.system_prompt = "Be casual."
    built.window.new_chat_action.trigger()
    built.controller.chats.open_conversation(conv)
    assert built.window.settings.system_prompt_text() == "Be formal."


def test_the_note_quotes_the_templates_own_system_prompt(
    qtbot, real_window, tiny_llama_dir, tmp_path
):
    window, controller = real_window
    folder = tmp_path / "tiny-smollm-template"
    folder.mkdir()
    for item in tiny_llama_dir.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "chat_template.jinja").write_text(SMOLLM2_TEMPLATE, encoding="utf-8")
    open_and_wait(qtbot, controller, folder)
    panel = window.settings
    note = panel.template_note
    assert note.isVisibleTo(panel) and note.text() == (
        "Left empty, tiny-smollm-template's chat template adds its own: “You are a helpful AI "
        "assistant named SmolLM, trained by…”"
    )
    panel.system_prompt.setPlainText("Be brief.")
    assert not note.isVisibleTo(panel)
    panel.system_prompt.setPlainText("")
    assert note.isVisibleTo(panel)
    open_and_wait(qtbot, controller, tiny_llama_dir)  # plain ChatML: no default of its own
    assert not note.isVisibleTo(panel)


def test_a_real_follow_up_reads_its_chats_prompt_after_the_default_changed(
    qtbot, real_window, tiny_llama_dir
):
    """The prompt ids the engine got (the reply's tokenize phase) are those of the chat's own
    system prompt, and the prefix it read before is reused from the cache."""
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    panel = window.settings
    panel.system_prompt.setPlainText("Be brief.")
    panel.max_new_tokens.setValue(4)
    send_real(qtbot, window, controller, "hello")
    first = controller.transcript.turns[-1].node
    chat = controller.session.conversation_id
    window.new_chat_action.trigger()
    panel.system_prompt.setPlainText("Talk like a pirate.")
    qtbot.mouseClick(panel.make_default, Qt.MouseButton.LeftButton)
    controller.chats.open_conversation(chat)
    send_real(qtbot, window, controller, "more")
    reply = controller.transcript.turns[-1].node
    (tokenize,) = [p for p in reply.phases if p.phase == "tokenize"]
    expected = [
        Message("system", "Be brief."),
        Message("user", "hello"),
        Message("assistant", first.text),
        Message("user", "more"),
    ]
    model = controller.models.model
    assert list(tokenize.ids) == list(model.render_prompt(expected, 4).prompt_ids)
    (prefill,) = [p for p in reply.phases if p.phase == "prefill"]
    assert prefill.reused >= len(first.prompt.prompt_ids)  # its cached prefix was kept
