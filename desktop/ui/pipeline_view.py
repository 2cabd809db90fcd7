"""The Pipeline view: the steps one reply went through, in order, with their cost, live.

Tokenize -> Prefill (or Encoder) -> Decode (or Decoder) -> Sample -> Output, one card each: what
the step does in one sentence, its figures, and links to the views that show more. A view: fed
through `set_reply(prompt, phases, steps)`, `add_phase`, `add_step`, `show_token(index)` and
`clear()`; links come back as `link_requested(target)` with target "tokens" (the message's
tokens), "prompt" (the prompt as the model read it) or "inspector" (the token inspector), and
bar clicks as `token_clicked(index)`. Knows the engine's records, not the controller.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from desktop.engine.events import Phase, PromptInfo, TokenStep
from desktop.ui.layout import fill_with_scrolling
from desktop.ui.pipeline_charts import SamplerFunnel, StepBars
from desktop.ui.token_view import percent, visible_token

MAX_INPUT_TOKENS = 48  # encoder input tokens drawn on the Encoder card

SENTENCES = {
    "tokenize": "Your chat is written out with the model's chat template and cut into tokens, "
    "the pieces of text the model has ids for.",
    "tokenize_encoder": "Your message is cut into tokens, the pieces of text the model has ids "
    "for; the encoder reads them next.",
    "prefill": "The model reads the whole prompt in one pass and keeps each token's keys and "
    "values (the KV cache); tokens the cache still holds from the last turn are not run again.",
    "encode": "The encoder reads your message once, as the tokens below; the decoder looks back "
    "at what it made at every step.",
    "decode": "One step per token: the newest token goes in, a score for every token of the "
    "vocabulary comes out. Each bar is one step's time.",
    "sample": "The scores become probabilities, each filter leaves fewer candidates (and less "
    "of the model's probability), then one token is drawn from what is left.",
    "output": "The drawn token becomes text in the reply and the next step's input.",
}


class StageCard(QFrame):
    """One step of the strip: a title with its figures, a plain sentence, an optional figure
    widget, and links."""

    def __init__(self, title: str, sentence: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pipelineCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title_text = title
        self.figures_text = "–"
        self.head = QLabel("")
        self.head.setWordWrap(True)
        self.head.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sentence = QLabel(sentence)
        self.sentence.setObjectName("footer")
        self.sentence.setWordWrap(True)
        self.links = QLabel("")
        self.links.setTextFormat(Qt.TextFormat.RichText)
        self.links.setWordWrap(True)
        self.links.setVisible(False)
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(8, 6, 8, 6)
        self.column.setSpacing(3)
        for widget in (self.head, self.sentence):
            self.column.addWidget(widget)
        self._show_head()

    def set_title(self, title: str) -> None:
        self.title_text = title
        self._show_head()

    def set_figures(self, figures: str) -> None:
        """figures: rich text (escape what comes from a token)."""
        self.figures_text = figures
        self._show_head()

    def _show_head(self) -> None:
        self.head.setText(f"<b>{html.escape(self.title_text)}</b>&nbsp;&nbsp; {self.figures_text}")

    def set_links(self, links: Sequence[tuple[str, str]]) -> None:
        """links: (target, text) pairs, shown as one line of links."""
        self.links.setText(" · ".join(f"<a href='{t}'>{html.escape(x)}</a>" for t, x in links))
        self.links.setVisible(bool(links))
        self.column.addWidget(self.links)


class PipelineView(QWidget):
    """The Pipeline tab (see the module docstring). token_label: id -> label, for the encoder's
    input tokens (None: ids only), from the tokenizer of the model named `label_model`; a reply
    made by another model (`set_reply`'s `model`) shows its ids only."""

    link_requested = Signal(str)
    token_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pipeline")
        self.token_label: Callable[[int], str] | None = None
        self.label_model: str | None = None  # whose tokenizer token_label reads
        self.reply_model: str | None = None  # the model that made the shown reply
        self.prompt: PromptInfo | None = None
        self.phases: list[Phase] = []
        self.steps: Sequence[TokenStep] = []
        self.selected = -1  # -1: follow the newest token

        self.heading = QLabel("Pick a reply to see how it was made.")
        self.heading.setWordWrap(True)
        self.tokenize = StageCard("1 Tokenize", SENTENCES["tokenize"])
        self.tokenize.set_links(
            [("tokens", "your message's tokens"), ("prompt", "the prompt as the model read it")]
        )
        self.read = StageCard("2 Prefill", SENTENCES["prefill"])
        self.inputs = QLabel("")
        self.inputs.setWordWrap(True)
        self.inputs.setVisible(False)
        self.read.column.addWidget(self.inputs)
        self.decode = StageCard("3 Decode", SENTENCES["decode"])
        self.bars = StepBars()
        self.bars.token_clicked.connect(self.token_clicked)
        self.decode.column.addWidget(self.bars)
        self.sample = StageCard("4 Sample", SENTENCES["sample"])
        self.funnel = SamplerFunnel()
        self.sample.column.addWidget(self.funnel)
        self.sample.set_links([("inspector", "the token inspector")])
        self.output = StageCard("5 Output", SENTENCES["output"])
        self.output.set_links(
            [
                ("inspector", "the token inspector"),
                ("attention", "what it attended to"),
                ("layers", "the layers behind it"),
            ]
        )

        inner = QWidget()
        column = QVBoxLayout(inner)
        column.addWidget(self.heading)
        cards = (self.tokenize, self.read, self.decode, self.sample, self.output)
        for card in cards:
            card.links.linkActivated.connect(self.link_requested)
            column.addWidget(card)
        column.addStretch(1)
        fill_with_scrolling(self, inner)
        self.clear()

    # ---- feeding ---------------------------------------------------------------------------
    def clear(self) -> None:
        """No reply (new chat, another chat opened, the reply gone)."""
        self.set_reply(None, [], [])
        self.heading.setText("Pick a reply to see how it was made.")

    def set_reply(
        self,
        prompt: PromptInfo | None,
        phases: Sequence[Phase],
        steps: Sequence[TokenStep],
        model: str | None = None,
    ) -> None:
        """Shows one reply (made by `model`, None: unknown). `phases` and `steps` are kept, not
        copied (the reply's own lists while it streams); later records come through
        `add_phase` / `add_step`."""
        self.prompt, self.steps, self.reply_model = prompt, steps, model
        self.phases = phases if isinstance(phases, list) else list(phases)
        self.selected = -1
        self.heading.setText("How the selected reply was made, step by step.")
        self._refresh()

    def set_prompt(self, prompt: PromptInfo) -> None:
        self.prompt = prompt
        self._refresh()

    def add_phase(self, phase: Phase) -> None:
        """A new phase of the shown reply (already in `phases` when that list is the reply's)."""
        if not any(p is phase for p in self.phases):
            self.phases.append(phase)
        self._refresh()

    def add_step(self, step: TokenStep) -> None:
        """A new token of the shown reply (already in `steps` when that list is the reply's)."""
        if not self.steps or self.steps[-1] is not step:
            self.steps = [*self.steps, step]
        self._show_steps()

    def show_token(self, index: int) -> None:
        """Pins token `index` for the Sample and Output cards (-1: follow the newest)."""
        self.selected = index if 0 <= index < len(self.steps) else -1
        self._show_steps()

    # ---- drawing ---------------------------------------------------------------------------
    def _phase(self, *names: str) -> Phase | None:
        return next((p for p in self.phases if p.phase in names), None)

    def _refresh(self) -> None:
        tokenize, read = self._phase("tokenize"), self._phase("prefill", "encode")
        encoder = read is not None and read.phase == "encode"
        if tokenize is not None:
            self.tokenize.set_figures(f"{tokenize.tokens:,} tokens · {tokenize.ms:.1f} ms")
        elif self.prompt is not None:
            self.tokenize.set_figures(f"{len(self.prompt.prompt_ids):,} tokens")
        else:
            self.tokenize.set_figures("–")
        self.tokenize.sentence.setText(SENTENCES["tokenize_encoder" if encoder else "tokenize"])
        self.read.set_title("2 Encoder" if encoder else "2 Prefill")
        self.read.sentence.setText(SENTENCES["encode" if encoder else "prefill"])
        self.decode.set_title("3 Decoder" if encoder else "3 Decode")
        if read is None:
            self.read.set_figures("reading…" if self.prompt is not None else "–")
        elif encoder:
            self.read.set_figures(f"{read.tokens:,} tokens · {read.ms:.1f} ms")
        else:
            self.read.set_figures(
                f"{read.tokens:,} tokens run · {read.reused:,} from the cache · {read.ms:.1f} ms"
            )
        self.inputs.setVisible(encoder)
        if encoder:
            self.inputs.setText(self._input_tokens())
        self._show_steps()

    def _input_tokens(self) -> str:
        ids = self.prompt.prompt_ids if self.prompt is not None else ()
        same = self.reply_model is None or self.reply_model == self.label_model
        label = (self.token_label if same else None) or str  # ids of another vocabulary: as ids
        shown = " ".join(
            f"<code>{html.escape(visible_token(label(i)))}</code>" for i in ids[:MAX_INPUT_TOKENS]
        )
        more = len(ids) - MAX_INPUT_TOKENS
        return shown + (f" … {more:,} more" if more > 0 else "")

    def _show_steps(self) -> None:
        steps = self.steps
        index = self.selected if self.selected >= 0 else len(steps) - 1
        self.bars.set_steps(steps, index)
        decode = self._phase("decode")
        if decode is not None:
            self.decode.set_figures(
                f"{decode.tokens:,} steps · {decode.ms:.0f} ms · {decode.tokens_per_s:.1f} tokens/s"
            )
        elif len(steps) > 1:
            ms = sum(step.step_ms for step in steps[1:])
            self.decode.set_figures(
                f"{len(steps) - 1:,} steps so far · {1000 * (len(steps) - 1) / ms:.1f} tokens/s"
            )
        else:
            self.decode.set_figures("–" if not steps else "the first token came from the prefill")
        if index < 0:
            self.funnel.set_chain((), 0)
            self.sample.set_figures("–")
            self.output.set_figures("–")
            return
        step = steps[index]
        vocab = next((s.candidates for s in step.sampler if s.stage != "draw"), 0)
        self.funnel.set_chain(step.sampler, vocab, not_sampled_text(step))
        which = "pinned" if self.selected >= 0 else "newest"
        self.sample.set_figures(f"token {index + 1} of {len(steps)} ({which})")
        self.output.set_figures(
            f"<code>{html.escape(visible_token(step.token))}</code> (id {step.id}) · "
            f"probability {percent(step.prob)} · step {step.step_ms:.1f} ms"
        )


def not_sampled_text(step: TokenStep) -> str:
    """What the funnel says for `step` when it has no sampler chain: a token of a continued
    reply was given, not drawn (the picked alternative, or one kept from the original)."""
    if step.picked:
        return "picked by you, not sampled"
    if step.forced:
        return "kept from the original reply, not sampled"
    return "no token yet"
