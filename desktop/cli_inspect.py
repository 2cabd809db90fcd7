"""`tokenglass inspect [--model M] [--raw] [--target TEXT] [--top-k K] [--json] TEXT`, and
`tokenglass inspect CONVERSATION_ID --message MESSAGE_ID [--json]` for a saved reply.

Runs the model's probe graph (desktop/engine/inspect.py) over TEXT: by default TEXT as one user
message through the chat template with the generation prompt (what the model reads before it
answers); with --raw TEXT read as the tokenizer reads it by default (its own special-token rules,
as `tokenizer(TEXT)` in transformers), no template. A saved reply is read as the model read it:
the prompt saved with it, then the reply's tokens (on the model it was made with, unless --model).

--json prints one object (strict JSON, desktop.openai_json.dumps):
    tokens      [{id, token}]                         the sequence fed
    attention   [layer][head][query][key]              decoder self-attention probabilities
    logit_lens  [layer][position][k] of {id, token, logprob}, layers 1..L; the last layer's are
                the model's own next-token log-probabilities (natural log)
Without --json, one line per token: the three tokens it attends to most (mean over heads, last
layer) and the lens's top-1 per layer.

Encoder-decoder models: TEXT is the encoder's input, --target TEXT the decoder's input (the
decoder start token put first; without --target the start token alone). --json then prints
`tokens` (encoder input), `target_tokens`, `encoder_attention` [L][H][S][S], `decoder_attention`
[L][H][T][T], `cross_attention` [L][H][T][S] and `logit_lens` over the decoder positions; without
--json, per decoder token, the three input tokens it attends to most (cross-attention, mean over
heads, last layer) and the lens's top-1 per layer. Errors are EngineErrors (desktop/cli.py).
"""

from __future__ import annotations

import argparse

import numpy as np

from desktop import openai_json
from desktop.cli_chat import _load, _model_args, number
from desktop.engine.errors import EngineError
from desktop.engine.events import Message
from desktop.engine.inspect import Inspection


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="attention maps and the logit lens of a text (the model's probe graph)"
    )
    parser.add_argument("text", help="the text, or with --message a conversation id")
    parser.add_argument(
        "--message", type=int, metavar="MESSAGE_ID", help="a saved reply of conversation TEXT"
    )
    _model_args(parser)
    parser.add_argument("--raw", action="store_true", help="tokenize TEXT as is (no chat template)")
    parser.add_argument("--target", help="encoder-decoder models: the decoder's input text")
    parser.add_argument(
        "--top-k", type=number(int, 1, 20), default=5, help="lens entries per layer, 1 to 20"
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run_inspect)


def _saved_reply(args: argparse.Namespace) -> tuple[str | None, list[int]]:
    """(model name, prompt ids + reply ids) of the saved reply --message in conversation TEXT.
    Raises UsageError (exit 2) for an id that is not there, EngineError otherwise."""
    from desktop.cli_chat import UsageError
    from desktop.history import History

    try:
        conv_id = int(args.text)
    except ValueError:
        raise UsageError(f"With --message, give a conversation id, not {args.text!r}.") from None
    with History() as history:
        messages = history.tree(conv_id)  # every version: any saved reply can be inspected
    found = next((m for m in messages if m.id == args.message), None)
    if found is None or found.role != "assistant":
        raise UsageError(f"Conversation {conv_id} has no reply with id {args.message}.")
    if found.prompt is None:
        raise EngineError(
            f"Reply {args.message} was saved without its prompt (an older version), so it cannot "
            "be read again as the model read it."
        )
    return found.model, [*found.prompt.prompt_ids, *(s.id for s in found.steps)]


def _ids(model, args: argparse.Namespace) -> list[int]:
    if args.target is not None and model.kind == "decoder":
        raise EngineError("--target is for encoder-decoder models; this one is decoder-only.")
    if args.raw or model.kind != "decoder":
        return model.tokenizer.encode_prompt(args.text, rendered_by_template=False)
    return list(model.render_prompt([Message("user", args.text)], 1).prompt_ids)


def run_inspect(args: argparse.Namespace) -> int:
    if args.message is not None:
        name, ids = _saved_reply(args)
        if args.model is None:
            args.model = name
        model = _load(args)
    else:
        model = _load(args)
        ids = _ids(model, args)
    label = model.tokenizer.token_label
    if model.kind != "decoder":
        return _run_seq2seq(model, ids, args)
    result = model.inspect(ids, top_k=args.top_k)
    if args.json:
        print(openai_json.dumps(inspection_json(result, label)))
        return 0
    for line in summary_lines(result, label):
        print(line)
    return 0


