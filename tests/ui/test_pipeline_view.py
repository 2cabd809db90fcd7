"""The Pipeline view in the window, on real tiny models: the selected reply's phases, decode bars
and sampler funnel, its links, an encoder-decoder's Encoder card, and a reply reopened from
history."""

from __future__ import annotations

import html

from PySide6.QtCore import QPoint, Qt

from desktop.ui.token_view import visible_token
from tests.ui.test_real_models import open_and_wait, send_and_wait


def test_pipeline_shows_the_reply_and_follows_the_selected_token(
    qtbot, real_window, tiny_llama_dir
):
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.max_new_tokens.setValue(8)
    window.settings.temperature.setValue(1.0)
    window.settings.top_k.setValue(5)
    window.settings.seed.setValue(4)
    done = send_and_wait(qtbot, window, controller, "hello there")
    view, turn = window.pipeline, controller.transcript.turns[-1]
    assert [p.phase for p in turn.phases] == ["tokenize", "prefill", "decode"]
    tokenize, prefill, decode = turn.phases
    assert view.tokenize.figures_text == f"{done.prompt_tokens} tokens · {tokenize.ms:.1f} ms"
    assert view.read.title_text == "2 Prefill" and view.decode.title_text == "3 Decode"
    assert "chat template" in view.tokenize.sentence.text()
    assert f"{prefill.tokens} tokens run · 0 from the cache" in view.read.figures_text
    assert f"{decode.tokens} steps" in view.decode.figures_text
    assert len(view.bars.steps) == done.completion_tokens
    # the newest token until one is picked; then the funnel is that token's chain
    last = turn.widget.steps[-1]
    assert view.funnel.chain == last.sampler
    turn.widget.token_selected.emit(2)
    step = turn.widget.steps[2]
    assert view.selected == 2 and view.funnel.chain == step.sampler
    rows = view.funnel.rows()
    assert [count for _, count, _ in rows] == [400, 400, 5, 1]  # vocabulary, temperature, top-k
    assert rows[-1][0].startswith("drawn: the ") and rows[-1][0].endswith(" of 5")
    assert f"(id {step.id})" in view.output.figures_text
    # a click on a decode bar picks that token everywhere
    bar_x = int(view.bars._slot() * 3.5)  # the bar of token 4
    qtbot.mouseClick(view.bars, Qt.MouseButton.LeftButton, pos=QPoint(bar_x, 5))
    assert view.selected == 4 and window.inspector.current == 4
    # links: the message's tokens, the prompt as read, the token inspector
    user = controller.transcript.turns[-2]
    view.link_requested.emit("tokens")
    assert user.widget.mode == "tokens"
    view.link_requested.emit("prompt")
    assert user.widget.mode == "prompt"
    window.pipeline_dock.raise_()
    view.link_requested.emit("inspector")
    assert not window.inspector_dock.visibleRegion().isEmpty()
    for target, dock in (("attention", window.attention_dock), ("layers", window.layers_dock)):
        window.pipeline_dock.raise_()
        view.link_requested.emit(target)  # the views inside the model, for the same token
        assert not dock.visibleRegion().isEmpty()


def test_greedy_reply_and_a_reopened_chat_show_the_saved_pipeline(
    qtbot, real_window, tiny_llama_dir
):
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.max_new_tokens.setValue(5)
    window.settings.temperature.setValue(0.0)
    window.settings.repetition_penalty.setValue(1.0)
    send_and_wait(qtbot, window, controller, "hello")
    phases = list(controller.transcript.turns[-1].phases)
    assert [text for text, _, _ in window.pipeline.funnel.rows()] == [
        "greedy: the most likely taken"
    ]
    conv_id = controller.session.conversation_id
    controller.chats.new_chat()
    assert window.pipeline.phases == [] and window.pipeline.steps == []
    controller.chats.open_conversation(conv_id)
    reply = controller.transcript.turns[-1]
    assert reply.phases == phases  # from history
    reply.widget.token_selected.emit(0)
    assert window.pipeline.phases == phases
    assert window.pipeline.funnel.chain == reply.widget.steps[0].sampler != ()


