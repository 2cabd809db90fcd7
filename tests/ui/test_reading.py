"""Reading replies (issue 15): a reply's Text view (rendered Markdown) beside its Tokens view,
prefill progress, the live token count under the message box, the per-token chart (tooltip,
axes, bar width, an opened chat) and "Show surprisal" on the tokens, remembered.

The real window (tests/ui/conftest.py): the scripted model where a reply's exact text matters
(Markdown, HTML, 256 tokens), the tiny exported Llama (real ONNX Runtime, real tokenizer) for
prefill progress and token counts.
"""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QFontMetricsF, QHelpEvent, QTextCursor
from PySide6.QtWidgets import QToolTip

from desktop import paths
from desktop.engine import steppers
from desktop.ui import settings_store, theme
from desktop.ui.app import build
from desktop.ui.messages import AssistantMessageWidget
from desktop.ui.reply_text import with_line_breaks
from desktop.ui.surprisal_scale import surprisal_colour
from desktop.ui.token_chart import MIN_BAR_PX
from desktop.ui.token_count import CAP_CHARS, count_text
from tests.ui.scripted_model import ScriptedModel, scripted_loader
from tests.ui.test_real_models import open_and_wait
from tests.ui.test_real_models import send_and_wait as send_real
from tests.ui.test_window import replies, send_and_wait


def scripted_reply(built, *texts: str, prob: float = 0.5) -> None:
    built.model.reply = tuple((text, prob) for text in texts)


def format_at(view, position: int):
    cursor = QTextCursor(view.document())
    cursor.setPosition(position + 1)  # the format of the character before the cursor
    return cursor.charFormat()


def fixed_pitch(fmt) -> bool:
    """The format asks for a fixed-pitch font and its font draws "i" as wide as "W" (Qt's
    font database does not flag Noto Sans Mono, the first monospace family here, as fixed)."""
    metrics = QFontMetricsF(fmt.font())
    return fmt.fontFixedPitch() and metrics.horizontalAdvance("i") == metrics.horizontalAdvance("W")


# ---- the Text view ----------------------------------------------------------------------------
def test_text_view_renders_the_reply_and_tokens_stay_the_default(qtbot, scripted_window):
    built = scripted_window
    scripted_reply(built, "Hello,", " world!", "\n", "A second", " line.")
    send_and_wait(qtbot, built, "hi")
    reply = replies(built)[-1]
    assert reply.mode == "tokens" and reply.body.isVisible() and not reply.rendered.isVisible()
    qtbot.mouseClick(reply.view_buttons.buttons["text"], Qt.MouseButton.LeftButton)
    assert reply.mode == "text" and reply.rendered.isVisible() and not reply.body.isVisible()
    # the rendered text reads as the reply: the single newline stays a line break
    assert reply.rendered.toPlainText() == reply.text == "Hello, world!\nA second line."
    qtbot.mouseClick(reply.view_buttons.buttons["tokens"], Qt.MouseButton.LeftButton)
    assert reply.mode == "tokens" and reply.body.isVisible() and not reply.rendered.isVisible()


def test_text_view_follows_a_streaming_reply(qtbot, scripted_window):
    built = scripted_window
    scripted_reply(built, *[f" word{i}" for i in range(40)])
    built.model.delay_s = 0.05  # two seconds of streaming
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=20000):
        built.controller.runs.send("stream")
        qtbot.waitUntil(lambda: bool(replies(built)) and len(replies(built)[-1].steps) > 0)
        reply = replies(built)[-1]
        reply.show_mode("text")
        qtbot.waitUntil(lambda: reply.rendered.toPlainText().startswith("word0"))
        assert reply.done is None  # rendered while the reply was still being written
    assert reply.rendered.toPlainText() == reply.text.strip() and len(reply.steps) == 40


def test_a_code_block_is_monospace_and_a_tab_is_four_spaces(qtbot, scripted_window):
    built = scripted_window
    scripted_reply(
        built, "Run ", "`f()`", ":\n\n", "```python\n", "def f():\n", "\treturn\t1\n", "```"
    )
    send_and_wait(qtbot, built, "code please")
    reply = replies(built)[-1]
    reply.show_mode("text")
    document = reply.rendered.document()
    text = document.toPlainText()
    code = text.index("def f()")
    assert fixed_pitch(format_at(reply.rendered, code))
    assert fixed_pitch(format_at(reply.rendered, text.index("f()")))  # inline code too
    assert not fixed_pitch(format_at(reply.rendered, text.index("Run")))
    assert "return\t1" in text  # the tab inside the line is kept (md4c indents with spaces)
    space = QFontMetricsF(theme.mono_font()).horizontalAdvance(" ")
    assert reply.rendered.tabStopDistance() == pytest.approx(4 * space)
    assert reply.body.tabStopDistance() == pytest.approx(
        4 * reply.body.fontMetrics().horizontalAdvance(" ")
    )  # the token views' tab width too


