"""The window around the real engine: a tiny exported Llama (fast) and the default model (slow).

The reply's spans must carry exactly the engine's probabilities: the same generation run directly
through `ChatModel.generate` (greedy, same seed) gives the same token ids and probabilities.
"""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt

from desktop.engine.chat import load_model
from desktop.engine.events import Message, TokenStep
from desktop.ui import theme
from desktop.ui.messages import ErrorBanner
from desktop.ui.token_views import display_pieces


def open_and_wait(qtbot, controller, folder) -> None:
    with qtbot.waitSignal(controller.models.model_ready, timeout=120_000):
        controller.models.open_model(str(folder))


def send_and_wait(qtbot, window, controller, text, timeout=120_000):
    with qtbot.waitSignal(controller.runs.reply_done, timeout=timeout) as blocker:
        window.chat.input.setPlainText(text)
        qtbot.keyClick(window.chat.input, Qt.Key.Key_Return)
    return blocker.args[0]


def test_tiny_model_reply_carries_the_engines_probabilities(qtbot, real_window, tiny_llama_dir):
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    assert window.model_label.text() == controller.models.model.name
    assert window.settings.temperature.value() == 0.0  # generation_config: do_sample false
    window.settings.max_new_tokens.setValue(12)
    window.settings.seed.setValue(3)
    done = send_and_wait(qtbot, window, controller, "hello")
    assert done.finish_reason in ("stop", "length") and done.error is None
    reply = controller.transcript.turns[-1]
    steps: list[TokenStep] = reply.widget.steps
    assert len(steps) == done.completion_tokens > 0
    # The same request straight through the engine gives the same tokens and probabilities.
    direct = load_model(tiny_llama_dir)
    try:
        events = list(direct.generate([Message("user", "hello")], done.settings))
    finally:
        direct.close()
    expected = [e for e in events if isinstance(e, TokenStep)]
    assert [s.id for s in steps] == [s.id for s in expected]
    assert [s.prob for s in steps] == pytest.approx([s.prob for s in expected], abs=1e-6)
    # Each span is coloured by its own probability's bin, and its tooltip names its probability.
    for index, step in enumerate(steps):
        span = reply.widget.body.spans[index]
        assert step_tooltip_has_prob(span.tooltip, step.prob)
    assert reply.widget.body.toPlainText() == done.text
    size = controller.models.model.context_size
    assert window.context_label.text() == (
        f"context {done.prompt_tokens + done.completion_tokens} / {size}"
    )
    assert "CPUExecutionProvider" in reply.widget.footer.text()


def step_tooltip_has_prob(tooltip: str, prob: float) -> bool:
    from desktop.ui.token_view import percent

    return f"p = {percent(prob)}" in tooltip


def test_tiny_model_user_tokens_show_bytes_of_split_characters(qtbot, real_window, tiny_llama_dir):
    _window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    pieces = controller.models.model.tokenize("héllo 😀")
    shown = display_pieces("héllo 😀", pieces)
    # The emoji is split over byte tokens: the chat text shows it once, whole (cases A1, A2).
    assert "".join(p.display for p in shown) == "héllo 😀"
    assert "\ufffd" not in "".join(p.display for p in shown)
    assert b"".join(p.bytes for p in pieces) == "héllo 😀".encode()


