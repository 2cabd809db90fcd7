"""The engine's public face: `load_model(path)` -> `ChatModel` (see notes/engine_api.md).

Owns: wiring a model folder's manifest, tokenizer, chat template, sessions and stepper into one
object that the UI worker, the CLI and the self-test iterate. Knows no Qt; one generation at a
time per model (a lock), cancellation through a threading.Event.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from desktop.engine.chat_template import ChatTemplate, find_template
from desktop.engine.errors import (
    ChatTemplateError,
    EmptyMessageError,
    ModelFolderError,
    PromptTooLongError,
    SettingsError,
    TokenIdError,
)
from desktop.engine.events import (
    GenerationDone,
    GenerationSettings,
    Message,
    Phase,
    PrefillProgress,
    PromptInfo,
    TokenStep,
)
from desktop.engine.generate import LoopLimits, generate
from desktop.engine.inspect import Inspection, Inspector, Seq2SeqInspection
from desktop.engine.manifest import ModelManifest, read_manifest
from desktop.engine.memory import return_large_blocks
from desktop.engine.message_text import PromptPart
from desktop.engine.prompt import build_prompt
from desktop.engine.session import ProviderInfo, open_graphs
from desktop.engine.steppers import make_stepper
from desktop.engine.template_default import default_system_prompt
from desktop.engine.tokenizer import TextTokenizer, TokenPiece

__all__ = ["ChatModel", "Inspection", "ProviderInfo", "TokenPiece", "load_model"]

# the special tokens transformers' apply_chat_template passes to a template (its special_tokens_map)
_SPECIAL_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)


class ChatModel:
    """A loaded model. kind: "decoder" | "encoder-decoder"; context_size: max positions;
    provider: the execution provider asked for, the ones the session got, and why a GPU
    provider is not in use (case D3)."""

    def __init__(self, manifest: ModelManifest, provider: str, threads: int | None):
        return_large_blocks()  # freed load-time and prefill buffers leave the heap (memory.py)
        self.manifest = manifest
        self.name = manifest.name
        self.path = manifest.path
        self.kind = manifest.kind
        self.context_size = manifest.context_size
        self.tokenizer = TextTokenizer(manifest.tokenizer_json, manifest.tokenizer_config)
        source = find_template(manifest.path, manifest.tokenizer_config)
        specials: dict[str, object] = {
            key: text
            for key in _SPECIAL_KEYS
            if (text := _content(manifest.tokenizer_config.get(key))) is not None
        }
        extra = manifest.tokenizer_config.get("additional_special_tokens")
        if isinstance(extra, list) and extra:
            specials["additional_special_tokens"] = [_content(t) for t in extra]
        try:
            self.template = ChatTemplate(source, specials) if source is not None else None
        except ChatTemplateError as err:  # does not compile: a broken file of the folder (I14)
            raise ModelFolderError(f"{manifest.template_file}: {err}") from err
        self.default_settings()  # raises ModelFolderError for unusable sampling values
        self._graphs, self.provider = open_graphs(manifest.graphs, provider, threads)
        self._stepper = make_stepper(manifest, self._graphs)
        self._lock = threading.Lock()
        # (prompt ids, records) of the last reply written, for a branch of it (forced.py)
        self._last_reply: tuple[tuple[int, ...], tuple[TokenStep, ...]] | None = None
        # the probe graph opens on the first inspect() only (attention and layer views)
        self.inspector = Inspector(manifest, provider, threads)

    @property
    def template_note(self) -> str | None:
        """What to tell a person about a decoder-only model with no chat template (none in
        tokenizer_config.json, no chat_template.jinja): it reads the conversation as plain text
        and continues it. None when there is a template, or for an encoder-decoder model (which
        reads the message as is by design)."""
        if self.template is not None or self.kind != "decoder":
            return None
        return (
            f"{self.name} has no chat template (tokenizer_config.json or chat_template.jinja), "
            "so it reads your messages as plain text and continues them."
        )

    @functools.cached_property
    def template_system_prompt(self) -> str | None:
        """The system prompt the model's chat template inserts when a conversation has none
        (SmolLM2's "You are a helpful AI assistant named SmolLM, ..."), or None; found once per
        model by rendering the template with and without one (template_default.py)."""
        return default_system_prompt(self.template)

    def default_settings(self) -> GenerationSettings:
        """GenerationSettings from the model folder's generation_config.json.

        do_sample decides how the model's own values are read (transformers' meaning):
        - `"do_sample": false` -> greedy (temperature 0); the file's temperature/top-k/top-p/
          min-p are ignored, as transformers ignores them when it decodes greedily;
        - `"do_sample": true` or missing -> the file's temperature, top_k, top_p, min_p as
          written, GenerationSettings' own defaults for any it leaves out (temperature 0.7,
          top-k/top-p/min-p off). Missing do_sample is read as "use the model's values" rather
          than transformers' greedy default, because the file then names sampling values on
          purpose more often than not; a file with neither gets temperature 0.7.
        max_new_tokens and repetition_penalty are read in every case (defaults 256 and 1.0).
        The default model's exporter writes SmolLM2's model-card sampling (do_sample true,
        temperature 0.2, top_p 0.9): greedy decoding makes a 135M model repeat itself.
        """
        config = {k: v for k, v in self.manifest.generation_config.items() if v is not None}
        base = GenerationSettings()
        sample = config.get("do_sample")
        temperature = float(config.get("temperature", base.temperature))
        try:
            return GenerationSettings(
                max_new_tokens=int(config.get("max_new_tokens", base.max_new_tokens)),
                temperature=0.0 if sample is False else temperature,
                top_k=int(config.get("top_k", base.top_k) or 0),
                top_p=float(config.get("top_p", base.top_p)),
                min_p=float(config.get("min_p", base.min_p) or 0.0),
                repetition_penalty=float(config.get("repetition_penalty", base.repetition_penalty)),
            )
        except SettingsError as err:  # a value out of range (types: checked by manifest.py)
            file = self.manifest.path / "generation_config.json"
            raise ModelFolderError(f"{file}: {err}") from err

    def tokenize(self, text: str) -> list[TokenPiece]:
        """The tokens of `text` as the model reads it (no BOS added), with character spans."""
        return self.tokenizer.pieces(text)

    def prompt_tokens(self, prompt: PromptInfo) -> list[TokenPiece]:
        """The tokens of a prompt exactly as sent to the model (BOS and control tokens included),
        with character spans into prompt.prompt_text (case I1: a message's special-token text is
        plain tokens here, as the model read it)."""
        return self.tokenizer.prompt_pieces(prompt.prompt_text, prompt.prompt_ids)

    def render_prompt(
        self, messages: Sequence[Message], max_new_tokens: int | None = None
    ) -> PromptInfo:
        """The exact prompt the model will read, trimmed to the context window (F1).

        Raises EmptyMessageError, PromptTooLongError, ChatTemplateError.
        """
        reserve = max_new_tokens or self.default_settings().max_new_tokens
        try:
            return build_prompt(messages, self.tokenizer, self.template, self.context_size, reserve)
        except ChatTemplateError as err:  # say which file the failing template came from
            raise ChatTemplateError(f"{err} (template: {self.manifest.template_file})") from err

    def generate(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        forced_ids: Sequence[int] = (),
    ) -> Iterator[PromptInfo | Phase | PrefillProgress | TokenStep | GenerationDone]:
        """PromptInfo, the tokenize Phase, PrefillProgress records while a decoder-only model
        reads the prompt in chunks (see `PrefillProgress`), the prefill (or encode) Phase, one
        TokenStep per token, the decode Phase, then exactly one GenerationDone (see `Phase`).

        forced_ids: the reply's first tokens, given rather than sampled: to continue a reply from
        its token i with another token, the reply's ids [0, i) then the picked id (as
        `Conversation.branch` returns them). Their records are the model's own at each position
        (as for a sampled token), marked `forced`, and the last one `picked`; then tokens are
        sampled with `settings`, up to `settings.max_new_tokens` more. The KV cache keeps what it
        shares with the prompt (after the reply being branched, that is the whole prompt), and
        the prefix runs in the same run as the prompt's last token.

        Raises EmptyMessageError / PromptTooLongError / ChatTemplateError, TokenIdError (a forced
        id outside the vocabulary) before the first yield; errors while running end the reply
        with GenerationDone(finish_reason="error").
        """
        forced = tuple(int(i) for i in forced_ids)
        vocab = self.tokenizer.vocab_size
        bad = [i for i in forced if not 0 <= i < vocab]
        if bad:
            raise TokenIdError(
                f"Token id {bad[0]} is not in {self.name}'s vocabulary (0..{vocab - 1})."
            )
        started = time.perf_counter()
        prompt = self.render_prompt(messages, settings.max_new_tokens + len(forced))
        tokenize_ms = (time.perf_counter() - started) * 1000.0
        with self._lock:
            yield prompt
            ids = prompt.prompt_ids
            yield Phase(phase="tokenize", tokens=len(ids), ms=tokenize_ms, ids=ids)
            kept = self._kept_records(ids, forced)
            records: list[TokenStep] = []
            for record in generate(
                self._stepper,
                self.tokenizer,
                prompt,
                settings,
                self._limits(),
                cancel,
                forced,
                kept,
            ):
                if isinstance(record, TokenStep):
                    records.append(record)
                yield record
            self._last_reply = (ids, tuple(records))

    def _kept_records(self, prompt_ids: tuple[int, ...], forced: tuple[int, ...]) -> tuple:
        """The last reply's records of forced[:-1] when that reply was read from the same prompt
        and began with those tokens (a branch of the reply just written), else (): forced.py
        then recomputes them."""
        if len(forced) < 2 or self._last_reply is None:
            return ()
        last_prompt, last_records = self._last_reply
        kept = last_records[: len(forced) - 1]
        if last_prompt != prompt_ids or tuple(r.id for r in kept) != forced[:-1]:
            return ()
        return kept

    def complete(
        self,
        text: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[PromptInfo | Phase | PrefillProgress | TokenStep | GenerationDone]:
        """Continue `text` read as is, with no chat template (the server's /v1/completions).

        The text is tokenized with the tokenizer's own special-token handling: it adds what the
        tokenizer adds (a BOS for Llama-style tokenizers, exactly one, case B1) and a special
        token written in the text (`<|im_start|>`) is that token, as OpenAI's and llama.cpp's
        raw completions read it. Nothing is trimmed: a prompt has to leave room for one token.
        Yields PromptInfo (dropped_messages 0), PrefillProgress and Phase records as `generate`
        does, one TokenStep per token, one GenerationDone.

        Raises EmptyMessageError for a text with no tokens, PromptTooLongError for one that
        fills the context window, before the first yield.
        """
        # not literal: special-token text in a raw prompt is the control token it names
        ids = self.tokenizer.encode_prompt([PromptPart(text, literal=False)], False)
        if not ids:
            raise EmptyMessageError("The prompt is empty: give some text to continue.")
        if len(ids) >= self.context_size:
            raise PromptTooLongError(
                f"The prompt is {len(ids)} tokens, but this model reads at most "
                f"{self.context_size} with its reply; shorten it."
            )
        prompt = PromptInfo(
            prompt_text=text,
            prompt_ids=tuple(ids),
            dropped_messages=0,
            context_size=self.context_size,
        )
        with self._lock:
            yield prompt
            yield from generate(
                self._stepper, self.tokenizer, prompt, settings, self._limits(), cancel
            )

    def _limits(self) -> LoopLimits:
        """The loop's limits from the model folder: end-of-turn ids, context size, bans (I8)."""
        return LoopLimits(
            eos_ids=self.manifest.eos_ids,
            max_positions=self.context_size,
            provider=self.provider.name,
            bans=self.manifest.bans,
        )

    def inspect(
        self, ids: Sequence[int], positions: Sequence[int] | None = None, top_k: int = 5
    ) -> Inspection:
        """Attention maps and the logit lens of `ids` (e.g. a prompt and its reply as the model
        read them) from the folder's probe graph; see `Inspector.inspect` for shapes, limits and
        errors (NoProbeGraphError for a folder without one). Blocks: run it off the GUI thread.
        Does not wait for a generation in progress (its own session and lock)."""
        return self.inspector.inspect(ids, positions, top_k)

    def inspect_seq2seq(
        self,
        input_ids: Sequence[int],
        decoder_ids: Sequence[int],
        positions: Sequence[int] | None = None,
        top_k: int = 5,
    ) -> Seq2SeqInspection:
        """An encoder-decoder model's encoder, decoder and cross attention and the logit lens
        (see `Inspector.inspect_seq2seq`). Blocks: run it off the GUI thread."""
        return self.inspector.inspect_seq2seq(input_ids, decoder_ids, positions, top_k)

    def close(self) -> None:
        """Release the ONNX Runtime sessions."""
        self.inspector.close()
        self._graphs.clear()
        self._stepper = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ChatModel({self.name!r}, kind={self.kind!r}, provider={self.provider.name!r})"


def load_model(path: str | Path, provider: str = "auto", threads: int | None = None) -> ChatModel:
    """Open the model folder at `path` on `provider` (auto|cpu|cuda|dml|coreml) with `threads`
    intra-op threads (None: up to 4). Raises ModelFolderError naming the file and the fault,
    ProviderError for an unknown provider."""
    return_large_blocks()  # before tokenizer.json is parsed (memory.py)
    return ChatModel(read_manifest(path), provider, threads)


def _content(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None
