"""The frozen records that cross threads: settings in, one record per token out, one at the end.

These are the contract between the engine (which yields them), the UI worker (which emits them as
signals), the history database (which stores them) and the CLI (which prints them as JSON Lines).
Probabilities are floats in [0, 1]; logprobs are natural-log; entropies are in nats; times in ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from desktop.engine.errors import SettingsError

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
PhaseName = Literal["tokenize", "prefill", "encode", "decode"]
StageName = Literal["repetition_penalty", "temperature", "top_k", "top_p", "min_p", "draw"]


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: Role
    content: str


MAX_SEED = 2**31 - 1
"""Seeds are 0..MAX_SEED everywhere (drawn, typed in the window's 32-bit spin box, or given to
the CLI), so a seed shown with any reply can be typed back in and reproduces it."""


@dataclass(frozen=True)
class SettingRange:
    """The values one generation setting accepts: `low` <= value (`low` < value when `above`),
    value <= `high` (None: no bound); NaN and infinities never. `kind`: int or float."""

    kind: type
    low: float | None = None
    high: float | None = None
    above: bool = False

    def rule(self) -> str:
        """The range in words, e.g. "> 0 and <= 1"."""
        shown = str if self.kind is int else (lambda v: f"{v:g}")
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.above else '>='} {shown(self.low)}")
        if self.high is not None:
            bounds.append(f"<= {shown(self.high)}")
        return " and ".join(bounds)

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high


SETTING_RANGES: dict[str, SettingRange] = {
    "max_new_tokens": SettingRange(int, 1),
    "temperature": SettingRange(float, 0),  # 0 = greedy (E2)
    "top_k": SettingRange(int, 0),  # 0 = off
    "top_p": SettingRange(float, 0, 1),  # 1 = off; 0 keeps only the most likely token (E3)
    "min_p": SettingRange(float, 0, 1),  # 0 = off
    "repetition_penalty": SettingRange(float, 0, above=True),  # 1 = off
    "seed": SettingRange(int, 0, MAX_SEED),  # None (not checked) = draw one
    "top_logprobs": SettingRange(int, 0, 50),
}
"""The one table of every numeric setting's range: GenerationSettings checks it, the CLI's
argparse types are built from it, the window's spin boxes stay inside it."""


@dataclass(frozen=True)
class GenerationSettings:
    """How to pick each next token. Applied in this order (as transformers' LogitsProcessorList):
    repetition penalty, temperature, top-k, top-p, min-p, then sample (greedy at temperature 0).

    seed: None draws a random seed, which is reported in `GenerationDone.seed` so the reply can be
    reproduced exactly. top_logprobs: how many alternatives each `TokenStep` carries.
    """

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off
    min_p: float = 0.0  # 0.0 = off
    repetition_penalty: float = 1.0  # 1.0 = off
    seed: int | None = None
    top_logprobs: int = 10
    stop_strings: tuple[str, ...] = ()
    stop_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        """Raises SettingsError naming the first setting outside SETTING_RANGES."""
        for name, allowed in SETTING_RANGES.items():
            value = getattr(self, name)
            if value is None and name == "seed":
                continue
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if not is_number or (allowed.kind is int and not isinstance(value, int)):
                raise SettingsError(
                    f"{name} must be {'an integer' if allowed.kind is int else 'a number'}, "
                    f"got {value!r}."
                )
            if not allowed.allows(value):
                raise SettingsError(f"{name} must be {allowed.rule()}, got {value!r}.")


@dataclass(frozen=True)
class Alternative:
    """A candidate token at one step.

    logprob/prob: under the model's own distribution (softmax of the raw logits, as OpenAI's
    logprobs). sampling_prob: under the distribution actually sampled from (after penalty,
    temperature, top-k, top-p, min-p); 0.0 for a token those filters removed.
    token: the token's text decoded alone (may contain U+FFFD-free byte notation such as `<F0 9F>`
    for a fragment of a UTF-8 character). bytes: the token's raw bytes.
    """

    id: int
    token: str
    bytes: bytes
    logprob: float
    prob: float
    sampling_prob: float


@dataclass(frozen=True)
class PromptInfo:
    """Yielded once before prefill: what the model is about to read ("reading your message").

    prompt_text: the whole prompt as the model sees it (rendered chat template, BOS and role
    markers included). prompt_ids: its token ids. dropped_messages: how many of the oldest turns
    were left out to fit the context window (system prompt and last user turn are always kept).
    """

    prompt_text: str
    prompt_ids: tuple[int, ...]
    dropped_messages: int
    context_size: int


