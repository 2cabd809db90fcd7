"""A real process killed with SIGKILL while it writes leaves a readable database that holds every
message it had committed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from desktop.history import History
from tests.conftest import REPO_ROOT
from tests.history.records import make_done, make_steps

STEPS_PER_REPLY = 120  # 120 token records + 600 alternatives per reply: writes take a while

WRITER = textwrap.dedent(
    f"""
    import sys
    from desktop.history import History
    from tests.history.records import make_done, make_steps

    steps = make_steps({STEPS_PER_REPLY}, top=5)
    done = make_done(steps)
    history = History(sys.argv[1])
    conv = history.create_conversation("crash " + sys.argv[2], "m")
    n = 0
    while True:
        user_id = history.add_user_message(conv, f"message {{n}}")
        reply_id = history.add_assistant_message(conv, done, steps, "m")
        print(conv, user_id, reply_id, n, flush=True)  # printed only after both commits
        n += 1
    """
)


def _run_and_kill(db_path, round_no: int, min_lines: int) -> list[tuple[int, int, int, int]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path), str(round_no)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    committed = []
    deadline = time.monotonic() + 60
    while len(committed) < min_lines and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        committed.append(tuple(int(x) for x in line.split()))
    child.send_signal(signal.SIGKILL)  # mid-write: the child never stops writing
    child.wait(timeout=10)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert len(committed) >= min_lines, "the writer did not get going"
    return committed


def test_sigkill_mid_write_loses_no_committed_message_and_corrupts_nothing(tmp_path):
    db_path = tmp_path / "history.sqlite3"
    expected_steps = make_steps(STEPS_PER_REPLY, top=5)
    all_committed = []
    for round_no, min_lines in enumerate((3, 5, 8)):
        all_committed += _run_and_kill(db_path, round_no, min_lines)

        assert db_path.with_name(db_path.name + "-wal").exists()  # killed before any checkpoint
        with History(db_path) as history:  # as the app starts: probe read-only, then open
            assert history.notice is None and history.path == db_path
            for conv, user_id, reply_id, n in all_committed:
                by_id = {m.id: m for m in history.messages(conv)}
                assert by_id[user_id].text == f"message {n}"
                assert by_id[reply_id].steps == expected_steps
                assert by_id[reply_id].done == make_done(expected_steps)
            # every saved reply is whole: a reply is there with all its records or not at all
            for conv in {c for c, *_ in all_committed}:
                for message in history.messages(conv):
                    if message.role == "assistant":
                        assert len(message.steps) == STEPS_PER_REPLY

        raw = sqlite3.connect(db_path)
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        raw.close()
