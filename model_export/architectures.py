"""Which model types the exporter accepts, declared in one place.

One entry per `config.model_type`. Decoder-only models go through optimum's
`text-generation-with-past` export; encoder-decoder models go to `model_export.seq2seq`.
A test (tests/export/test_architectures.py) fails when a registered decoder type has no tiny
test model, in the manner of optimum's own exporter tests.
"""

from __future__ import annotations

from .errors import ExportError

#: Decoder-only model types, each with the architecture name that the tiny fixtures build.
DECODER_MODEL_TYPES: dict[str, str] = {
    "llama": "LlamaForCausalLM",
    "gpt2": "GPT2LMHeadModel",
    "qwen2": "Qwen2ForCausalLM",
}


def seq2seq_model_types() -> tuple[str, ...]:
    """Encoder-decoder model types, as `model_export.seq2seq` declares them (empty if absent)."""
    try:
        from . import seq2seq
    except ImportError:
        return ()
    return tuple(getattr(seq2seq, "SUPPORTED_MODEL_TYPES", ()))


def supported_model_types() -> tuple[str, ...]:
    return tuple(sorted({*DECODER_MODEL_TYPES, *seq2seq_model_types()}))


def check_supported(model_type: str, is_encoder_decoder: bool) -> None:
    """Raise `ExportError` naming the supported types when `model_type` is not one of them."""
    known = seq2seq_model_types() if is_encoder_decoder else tuple(DECODER_MODEL_TYPES)
    if model_type in known or (is_encoder_decoder and not known):
        return
    raise ExportError(
        f"unsupported architecture '{model_type}': supported are "
        + ", ".join(supported_model_types())
    )
