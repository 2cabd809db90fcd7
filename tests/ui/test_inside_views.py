"""The Attention and Layers views on real tiny models: they fill for a selected token with the
engine's own numbers, the pickers and the grid change what is shown, they follow the keyboard,
they run only while on screen, and a folder without a probe graph shows one line."""

from __future__ import annotations

import shutil

import numpy as np
from PySide6.QtCore import Qt

from desktop.engine.chat import load_model
from desktop.ui import theme
from desktop.ui.inside_data import visible_label
from desktop.ui.token_view import percent
from tests.ui.test_real_models import open_and_wait, send_and_wait


def reply_of(qtbot, window, controller, folder, text="hello", tokens=6):
    open_and_wait(qtbot, controller, folder)
    window.settings.max_new_tokens.setValue(tokens)
    send_and_wait(qtbot, window, controller, text)
    return controller.transcript.turns[-1]


def select(qtbot, controller, reply, index):
    with qtbot.waitSignal(controller.inside.shown, timeout=60_000) as blocker:
        reply.widget.body.select_span(index, emit=True)
    return blocker.args[0]


def test_attention_and_layers_follow_the_selected_token(qtbot, real_window, tiny_llama_dir):
    assert (tiny_llama_dir / "onnx" / "probe_model.onnx").is_file()
    window, controller = real_window
    turn = reply_of(qtbot, window, controller, tiny_llama_dir)
    node = turn.node
    assert len(node.steps) >= 4
    window.attention_dock.raise_()
    qtbot.waitUntil(controller.inside.on_screen)
    result = select(qtbot, controller, turn, 2)

    # The engine's own numbers, straight from the probe: the row that chose token 2.
    prompt = list(node.prompt.prompt_ids)
    ids = prompt + [s.id for s in node.steps[:2]]
    model = load_model(tiny_llama_dir)
    try:
        seen = model.inspect(ids, [len(ids) - 1], 5)
    finally:
        model.close()
    view = window.attention
    assert result.request.ids == tuple(ids)
    np.testing.assert_allclose(view.shown, seen.attention.mean(axis=(0, 1))[0], atol=1e-6)
    assert len(view.colours) == len(ids)
    accent = theme.accent_color(theme.is_dark(view.palette()))
    strongest = int(np.argmax(view.shown))
    assert view.colours[strongest] == accent  # the most attended token is at full colour
    weakest = int(np.argmin(view.shown))
    assert view.colours[weakest] != accent
    label = visible_label(model.tokenizer.token_label(ids[strongest]))
    assert f"“{label}”" in view.tokens.accessibleDescription()

    # Layer and head pickers, then a click on the grid.
    view.layer.setCurrentIndex(2)  # layer 2
    view.head.setCurrentIndex(1)  # head 1
    np.testing.assert_allclose(view.shown, seen.attention[1, 0, 0], atol=1e-6)
    assert "layer 2, head 1" in view.heading.text()
    cell = view.grid.cell(0, 1).center()
    qtbot.mouseClick(view.grid, Qt.MouseButton.LeftButton, pos=cell)
    assert view.picked == (0, 1)
    np.testing.assert_allclose(view.shown, seen.attention[0, 1, 0], atol=1e-6)

    # The sink toggle: the first token no longer sets the colour scale.
    view.pick(None, None)
    view.sink.setChecked(True)
    rest = int(np.argmax(view.shown[1:])) + 1
    assert view.colours[rest] == accent  # the scale is the largest after the first token
    assert (
        view.colours[0] != accent
        and f"it takes {percent(float(view.shown[0]))}" in view.sink.text()
    )
    view.sink.setChecked(False)
    assert view.colours[int(np.argmax(view.shown))] == accent

    # The Layers view: the engine's lens, the final token marked.
    layers = window.layers
    assert layers.table.rowCount() == seen.lens_ids.shape[0]
    for layer in range(seen.lens_ids.shape[0]):
        top = layers.table.item(layer, 0).text()
        assert top.startswith(
            visible_label(model.tokenizer.token_label(int(seen.lens_ids[layer, 0, 0])))
        )
    last = layers.table.rowCount() - 1
    assert (last, 0) in layers.marked
    first = result.first_top_layer
    assert all(row + 1 >= first for row, _col in layers.marked)
    assert f"layer {first} of" in layers.table.accessibleDescription()

    # The keyboard moves the selection, and both views follow.
    turn.widget.body.setFocus()
    with qtbot.waitSignal(controller.inside.shown, timeout=60_000) as blocker:
        qtbot.keyClick(turn.widget.body, Qt.Key.Key_Right)
    assert blocker.args[0].request.reply_key == (node.key, 3)
    assert len(view.shown) == len(prompt) + 3