def test_encoder_decoder_strip_says_encoder_and_shows_its_input(qtbot, real_window, tiny_t5_dir):
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_t5_dir)
    window.settings.max_new_tokens.setValue(4)
    send_and_wait(qtbot, window, controller, "hello world")
    view, turn = window.pipeline, controller.transcript.turns[-1]
    assert [p.phase for p in turn.phases] == ["tokenize", "encode", "decode"]
    assert view.read.title_text == "2 Encoder" and view.decode.title_text == "3 Decoder"
    # the encoder reads the message itself: no chat template written out, as for a decoder
    assert "chat template" not in view.tokenize.sentence.text()
    assert view.tokenize.sentence.text().startswith("Your message is cut into tokens")
    assert view.inputs.isVisibleTo(view)  # the tab is behind the inspector: its content hidden
    ids = turn.prompt.prompt_ids
    assert view.inputs.text().count("<code>") == len(ids) > 0  # each input token, by its label
    for token_id in ids:
        label = visible_token(controller.models.model.tokenizer.token_label(token_id))
        assert f"<code>{html.escape(label)}</code>" in view.inputs.text()
    # A reply made by another model than the loaded one: its ids are not labelled by this
    # tokenizer (they belong to another vocabulary), they are shown as ids.
    view.label_model = "another-model"
    view.set_reply(turn.prompt, turn.phases, turn.widget.steps, turn.node.model)
    assert view.inputs.text() == " ".join(f"<code>{i}</code>" for i in ids)


def test_a_continued_replys_given_tokens_say_they_were_not_sampled(
    qtbot, real_window, tiny_llama_dir
):
    # A reply continued from an alternative: the picked token was given, not drawn, so its
    # funnel has no chain; it must say so, not "no token yet" (the token is there).
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    window.settings.max_new_tokens.setValue(6)
    window.settings.temperature.setValue(0.0)
    send_and_wait(qtbot, window, controller, "hello there")
    reply = controller.transcript.turns[-1].node
    picked = next(a.id for a in reply.steps[2].top if a.id != reply.steps[2].id)
    with qtbot.waitSignal(controller.runs.reply_done, timeout=60_000):
        assert controller.runs.branch(reply, 2, picked)
    turn = controller.transcript.turns[-1]
    assert turn.node.steps[2].picked and turn.node.steps[2].id == picked
    view = window.pipeline
    turn.widget.token_selected.emit(2)
    assert view.selected == 2 and view.funnel.chain == ()
    assert view.funnel.empty_text == "picked by you, not sampled"
    turn.widget.token_selected.emit(0)  # kept from the original: given, not drawn, either
    assert view.funnel.chain == ()
    assert view.funnel.empty_text == "kept from the original reply, not sampled"
    turn.widget.token_selected.emit(4)
    assert view.funnel.chain != () and view.funnel.rows()[-1][0].startswith("greedy")


def test_a_funnel_row_too_long_for_the_panel_keeps_its_share(qapp):
    # QA: in a 360-pixel inspector dock "greedy: the most likely taken · 96.1%" was cut at the
    # right edge, share and all; the label is elided instead and the figure stays whole.
    from desktop.ui.pipeline_charts import SamplerFunnel

    funnel = SamplerFunnel()
    text = "greedy: the most likely taken"
    metrics = funnel.fontMetrics()
    room = metrics.horizontalAdvance(text + " · 96.1%") - 20
    label = funnel.row_label(text, 0.961, room)
    assert label.endswith(" · 96.1%") and label.startswith("greedy")
    assert "…" in label and metrics.horizontalAdvance(label) <= room
    wide = funnel.row_label(text, 0.961, room + 400)
    assert wide == text + " · 96.1%"
