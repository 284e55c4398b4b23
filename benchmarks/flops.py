"""FLOPs per customer with torch's flop counter, recurrent layers included.

``torch.utils.flop_counter.FlopCounterMode`` has no formula for ``aten.lstm`` / ``aten.gru``,
which the CPU and cuDNN recurrent layers dispatch as one op: without help it reports 0 for the
whole LSTM. ``RECURRENT_FLOPS`` supplies the formula (2 FLOPs per multiply-add of the input and
recurrent matrix products, every step and layer; gate element-wise work ignored, as the counter
does everywhere); pass it as ``FlopCounterMode(custom_mapping=RECURRENT_FLOPS)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["RECURRENT_FLOPS", "count_flops"]


def _recurrent_flops(*args: Any, **kwargs: Any) -> int:
    """FLOPs of ``aten.lstm`` / ``aten.gru`` from argument shapes (padded or packed overload)."""
    if isinstance(args[3], bool):  # .input: (input, hx, params, has_biases, ..., batch_first)
        input_shape, params, has_biases = args[0], args[2], args[3]
        tokens = input_shape[0] * input_shape[1]  # (B, T) or (T, B): same product
    else:  # .data (packed): (data, batch_sizes, hx, params, has_biases, ...)
        params, has_biases, tokens = args[3], args[4], args[0][0]
    per_set = 4 if has_biases else 2  # w_ih, w_hh[, b_ih, b_hh] per layer and direction
    total = 0
    for i in range(0, len(params), per_set):
        w_ih, w_hh = params[i], params[i + 1]  # (gates * H, in), (gates * H, H)
        total += 2 * tokens * (w_ih[0] * w_ih[1] + w_hh[0] * w_hh[1])
    return int(total)


# Torch versions differ in whether FlopCounterMode looks formulas up by overload packet
# (``aten.lstm``) or by overload (``aten.lstm.input``); registering both counts each call once,
# and stops versions that would otherwise decompose the op from counting it step by step.
RECURRENT_FLOPS = {
    op: _recurrent_flops
    for packet in (torch.ops.aten.lstm, torch.ops.aten.gru)
    for op in (packet, packet.input, packet.data)
}


def count_flops(
    model: torch.nn.Module, events: torch.Tensor, mask: torch.Tensor, profile: torch.Tensor
) -> float:
    """FLOPs of one inference forward pass over the batch given, divided by its size."""
    counter = FlopCounterMode(display=False, custom_mapping=RECURRENT_FLOPS)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), counter:
            model(events, mask, profile)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / events.shape[0]
