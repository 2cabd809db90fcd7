"""A small numpy + ONNX Runtime runner for an exported encoder-decoder folder (for the self-check).

It owns: opening `onnx/encoder_model*.onnx` and `onnx/decoder_model_merged*.onnx`, one encoder pass,
one decoder step with a KV cache, and a greedy loop. It does not know the app's engine
(desktop/engine has its own stepper); it lets the exporter prove its output without the app.

The first decoder step feeds a zero-length cache, `float32[batch, heads, 0, head_dim]`, for every
`past_key_values.*` input and `use_cache_branch=False` (case D1, transformers#16512). Whether the
decoder takes a cache is read from the graph's inputs, never from the file name (case D2,
transformers.js#969).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

PAST_PREFIX = "past_key_values."
PRESENT_PREFIX = "present."
CACHE_FLAG = "use_cache_branch"


@dataclass(frozen=True)
class CacheLayout:
    """The KV-cache inputs of a decoder graph, read from the graph itself.

    `past_names` lists the `past_key_values.{i}.decoder|encoder.key|value` inputs in graph order;
    `heads` and `head_dim` are the fixed axes 1 and 3 of those inputs.
    """

    past_names: tuple[str, ...]
    heads: int
    head_dim: int
    has_cache_flag: bool


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # case D6: explicit intra-op threads, inter-op 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: zero-length cache shapes make ORT warn
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_cache_layout(decoder: ort.InferenceSession, fallback_heads: int, fallback_dim: int):
    """Read the KV-cache inputs of `decoder` (case D2: from the inputs, not the file name)."""
    past = [i for i in decoder.get_inputs() if i.name.startswith(PAST_PREFIX)]
    heads, head_dim = fallback_heads, fallback_dim
    if past:
        shape = past[0].shape
        heads = shape[1] if isinstance(shape[1], int) else fallback_heads
        head_dim = shape[3] if isinstance(shape[3], int) else fallback_dim
    names = {i.name for i in decoder.get_inputs()}
    return CacheLayout(tuple(i.name for i in past), heads, head_dim, CACHE_FLAG in names)


class OnnxSeq2Seq:
    """Encoder + merged decoder sessions of one exported folder.

    `suffix` picks a variant ("" for fp32, "_int8" or "_q4" for the quantized files).
    Raises onnxruntime's own errors when a file is missing or broken.
    """

    def __init__(self, folder: Path, config, suffix: str = "", threads: int = 1) -> None:
        onnx_dir = Path(folder) / "onnx"
        self.encoder = _session(onnx_dir / f"encoder_model{suffix}.onnx", threads)
        self.decoder = _session(onnx_dir / f"decoder_model_merged{suffix}.onnx", threads)
        heads = getattr(config, "decoder_attention_heads", None) or config.num_heads
        head_dim = getattr(config, "d_kv", None) or config.d_model // heads
        self.layout = read_cache_layout(self.decoder, heads, head_dim)

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """int64[batch, src] ids and mask -> float32[batch, src, d_model] last_hidden_state."""
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.encoder.run(["last_hidden_state"], feeds)[0]

    def step(self, input_ids, hidden, encoder_mask, past: dict[str, np.ndarray] | None):
        """One decoder step.

        input_ids: int64[batch, new]; hidden: float32[batch, src, d_model]; encoder_mask:
        int64[batch, src]; past: the previous step's cache keyed by `past_key_values.*` names, or
        None for the first step. Returns (float32[batch, new, vocab] logits, the new cache).
        """
        batch = input_ids.shape[0]
        feeds = {"input_ids": input_ids, "encoder_attention_mask": encoder_mask}
        feeds["encoder_hidden_states"] = hidden
        if past is None:
            empty = np.zeros((batch, self.layout.heads, 0, self.layout.head_dim), np.float32)
            feeds.update(dict.fromkeys(self.layout.past_names, empty))  # (B, nh, 0, hs)
        else:
            feeds.update(past)
        if self.layout.has_cache_flag:
            feeds[CACHE_FLAG] = np.array([past is not None])
        names = [o.name for o in self.decoder.get_outputs()]
        outputs = dict(zip(names, self.decoder.run(names, feeds), strict=True))
        cache = {
            PAST_PREFIX + name[len(PRESENT_PREFIX) :]: value
            for name, value in outputs.items()
            if name.startswith(PRESENT_PREFIX)
        }
        if past is not None:
            # cross-attention K/V are computed once, at the first step; the cached branch of the
            # merged graph returns empty placeholders for present.*.encoder.*, so keep the old ones
            cache.update({name: value for name, value in past.items() if ".encoder." in name})
        return outputs["logits"], cache

    def greedy(
        self,
        input_ids: np.ndarray,
        decoder_start: int,
        eos_ids: set[int],
        max_new_tokens: int,
        forced_bos: int | None = None,
    ) -> list[int]:
        """Greedy ids after `decoder_start` for one source int64[1, src], stopping after an EOS.

        `forced_bos` replaces the first generated token (as ForcedBOSTokenLogitsProcessor).
        """
        mask = np.ones_like(input_ids)
        hidden = self.encode(input_ids, mask)
        token, past, out = decoder_start, None, []
        for i in range(max_new_tokens):
            logits, past = self.step(np.array([[token]], np.int64), hidden, mask, past)
            token = int(np.argmax(logits[0, -1]))  # (vocab,) -> id
            if i == 0 and forced_bos is not None:
                token = forced_bos
            out.append(token)
            if token in eos_ids:
                break
        return out
