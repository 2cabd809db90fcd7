"""Regenerate, Edit last and Copy last reply are enabled only when they can do something, and say
why not in their tooltip (issue 15, rough edges): no model, an empty chat, after an error."""

from __future__ import annotations

from desktop.ui.actions_state import (
    COPY_REPLY,
    EDIT_LAST,
    REGENERATE,
    TIPS,
    ChatState,
    action_states,
)
from desktop.ui.shortcuts import with_key
from tests.ui.test_real_models import open_and_wait, send_and_wait


def shown(window) -> dict[str, tuple[bool, str]]:
    """(enabled, tooltip) of each action as the window shows it."""
    chat = window.chat
    return {
        REGENERATE: (chat.regenerate_button.isEnabled(), chat.regenerate_button.toolTip()),
        EDIT_LAST: (chat.edit_button.isEnabled(), chat.edit_button.toolTip()),
        COPY_REPLY: (window.copy_reply_action.isEnabled(), window.copy_reply_action.toolTip()),
    }


def test_actions_follow_model_chat_and_errors(qtbot, real_window, tiny_llama_dir):
    window, controller = real_window
    # No model and an empty chat: nothing to do, and each says why.
    for name, (enabled, _tip) in shown(window).items():
        assert not enabled, name
    assert shown(window)[REGENERATE][1] == "Nothing to regenerate yet: send a message first"
    assert shown(window)[EDIT_LAST][1] == "Nothing to edit yet: send a message first"
    assert shown(window)[COPY_REPLY][1] == "No reply to copy yet"
    open_and_wait(qtbot, controller, tiny_llama_dir)
    assert not any(enabled for enabled, _tip in shown(window).values())  # still an empty chat
    window.settings.max_new_tokens.setValue(4)
    done = send_and_wait(qtbot, window, controller, "hello")
    assert done.error is None and done.text
    assert shown(window) == {name: (True, with_key(name, TIPS[name])) for name in TIPS}
    assert shown(window)[COPY_REPLY][1] == "Copy the last reply's text (Ctrl+Shift+C)"
    # A message longer than the context window: the engine refuses it before reading it.
    too_long = "hello " * (controller.models.model.context_size + 20)
    assert send_and_wait(qtbot, window, controller, too_long) is None  # refused: no reply record
    refused = controller.transcript.turns[-1].node.done
    assert refused.error and refused.finish_reason == "error"
    state = shown(window)
    assert refused.error.endswith(".")  # quoted as its own sentence, not inside brackets
    assert state[REGENERATE] == (
        False,
        f"The model could not read your message. {refused.error} Edit it",
    )
    assert state[COPY_REPLY] == (
        False,
        f"The last reply has no text: it ended in an error. {refused.error}",
    )
    assert state[EDIT_LAST] == (True, with_key(EDIT_LAST, TIPS[EDIT_LAST]))  # how to fix it


def test_no_model_disables_regenerate_and_edit_but_not_copy():
    state = ChatState(
        model_loaded=False,
        busy=False,
        has_user=True,
        last_is_reply=True,
        last_reply_text="Paris.",
        last_reply_error=None,
        refused=False,
    )
    states = action_states(state)
    assert not states[REGENERATE].enabled and "No model is loaded" in states[REGENERATE].tip
    assert not states[EDIT_LAST].enabled and "No model is loaded" in states[EDIT_LAST].tip
    assert states[COPY_REPLY].enabled  # copying needs no model


def test_a_reply_that_failed_while_written_can_be_tried_again_and_says_so():
    state = ChatState(True, False, True, True, "Par", "The sampler failed.", False)
    states = action_states(state)
    assert states[REGENERATE].enabled
    assert (
        states[REGENERATE].tip
        == "The last reply ended in an error. The sampler failed. Generate it again"
    )
    assert states[COPY_REPLY].enabled  # its tokens so far can be copied
    busy = action_states(ChatState(True, True, True, True, "Par", None, False))
    assert not any(s.enabled for s in busy.values())
    assert all(s.tip.startswith("A reply is being written") for s in busy.values())
