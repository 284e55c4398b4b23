"""The startup heap frozen out of the collector's sight (by the worker and its alert process)."""

from __future__ import annotations

import atexit
import gc

__all__ = ["freeze_heap"]


def freeze_heap() -> None:
    """Move what is alive now (models, libraries, settings) out of the collector's sight.

    A full collection scans every tracked object: with torch and the served models loaded that
    stalled a batch for ~0.5 s (gc callbacks on ``benchmarks/hot_path.py``). What the loop
    allocates afterwards is still collected; only the startup heap is never scanned again.
    """
    gc.collect()
    gc.freeze()
    # Frozen objects are never collected, not even at exit, where extension modules (triton's
    # nanobind bindings, imported by torch) would then report them as leaked.
    atexit.unregister(gc.unfreeze)
    atexit.register(gc.unfreeze)