def test_html_in_a_reply_stays_text_and_links_are_not_followed(qtbot, scripted_window):
    built = scripted_window
    html_text = "<b>bold</b> <img src='/etc/x.png'> <script>alert(1)</script>"
    scripted_reply(built, html_text, "\n\nSee ", "[the docs](https://example.org/docs)", ".")
    send_and_wait(qtbot, built, "html?")
    reply = replies(built)[-1]
    reply.show_mode("text")
    view = reply.rendered
    plain = view.toPlainText()
    assert html_text in plain  # every tag shown as written
    assert not format_at(view, plain.index("bold")).font().bold()
    assert "<img" not in view.toHtml().replace("&lt;img", "")  # no image element
    assert view.openLinks() is False and view.openExternalLinks() is False
    link = plain.index("the docs")
    assert format_at(view, link).anchorHref() == "https://example.org/docs"
    clicked = []
    view.link_clicked.connect(clicked.append)
    rect = view.cursorRect(_cursor(view, link + 2))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert [url.toString() for url in clicked] == ["https://example.org/docs"]
    assert view.source().isEmpty() and view.toPlainText() == plain  # nothing was opened


def _cursor(view, position: int) -> QTextCursor:
    cursor = QTextCursor(view.document())
    cursor.setPosition(position)
    return cursor


def test_single_newlines_become_breaks_but_not_inside_code():
    text = "one\ntwo\n\n```\na\nb\n```\n    indented\n    code"
    assert with_line_breaks(text) == "one  \ntwo\n\n```\na\nb\n```\n    indented\n    code"