def test_nothing_runs_while_the_views_are_hidden(qtbot, real_window, tiny_llama_dir):
    window, controller = real_window
    turn = reply_of(qtbot, window, controller, tiny_llama_dir, tokens=3)
    window.inspector_dock.raise_()
    qtbot.waitUntil(lambda: not controller.inside.on_screen())
    turn.widget.body.select_span(1, emit=True)
    assert not controller.inside.busy and window.attention.result is None
    with qtbot.waitSignal(controller.inside.shown, timeout=60_000) as blocker:
        window.layers_dock.raise_()  # shown: the selected token is computed now
    assert blocker.args[0].request.reply_key == (turn.node.key, 1)


def test_a_folder_without_a_probe_graph_says_so_in_one_line(
    qtbot, real_window, tiny_llama_dir, tmp_path
):
    folder = tmp_path / "no-probe"
    shutil.copytree(tiny_llama_dir, folder)
    (folder / "onnx" / "probe_model.onnx").unlink()
    window, controller = real_window
    turn = reply_of(qtbot, window, controller, folder, tokens=3)
    window.attention_dock.raise_()
    qtbot.waitUntil(controller.inside.on_screen)
    with qtbot.waitSignal(controller.inside.failed, timeout=10_000) as blocker:
        turn.widget.body.select_span(0, emit=True)
    message = blocker.args[0]
    assert "no probe graph" in message and "tokenglass-export" in message and "\n" not in message
    assert window.attention.heading.text() == message
    assert window.layers.heading.text() == message
    assert not window.layers.table.isVisibleTo(window.layers)  # (its tab is behind)


def test_cross_attention_of_an_encoder_decoder_model(qtbot, real_window, trained_t5_dir, tmp_path):
    from tests.engine.test_inspect_seq2seq import with_probe

    folder = with_probe(trained_t5_dir, tmp_path / "t5")
    window, controller = real_window
    turn = reply_of(qtbot, window, controller, folder, text="tokens", tokens=8)
    window.attention_dock.raise_()
    qtbot.waitUntil(controller.inside.on_screen)
    result = select(qtbot, controller, turn, 1)
    view = window.attention
    titles = [view.kind.itemText(i) for i in range(view.kind.count())]
    assert titles[0].startswith("Cross-attention") and "Encoder self-attention" in titles
    assert view.kind.isVisible()
    prompt = turn.node.prompt.prompt_ids
    model = load_model(folder)
    try:
        start = model.manifest.decoder_start_id
        decoder = [start, turn.node.steps[0].id]
        seen = model.inspect_seq2seq(prompt, decoder, [1], 5)
    finally:
        model.close()
    np.testing.assert_allclose(view.shown, seen.cross_attention.mean(axis=(0, 1))[0], atol=1e-6)
    assert len(view.shown) == len(prompt)
    view.kind.setCurrentIndex(titles.index("Encoder self-attention"))
    np.testing.assert_allclose(
        view.shown, seen.encoder_attention.mean(axis=(0, 1)).mean(axis=0), atol=1e-6
    )
    assert view.grid.maps.shape[2:] == (len(prompt), len(prompt))
    assert window.layers.table.rowCount() == result.lens.__len__()
