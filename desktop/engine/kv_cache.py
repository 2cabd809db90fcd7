"""The KV cache: one array per `past_key_values.*` input, fed back from `present.*` outputs.

Owns: the empty (length-0) start (case D1), the update after each step and rewinding. Self-
attention entries grow by one position per decode step; cross-attention entries (encoder-decoder)
are set by the first decoder step and then kept. Arrays are float[1, heads, length, head_dim];
the graph concatenates past and new keys itself, so an update only swaps references (no copy).
Knows nothing about which architecture produced the slots (manifest.py decided that).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from desktop.engine.manifest import CacheSlot, empty_cache_shape

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class KVCache:
    """The cache of one conversation turn. `length`: positions held by the self-attention cache."""

    def __init__(self, slots: Sequence[CacheSlot], config: dict):
        self.slots = tuple(slots)
        self._empty = {
            s.past: np.zeros(empty_cache_shape(s, config), dtype=_DTYPES.get(s.dtype, np.float32))
            for s in self.slots
        }  # each (1, heads, 0, head_dim)
        self._arrays: dict[str, np.ndarray] = dict(self._empty)
        self.length = 0

    def reset(self) -> None:
        """Back to the empty cache."""
        self._arrays = dict(self._empty)
        self.length = 0

    def feeds(self) -> dict[str, np.ndarray]:
        """past input name -> float[1, heads, length, head_dim] (cross: encoder length)."""
        return self._arrays

    def update(self, pasts: dict[str, np.ndarray]) -> None:
        """Take a step's present.* outputs, keyed by the past input each continues, as the next
        cache. Entries not given keep their value (cross-attention after the first step)."""
        for name, array in pasts.items():
            self._arrays[name] = array  # (1, heads, length, head_dim)
        self_slots = [s for s in self.slots if not s.cross]
        if self_slots:
            self.length = int(self._arrays[self_slots[0].past].shape[2])

    def rewind(self, length: int) -> None:
        """Keep only the first `length` positions of the self-attention cache."""
        if length >= self.length:
            return
        for slot in self.slots:
            if not slot.cross:  # a contiguous copy: ONNX Runtime reads inputs as dense buffers
                self._arrays[slot.past] = np.ascontiguousarray(
                    self._arrays[slot.past][:, :, :length, :]
                )
        self.length = length