def test_an_inspected_reply_goes_back_to_its_tokens(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    reply = replies(built)[-1]
    reply.show_mode("text")
    bars = built.window.inspector.strip.bars
    built.controller.inspector.inspect(built.controller.transcript.turns[-1].node)
    qtbot.mouseClick(bars, Qt.MouseButton.LeftButton, pos=QPoint(int(bars.bar_center(2)), 40))
    assert reply.mode == "tokens" and reply.body.selected == 2 and reply.body.isVisible()


# ---- prefill progress -------------------------------------------------------------------------
def test_prefill_progress_shows_each_chunk_in_the_reading_line(
    qtbot, real_window, tiny_llama_dir, monkeypatch
):
    monkeypatch.setattr(steppers, "PREFILL_CHUNK", 5)
    seen: list[tuple[int, int, int]] = []
    lines: list[str] = []
    original = AssistantMessageWidget.set_progress

    def spy(self, done, total, reused=0):
        seen.append((done, total, reused))
        original(self, done, total, reused)
        lines.append(self.reading.text())

    monkeypatch.setattr(AssistantMessageWidget, "set_progress", spy)
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.max_new_tokens.setValue(2)
    send_real(qtbot, window, controller, "one two three four five six seven eight nine ten")
    n = len(controller.transcript.turns[-1].node.prompt.prompt_ids)
    assert n > 15
    assert seen == [(done, n, 0) for done in (0, *range(5, n, 5), n)]  # the real chunk ends
    assert lines[1] == f"Reading your message… 5 / {n} tokens"


def test_progress_line_names_the_tokens_kept_from_before(qtbot, scripted_window):
    reply = AssistantMessageWidget("m")
    qtbot.addWidget(reply)
    reply.set_reading(1200, dropped=2)
    reply.set_progress(120, 900, 1_300)
    assert reply.reading.text() == (
        "Reading your message… 120 / 900 tokens (1,300 more kept from before)"
        " · 2 oldest messages left out to fit the context window"
    )


# ---- the live token count ---------------------------------------------------------------------
def test_token_count_is_the_tokenizers_count_and_follows_typing(qtbot, real_window, tiny_llama_dir):
    window, controller = real_window
    label, box = window.chat.count_label, window.chat.input
    qtbot.keyClicks(box, "hi")
    qtbot.waitUntil(lambda: label.text() == "Token count: no model is loaded")
    box.clear()
    qtbot.waitUntil(lambda: not label.isVisible())
    open_and_wait(qtbot, controller, tiny_llama_dir)
    model = controller.models.model
    size = model.context_size
    text = "Hello there, how are you?"
    qtbot.keyClicks(box, text)
    count = len(model.tokenizer.encode(text))
    assert count > 3
    qtbot.waitUntil(lambda: label.text() == f"{count} tokens · {size - count:,} of {size:,} left")
    assert label.isVisible()
    qtbot.keyClicks(box, " And more words")
    longer = len(model.tokenizer.encode(text + " And more words"))
    assert longer > count
    qtbot.waitUntil(lambda: label.text().startswith(f"{longer} tokens · "))
    # a screen reader hears the count with the box (its own description, then the count)
    description = box.accessibleDescription()
    assert description.startswith("Type your message. Enter sends it")
    assert description.endswith(f" {label.text()}.")
    # after a reply, the chat so far counts against the context
    window.settings.max_new_tokens.setValue(3)
    done = send_real(qtbot, window, controller, "hello")
    used = done.prompt_tokens + done.completion_tokens
    qtbot.keyClicks(box, text)
    qtbot.waitUntil(
        lambda: label.text() == f"{count} tokens · {size - used - count:,} of {size:,} left"
    )


def test_a_huge_paste_is_counted_from_its_start(tiny_llama_dir):
    from desktop.engine.chat import load_model

    model = load_model(tiny_llama_dir)
    text = "word " * (CAP_CHARS // 2)  # twice the characters counted first
    head = len(model.tokenizer.encode(text[:CAP_CHARS]))
    assert head > model.context_size
    assert count_text(model, text, 0) == (
        f"more than {head:,} tokens · longer than the {model.context_size:,}-token context"
    )


# ---- the per-token chart ----------------------------------------------------------------------
def test_chart_tooltip_names_the_bar_under_the_mouse(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    chart = built.window.inspector.strip
    bars = chart.bars
    assert len(bars.steps) == 4  # the new reply is charted as it streams
    want = "token 3 of 4: “·world”\nprobability 30.0 % · surprisal 1.74 bits · rank 3"
    assert bars.tooltip_at(bars.bar_center(2)) == want
    point = QPoint(int(bars.bar_center(2)), 40)
    assert bars.event(QHelpEvent(QEvent.Type.ToolTip, point, bars.mapToGlobal(point)))
    assert QToolTip.text() == want
    assert bars.tooltip_at(bars.width() + 10) == ""
    assert chart.axis.labels() == ["100 %", "50 %", "0 %"]
    assert "Probability of each token (0–100 %) by token index" in chart.caption.text()


def test_chart_bars_stay_readable_at_256_tokens(qtbot, scripted_window):
    built = scripted_window
    scripted_reply(built, *[f" w{i}" for i in range(256)], prob=0.8)
    send_and_wait(qtbot, built, "long")
    chart = built.window.inspector.strip
    bars = chart.bars
    assert len(bars.steps) == 256
    assert bars.bar_width() >= MIN_BAR_PX and bars.width() >= 256 * MIN_BAR_PX
    scroll = chart.scroll.horizontalScrollBar()
    assert chart.scroll.viewport().width() < bars.width() and scroll.maximum() > 0
    assert scroll.value() == scroll.maximum()  # it followed the reply to its newest token
    assert bars.index_at(bars.bar_center(200)) == 200
    chart.set_selected(3)  # a picked token is scrolled into view
    assert scroll.value() <= bars.bar_center(3)


def test_chart_is_filled_when_a_saved_chat_opens(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    conv = built.controller.session.conversation_id
    built.window.new_chat_action.trigger()
    assert built.window.inspector.strip.bars.steps == []
    built.controller.chats.open_conversation(conv)
    reply = replies(built)[-1]
    assert [s.prob for s in built.window.inspector.strip.bars.steps] == [0.95, 0.6, 0.3, 0.02]
    assert built.window.inspector.strip.bars.steps == reply.steps
    assert built.window.inspector.current == -1  # nothing pinned until a token is picked


def test_surprisal_tints_tokens_and_survives_a_new_window(qtbot, scripted_window, history):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    reply = replies(built)[-1]
    box = built.window.inspector.surprisal_box
    box.setChecked(True)
    for index, step in enumerate(reply.steps):  # the reply on screen is recoloured
        colour = format_at(reply.body, reply.body.spans[index].start).background().color()
        assert colour.name() == surprisal_colour(step.prob, False).name()
    assert surprisal_colour(0.02, False).name() != theme.probability_bin(0.02).light
    assert built.window.inspector.strip.bars.surprisal
    assert built.window.inspector.strip.axis.labels() == ["16", "8", "0 bits"]
    built.controller.models.flush_settings()
    saved = json.loads(paths.settings_file().read_text(encoding="utf-8"))
    assert saved["show_surprisal"] is True
    # a new window reads the setting: checked, and its replies come tinted
    model = ScriptedModel()
    window, controller = build(scripted_loader(model), None, history, settings_store.load())
    qtbot.addWidget(window)
    window.show()
    try:
        with qtbot.waitSignal(controller.models.model_ready, timeout=5000):
            controller.models.open_model(None)
        assert window.inspector.surprisal_box.isChecked()
        assert (
            window.inspector.strip.bars.surprisal and window.inspector.surprisal_legend.isVisible()
        )
        with qtbot.waitSignal(controller.runs.reply_done, timeout=10000):
            controller.runs.send("again")
        fresh = controller.transcript.turns[-1].widget
        for index, step in enumerate(fresh.steps):
            colour = format_at(fresh.body, fresh.body.spans[index].start).background().color()
            assert colour.name() == surprisal_colour(step.prob, False).name()
        window.inspector.surprisal_box.setChecked(False)  # and back to the probability scale
        colour = format_at(fresh.body, fresh.body.spans[3].start).background().color()
        assert colour.name() == theme.probability_bin(fresh.steps[3].prob).light
    finally:
        controller.lifetime.shutdown()