def _run_seq2seq(model, ids: list[int], args: argparse.Namespace) -> int:
    start = model.manifest.decoder_start_id
    if start is None:
        start = model.manifest.pad_id
    if start is None:
        raise EngineError(f"{model.name}'s config.json names no decoder_start_token_id.")
    target = model.tokenizer.encode(args.target) if args.target else []
    result = model.inspect_seq2seq(ids, [start, *target], top_k=args.top_k)
    label = model.tokenizer.token_label
    if args.json:
        print(openai_json.dumps(seq2seq_json(result, label)))
        return 0
    cross = result.cross_attention[-1].mean(axis=0)  # (rows, src)
    print(
        f"{len(result.input_ids)} input and {len(result.decoder_ids)} decoder tokens, "
        f"{result.lens_ids.shape[0]} decoder layers ({result.seconds * 1000:.0f} ms)"
    )
    for row, position in enumerate(result.positions):
        top = np.argsort(-cross[row], kind="stable")[:3]
        attended = ", ".join(f"{label(result.input_ids[k])!r} {cross[row, k]:.2f}" for k in top)
        lens = " ".join(repr(label(int(i))) for i in result.lens_ids[:, row, 0])
        token = label(result.decoder_ids[position])
        print(f"{position:>4} {token!r:<14} attends {attended} | lens {lens}")
    return 0


def _lens_json(lens_ids: np.ndarray, lens_logprobs: np.ndarray, names: dict) -> list:
    """[layer][position][k] of {id, token, logprob} from int64/float32[layers, rows, k]."""
    return [
        [
            [
                {"id": int(i), "token": names[int(i)], "logprob": float(lp)}
                for i, lp in zip(ids_row, lp_row, strict=True)
            ]
            for ids_row, lp_row in zip(layer_ids, layer_lp, strict=True)
        ]
        for layer_ids, layer_lp in zip(lens_ids, lens_logprobs, strict=True)
    ]


def _maps(array: np.ndarray) -> list:
    return np.round(array.astype(np.float64), 7).tolist()


def seq2seq_json(result, label) -> dict:
    """The --json object for an encoder-decoder model (a Seq2SeqInspection)."""
    ids = {*result.input_ids, *result.decoder_ids, *result.lens_ids.ravel().tolist()}
    names = {i: label(i) for i in ids}
    return {
        "tokens": [{"id": i, "token": names[i]} for i in result.input_ids],
        "target_tokens": [{"id": i, "token": names[i]} for i in result.decoder_ids],
        "encoder_attention": _maps(result.encoder_attention),
        "decoder_attention": _maps(result.decoder_attention),
        "cross_attention": _maps(result.cross_attention),
        "logit_lens": _lens_json(result.lens_ids, result.lens_logprobs, names),
    }


def inspection_json(result: Inspection, label) -> dict:
    """The --json object; `label(id) -> str` names tokens (the tokenizer's own decoding)."""
    names = {i: label(i) for i in {*result.ids, *result.lens_ids.ravel().tolist()}}
    return {
        "tokens": [{"id": i, "token": names[i]} for i in result.ids],
        "attention": _maps(result.attention),
        "logit_lens": _lens_json(result.lens_ids, result.lens_logprobs, names),
    }


def summary_lines(result: Inspection, label) -> list[str]:
    """Per token: its three most attended tokens (mean over heads, last layer) and the lens's
    top-1 per layer (layer 1 first)."""
    mean = result.attention[-1].mean(axis=0)  # (rows, seq)
    lines = [f"{len(result.ids)} tokens, {result.layers} layers x {result.heads} heads "
             f"({result.seconds * 1000:.0f} ms)"]  # fmt: skip
    for row, position in enumerate(result.positions):
        top = np.argsort(-mean[row, : position + 1], kind="stable")[:3]
        attended = ", ".join(f"{label(result.ids[k])!r} {mean[row, k]:.2f}" for k in top)
        lens = " ".join(repr(label(int(i))) for i in result.lens_ids[:, row, 0])
        lines.append(
            f"{position:>4} {label(result.ids[position])!r:<14} attends {attended} | lens {lens}"
        )
    return lines
