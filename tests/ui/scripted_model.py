"""A scripted stand-in with the `ChatModel` shape, for UI tests that need exact control: how many
tokens, their probabilities, a delay per step, an error at a given step, and a forced reply prefix
(a branch from a token: `generate(..., forced_ids=...)`, records marked `forced` / `picked`). The
real-model tests use the engine (tiny and default models); this one exists for the Qt cases G1-G4,
for stop timing and for branches.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from desktop.engine.errors import ModelFolderError, PromptTooLongError
from desktop.engine.events import (
    Alternative,
    GenerationDone,
    GenerationSettings,
    Message,
    PromptInfo,
    TokenStep,
)
from desktop.engine.tokenizer import TokenPiece


@dataclass(frozen=True)
class ScriptedProvider:
    requested: str = "auto"
    actual: tuple[str, ...] = ("CPUExecutionProvider",)
    fallback_reason: str | None = None


def marked(step: TokenStep, forced: bool = False, picked: bool = False) -> TokenStep:
    """`step` with the forced / picked flags set."""
    return dataclasses.replace(step, forced=forced, picked=picked)


def scripted_step(index: int, text: str, prob: float, token_id: int | None = None) -> TokenStep:
    """A TokenStep whose chosen token has probability `prob` and two alternatives."""
    token_id = 100 + index if token_id is None else token_id
    rest = (1.0 - prob) / 2
    top = tuple(
        sorted(
            (
                Alternative(token_id, text, text.encode(), math.log(prob), prob, prob),
                Alternative(1, "alt", b"alt", math.log(max(rest, 1e-9)), rest, rest),
                Alternative(2, " other", b" other", math.log(max(rest, 1e-9)), rest, 0.0),
            ),
            key=lambda a: -a.prob,
        )
    )
    rank = [a.id for a in top].index(token_id)
    return TokenStep(
        index=index,
        id=token_id,
        token=text,
        text=text,
        bytes=text.encode(),
        logprob=math.log(prob),
        prob=prob,
        sampling_prob=prob,
        rank=rank,
        entropy=-sum(a.prob * math.log(a.prob) for a in top if a.prob > 0),
        top=top,
        step_ms=1.0,
    )


@dataclass
class ScriptedModel:
    """reply: (text, prob) per token. delay_s: sleep per step (released with the GIL, so the GUI
    thread can run). prefill_s: a prefill that checks the cancel flag only when it ends (like
    one long prefill chunk). fail_at: raise-free engine error reported in GenerationDone at that
    step."""

    reply: Sequence[tuple[str, float]] = (("Hello", 0.95), (",", 0.6), (" world", 0.3), ("!", 0.02))
    delay_s: float = 0.0
    prefill_s: float = 0.0
    fail_at: int | None = None
    name: str = "scripted"
    path: Path = Path("scripted")
    kind: str = "decoder"
    context_size: int = 2048
    template_note: str | None = None  # ChatModel.template_note: set for a model with none
    provider: ScriptedProvider = field(default_factory=ScriptedProvider)
    settings: GenerationSettings = field(
        default_factory=lambda: GenerationSettings(temperature=0.5)
    )
    branch_reply: Sequence[tuple[str, float]] = ((" then", 0.8), (" more", 0.4))
    calls: list[tuple[Message, ...]] = field(default_factory=list)
    forced_calls: list[tuple[int, ...]] = field(default_factory=list)
    closed: bool = False

    def default_settings(self) -> GenerationSettings:
        return self.settings

    def tokenize(self, text: str) -> list[TokenPiece]:
        pieces, start = [], 0
        for index, word in enumerate(text.split(" ")):
            chunk = word if index == 0 else " " + word
            pieces.append(
                TokenPiece(index, chunk, chunk.encode(), start, start + len(chunk), False)
            )
            start += len(chunk)
        return pieces

    def prompt_tokens(self, prompt: PromptInfo) -> list[TokenPiece]:
        return self.tokenize(prompt.prompt_text)

    def render_prompt(self, messages: Sequence[Message]) -> PromptInfo:
        text = "".join(f"<|{m.role}|>{m.content}\n" for m in messages) + "<|assistant|>"
        ids = tuple(range(len(text.split())))
        return PromptInfo(text, ids, 0, self.context_size)

    def generate(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        forced_ids: Sequence[int] = (),
    ) -> Iterator[PromptInfo | TokenStep | GenerationDone]:
        """The scripted reply. With forced_ids (a branch), its first tokens are the given ids:
        the reply's own tokens (records as the original's, `forced`), then the picked one (its
        record from the original step's alternative, `forced` and `picked`), then
        `branch_reply`."""
        self.calls.append(tuple(messages))
        self.forced_calls.append(tuple(forced_ids))
        if messages and messages[-1].content == "too long":
            raise PromptTooLongError("Your message is longer than the model's context window.")
        info = self.render_prompt(messages)
        yield info
        if self.prefill_s:
            time.sleep(self.prefill_s)
        texts: list[str] = []
        reason, error = "stop", None
        for index, step in enumerate(self._steps(forced_ids, settings.max_new_tokens)):
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            if self.fail_at == index:
                reason, error = "error", "The sampler got logits it cannot sample from."
                break
            if self.delay_s:
                time.sleep(self.delay_s)
            texts.append(step.text)
            yield step
        yield GenerationDone(
            finish_reason=reason,
            text="".join(texts),
            prompt_tokens=len(info.prompt_ids),
            completion_tokens=len(texts),
            ttft_ms=5.0,
            decode_tokens_per_s=100.0,
            provider="CPUExecutionProvider",
            seed=settings.seed if settings.seed is not None else 1234,
            error=error,
            settings=settings,
        )

    def _steps(self, forced_ids: Sequence[int], limit: int) -> Iterator[TokenStep]:
        if not forced_ids:
            for index, (text, prob) in enumerate(self.reply[:limit]):
                yield scripted_step(index, text, prob)
            return
        *kept, picked = forced_ids
        for index, token_id in enumerate(kept):
            text, prob = self.reply[index]
            assert token_id == 100 + index, "a forced token the scripted reply did not have"
            yield marked(scripted_step(index, text, prob), forced=True)
        at = len(kept)
        original = scripted_step(at, *self.reply[at])
        rank, alt = next((r, a) for r, a in enumerate(original.top) if a.id == picked)
        yield marked(
            dataclasses.replace(
                original,
                id=alt.id,
                token=alt.token,
                text=alt.token,
                bytes=alt.bytes,
                logprob=alt.logprob,
                prob=alt.prob,
                sampling_prob=alt.sampling_prob,
                rank=rank,
            ),
            forced=True,
            picked=True,
        )
        for offset, (text, prob) in enumerate(self.branch_reply[: max(0, limit - at - 1)]):
            yield scripted_step(at + 1 + offset, text, prob, token_id=200 + offset)

    def close(self) -> None:
        self.closed = True


def scripted_loader(model: ScriptedModel):
    """A load_model(name_or_path, provider) that returns `model`, or raises for a "broken" name."""

    def load(name_or_path: str | None, provider: str) -> ScriptedModel:
        if name_or_path and "broken" in str(name_or_path):
            raise ModelFolderError(f"{name_or_path}/config.json is missing.")
        model.provider = ScriptedProvider(requested=provider)
        return model

    return load