def test_tiny_model_stop_regenerate_and_settings(qtbot, real_window, tiny_llama_dir):
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.max_new_tokens.setValue(200)
    window.settings.temperature.setValue(1.0)
    window.settings.seed.setValue(11)
    window.chat.input.setPlainText("tell me a story")
    with qtbot.waitSignal(controller.runs.reply_done, timeout=60_000) as blocker:
        qtbot.keyClick(window.chat.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: controller.transcript.turns[-1].prompt is not None, timeout=30_000)
        qtbot.keyClick(window.chat.input, Qt.Key.Key_Escape)
    stopped = blocker.args[0]
    assert stopped.finish_reason == "cancelled"
    assert stopped.completion_tokens < 200
    # Regenerate with the same seed reproduces the reply exactly (case E5).
    window.settings.max_new_tokens.setValue(10)
    with qtbot.waitSignal(controller.runs.reply_done, timeout=60_000) as first:
        controller.runs.regenerate()
    ids_first = [s.id for s in controller.transcript.turns[-1].widget.steps]
    with qtbot.waitSignal(controller.runs.reply_done, timeout=60_000) as second:
        qtbot.mouseClick(window.chat.regenerate_button, Qt.MouseButton.LeftButton)
    assert [s.id for s in controller.transcript.turns[-1].widget.steps] == ids_first
    assert first.args[0].text == second.args[0].text
    assert second.args[0].settings == dataclasses.replace(
        first.args[0].settings, seed=11, max_new_tokens=10
    )
    # Switching a setting changes what is sent: top-k 1 makes sampling greedy.
    window.settings.top_k.setValue(1)
    with qtbot.waitSignal(controller.runs.reply_done, timeout=60_000) as greedy:
        controller.runs.regenerate()
    assert greedy.args[0].settings.top_k == 1
    assert all(
        s.sampling_prob == pytest.approx(1.0) for s in controller.transcript.turns[-1].widget.steps
    )


def test_broken_model_folder_shows_error_then_chat_goes_on(
    qtbot, real_window, tiny_llama_dir, tmp_path
):
    window, controller = real_window
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    with qtbot.waitSignal(controller.models.model_failed, timeout=60_000) as blocker:
        controller.models.open_model(str(broken))
    banner = window.chat.column_widget.findChildren(ErrorBanner)[-1]
    assert banner.text() == f"The model could not be loaded. {blocker.args[0]}"
    assert "config.json" in blocker.args[0]
    assert controller.models.model is None and not window.chat.send_button.isEnabled()
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.max_new_tokens.setValue(5)
    done = send_and_wait(qtbot, window, controller, "hi")
    assert done.error is None and done.completion_tokens > 0


@pytest.mark.slow
def test_default_model_chat(qtbot, real_window, default_model_dir):
    window, controller = real_window
    open_and_wait(qtbot, controller, default_model_dir)
    window.settings.max_new_tokens.setValue(16)
    window.settings.seed.setValue(0)
    window.settings.temperature.setValue(0.0)
    done = send_and_wait(qtbot, window, controller, "What is the capital of France?")
    assert done.error is None
    steps = controller.transcript.turns[-1].widget.steps
    assert len(steps) == done.completion_tokens > 0
    assert all(0.0 < s.prob <= 1.0 and s.top for s in steps)
    assert "Paris" in done.text
    body = controller.transcript.turns[-1].widget.body
    fmt_bins = {theme.probability_bin(s.prob).label for s in steps}
    assert fmt_bins  # every token fell into a legend bin
    assert body.toPlainText() == done.text


def test_tiny_model_branch_from_an_alternative_in_the_inspector(qtbot, real_window, tiny_llama_dir):
    """Clicking an alternative in the inspector continues the reply
    from that token on the real engine; the tokens before it are the original's, the picked one
    carries the logprob the original step listed for it."""
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.temperature.setValue(0.0)
    window.settings.max_new_tokens.setValue(8)
    send_and_wait(qtbot, window, controller, "hello")
    (original,) = [t for t in controller.transcript.turns if t.role == "assistant"]
    steps = list(original.node.steps)
    assert len(steps) >= 3
    at = 2
    original.widget.body.select_span(at, emit=True)
    chart = window.inspector.alternatives
    row = next(i for i, a in enumerate(chart._alternatives) if a.id != steps[at].id)
    picked = chart._alternatives[row]
    point = chart.rect().center()
    point.setY(int(chart._top() + (row + 0.5) * chart.row_height()))
    with qtbot.waitSignal(controller.runs.reply_done, timeout=120_000) as blocker:
        qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=point)
    assert blocker.args[0].error is None
    (branch,) = [t for t in controller.transcript.turns if t.role == "assistant"]
    new = branch.node.steps
    assert branch.node is not original.node and branch.widget.versions.label.text() == "2/2"
    assert [s.id for s in new[:at]] == [s.id for s in steps[:at]]
    assert new[at].id == picked.id and new[at].picked
    assert new[at].logprob == pytest.approx(picked.logprob, abs=1e-4)
    assert branch.widget.body.marked == {at}
