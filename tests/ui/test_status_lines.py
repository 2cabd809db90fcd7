"""Status lines and banners say what is true now (issue 15, rough edges): "Stopping…" goes once
the reply has stopped, an error line goes with the next reply, and a failed model load replaces
the banner of the one before instead of adding another."""

from __future__ import annotations

from desktop.ui.messages import ErrorBanner
from tests.ui.test_real_models import open_and_wait, send_and_wait


def banners(window) -> list[ErrorBanner]:
    """The error banners in the chat column's layout (a removed one may await deletion)."""
    column = window.chat.column
    return [
        b for b in window.chat.column_widget.findChildren(ErrorBanner) if column.indexOf(b) >= 0
    ]


def test_stopping_line_goes_once_the_reply_stopped(qtbot, scripted_window):
    window, controller = scripted_window.window, scripted_window.controller
    scripted_window.model.delay_s = 0.05
    scripted_window.model.reply = tuple((f" w{i}", 0.5) for i in range(200))
    window.chat.input.setPlainText("go on")
    with qtbot.waitSignal(controller.runs.idle, timeout=10_000):
        controller.runs.send()
        qtbot.waitUntil(lambda: len(controller.transcript.turns[-1].node.steps) > 1)
        controller.runs.stop()
        assert window.statusBar().currentMessage() == "Stopping…"
    assert controller.transcript.turns[-1].node.done.finish_reason == "cancelled"
    assert window.statusBar().currentMessage() == ""  # not for 2-4 s more


def test_a_transient_line_is_not_taken_by_another_states_end(qtbot, scripted_window):
    window, feedback = scripted_window.window, scripted_window.controller.feedback
    feedback.status("Copied.", 5000)
    feedback.end("stopping")
    feedback.end("error")
    assert window.statusBar().currentMessage() == "Copied."


def test_failed_loads_show_one_banner_and_the_next_reply_clears_the_error(
    qtbot, real_window, tiny_llama_dir, tmp_path
):
    window, controller = real_window
    open_and_wait(qtbot, controller, tiny_llama_dir)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    for _attempt in range(2):
        with qtbot.waitSignal(controller.models.model_failed, timeout=60_000) as failed:
            controller.models.open_model(str(broken))
    (banner,) = banners(window)  # the second failure replaced the first one's banner
    assert banner.text() == f"The model could not be loaded. {failed.args[0]}"
    assert window.statusBar().currentMessage() == banner.text()
    # The same error reported twice (no model for a send, a storage error...) is one banner too.
    controller.feedback.show_error("Something went wrong.")
    controller.feedback.show_error("Something went wrong.")
    assert [b.text() for b in banners(window)].count("Something went wrong.") == 1
    window.settings.max_new_tokens.setValue(4)
    done = send_and_wait(qtbot, window, controller, "hi")
    assert done.error is None
    assert window.statusBar().currentMessage() != "Something went wrong."
    assert "could not be loaded" not in window.statusBar().currentMessage()
    assert all("could not be loaded" not in b.text() for b in banners(window))
