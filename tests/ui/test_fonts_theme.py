"""Case G5 (CJK and emoji render, no boxes) and the probability scale's colour + non-colour cue."""

from __future__ import annotations

import math

from PySide6.QtGui import QTextCharFormat, QTextLayout

from desktop.ui import settings_store, theme
from desktop.ui.messages import AssistantMessageWidget
from tests.ui.scripted_model import scripted_step

G5_TEXT = "你好，世界 😀 かな 한국어"


def test_g5_cjk_and_emoji_have_glyphs_in_the_chat_view(qtbot, qapp_theme):
    assert theme.available_fallbacks(), "no fallback fonts: run `make system-deps`"
    reply = AssistantMessageWidget("scripted")
    qtbot.addWidget(reply)
    reply.resize(600, 200)
    reply.show()
    steps = []  # the reply's records, drawn as they stream in
    for index, word in enumerate(G5_TEXT.split(" ")):
        steps.append(scripted_step(index, (" " if index else "") + word, 0.5))
        reply.show_steps(steps)
    assert reply.body.toPlainText() == G5_TEXT
    # Lay the text out with the view's own font, as the chat view draws it.
    layout = QTextLayout(reply.body.toPlainText(), reply.body.font())
    layout.beginLayout()
    layout.createLine()
    layout.endLayout()
    runs = layout.glyphRuns()
    glyphs = [g for run in runs for g in run.glyphIndexes()]
    assert len(glyphs) >= len(G5_TEXT.replace(" ", ""))
    assert 0 not in glyphs, "a character fell back to the .notdef box"
    families = {run.rawFont().familyName() for run in runs}
    assert any("CJK" in f for f in families) and any("Emoji" in f for f in families), families


def test_probability_bins_cover_zero_to_one_with_distinct_colour_and_underline():
    assert theme.probability_bin(1.0).label == "≥ 90 %"
    assert theme.probability_bin(0.9).label == "≥ 90 %"
    assert theme.probability_bin(0.899).label == "50–90 %"
    assert theme.probability_bin(0.049).label == "< 5 %"
    assert theme.probability_bin(0.0).label == "< 5 %"
    assert theme.probability_bin(math.nan).label == "< 5 %"
    for dark in (False, True):
        colours = [b.dark if dark else b.light for b in theme.PROBABILITY_SCALE]
        assert len(set(colours)) == len(colours)
    # The non-colour cue: the three lower bins each have their own underline style.
    styles = [b.underline for b in theme.PROBABILITY_SCALE[2:]]
    assert len(set(styles)) == 3
    assert QTextCharFormat.UnderlineStyle.NoUnderline not in styles
    fmt = theme.token_format(0.01, dark=False)
    assert fmt.underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline


def test_settings_file_round_trip_and_bad_files(tmp_path):
    from desktop.engine.events import GenerationSettings

    path = tmp_path / "settings.json"
    settings = settings_store.AppSettings(model="m", provider="cpu", system_prompt="Be brief.")
    settings.remember("m", GenerationSettings(temperature=0.3, stop_strings=("\n",), seed=5))
    settings_store.save(settings, path)
    loaded = settings_store.load(path)
    assert loaded.provider == "cpu" and loaded.system_prompt == "Be brief."
    got = loaded.generation_for("m", GenerationSettings())
    assert got == GenerationSettings(temperature=0.3, stop_strings=("\n",), seed=5)
    assert loaded.generation_for("other", GenerationSettings(top_k=3)).top_k == 3
    path.write_text("{ broken")
    assert settings_store.load(path) == settings_store.AppSettings()
    path.write_text('{"provider": "quantum", "generation": {"m": {"temperature": 2, "bogus": 1}}}')
    odd = settings_store.load(path)
    assert odd.provider == "auto"
    assert odd.generation_for("m", GenerationSettings()).temperature == 2
