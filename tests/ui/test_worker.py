"""The worker thread and its signals: cases G1-G4 (the GUI thread keeps running, errors cross by
signal, slots run on the GUI thread, 10,000 token signals arrive)."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Slot

from desktop.chat_service import ChatService, RunRequest
from desktop.engine.events import GenerationSettings, Message
from desktop.ui.worker import CallWorker, RunWorker, prepare_thread
from tests.ui.scripted_model import ScriptedModel


class Collector(QObject):
    """Receives the worker's signals with real slots and records the thread they ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.done = None
        self.failed: list[str] = []
        self.threads: set[QThread] = set()

    @Slot(object)
    def on_token(self, step) -> None:
        self.texts.append(step.text)
        self.threads.add(QThread.currentThread())

    @Slot(object)
    def on_done(self, done) -> None:
        self.done = done
        self.threads.add(QThread.currentThread())

    @Slot(str)
    def on_failed(self, message: str) -> None:
        self.failed.append(message)
        self.threads.add(QThread.currentThread())


HI = (Message("user", "hi"),)


def run_worker_for(model, messages, settings) -> RunWorker:
    """The window's worker: it reads a chat service's run of `messages` (the service's thread
    runs the model; the worker's thread hands each record to the GUI thread)."""
    return RunWorker(ChatService(model).submit(RunRequest(tuple(messages), settings)))


def run_worker(qtbot, model, settings, messages=HI, timeout=60000):
    collector = Collector()
    worker = run_worker_for(model, messages, settings)
    worker.token.connect(collector.on_token)
    worker.done.connect(collector.on_done)
    worker.failed.connect(collector.on_failed)
    thread = prepare_thread(worker, collector)
    with qtbot.waitSignal(thread.finished, timeout=timeout):  # the worker returned, loop ended
        thread.start()
    return collector


def test_g4_ten_thousand_token_signals_arrive_on_the_gui_thread(qtbot, qapp):
    model = ScriptedModel(reply=[(f"t{i} ", 0.5) for i in range(10_000)])
    collector = run_worker(qtbot, model, GenerationSettings(max_new_tokens=10_000))
    assert len(collector.texts) == 10_000
    assert collector.texts[9_999] == "t9999 "
    assert collector.done.completion_tokens == 10_000
    assert collector.threads == {qapp.thread()}


def test_g3_thousand_chunks_concatenate_exactly(qtbot, qapp):
    reply = [(f"{i}\u00e9 " if i % 3 else "\n", 0.9) for i in range(1000)]
    collector = run_worker(
        qtbot, ScriptedModel(reply=reply), GenerationSettings(max_new_tokens=1000)
    )
    assert "".join(collector.texts) == "".join(t for t, _ in reply)


def test_g1_gui_timer_keeps_firing_during_generation(qtbot, qapp):
    ticks = []
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    model = ScriptedModel(reply=[("x", 0.5)] * 40, delay_s=0.02)  # about 0.8 s of "decoding"
    collector = run_worker(qtbot, model, GenerationSettings(max_new_tokens=40))
    timer.stop()
    assert len(collector.texts) == 40
    assert len(ticks) >= 8  # 0.8 s / 50 ms = 16; a frozen GUI thread gives 0 or 1


def test_g2_engine_error_before_first_yield_crosses_as_a_signal(qtbot, qapp):
    collector = run_worker(
        qtbot, ScriptedModel(), GenerationSettings(), messages=(Message("user", "too long"),)
    )
    assert collector.failed == ["Your message is longer than the model's context window."]
    assert collector.done is None
    assert collector.threads == {qapp.thread()}


def test_cancel_stops_between_steps(qtbot, qapp):
    model = ScriptedModel(reply=[("x", 0.5)] * 500, delay_s=0.01)
    collector = Collector()
    worker = run_worker_for(model, HI, GenerationSettings(max_new_tokens=500))
    worker.token.connect(collector.on_token)
    worker.done.connect(collector.on_done)
    thread = prepare_thread(worker, collector)
    with qtbot.waitSignal(thread.finished, timeout=10000):
        thread.start()
        qtbot.waitUntil(lambda: len(collector.texts) >= 5, timeout=5000)
        worker.cancel()
    assert collector.done.finish_reason == "cancelled"
    assert 5 <= len(collector.texts) < 500
    assert collector.done.completion_tokens == len(collector.texts)


def test_call_worker_reports_result_and_errors(qtbot, qapp):
    from desktop.engine.errors import ModelFolderError

    results: list = []
    holder = QObject()
    ok = CallWorker(lambda: threading.current_thread().name)
    ok.succeeded.connect(results.append)
    thread = prepare_thread(ok, holder)
    with qtbot.waitSignal(thread.finished, timeout=5000):
        thread.start()
    assert results and results[0] != threading.main_thread().name

    def broken():
        raise ModelFolderError("model/config.json is missing.")

    bad = CallWorker(broken)
    errors: list[str] = []
    bad.failed.connect(errors.append)
    thread = prepare_thread(bad, holder)
    with qtbot.waitSignal(thread.finished, timeout=5000):
        thread.start()
    assert errors == ["model/config.json is missing."]


def test_finished_workers_are_destroyed_on_the_gui_thread(qtbot, qapp):
    """Destroying a worker in its own thread deadlocked against the GUI thread (GIL vs Qt's
    connection lock); both kinds of worker must be deleted on the GUI thread."""
    destroyed_on: list[bool] = []
    holder = QObject()
    for worker in (
        run_worker_for(ScriptedModel(), HI, GenerationSettings(max_new_tokens=2)),
        CallWorker(lambda: 42),
    ):
        worker.destroyed.connect(
            lambda *_: destroyed_on.append(QThread.currentThread() is qapp.thread()),
            Qt.ConnectionType.DirectConnection,
        )
        expected = len(destroyed_on) + 1
        thread = prepare_thread(worker, holder)
        with qtbot.waitSignal(thread.finished, timeout=5000):
            thread.start()
        del worker
        qtbot.waitUntil(lambda want=expected: len(destroyed_on) == want, timeout=5000)
    assert destroyed_on == [True, True]
