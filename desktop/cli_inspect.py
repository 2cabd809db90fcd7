"""`tokenglass inspect [--model M] [--raw] [--target TEXT] [--top-k K] [--json] TEXT`.

Runs the model's probe graph (desktop/engine/inspect.py) over TEXT: by default TEXT as one user
message through the chat template with the generation prompt (what the model reads before it
answers); with --raw TEXT read as the tokenizer reads it by default (its own special-token rules,
as `tokenizer(TEXT)` in transformers), no template.

--json prints one object (strict JSON, desktop.openai_json.dumps):
    tokens      [{id, token}]                         the sequence fed
    attention   [layer][head][query][key]              decoder self-attention probabilities
    logit_lens  [layer][position][k] of {id, token, logprob}, layers 1..L; the last layer's are
                the model's own next-token log-probabilities (natural log)
Without --json, one line per token: the three tokens it attends to most (mean over heads, last
layer) and the lens's top-1 per layer. Encoder-decoder models (--target) are not supported yet:
they give one clear error line. Errors are EngineErrors (desktop/cli.py prints them).
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
    parser.add_argument("text")
    _model_args(parser)
    parser.add_argument("--raw", action="store_true", help="tokenize TEXT as is (no chat template)")
    parser.add_argument("--target", help="encoder-decoder models: the decoder's input text")
    parser.add_argument(
        "--top-k", type=number(int, 1, 20), default=5, help="lens entries per layer, 1 to 20"
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run_inspect)


def _ids(model, args: argparse.Namespace) -> list[int]:
    if model.kind != "decoder" or args.target is not None:
        raise EngineError(
            "inspect reads decoder-only models for now; encoder-decoder attention (--target) "
            "is not supported yet."
        )
    if args.raw:
        return model.tokenizer.encode_prompt(args.text, rendered_by_template=False)
    return list(model.render_prompt([Message("user", args.text)], 1).prompt_ids)


def run_inspect(args: argparse.Namespace) -> int:
    model = _load(args)
    ids = _ids(model, args)
    result = model.inspect(ids, top_k=args.top_k)
    label = model.tokenizer.token_label
    if args.json:
        print(openai_json.dumps(inspection_json(result, label)))
        return 0
    for line in summary_lines(result, label):
        print(line)
    return 0


def inspection_json(result: Inspection, label) -> dict:
    """The --json object; `label(id) -> str` names tokens (the tokenizer's own decoding)."""
    names = {i: label(i) for i in {*result.ids, *result.lens_ids.ravel().tolist()}}
    lens = [
        [
            [
                {"id": int(i), "token": names[int(i)], "logprob": float(lp)}
                for i, lp in zip(ids_row, lp_row, strict=True)
            ]
            for ids_row, lp_row in zip(layer_ids, layer_lp, strict=True)
        ]
        for layer_ids, layer_lp in zip(result.lens_ids, result.lens_logprobs, strict=True)
    ]
    return {
        "tokens": [{"id": i, "token": names[i]} for i in result.ids],
        "attention": np.round(result.attention.astype(np.float64), 7).tolist(),
        "logit_lens": lens,
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
