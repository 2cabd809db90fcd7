"""The span views: the span under a position (binary search), long messages drawn as one edit and
capped at MAX_PIECES, and a stored reply rebuilt with the same spans as a streamed one."""

from __future__ import annotations

from desktop.engine.tokenizer import TokenPiece
from desktop.ui import messages
from desktop.ui.messages import AssistantMessageWidget, UserMessageWidget
from desktop.ui.token_view import Span, span_index
from tests.ui.scripted_model import scripted_step


def spans(*bounds: tuple[int, int]) -> list[Span]:
    return [Span(start, end, "", "") for start, end in bounds]


def test_span_index_finds_the_span_holding_a_character():
    # "abc" | empty (its text shows on the next token) | "de" | "f"
    layout = spans((0, 3), (3, 3), (3, 5), (5, 6))
    assert [span_index(layout, p) for p in range(7)] == [0, 0, 0, 2, 2, 3, -1]
    assert span_index(spans((0, 2), (2, 2)), 2) == -1  # an empty span at the end holds nothing
    assert span_index([], 0) == -1


def test_a_long_message_is_drawn_up_to_max_pieces(qtbot, qapp_theme, monkeypatch):
    monkeypatch.setattr(messages, "MAX_PIECES", 50)
    pieces = [TokenPiece(7, f" w{i}", f" w{i}".encode(), 0, 0, False) for i in range(120)]
    widget = UserMessageWidget("".join(p.token for p in pieces))
    qtbot.addWidget(widget)
    widget.show_pieces(pieces, "tokens")
    assert len(widget.body.spans) == 50
    assert widget.info.text() == "120 tokens; the first 50 are drawn"
    assert widget.body.toPlainText().endswith(" w49 … (70 more not drawn)")
    widget.show_pieces(pieces[:3], "tokens")
    assert len(widget.body.spans) == 3 and widget.info.text() == "3 tokens"


def test_a_stored_reply_has_the_spans_of_a_streamed_one(qtbot, qapp_theme):
    steps = [scripted_step(i, text, 0.5) for i, text in enumerate(["Hel", "", "lo", " world"])]
    streamed, stored = AssistantMessageWidget("m"), AssistantMessageWidget("m")
    qtbot.addWidget(streamed)
    qtbot.addWidget(stored)
    for count in range(1, len(steps) + 1):  # streamed: drawn as the reply's list grows
        streamed.show_steps(steps[:count])
    stored.show_steps(steps)
    as_tuples = [(s.start, s.end, s.tooltip, s.accessible) for s in stored.body.spans]
    assert as_tuples == [(s.start, s.end, s.tooltip, s.accessible) for s in streamed.body.spans]
    assert stored.body.toPlainText() == "Hello world" and stored.steps == steps
    assert stored.body.isVisibleTo(stored) and not stored.reading.isVisibleTo(stored)


def test_a_user_token_tooltip_shows_its_bytes_as_text(qtbot, qapp_theme):
    # Issue 15: "<20 70>" unescaped in rich text was read as a tag and the tooltip said "bytes".
    from PySide6.QtGui import QTextDocument

    widget = UserMessageWidget(" p<b>")
    qtbot.addWidget(widget)
    widget.show_pieces([TokenPiece(7, " p<b>", b" p<b>", 0, 0, False)], "tokens")
    document = QTextDocument()
    document.setHtml(widget.body.spans[0].tooltip)
    assert document.toPlainText() == "·p<b>\nid 7\nbytes <20 70 3C 62 3E>"


def test_newline_and_tab_tokens_show_as_marks_and_copy_keeps_the_text(qtbot, qapp_theme):
    # Issue 15: a newline or tab token was invisible in the token views.
    steps = [scripted_step(i, text, 0.5) for i, text in enumerate(["a", "\n", "\t", "b"])]
    reply = AssistantMessageWidget("m")
    qtbot.addWidget(reply)
    reply.show_steps(steps)
    assert reply.body.toPlainText() == "a↵\n→b"
    assert [(s.start, s.end) for s in reply.body.spans] == [(0, 1), (1, 3), (3, 4), (4, 5)]
    assert reply.text == "a\n\tb"  # what Copy puts on the clipboard
    pieces = [TokenPiece(i, t, t.encode(), 0, 0, False) for i, t in enumerate(["x", "\n", "\t"])]
    message = UserMessageWidget("x\n\t")
    qtbot.addWidget(message)
    for mode in ("tokens", "prompt"):
        message.show_pieces(pieces, mode)
        assert message.body.toPlainText() == "x↵\n→"
    message.show_text()
    assert message.body.toPlainText() == "x\n\t"


def test_the_inspector_shows_a_fragment_s_bytes_as_text(qtbot, qapp_theme):
    # Issue 15: "<DD>" (a lead byte) is a tag to Qt's rich-text guess: dd is an HTML element.
    import dataclasses

    from PySide6.QtCore import Qt

    from desktop.ui.inspector import InspectorPanel

    panel = InspectorPanel()
    qtbot.addWidget(panel)
    step = dataclasses.replace(scripted_step(0, "x", 0.5), token="", bytes=b"\xdd")
    panel.set_reply([step])
    panel.show_step(0)
    label = panel.values["bytes"]
    assert label.text() == "<DD>" and label.textFormat() == Qt.TextFormat.PlainText


def test_a_streaming_reply_has_no_empty_footer_line(qtbot, qapp_theme):
    """QA: an empty band one line high sat under a reply while it streamed (its footer, empty
    until the end). The footer shows when the reply ends, with its figures."""
    from tests.history.records import make_done

    steps = [scripted_step(i, text, 0.5) for i, text in enumerate(["Hel", "lo"])]
    reply = AssistantMessageWidget("m")
    qtbot.addWidget(reply)
    reply.show_steps(steps)
    assert not reply.footer.isVisibleTo(reply)
    reply.finish(make_done(tuple(steps)))
    assert reply.footer.isVisibleTo(reply) and reply.footer.text().startswith("2 tokens")