@dataclass(frozen=True)
class SamplerStage:
    """One stage of the sampler chain as it was applied to one token's scores.

    stage: which processor (in the order applied: repetition_penalty, temperature, top_k, top_p,
    min_p, then draw). candidates: tokens still possible after it (probability > 0 in the
    distribution sampled from; for "draw", 1: the token taken). mass: the share of the model's own
    probability (softmax of the raw logits) those candidates hold, in [0, 1]. rank: "draw" only,
    where the drawn token stood among the candidates before the draw, 0-based, most likely first
    under the distribution sampled from (0 for greedy); None for the other stages.
    """

    stage: StageName
    candidates: int
    mass: float
    rank: int | None = None


@dataclass(frozen=True)
class Phase:
    """One step of the pipeline, timed: yielded with the token records.

    "tokenize" (after PromptInfo): the prompt rendered and encoded; tokens = its length, ids =
    the ids as the model reads them. "prefill" (decoder-only) or "encode" (encoder-decoder), before
    the first token: tokens = prompt tokens run, reused = prompt tokens taken from the prefix
    cache instead. "decode" (after the last token, before GenerationDone): from the end of the
    prefill to the end of the reply (every token's sampling and record, and the decoder steps
    between them; 0 when the prefill failed); tokens = decoder steps run, tokens_per_s = tokens /
    ms. ms: wall time, ms.
    """

    phase: PhaseName
    tokens: int
    ms: float
    reused: int = 0
    ids: tuple[int, ...] = ()
    tokens_per_s: float = 0.0


@dataclass(frozen=True)
class PrefillProgress:
    """How far the prompt's prefill has got ("reading your message… 512 / 900 tokens").

    Yielded by the decoder-only prefill, which runs the prompt in chunks (steppers.PREFILL_CHUNK):
    once with done=0 before the first run, then after each run, the last with done == total;
    the values are the real run boundaries. total: prompt tokens this prefill runs (the reply's
    forced prefix included, the `reused` tokens taken from the prefix cache not); done: tokens
    run so far, 0 <= done <= total. An encoder-decoder model reads its prompt in one encoder run
    and yields none. Consumers that only want the reply may ignore it.
    """

    done: int
    total: int
    reused: int = 0


@dataclass(frozen=True)
class TokenStep:
    """One generated token and what the model weighed to pick it.

    index: 0-based position in the reply. text: what this token adds to the visible reply (""
    while it completes only part of a UTF-8 character or part of a held-back stop string; the
    join of all `text` equals the reply). token/bytes: the token alone, for the inspector.
    rank: 0-based rank of the chosen token under the model's distribution. entropy: of the model's
    distribution, in nats. top: the `top_logprobs` most likely tokens under the model's
    distribution, most likely first. step_ms: wall time of the step that produced this token
    (prefill for index 0, decode step after) plus sampling. sampler: the sampler chain as applied
    to this token's scores, in order (see `SamplerStage`; () where not recorded).

    forced: the token was given rather than sampled (a reply continued from one of its tokens
    starts with the original's tokens before the branch point, then the picked alternative);
    its record is still the model's own distribution at that position, and `sampling_prob` is
    what the sampler would have given it. picked: the alternative a person chose at the branch
    point (also `forced`); at most one per reply, the last forced token.
    """

    index: int
    id: int
    token: str
    text: str
    bytes: bytes
    logprob: float
    prob: float
    sampling_prob: float
    rank: int
    entropy: float
    top: tuple[Alternative, ...]
    step_ms: float
    forced: bool = False
    picked: bool = False
    sampler: tuple[SamplerStage, ...] = ()


@dataclass(frozen=True)
class GenerationDone:
    """The last record of every generation, also after an error or a cancel.

    ttft_ms: from the start of prefill to the first token. decode_tokens_per_s: tokens after the
    first divided by their time (0.0 when fewer than 2 tokens). provider: the execution provider
    actually used (e.g. "CPUExecutionProvider"). error: the user-facing message when
    finish_reason == "error".
    """

    finish_reason: FinishReason
    text: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float
    decode_tokens_per_s: float
    provider: str
    seed: int
    dropped_messages: int = 0
    error: str | None = None
    settings: GenerationSettings = field(default_factory=GenerationSettings)

    @property
    def seed_used(self) -> int | None:
        """The seed that reproduces this reply, or None for a greedy one (temperature 0 draws
        nothing at random). What every view reports: CLI --json, the window, exports."""
        return None if self.settings.temperature <= 0 else self.seed


Event = PromptInfo | Phase | PrefillProgress | TokenStep | GenerationDone
