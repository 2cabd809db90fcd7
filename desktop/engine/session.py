"""ONNX Runtime sessions: the only module that imports onnxruntime.

Owns: execution-provider choice with an honest fallback (case D3: a GPU provider that cannot load
makes ONNX Runtime fall back to CPU silently, so the providers the session actually got are
compared with those asked for, and the reason is kept), thread settings (D6: intra-op threads set
explicitly, inter-op 1, sequential execution; encoder and decoder run one after the other with the
same intra-op budget; see SPIN for spinning), and running a graph with numpy feeds or with IO
binding. Knows nothing about what the graphs mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from desktop.engine.errors import EngineError, ModelFolderError, ProviderError

PROVIDER_NAMES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
AUTO_ORDER = ("cuda", "dml", "coreml", "cpu")
PROVIDER_NEEDS: dict[str, str] = {
    "cuda": "the onnxruntime-gpu package and an NVIDIA GPU with its CUDA and cuDNN libraries",
    "dml": "the onnxruntime-directml package, on Windows with a DirectX 12 GPU",
    "coreml": "ONNX Runtime's macOS build, on a Mac",
}
NUMPY_TYPES: dict[str, type] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class ProviderInfo:
    """requested: what the user asked for (auto|cpu|cuda|dml|coreml). actual: the providers the
    session got (session.get_providers()), best first. fallback_reason: why a requested GPU
    provider is not in use (None when it is, or when CPU was asked for)."""

    requested: str
    actual: list[str]
    fallback_reason: str | None

    @property
    def name(self) -> str:
        return self.actual[0] if self.actual else "CPUExecutionProvider"


def default_threads() -> int:
    """Intra-op threads when none are given: the CPUs this process may use, at most 4 (small
    models gain little past 4 threads and the rest of the desktop stays responsive)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        available = os.cpu_count() or 1
    return max(1, min(4, available))


def available_providers() -> tuple[str, ...]:
    """The provider choices this ONNX Runtime build can run: "auto", "cpu", then those of cuda,
    dml and coreml (AUTO_ORDER) whose execution provider `ort.get_available_providers()` lists.
    What the missing ones need: PROVIDER_NEEDS."""
    have = ort.get_available_providers()
    gpus = (p for p in AUTO_ORDER if p != "cpu" and PROVIDER_NAMES[p] in have)
    return ("auto", "cpu", *gpus)


def _wanted(requested: str) -> list[str]:
    if requested not in (*PROVIDER_NAMES, "auto"):
        raise ProviderError(
            f"Unknown execution provider {requested!r}: choose auto, cpu, cuda, dml or coreml."
        )
    available = ort.get_available_providers()
    if requested == "auto":
        return [PROVIDER_NAMES[p] for p in AUTO_ORDER if PROVIDER_NAMES[p] in available]
    # only providers this build has (asking for others just makes ONNX Runtime warn)
    wanted = dict.fromkeys([PROVIDER_NAMES[requested], "CPUExecutionProvider"])
    return [p for p in wanted if p in available]


SPIN = True
"""Whether the intra-op pool's threads spin while a run is in progress (they stop when it ends:
`session.force_spinning_stop`, so nothing spins between decode steps or while the app is idle).
A decode step of a small model is hundreds of short operators, and waking a sleeping thread for
each one costs more than the operator. Measured on the default model (2 vCPUs, 2 threads, 128
greedy tokens, medians): 57 tok/s without spinning, 70 with it (ONNX Runtime's default, which
also spins between runs: 72). With one core busy in another process, spinning lost instead
(49 vs 36 tok/s): spinning threads take the core the working one needs. A desktop chat usually
has the machine to itself while it answers, so it spins. (In the window, whose GUI thread paints
every token on the same two cores, it neither won nor lost: 54.5 vs 56.0 tok/s.)"""


