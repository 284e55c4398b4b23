"""One forward pass for serving: numpy in, numpy out, on the device the network lives on.

On the CPU it is the plain call (``torch.from_numpy`` -> network -> ``.numpy()``). On CUDA, per
input shape (the scorer buckets them, ``stream/scorer.py``):

- pinned host buffers: the arrays are copied into page-locked memory, then to the device with
  ``non_blocking`` copies (a pageable copy is staged and synchronous), and the outputs come
  back the same way, with one synchronisation per call;
- optionally one CUDA graph per shape: the forward is captured once and replayed, which removes
  the per-kernel launch cost that dominates a small batch. Only the fused network
  (``model/fused.py``) is captured: its forward with ``check_mask=False`` never syncs with the
  host (the mask is checked here, in numpy, instead). A capture that fails turns graphs off
  for this runner and it carries on eagerly;
- a precision, ``fp32`` or ``bf16`` (autocast); ``benchmarks/gpu_throughput.py`` measures both
  per shape.

Captured graphs share one memory pool: safe because calls are serialised (a lock) and each
call copies its outputs out before the next replay.
"""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from crmrisk.model.fused import FusedMembers
from crmrisk.model.sequences import check_right_padded

__all__ = ["Precision", "ServingRunner"]

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
Outputs = tuple[np.ndarray, np.ndarray | None, np.ndarray]


@dataclass
class _Slot:
    """One input shape's buffers on CUDA (and its graph once captured)."""

    host_in: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # pinned events, mask, profile
    device_in: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    host_out: tuple[torch.Tensor, ...] | None = None  # pinned, allocated on the first call
    graph: torch.cuda.CUDAGraph | None = None
    device_out: tuple[torch.Tensor, ...] | None = None  # the graph's static outputs


class ServingRunner:
    """``run(events, mask, profile) -> (probability (B,), quantiles (B, Q) | None, attention
    (B, T))``, float32 numpy arrays, from ``network`` on ``device``.

    Parameters
    ----------
    network
        ``forward(events, mask, profile) -> RiskOutput``, already on ``device`` and in eval mode.
    device
        Where ``network`` lives.
    precision
        ``"fp32"`` or ``"bf16"`` (CUDA autocast; the CPU always runs float32).
    cuda_graphs
        Capture the fused network's forward once per input shape on CUDA and replay it.
    max_graphs
        Shapes captured at most; further shapes run eagerly.
    """

    def __init__(
        self,
        network: nn.Module,
        device: torch.device,
        *,
        precision: Precision,
        cuda_graphs: bool,
        max_graphs: int = 64,
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.network, self.device, self.precision = network, torch.device(device), precision
        self.cuda = self.device.type == "cuda"
        self.fused = isinstance(network, FusedMembers)
        self.cuda_graphs = cuda_graphs and self.cuda and self.fused
        self.max_graphs = max_graphs
        self._slots: dict[tuple[tuple[int, ...], ...], _Slot] = {}
        self._pool = None
        self._lock = threading.Lock()

    @property
    def graphs(self) -> int:
        """Shapes captured so far."""
        return sum(slot.graph is not None for slot in self._slots.values())

    def run(self, events: np.ndarray, mask: np.ndarray, profile: np.ndarray) -> Outputs:
        if not self.cuda:
            return self._run_plain(events, mask, profile)
        with self._lock:
            return self._run_cuda(events, mask, profile)

    # -- CPU (and any device but CUDA): the plain call ------------------------------------------
    @torch.inference_mode()
    def _run_plain(self, events: np.ndarray, mask: np.ndarray, profile: np.ndarray) -> Outputs:
        to = self.device
        e = torch.from_numpy(events).to(to, non_blocking=True)
        m = torch.from_numpy(mask).to(to, non_blocking=True)
        p = torch.from_numpy(profile).to(to, non_blocking=True)
        out = self.network(e, m, p)
        quantiles = None if out.quantiles is None else out.quantiles.float().cpu().numpy()
        return out.probability.float().cpu().numpy(), quantiles, out.attention.float().cpu().numpy()

    # -- CUDA -----------------------------------------------------------------------------------
    def _forward(
        self, e: torch.Tensor, m: torch.Tensor, p: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The network's outputs as float32 device tensors (probability, attention[, quantiles])."""
        # The autocast weight cache must be off while a graph is captured (torch.cuda.graphs).
        bf16 = torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
        with bf16 if self.precision == "bf16" else nullcontext():
            out = self.network(e, m, p, check_mask=False) if self.fused else self.network(e, m, p)
        outs = (out.probability.float(), out.attention.float())
        return outs if out.quantiles is None else (*outs, out.quantiles.float())

    @torch.inference_mode()
    def _run_cuda(self, events: np.ndarray, mask: np.ndarray, profile: np.ndarray) -> Outputs:
        if self.fused:
            check_right_padded(mask)  # here, on the host, so the device never syncs for it
        key = (events.shape, mask.shape, profile.shape)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = self._new_slot(events, mask, profile)
        for host, array in zip(slot.host_in, (events, mask, profile), strict=True):
            host.numpy()[...] = array
        for dev, host in zip(slot.device_in, slot.host_in, strict=True):
            dev.copy_(host, non_blocking=True)
        if slot.graph is None and self.cuda_graphs and self.graphs < self.max_graphs:
            self._capture(slot)
        if slot.graph is not None:
            slot.graph.replay()
            device_out = slot.device_out
        else:
            device_out = self._forward(*slot.device_in)
        if slot.host_out is None:
            slot.host_out = tuple(
                torch.empty_like(t, device="cpu").pin_memory() for t in device_out
            )
        for host, dev in zip(slot.host_out, device_out, strict=True):
            host.copy_(dev, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        probability, attention, *quantiles = (t.numpy().copy() for t in slot.host_out)
        return probability, (quantiles[0] if quantiles else None), attention

    def _new_slot(self, events: np.ndarray, mask: np.ndarray, profile: np.ndarray) -> _Slot:
        host = tuple(
            torch.from_numpy(np.empty_like(a)).pin_memory() for a in (events, mask, profile)
        )
        return _Slot(host, tuple(torch.empty_like(t, device=self.device) for t in host))

    def _capture(self, slot: _Slot) -> None:
        """Capture the forward on ``slot``'s device inputs; on failure, turn graphs off."""
        try:
            # Warm up on a side stream first (lazy initialisation, cuDNN plans), as the CUDA
            # graphs notes in torch's documentation ask.
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._forward(*slot.device_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                outputs = self._forward(*slot.device_in)
        except Exception as exc:  # a failed capture: serve eagerly, once noticed
            torch.cuda.synchronize(self.device)
            self.cuda_graphs = False
            log.warning("CUDA graph capture failed (%s); serving without graphs", exc)
            return
        slot.graph, slot.device_out = graph, outputs
