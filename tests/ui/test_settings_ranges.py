"""The window's settings stay inside the engine's ranges (events.SETTING_RANGES, which the CLI's
argparse also reads), so the three agree: every spin box's minimum and maximum is a value
GenerationSettings accepts (the seed box's "random" below it means None)."""

from __future__ import annotations

from desktop.engine.events import SETTING_RANGES, GenerationSettings
from desktop.ui.settings_panel import RANDOM_SEED, SettingsPanel


def test_every_spin_box_edge_is_a_setting_the_engine_accepts(qtbot):
    panel = SettingsPanel()
    qtbot.addWidget(panel)
    for name in SETTING_RANGES:
        box = getattr(panel, name)
        low = box.minimum() if name != "seed" or box.minimum() != RANDOM_SEED else 0
        for value in (low, box.maximum()):
            assert SETTING_RANGES[name].allows(value), (name, value)
            GenerationSettings(**{name: value})
    assert panel.top_p.minimum() == 0.0  # top_p 0 (the top token) is offered as in the CLI


def test_the_provider_box_lists_only_what_this_build_has(qtbot):
    # Issue 15: cuda, dml and coreml were offered on a build with none of them.
    import onnxruntime

    panel = SettingsPanel()
    qtbot.addWidget(panel)
    have = onnxruntime.get_available_providers()
    wanted = ["auto", "cpu"] + [
        name
        for name, provider in (
            ("cuda", "CUDAExecutionProvider"),
            ("dml", "DmlExecutionProvider"),
            ("coreml", "CoreMLExecutionProvider"),
        )
        if provider in have
    ]
    items = [panel.provider.itemText(i) for i in range(panel.provider.count())]
    assert items == wanted
    tip = panel.provider.toolTip()
    for name in ("cuda", "dml", "coreml"):
        assert (f"{name}: not in this build; needs" in tip) == (name not in wanted)
    panel.set_provider("coreml")  # a saved choice this build may lack still shows as chosen
    assert panel.provider.currentText() == "coreml"