def _options(threads: int, spin: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")  # none between runs
    options.log_severity_level = 3  # errors only: fallbacks are reported through ProviderInfo
    return options


class Graph:
    """One InferenceSession. inputs: name -> (shape, onnx type); outputs: names in graph order;
    metadata: the model's custom metadata (str -> str)."""

    def __init__(self, file: Path, requested: str, threads: int, spin: bool = SPIN):
        self.file = file
        wanted = _wanted(requested)
        self.fallback_reason: str | None = None
        asked = PROVIDER_NAMES.get(requested)
        if asked and asked not in wanted:
            self.fallback_reason = _why_missing(asked)
        try:
            self.session = ort.InferenceSession(
                str(file), sess_options=_options(threads, spin), providers=wanted
            )
        except Exception as err:  # ORT raises pybind RuntimeError subclasses with no common base
            if wanted == ["CPUExecutionProvider"]:
                raise ModelFolderError(
                    f"{file} could not be loaded by ONNX Runtime: {err}"
                ) from err
            self.fallback_reason = f"{wanted[0]} failed to start ({err}); running on CPU"
            try:
                self.session = ort.InferenceSession(
                    str(file),
                    sess_options=_options(threads, spin),
                    providers=["CPUExecutionProvider"],
                )
            except Exception as cpu_err:  # as above
                raise ModelFolderError(
                    f"{file} could not be loaded by ONNX Runtime: {cpu_err}"
                ) from cpu_err
        actual = self.session.get_providers()
        if self.fallback_reason is None and wanted and wanted[0] not in actual:
            self.fallback_reason = _why_missing(wanted[0])
        self.providers = actual
        # the graph's metadata_props (e.g. model_export's past_present_share_buffer)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.inputs = {i.name: (tuple(i.shape), i.type) for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.output_shapes = {o.name: tuple(o.shape) for o in self.session.get_outputs()}

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list:
        """Run with numpy feeds; returns numpy arrays for `outputs` (all when None).

        Raises EngineError (with ONNX Runtime's message) when the run fails.
        """
        try:
            return self.session.run(outputs, feeds)
        except Exception as err:  # ORT Fail/InvalidArgument share no base class
            raise EngineError(f"The model failed while running {self.file.name}: {err}") from err

    def io_binding(self) -> ort.IOBinding:
        return self.session.io_binding()

    def run_with_binding(self, binding: ort.IOBinding) -> None:
        try:
            self.session.run_with_iobinding(binding)
        except Exception as err:  # as in run()
            raise EngineError(f"The model failed while running {self.file.name}: {err}") from err


def _why_missing(provider: str) -> str:
    available = ort.get_available_providers()
    if provider not in available:
        return (
            f"{provider} is not part of this ONNX Runtime build "
            f"(available: {', '.join(available)}); running on CPU"
        )
    return (
        f"ONNX Runtime could not start {provider} (usually a missing GPU driver or CUDA/cuDNN "
        "library; see ONNX Runtime's log); running on CPU"
    )


def open_graphs(
    files: dict[str, Path], requested: str = "auto", threads: int | None = None
) -> tuple[dict[str, Graph], ProviderInfo]:
    """Open one session per role. threads: intra-op threads (None: `default_threads()`).

    Raises ProviderError for an unknown provider name, ModelFolderError for a graph ONNX Runtime
    cannot load. The returned ProviderInfo describes the decoder's session (the one that runs
    every step).
    """
    budget = threads if threads and threads > 0 else default_threads()
    graphs = {role: Graph(f, requested, budget) for role, f in files.items()}
    main = graphs["decoder"]
    reasons = [g.fallback_reason for g in graphs.values() if g.fallback_reason]
    return graphs, ProviderInfo(requested, list(main.providers), reasons[0] if reasons else None)


def ort_value(array: np.ndarray):
    """An OrtValue on CPU wrapping `array` (no copy for C-contiguous arrays)."""
    return ort.OrtValue.ortvalue_from_numpy(array)
