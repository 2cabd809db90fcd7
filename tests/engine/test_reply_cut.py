"""Case I3 (TGI#333): a reply cut inside a UTF-8 character (token limit, Stop, an error) ends with
one U+FFFD, so the cut shows, and the streamed text joins to the tokenizer's decode of its ids.

The loop and the tokenizer are real; the stepper is scripted (the loop's seam, as in the UI tests)
so that the reply is exactly the byte tokens of an emoji, cut where each case needs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from tokenizers import Tokenizer

from desktop.engine.errors import EngineError
from desktop.engine.events import GenerationDone, GenerationSettings, PromptInfo, TokenStep
from desktop.engine.generate import LoopLimits, generate

EMOJI = "😃"


class ScriptedStepper:
    """Logits that make greedy decoding pick `script[i]` at step i; optionally sets `cancel` or
    raises an EngineError before step `stop_at`."""

    reused = 0  # the Stepper protocol: nothing comes from a prefix cache
    prefill_phase = "prefill"

    def __init__(self, vocab: int, script: list[int], stop_at=None, cancel=None, fail=False):
        self.vocab, self.script, self.position = vocab, script, 0
        self.stop_at, self.cancel, self.fail = stop_at, cancel, fail
        self.calls = 0

    def _logits(self) -> np.ndarray:
        logits = np.zeros(self.vocab, dtype=np.float32)  # (V,)
        logits[self.script[min(self.calls, len(self.script) - 1)]] = 10.0
        self.calls += 1
        return logits

    def prefill(self, prompt_ids, cancel=None):
        self.position = len(prompt_ids)
        return self._logits()

    def step(self, token_id):
        self.position += 1
        if self.calls == self.stop_at:
            if self.fail:
                raise EngineError("The model failed.")
            self.cancel.set()
        return self._logits()


def run(tok, script, max_new=16, stop_at=None, fail=False, eos=(), stops=()):
    cancel = threading.Event()
    stepper = ScriptedStepper(tok.vocab_size, script, stop_at, cancel, fail)
    prompt = PromptInfo("x", (tok.encode("x")[0],), 0, 4096)
    settings = GenerationSettings(max_new_tokens=max_new, temperature=0.0, stop_strings=stops)
    limits = LoopLimits(eos_ids=frozenset(eos), max_positions=4096, provider="cpu")
    records = list(generate(stepper, tok, prompt, settings, limits, cancel))
    return [r for r in records if isinstance(r, TokenStep)], records[-1]


@pytest.fixture
def emoji(tokenizers, tokenizer_dirs):
    tok = tokenizers["byte_level"]
    reference = Tokenizer.from_file(str(tokenizer_dirs["byte_level"] / "tokenizer.json"))
    ids = tok.encode("a" + EMOJI)
    assert len(ids) == 5  # "a" and the emoji's 4 bytes
    return tok, reference, ids


@pytest.mark.parametrize(
    ("case", "kwargs", "finish"),
    [
        ("token limit", {"max_new": 3}, "length"),
        ("Stop", {"stop_at": 3}, "cancelled"),
        ("error", {"stop_at": 3, "fail": True}, "error"),
    ],
)
def test_i3_cut_reply_ends_with_one_replacement_char(emoji, case, kwargs, finish):
    tok, reference, ids = emoji
    steps, done = run(tok, ids, **kwargs)
    assert isinstance(done, GenerationDone) and done.finish_reason == finish
    reply = [s.id for s in steps]
    assert reply == ids[:3]  # "a" and two of the emoji's four bytes
    assert done.text == "a\ufffd" == "".join(s.text for s in steps)
    assert done.text == reference.decode(reply)
    assert steps[-1].text == "\ufffd" and steps[-1].token == "<9F>"  # the label stays bytes


def test_i3_reply_ending_on_its_end_token_inside_a_character(emoji):
    tok, reference, ids = emoji
    eos = tok.token_id("<|im_end|>")
    steps, done = run(tok, [*ids[:4], eos], eos={eos})
    assert done.finish_reason == "stop" and done.text == "a\ufffd"
    assert done.text == reference.decode([s.id for s in steps])


def test_i3_whole_character_and_stop_string_show_no_replacement_char(emoji):
    tok, _reference, ids = emoji
    _steps, done = run(tok, ids, max_new=5)
    assert done.text == "a" + EMOJI
    steps, done = run(tok, [*ids[:1], *ids[1:3], *ids[1:]], stops=("a",))
    assert done.finish_reason == "stop" and done.text == "" and "\ufffd" not in steps[0].text


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_i3_stream_finish_marks_the_cut(emoji, cut):
    tok, reference, ids = emoji
    stream = tok.stream()
    chunks = [stream.feed(i) for i in ids[: 1 + cut]]
    assert stream.pending
    assert "".join(chunks) + stream.finish() == "a\ufffd" == reference.decode(ids[: 1 + cut])
    assert not stream.pending and stream.finish() == ""
    assert tok.decode(ids[: 1 + cut]) == "a\ufffd"


def test_i3_byte_fallback_cut_is_one_replacement_char(tokenizers):
    """tokenizers' ByteFallback writes one U+FFFD per byte of a cut character; we write one per
    character, as the byte-level decoder and Python's and Rust's lossy UTF-8 decoding do."""
    tok = tokenizers["metaspace"]
    ids = [p.id for p in tok.pieces(EMOJI) if p.bytes and p.bytes[0] >= 0x80]
    assert len(ids) == 4
    assert tok.decode(ids[:2]) == "\ufffd" == (b"\xf0\x9f").decode("utf-8", "replace")
